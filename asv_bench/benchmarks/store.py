"""MemoryMappedVectorStore: store, retrieve, open and growth.

Targets: batch store >= 1,000,000 vectors/s at d=128 and >= 200,000/s at
d=768, at least 10x single store per vector; single store >= 100,000/s;
single retrieve p95 < 10 us; batch retrieve of 100 < 100 us; clean open of a
1M-vector file plus the first retrieve < 10 ms. ``asv_bench/report_store.py``
prints all of them (and RssAnon) from one run.
"""

import shutil
import tempfile
from pathlib import Path

import numpy as np

from jadevec.backends._vector_store import MemoryMappedVectorStore

BATCH = 100_000


class Store:
    """Store 100,000 vectors one call each vs one batch call (per-vector cost)."""

    params = [[128, 768], ["single", "batch"]]
    param_names = ["dimension", "mode"]
    number = 1
    repeat = 5
    timeout = 600

    def setup(self, dimension, mode):
        self.root = Path(tempfile.mkdtemp(prefix="jadevec-bench-store-"))
        self.store = MemoryMappedVectorStore(self.root)
        self.n = BATCH if mode == "batch" else 20_000
        self.ids = [f"vec-{i}" for i in range(self.n)]
        self.data = np.random.default_rng(0).standard_normal(
            (self.n, dimension)).astype(np.float32)
        # Capacity up front, so this times stores, not growth (see Growth).
        self.store.create_vector_file("db", dimension, initial_capacity=self.n)
        self.store.store_vector("db", "warm", self.data[0])

    def teardown(self, dimension, mode):
        self.store.close()
        shutil.rmtree(self.root)

    def time_store(self, dimension, mode):
        if mode == "batch":
            self.store.batch_store("db", self.ids, self.data)
        else:
            store = self.store.store_vector
            for vector_id, row in zip(self.ids, self.data, strict=True):
                store("db", vector_id, row)


class Retrieve:
    """Single retrieve latency and a batch of 100, from 100,000 stored vectors."""

    params = [[128, 768]]
    param_names = ["dimension"]

    def setup(self, dimension):
        self.root = Path(tempfile.mkdtemp(prefix="jadevec-bench-get-"))
        self.store = MemoryMappedVectorStore(self.root)
        self.store.create_vector_file("db", dimension, initial_capacity=BATCH)
        ids = [f"vec-{i}" for i in range(BATCH)]
        data = np.random.default_rng(1).standard_normal((BATCH, dimension))
        self.store.batch_store("db", ids, data.astype(np.float32))
        rng = np.random.default_rng(2)
        self.one = ids[int(rng.integers(BATCH))]
        self.hundred = [ids[i] for i in rng.integers(0, BATCH, 100)]
        self.store.batch_retrieve("db", ids)  # warm the pages

    def teardown(self, dimension):
        self.store.close()
        shutil.rmtree(self.root)

    def time_retrieve_one(self, dimension):
        self.store.retrieve_vector("db", self.one)

    def time_batch_retrieve_100(self, dimension):
        self.store.batch_retrieve("db", self.hundred)


class Open:
    """Open a cleanly closed 1,000,000 x 128 file set and retrieve one vector."""

    number = 1
    repeat = 20
    timeout = 900

    def setup_cache(self):
        root = Path(tempfile.mkdtemp(prefix="jadevec-bench-open-"))
        with MemoryMappedVectorStore(root) as store:
            store.create_vector_file("db", 128, initial_capacity=1_000_000)
            rng = np.random.default_rng(3)
            for start in range(0, 1_000_000, BATCH):
                ids = [f"vec-{i}" for i in range(start, start + BATCH)]
                store.batch_store("db", ids, rng.standard_normal((BATCH, 128)).astype(np.float32))
        return str(root)

    def setup(self, root):
        self.store = MemoryMappedVectorStore(root)

    def teardown(self, root):
        self.store.close()

    def time_open_and_first_retrieve(self, root):
        self.store.open_vector_file("db")
        self.store.retrieve_vector("db", "vec-123456")


class Growth:
    """Batch store into a file created with 64 slots (every doubling included)."""

    params = [[128, 768]]
    param_names = ["dimension"]
    number = 1
    repeat = 5
    timeout = 600

    def setup(self, dimension):
        self.root = Path(tempfile.mkdtemp(prefix="jadevec-bench-grow-"))
        self.store = MemoryMappedVectorStore(self.root)
        self.store.create_vector_file("db", dimension, initial_capacity=64)
        self.ids = [f"vec-{i}" for i in range(BATCH)]
        self.data = np.random.default_rng(4).standard_normal(
            (BATCH, dimension)).astype(np.float32)

    def teardown(self, dimension):
        self.store.close()
        shutil.rmtree(self.root)

    def time_grow_while_storing(self, dimension):
        for start in range(0, BATCH, 10_000):
            self.store.batch_store("db", self.ids[start:start + 10_000],
                                   self.data[start:start + 10_000])
