"""Measure the kernels' targets in one run and print them.

Usage (from the repository root, after building the extensions)::

    python asv_bench/report_kernels.py [--repeats 5] [--n 1000000] [--d 128]

Prints, all measured in this one process:

1. ns per dot / cosine / squared-L2 call at d = 128, 768, 1536 for every SIMD
   level this CPU has (in-cache data aligned to 64 bytes as jadevec stores
   rows; the kernel called in a nogil C loop so no Python overhead is
   counted), with the avx2/scalar and avx512/scalar ratios for dot;
2. single-query exact top-10 over N x D float32 (default 1,000,000 x 128): jadevec
   ``topk`` against numpy ``X @ q`` + ``argpartition``, in queries/s and GB/s,
   beside the machine's read bandwidth (a streaming SIMD sum over a 1 GiB
   array on every core, ``kernels._read_sum``) and jadevec's percentage of it;
   then the same read and scan on one thread;
3. a 100-query top-10 batch against numpy ``X @ Q.T`` + ``argpartition``.

Where faiss-cpu or usearch is installed (``pip install .[bench]``), FAISS
``IndexFlatIP`` and usearch's exact search run beside them on the same data
with the same thread count.

Timings are the best of ``--repeats`` runs (the least disturbed by other work
on the machine).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from jadevec._core import kernels
from jadevec._core.aligned import aligned_empty


def best_of(fn, repeats: int) -> float:
    """Best wall time of ``repeats`` calls, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def numpy_topk(X: np.ndarray, Q: np.ndarray, k: int) -> np.ndarray:
    """numpy baseline: BLAS scores, then argpartition and a sort of the k best."""
    S = Q @ X.T
    part = np.argpartition(-S, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(S, part, 1), axis=1)
    return np.take_along_axis(part, order, 1)


def aligned_random(rng: np.random.Generator, shape) -> np.ndarray:
    """Random float32 data on a 64-byte boundary, as jadevec stores its rows."""
    arr = aligned_empty(shape)
    arr[...] = rng.standard_normal(shape, dtype=np.float32)
    return arr


def kernel_table(repeats: int, rng: np.random.Generator) -> None:
    levels = kernels.available_levels()
    chosen = kernels.simd_info()["level"]
    print("== kernels: ns per call, in-cache 64-byte aligned data (nogil loop of 20000 calls)")
    print(f"{'metric':8} {'d':>5} " + " ".join(f"{lv:>9}" for lv in levels))
    reps = 20000
    ns: dict[tuple[str, str, int], float] = {}
    for metric in ("dot", "cosine", "l2"):
        for d in (128, 768, 1536):
            a = aligned_random(rng, d)
            b = aligned_random(rng, d)
            row = []
            for lv in levels:
                kernels.set_level(lv)
                kernels._repeat(metric, a, b, reps)  # warm up
                t = best_of(lambda m=metric, a=a, b=b: kernels._repeat(m, a, b, reps), repeats)
                ns[metric, lv, d] = t / reps * 1e9
                row.append(f"{ns[metric, lv, d]:9.1f}")
            print(f"{metric:8} {d:5d} " + " ".join(row))
    kernels.set_level(chosen)
    for lv in levels[1:]:
        ratios = ", ".join(
            f"d={d}: {ns['dot', 'scalar', d] / ns['dot', lv, d]:.1f}x" for d in (128, 768, 1536)
        )
        print(f"dot speed-up {lv}/scalar: {ratios}")


def interleaved_best(fns: dict, repeats: int) -> dict:
    """Best time of each function, called in turn ``repeats`` times.

    Interleaving puts every contender under the same background load, so the
    ratios stay meaningful on a busy machine even when absolute times wander.
    """
    best = {name: float("inf") for name in fns}
    for fn in fns.values():
        fn()  # warm up
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def peers(X: np.ndarray, k: int, threads: int) -> dict:
    """Search functions of FAISS (IndexFlatIP) and usearch (exact), where installed."""
    found = {}
    try:
        import faiss
    except ImportError:
        pass
    else:
        faiss.omp_set_num_threads(threads)
        index = faiss.IndexFlatIP(X.shape[1])
        index.add(X)
        found["faiss IndexFlatIP"] = lambda Q: index.search(Q, k)
    try:
        from usearch.index import MetricKind
        from usearch.index import search as usearch_search
    except ImportError:
        pass
    else:
        found["usearch exact"] = lambda Q: usearch_search(
            X, Q, k, MetricKind.IP, exact=True, threads=threads
        )
    return found


