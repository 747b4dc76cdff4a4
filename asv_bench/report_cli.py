"""Print the command line's insert figures from one run, beside the library's.

    python asv_bench/report_cli.py [--dir DIR] [--rows 1000000] [--dimension 128]
                                   [--repeats 3] [--only npy|jsonl]

1. ``.npy``: ``jadevec batch-insert`` of a rows x dimension float32 file,
   timed around the whole process (start-up, the checking pass, storing,
   close), against ``Database.batch_store`` of the same matrix in the same
   batches on the same backend, in this process; each is run ``--repeats``
   times, alternating, on a new store, and the best of each is kept (the
   machine may be shared). Target: at least half the library's rate.
2. JSON lines: the same rows written as JSON lines; the rate at which the
   command's reader parses and checks them (its first pass, in this process,
   with the stdlib ``json``), the rate of bare ``json.loads`` over the lines
   for comparison, and the whole ``jadevec batch-insert`` of the file.

Files go under DIR (default: the system temp folder) and are removed at the
end; 1M x 128 needs about 0.5 GB for the .npy and 1.4 GB for the JSON lines.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import jadevec
from jadevec.cli._input import open_vector_file

BATCH = 10_000


def cli(data_dir: Path, *args: object) -> float:
    """Run one ``jadevec`` command; its wall time in seconds."""
    argv = [sys.executable, "-m", "jadevec", "--data-dir", str(data_dir), *map(str, args)]
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def library_rate(folder: Path, vectors: np.ndarray) -> float:
    rows, dimension = vectors.shape
    started = time.perf_counter()
    with jadevec.open(folder) as store:
        db = store.create_database("bench", dimension)
        for start in range(0, rows, BATCH):
            stop = min(start + BATCH, rows)
            db.batch_store([str(i) for i in range(start, stop)], vectors[start:stop])
        store.sync()
    return rows / (time.perf_counter() - started)


def write_jsonl(path: Path, vectors: np.ndarray) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for start in range(0, len(vectors), BATCH):
            block = vectors[start:start + BATCH].astype(np.float64).round(6).tolist()
            handle.writelines(json.dumps({"id": f"v{start + i}", "values": row}) + "\n"
                              for i, row in enumerate(block))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dimension", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=("npy", "jsonl"), default=None)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="jadevec-cli-bench-", dir=args.dir))
    rows, dimension = args.rows, args.dimension
    try:
        vectors = np.random.default_rng(0).standard_normal((rows, dimension), dtype=np.float32)
        npy = base / "vectors.npy"
        np.save(npy, vectors)
        print(f"jadevec {jadevec.__version__}, {rows:,} x {dimension} float32, "
              f"batches of {BATCH:,}, backend hybrid")

        if args.only != "jsonl":
            library = command = 0.0
            for run in range(args.repeats):
                library = max(library, library_rate(base / f"library-{run}", vectors))
                cli(base / f"cli-{run}", "create", "--database", "bench", "--dimension",
                    dimension)
                seconds = cli(base / f"cli-{run}", "batch-insert", "--database", "bench",
                              "--file", npy, "--batch-size", BATCH)
                command = max(command, rows / seconds)
                shutil.rmtree(base / f"library-{run}")
                shutil.rmtree(base / f"cli-{run}")
            print(f"npy   library batch_store        {library:>12,.0f} rows/s  (best of "
                  f"{args.repeats})")
            print(f"npy   jadevec batch-insert       {command:>12,.0f} rows/s  (best of "
                  f"{args.repeats}, whole process: {command / library:.2f} x the library; "
                  f"target >= 0.50)")
        if args.only == "npy":
            return 0

        jsonl = base / "vectors.jsonl"
        write_jsonl(jsonl, vectors)
        size = jsonl.stat().st_size
        started = time.perf_counter()
        with open(jsonl, encoding="utf-8") as handle:
            for line in handle:
                json.loads(line)
        loads = rows / (time.perf_counter() - started)
        started = time.perf_counter()
        report = open_vector_file(str(jsonl), dimension, "cosine").check(
            False, lambda: None, lambda n: None)
        parse = report.rows / (time.perf_counter() - started)
        print(f"jsonl file: {size / 1e9:.2f} GB")
        print(f"jsonl json.loads per line        {loads:>12,.0f} rows/s")
        print(f"jsonl parse + check (one pass)   {parse:>12,.0f} rows/s  "
              f"({parse * size / rows / 1e6:.0f} MB/s)")
        cli(base / "cli-json", "create", "--database", "bench", "--dimension", dimension)
        seconds = cli(base / "cli-json", "batch-insert", "--database", "bench", "--file", jsonl,
                      "--batch-size", BATCH)
        print(f"jsonl jadevec batch-insert       {rows / seconds:>12,.0f} rows/s  "
              f"({seconds:.2f} s: two passes, check then store)")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
