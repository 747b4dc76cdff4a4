"""Print how long ``close()`` takes on a large store, beside its target (< 10 s).

    python asv_bench/report_shutdown.py [--dir DIR] [--backend hybrid] [--databases 100]
                                        [--vectors 1000000] [--dimension 128]

The store gets ``--databases`` databases holding ``--vectors`` vectors in all
(float32, ``--dimension`` wide; 1M x 128 is about 0.5 GB), written with the
background checkpoint off so that ``close()`` has everything to commit. Three
figures: ``close()`` right after the writes (every database dirty, every file
synced), ``close()`` after a ``sync()`` (nothing left to write), and a reopen
(it must need no recovery). Temporary files go under DIR (default: the
system temp folder) and are removed.
"""

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

import jadevec


def fill(store: jadevec.Store, databases: int, vectors: int, dimension: int) -> None:
    rng = np.random.default_rng(0)
    per_db = vectors // databases
    for d in range(databases):
        db = store.create_database(f"db{d:03d}", dimension, "l2")
        for start in range(0, per_db, 50_000):
            m = min(50_000, per_db - start)
            db.batch_store([f"v{start + i}" for i in range(m)],
                           rng.standard_normal((m, dimension)).astype(np.float32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--backend", default="hybrid")
    parser.add_argument("--databases", type=int, default=100)
    parser.add_argument("--vectors", type=int, default=1_000_000)
    parser.add_argument("--dimension", type=int, default=128)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="jadevec-shutdown-", dir=args.dir))
    try:
        path = base / "store"
        options = {"flush_interval": 0, "max_open_files": max(100, args.databases)}
        store = jadevec.open(path, backend=args.backend, **options)
        started = time.perf_counter()
        fill(store, args.databases, args.vectors, args.dimension)
        filled = time.perf_counter() - started
        started = time.perf_counter()
        store.close()
        dirty_close = time.perf_counter() - started

        store = jadevec.open(path, backend=args.backend, **options)
        for name in store.list_databases():  # open every file set again
            len(store.get_database(name))
        store.sync()
        started = time.perf_counter()
        store.close()
        idle_close = time.perf_counter() - started

        started = time.perf_counter()
        store = jadevec.open(path, backend=args.backend, **options)
        reopen = time.perf_counter() - started
        clean = store.recovery_report is None
        store.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"store: backend={args.backend} databases={args.databases} "
          f"vectors={args.vectors} dimension={args.dimension} (filled in {filled:.1f} s)")
    print(f"close() after the writes (all dirty): {dirty_close:8.3f} s   target < 10 s   "
          f"{'ok' if dirty_close < 10 else 'MISSED'}")
    print(f"close() after sync() (nothing to do): {idle_close:8.3f} s")
    print(f"reopen: {reopen:.3f} s, recovery needed: {'no' if clean else 'YES'}")


if __name__ == "__main__":
    main()
