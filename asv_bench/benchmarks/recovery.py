"""Recovery time: from ``jadevec.open()`` after a SIGKILL to the first correct search result.

Target: < 1 s, for one database of 1,000,000 x 128 vectors and for 1,000
databases of 5 vectors each (with metadata), on ``hybrid`` and ``mmap``;
beside it the same after a clean ``close()`` (no recovery).
``asv_bench/report_recovery.py`` prints all of them (and ``lmdb``) from one
run; this module also holds the code both use to build the stores.

A store is built by a child process that writes with the background
checkpoint off and is then killed with SIGKILL (``killed``: every write since
the database's creation is replayed at recovery), or that calls ``sync()``,
writes 1,000 more vectors and is killed (``synced``: what the default
background checkpoint leaves, a short tail to replay), or that closes the
store (``closed``). The page cache stays warm, as after a process (not a
machine) crash.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np

import jadevec

DIM = 128
#: layout name -> (databases, vectors per database, metadata on every vector)
LAYOUTS = {"1m": (1, 1_000_000, False), "1000dbs": (1000, 5, True)}
STATES = ("killed", "synced", "closed")
CHUNK = 50_000

BUILDER = textwrap.dedent("""
    import sys
    import numpy as np
    import jadevec

    path, backend, state = sys.argv[1], sys.argv[2], sys.argv[3]
    n_db, per_db, metadata = int(sys.argv[4]), int(sys.argv[5]), sys.argv[6] == "1"
    chunk, dim = int(sys.argv[7]), int(sys.argv[8])
    store = jadevec.open(path, backend=backend, flush_interval=0,
                         max_open_files=100)

    def rows(d, start, m):
        return np.random.default_rng([d, start]).standard_normal((m, dim)).astype(np.float32)

    for d in range(n_db):
        db = store.create_database(f"db{d}", dim, "l2")
        for start in range(0, per_db, chunk):
            m = min(chunk, per_db - start)
            ids = [f"v{start + i}" for i in range(m)]
            db.batch_store(ids, rows(d, start, m),
                           [{"i": start + i} for i in range(m)] if metadata else None)
    if state == "synced":
        store.sync()
        db = store.get_database("db0")
        db.batch_store([f"tail{i}" for i in range(1000)], rows(n_db, 0, 1000))
    if state == "closed":
        store.close()
    print("written", flush=True)
    sys.stdin.readline()  # killed here (or ends, for "closed")
""")


def rows(d: int, start: int, m: int) -> np.ndarray:
    """The rows the builder wrote into database ``d`` from ``start`` (same seeds)."""
    return np.random.default_rng([d, start]).standard_normal((m, DIM)).astype(np.float32)


def build_store(path: Path, backend: str, layout: str, state: str) -> None:
    """Write a store at ``path`` in a child process, then kill it (or let it close)."""
    n_db, per_db, metadata = LAYOUTS[layout]
    child = subprocess.Popen(
        [sys.executable, "-c", BUILDER, str(path), backend, state, str(n_db), str(per_db),
         "1" if metadata else "0", str(CHUNK), str(DIM)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        if child.stdout.readline().strip() != "written":
            raise RuntimeError(f"building the {backend} {layout} store failed")
        if state == "closed":
            child.stdin.close()
            child.wait(600)
        else:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()


def target(layout: str) -> tuple[str, np.ndarray, str]:
    """(database, query, the id its top-1 must be): a stored vector, found at distance 0."""
    n_db, per_db, _ = LAYOUTS[layout]
    d, i = n_db // 2, per_db * 7 // 9
    start = i - i % CHUNK
    return f"db{d}", rows(d, start, min(CHUNK, per_db - start))[i - start], f"v{i}"


def open_and_search(path: Path, backend: str, layout: str) -> dict[str, Any]:
    """Open, search once, check the result; the times of each step (seconds)."""
    name, query, expected = target(layout)
    started = time.perf_counter()
    store = jadevec.open(path, backend=backend)
    opened = time.perf_counter()
    try:
        hit = store.get_database(name).search(query, k=1)
        first = time.perf_counter()
        if not hit or hit[0][0] != expected:
            raise AssertionError(f"{backend} {layout}: top-1 is {hit!r}, expected {expected!r}")
        store.get_database(name).search(query, k=1)
        again = time.perf_counter() - first
        report = store.recovery_report
    finally:
        store.close()
    return {"open": opened - started, "first": first - opened, "total": first - started,
            "again": again, "recovered": report is not None,
            "recovery_seconds": 0.0 if report is None else report.seconds}


def copy_store(src: Path, dest: Path) -> None:
    """A byte copy of a (killed) store, so that every sample recovers the same state."""
    shutil.copytree(src, dest, symlinks=True)


class Recovery:
    """Open a store after SIGKILL (or a clean close) and get the first correct search result."""

    params = [["hybrid", "mmap"], list(LAYOUTS), ["killed", "synced", "closed"]]
    param_names = ["backend", "layout", "state"]
    number = 1
    repeat = 3
    timeout = 1800

    def setup_cache(self) -> str:
        root = Path(tempfile.mkdtemp(prefix="jadevec-bench-recovery-"))
        for backend in self.params[0]:
            for layout in self.params[1]:
                for state in self.params[2]:
                    build_store(root / f"{backend}-{layout}-{state}", backend, layout, state)
        return str(root)

    def setup(self, root: str, backend: str, layout: str, state: str) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="jadevec-bench-recovered-"))
        self.path = self.tmp / "store"
        copy_store(Path(root) / f"{backend}-{layout}-{state}", self.path)

    def teardown(self, root: str, backend: str, layout: str, state: str) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def time_open_to_first_result(self, root: str, backend: str, layout: str,
                                  state: str) -> None:
        open_and_search(self.path, backend, layout)