def search(n: int, d: int, repeats: int, rng: np.random.Generator) -> None:
    k = 10
    X = aligned_random(rng, (n, d))
    q = rng.standard_normal((1, d), dtype=np.float32)
    Q = rng.standard_normal((100, d), dtype=np.float32)
    big = np.ones(1 << 28, dtype=np.float32)  # 1 GiB, far past every cache
    gb = X.nbytes / 1e9
    threads = kernels.simd_info()["threads"]

    others = peers(X, k, threads)
    ours = kernels.topk(X, q, k, "dot")[0]
    assert np.array_equal(np.sort(ours[0]), np.sort(numpy_topk(X, q, k)[0]))
    t = interleaved_best(
        {
            "read": lambda: kernels._read_sum(big),
            "jadevec": lambda: kernels.topk(X, q, k, "dot"),
            "numpy": lambda: numpy_topk(X, q, k),
            "read1": lambda: kernels._read_sum(big, threads=1),
            "jadevec1": lambda: kernels.topk(X, q, k, "dot", threads=1),
        }
        | {name: (lambda fn=fn: fn(q)) for name, fn in others.items()},
        repeats,
    )
    read_gbs = big.nbytes / t["read"] / 1e9
    print(
        f"\n== machine read bandwidth (SIMD sum of 1 GiB, {threads} threads): {read_gbs:.1f} GB/s"
    )
    print(
        f"\n== single-query top-{k}, {n} x {d} float32 ({gb:.3f} GB), "
        f"level {kernels.simd_info()['level']}, {threads} threads"
    )
    labels = {"jadevec": "jadevec topk", "numpy": "numpy X@q+argpartition"}
    for name in ["jadevec", "numpy", *others]:
        label = labels.get(name, name)
        print(
            f"{label:24}: {1 / t[name]:8.1f} queries/s  {gb / t[name]:6.1f} GB/s  "
            f"{t[name] * 1e3:7.2f} ms"
        )
    print(
        f"jadevec / numpy: {t['numpy'] / t['jadevec']:.2f}x   "
        f"jadevec / read bandwidth: {100 * gb / t['jadevec'] / read_gbs:.0f}%"
    )
    read1 = big.nbytes / t["read1"] / 1e9
    print(
        f"one thread: read {read1:.1f} GB/s, jadevec topk {gb / t['jadevec1']:.1f} GB/s "
        f"({100 * gb / t['jadevec1'] / read1:.0f}% of it)"
    )

    t = interleaved_best(
        {
            "jadevec": lambda: kernels.topk(X, Q, k, "dot"),
            "numpy": lambda: numpy_topk(X, Q, k),
        }
        | {name: (lambda fn=fn: fn(Q)) for name, fn in others.items()},
        max(2, repeats // 2),
    )
    print(f"\n== 100-query top-{k} batch, {n} x {d}")
    print(f"{'jadevec topk':24}: {100 / t['jadevec']:8.1f} queries/s  {t['jadevec'] * 1e3:8.1f} ms")
    print(
        f"{'numpy X@Q.T+argpartition':24}: {100 / t['numpy']:8.1f} queries/s  "
        f"{t['numpy'] * 1e3:8.1f} ms"
    )
    for name in others:
        print(f"{name:24}: {100 / t[name]:8.1f} queries/s  {t[name] * 1e3:8.1f} ms")
    print(f"jadevec / numpy: {t['numpy'] / t['jadevec']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n", type=int, default=1_000_000, help="rows searched")
    parser.add_argument("--d", type=int, default=128, help="dimension of the rows searched")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    info = kernels.simd_info()
    print(f"simd: level={info['level']} available={info['available']} threads={info['threads']}")
    kernel_table(args.repeats, rng)
    search(args.n, args.d, args.repeats, rng)


if __name__ == "__main__":
    main()
