"""Backend benchmarks: store open time, search per backend, public API overhead.

Targets: opening a store of 1,000 databases < 100 ms; search on
``mmap`` and ``hybrid`` within 10% of ``memory`` on the same data with a warm
page cache; the public API at most 20% over the raw
``MemoryMappedVectorStore`` for batch store and single retrieve.
``asv_bench/report_backends.py`` prints the same ratios from one run.
"""

import shutil
import tempfile
from pathlib import Path

import numpy as np

import jadevec
from jadevec.backends._vector_store import MemoryMappedVectorStore

N_DATABASES = 1000
DIM = 128
N_VECTORS = 100_000
BATCH = 10_000


class OpenStore:
    """Open a store holding 1,000 small databases (lazy: no vector file opens)."""

    params = [["mmap", "hybrid"]]
    param_names = ["backend"]
    number = 1  # each sample opens once; teardown closes
    repeat = 10
    timeout = 600

    def setup_cache(self):
        root = Path(tempfile.mkdtemp(prefix="jadevec-bench-open-"))
        rng = np.random.default_rng(0)
        for backend in self.params[0]:
            with jadevec.open(root / backend, backend=backend, flush_interval=0) as store:
                for i in range(N_DATABASES):
                    db = store.create_database(f"db{i}", 16, "cosine")
                    db.batch_store([f"v{j}" for j in range(10)],
                                   rng.standard_normal((10, 16)).astype(np.float32))
        return str(root)

    def setup(self, root, backend):
        self.store = None

    def time_open(self, root, backend):
        self.store = jadevec.open(Path(root) / backend, backend=backend, flush_interval=0)

    def teardown(self, root, backend):
        if self.store is not None:
            self.store.close()


class Search:
    """Single-query exact top-10 over 100,000 x 128, warm page cache."""

    params = [["memory", "mmap", "hybrid"], ["cosine", "l2"]]
    param_names = ["backend", "metric"]
    timeout = 600

    def setup(self, backend, metric):
        rng = np.random.default_rng(1)
        data = rng.standard_normal((N_VECTORS, DIM)).astype(np.float32)
        self.tmp = None if backend == "memory" else tempfile.mkdtemp(prefix="jadevec-bench-")
        self.store = jadevec.open(self.tmp, backend=backend, flush_interval=0)
        self.db = self.store.create_database("bench", DIM, metric)
        ids = [f"v{i}" for i in range(N_VECTORS)]
        for start in range(0, N_VECTORS, BATCH):
            self.db.batch_store(ids[start:start + BATCH], data[start:start + BATCH])
        self.query = rng.standard_normal(DIM).astype(np.float32)
        self.db.search(self.query, k=10)  # warm the page cache and lazy state

    def time_search(self, backend, metric):
        self.db.search(self.query, k=10)

    def teardown(self, backend, metric):
        self.store.close()
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)


class ApiOverhead:
    """Batch store of 10,000 x 128 and single retrieve: raw store vs the public API."""

    params = [["raw", "mmap", "hybrid"]]
    param_names = ["layer"]
    timeout = 600

    def setup(self, layer):
        rng = np.random.default_rng(2)
        self.tmp = tempfile.mkdtemp(prefix="jadevec-bench-")
        self.batch = rng.standard_normal((BATCH, DIM)).astype(np.float32)
        self.round = 0
        if layer == "raw":
            self.raw = MemoryMappedVectorStore(Path(self.tmp))
            self.raw.create_vector_file("raw", DIM)
            self.raw.batch_store("raw", [f"w{i}" for i in range(BATCH)], self.batch)
        else:
            self.store = jadevec.open(self.tmp, backend=layer, flush_interval=0)
            self.db = self.store.create_database("bench", DIM, "l2")
            self.db.batch_store([f"w{i}" for i in range(BATCH)], self.batch)
        self.layer = layer

    def time_batch_store(self, layer):
        self.round += 1
        ids = [f"r{self.round}-{i}" for i in range(BATCH)]
        if layer == "raw":
            self.raw.batch_store("raw", ids, self.batch)
        else:
            self.db.batch_store(ids, self.batch)

    def time_retrieve(self, layer):
        if layer == "raw":
            self.raw.retrieve_vector("raw", "w4242")
        else:
            self.db.retrieve("w4242")

    def teardown(self, layer):
        if layer == "raw":
            self.raw.close()
        else:
            self.store.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
