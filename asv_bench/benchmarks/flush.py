"""The background checkpoint's cost: batch store, retrieve beside a writer, checkpoint duration.

Target: with the checkpoint on, batch store throughput and retrieve latency
within 10% of ``flush_interval=0``. ``asv_bench/report_flush.py`` prints the
ratios from one run (interleaved, longer runs, and the idle store's I/O);
this module also holds the pieces both use.

A tick lands in a sample only if the sample is longer than the interval:
``Ingest`` stores 1,000,000 vectors per sample (a few seconds), so at 0.5 s
every sample holds several checkpoints and at 5.0 s at most one; the report
script's longer runs are the reference for 5.0 s.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

import jadevec

DIM = 128
BATCH = 1_000
INGEST = 1_000_000
READ_SET = 100_000


class CheckpointLog(logging.Handler):
    """Collects the durations the checkpoint thread logs at DEBUG ("checkpoint took %.3f s")."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seconds: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        if str(record.msg).startswith("checkpoint took") and record.args:
            self.seconds.append(float(record.args[0]))  # type: ignore[index]


@contextmanager
def checkpoint_log() -> Iterator[CheckpointLog]:
    """Every background checkpoint's duration while the block runs."""
    log = CheckpointLog()
    logger = logging.getLogger("jadevec")
    level = logger.level
    logger.addHandler(log)
    logger.setLevel(logging.DEBUG)
    try:
        yield log
    finally:
        logger.removeHandler(log)
        logger.setLevel(level)


def make_batches(total: int, prefix: str) -> list[tuple[list[str], np.ndarray]]:
    """``total`` vectors as batches of 1,000: fresh ids, rows reused from one random block."""
    block = np.random.default_rng(0).standard_normal((100 * BATCH, DIM)).astype(np.float32)
    return [([f"{prefix}{b * BATCH + i}" for i in range(BATCH)],
             block[(b % 100) * BATCH:(b % 100 + 1) * BATCH])
            for b in range(total // BATCH)]


def ticks_of(store: jadevec.Store) -> int:
    """Background checkpoints the store has run (0 when it has none)."""
    checkpointer = store._backend._checkpointer
    return 0 if checkpointer is None else checkpointer.runs


class Ingest:
    """batch_store of 1,000,000 x 128 in batches of 1,000, checkpoint off / every 0.5 s / 5 s."""

    params = [["hybrid", "mmap"], [0.0, 0.5, 5.0]]
    param_names = ["backend", "flush_interval"]
    number = 1
    repeat = 3
    timeout = 1200

    def setup(self, backend: str, interval: float) -> None:
        self.batches = make_batches(INGEST, "v")
        self.tmp = tempfile.mkdtemp(prefix="jadevec-bench-flush-")
        self.store = jadevec.open(self.tmp, backend=backend, flush_interval=interval)
        self.db = self.store.create_database("ingest", DIM, "l2")

    def teardown(self, backend: str, interval: float) -> None:
        self.store.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def time_batch_store(self, backend: str, interval: float) -> None:
        for ids, rows in self.batches:
            self.db.batch_store(ids, rows)


class RetrieveBesideWriter:
    """Single retrieve from 100,000 synced vectors while a thread stores batches of 1,000."""

    params = [["hybrid", "mmap"], [0.0, 0.5]]
    param_names = ["backend", "flush_interval"]
    timeout = 600

    def setup(self, backend: str, interval: float) -> None:
        self.tmp = tempfile.mkdtemp(prefix="jadevec-bench-flush-")
        self.store = jadevec.open(self.tmp, backend=backend, flush_interval=interval)
        self.db = self.store.create_database("ingest", DIM, "l2")
        rng = np.random.default_rng(1)
        ids = [f"r{i}" for i in range(READ_SET)]
        data = rng.standard_normal((READ_SET, DIM)).astype(np.float32)
        for start in range(0, READ_SET, 10_000):
            self.db.batch_store(ids[start:start + 10_000], data[start:start + 10_000])
        self.store.sync()
        self.one = ids[int(rng.integers(READ_SET))]
        self.stop = threading.Event()
        batches = make_batches(INGEST, "w")

        def writer() -> None:  # stops at INGEST vectors, so the files stay bounded
            for ids_, rows in batches:
                if self.stop.is_set():
                    return
                self.db.batch_store(ids_, rows)

        self.thread = threading.Thread(target=writer)
        self.thread.start()

    def teardown(self, backend: str, interval: float) -> None:
        self.stop.set()
        self.thread.join()
        self.store.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def time_retrieve(self, backend: str, interval: float) -> None:
        self.db.retrieve(self.one)


class CheckpointDuration:
    """Duration of the background checkpoints (every 0.5 s) during a 1,000,000-vector ingest."""

    params = [["hybrid", "mmap"], ["p50", "p99"]]
    param_names = ["backend", "statistic"]
    unit = "ms"
    timeout = 1200

    def setup(self, backend: str, statistic: str) -> None:
        self.batches = make_batches(INGEST, "v")
        self.tmp = tempfile.mkdtemp(prefix="jadevec-bench-flush-")

    def teardown(self, backend: str, statistic: str) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def track_checkpoint_ms(self, backend: str, statistic: str) -> float:
        with checkpoint_log() as log:
            store = jadevec.open(Path(self.tmp) / "store", backend=backend, flush_interval=0.5)
            try:
                db = store.create_database("ingest", DIM, "l2")
                for ids, rows in self.batches:
                    db.batch_store(ids, rows)
            finally:
                store.close()
        if not log.seconds:
            return float("nan")  # the ingest ended before the first tick
        return float(np.percentile(log.seconds, 50 if statistic == "p50" else 99) * 1000)
