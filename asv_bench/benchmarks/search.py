"""Exact top-10 search: jadevec beside numpy (and FAISS / usearch when installed).

Shapes: 1,000,000 x 128 and 100,000 x 768 float32 in RAM; 1 and 100 queries.
Every contender uses the same thread count (all cores, as ``simd_info()``
reports).  ``TopK`` holds jadevec and numpy ``X @ Q.T`` + ``argpartition`` in
one class; ``TopKFaiss`` (``IndexFlatIP``) and ``TopKUsearch`` (exact search)
are skipped when the package is not importable (``pip install .[bench]``).
"""

import time

import numpy as np

from jadevec._core import kernels
from jadevec._core.aligned import aligned_empty

K = 10
SHAPES = ["1000000x128", "100000x768"]
QUERIES = [1, 100]
THREADS = kernels.simd_info()["threads"]


def numpy_topk(X, Q, k):
    """numpy baseline: BLAS scores, then argpartition and a sort of the k best."""
    S = Q @ X.T
    part = np.argpartition(-S, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(S, part, 1), axis=1)
    return np.take_along_axis(part, order, 1)


class _Data:
    params = (SHAPES, QUERIES)
    param_names = ["shape", "queries"]
    timeout = 600
    number = 1
    repeat = (3, 10, 60.0)

    def setup(self, shape, queries):
        n, d = (int(x) for x in shape.split("x"))
        rng = np.random.default_rng(0)
        self.X = aligned_empty((n, d))  # rows on 64-byte boundaries, as jadevec stores them
        self.X[...] = rng.standard_normal((n, d), dtype=np.float32)
        self.Q = rng.standard_normal((queries, d), dtype=np.float32)


class TopK(_Data):
    def setup(self, shape, queries):
        super().setup(shape, queries)
        kernels.topk(self.X, self.Q, K, "dot")  # warm: pages touched, threads started

    def time_jadevec(self, shape, queries):
        kernels.topk(self.X, self.Q, K, "dot")

    def time_numpy(self, shape, queries):
        numpy_topk(self.X, self.Q, K)

    def track_speedup_vs_numpy(self, shape, queries):
        """numpy time / jadevec time, best of 3 each, measured alternately."""
        ours = theirs = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            kernels.topk(self.X, self.Q, K, "dot")
            t1 = time.perf_counter()
            numpy_topk(self.X, self.Q, K)
            t2 = time.perf_counter()
            ours, theirs = min(ours, t1 - t0), min(theirs, t2 - t1)
        return theirs / ours

    track_speedup_vs_numpy.unit = "x"

    def track_jadevec_gb_per_s(self, shape, queries):
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            kernels.topk(self.X, self.Q, K, "dot")
            best = min(best, time.perf_counter() - t0)
        return self.X.nbytes / best / 1e9

    track_jadevec_gb_per_s.unit = "GB/s"


class TopKFaiss(_Data):
    def setup(self, shape, queries):
        try:
            import faiss
        except ImportError:
            raise NotImplementedError("faiss-cpu is not installed") from None
        super().setup(shape, queries)
        faiss.omp_set_num_threads(THREADS)
        self.index = faiss.IndexFlatIP(self.X.shape[1])
        self.index.add(self.X)
        self.index.search(self.Q, K)

    def time_faiss_flat_ip(self, shape, queries):
        self.index.search(self.Q, K)


class TopKUsearch(_Data):
    def setup(self, shape, queries):
        try:
            from usearch.index import MetricKind, search
        except ImportError:
            raise NotImplementedError("usearch is not installed") from None
        super().setup(shape, queries)
        self.search = search
        self.metric = MetricKind.IP
        self.search(self.X, self.Q, K, self.metric, exact=True, threads=THREADS)

    def time_usearch_exact(self, shape, queries):
        self.search(self.X, self.Q, K, self.metric, exact=True, threads=THREADS)
