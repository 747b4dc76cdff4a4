"""ns per dot / cosine / L2 call for each SIMD level, on in-cache data.

``time_kernel`` runs the kernel ``CALLS`` times in one nogil C loop
(``kernels._repeat``), so divide its time by ``CALLS`` for ns per call;
``track_ns_per_call`` reports that figure directly.
"""

import time

import numpy as np

from jadevec._core import kernels
from jadevec._core.aligned import aligned_empty

CALLS = 1000


class PairKernels:
    params = (["scalar", "avx2", "avx512"], ["dot", "cosine", "l2"], [128, 768, 1536])
    param_names = ["level", "metric", "d"]

    def setup(self, level, metric, d):
        if level not in kernels.available_levels():
            raise NotImplementedError(f"this CPU cannot run {level}")  # asv: skipped
        self.previous = kernels.simd_info()["level"]
        kernels.set_level(level)
        rng = np.random.default_rng(0)
        # 64-byte aligned, as jadevec stores rows (unaligned AVX-512 loads that
        # split cache lines cost up to twice as much).
        self.a = aligned_empty(d)
        self.b = aligned_empty(d)
        self.a[:] = rng.standard_normal(d)
        self.b[:] = rng.standard_normal(d)
        kernels._repeat(metric, self.a, self.b, CALLS)  # warm the caches

    def teardown(self, level, metric, d):
        kernels.set_level(self.previous)

    def time_kernel(self, level, metric, d):
        kernels._repeat(metric, self.a, self.b, CALLS)

    def track_ns_per_call(self, level, metric, d):
        calls = 100 * CALLS
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            kernels._repeat(metric, self.a, self.b, calls)
            best = min(best, time.perf_counter() - t0)
        return best / calls * 1e9

    track_ns_per_call.unit = "ns"
