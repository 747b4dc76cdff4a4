"""The README's main job, end to end: ``python -m jadevec.demo``.

1. Open a store on the default backend, create a cosine database and insert a
   few thousand random vectors with metadata, then close it.
2. Start a *new Python process* that reopens the store read-only, searches it
   and prints the hits with their metadata, and the SIMD kernel in use.

The store lives in a temporary folder (removed at the end) unless ``--dir``
names one. ``--backend`` picks another backend; a non-persistent one (such as
``memory``) has nothing to reopen, so its search runs in the same process.
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
from typing import Any

import numpy as np

import jadevec
from jadevec._api import DEFAULT_BACKEND
from jadevec.backends import load_backend

DATABASE = "demo"


def _open(path: Path, backend: str | None, **options: Any) -> jadevec.Store:
    # Without --backend, jadevec.open picks the default backend itself.
    if backend is None:
        return jadevec.open(path, **options)
    return jadevec.open(path, backend=backend, **options)


def populate(store: jadevec.Store, count: int, dimension: int, seed: int) -> None:
    """Create the demo database and fill it with ``count`` random unit-ish vectors."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((count, dimension), dtype=np.float32)
    ids = [f"vec-{i}" for i in range(count)]
    colours = ("red", "green", "blue")
    metadatas = [{"n": i, "colour": colours[i % 3]} for i in range(count)]
    db = store.create_database(DATABASE, dimension, metric="cosine")
    started = time.perf_counter()
    db.batch_store(ids, vectors, metadatas=metadatas)
    store.sync()
    elapsed = time.perf_counter() - started
    print(f"  inserted {count} vectors of dimension {dimension} in {elapsed * 1e3:.1f} ms")


def search(store: jadevec.Store, target: str, k: int, seed: int) -> None:
    """Search near the vector ``target`` (plus noise) and print hits and SIMD info."""
    db = store.get_database(DATABASE)
    print(f"  {db!r} holds {len(db)} vectors")
    base = db.retrieve(target)
    if base is None:
        raise SystemExit(f"{target!r} is missing after the restart")
    noise = np.random.default_rng(seed + 1).standard_normal(db.dimension, dtype=np.float32)
    query = base + 0.1 * noise
    started = time.perf_counter()
    hits = db.search(query, k=k)
    elapsed = time.perf_counter() - started
    print(f"  top {k} for a noisy copy of {target!r} ({elapsed * 1e3:.2f} ms):")
    for rank, (vector_id, score) in enumerate(hits, 1):
        print(f"    {rank}. {vector_id:<10} cosine {score:.4f}  {db.get_metadata(vector_id)}")
    info = jadevec.simd_info()
    print(f"  simd_info: {json.dumps(info)}")
    if hits[0][0] != target:
        raise SystemExit(f"expected {target!r} first, got {hits[0][0]!r}")


def main(argv: list[str] | None = None) -> int:
    """Run the demo; ``argv`` defaults to ``sys.argv[1:]``."""
    parser = argparse.ArgumentParser(prog="python -m jadevec.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, help="store folder (default: a temporary one)")
    parser.add_argument("--backend", help=f"backend name (default: {DEFAULT_BACKEND})")
    parser.add_argument("--count", type=int, default=5000, help="vectors to insert")
    parser.add_argument("--dimension", type=int, default=128)
    parser.add_argument("-k", type=int, default=5, help="hits to print")
    parser.add_argument("--seed", type=int, default=7)
    # Internal: the second process only reopens and searches.
    parser.add_argument("--search-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    target = f"vec-{min(42, args.count - 1)}"

    if args.search_only:
        with _open(args.dir, args.backend, read_only=True) as store:
            search(store, target, args.k, args.seed)
        return 0

    backend_name = args.backend or DEFAULT_BACKEND
    try:
        persistent = load_backend(backend_name).persistent
    except (jadevec.BackendNotFoundError, jadevec.BackendLoadError) as exc:
        print(f"error: {exc}\navailable backends: {', '.join(jadevec.available_backends())}; "
              f"pick one with --backend", file=sys.stderr)
        return 1
    folder = args.dir or Path(tempfile.mkdtemp(prefix="jadevec-demo-"))
    try:
        print(f"jadevec {jadevec.__version__}: backend {backend_name!r}, store {folder}")
        print("step 1: create, insert, close")
        store = _open(folder, args.backend)
        populate(store, args.count, args.dimension, args.seed)
        if not persistent:
            print("step 2: search (a non-persistent backend has nothing to reopen)")
            search(store, target, args.k, args.seed)
            store.close()
            return 0
        store.close()
        print("step 2: reopen in a new process (read-only) and search")
        command = [sys.executable, "-m", "jadevec.demo", "--search-only", "--dir", str(folder),
                   "-k", str(args.k), "--seed", str(args.seed), "--count", str(args.count)]
        if args.backend:
            command += ["--backend", args.backend]
        return subprocess.run(command, check=False).returncode
    finally:
        if args.dir is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
