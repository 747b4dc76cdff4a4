"""SIMD kernels: every level this CPU has against a float64 numpy reference.

Each test that takes ``level`` runs once per level (scalar, avx2, avx512 where
available) and restores the level chosen at import afterwards.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from jadevec._core import kernels
from jadevec.errors import InvalidInputError, SimdUnavailableError

LEVELS = kernels.available_levels()
# SIMD levels this CPU lacks: the error paths can only be tested where one is missing.
MISSING = [
    pytest.param(lv, marks=pytest.mark.skipif(lv in LEVELS, reason=f"this CPU runs {lv}"))
    for lv in ("avx2", "avx512")
]
DIMS = list(range(1, 71)) + [128, 384, 768, 1536, 4096]
METRICS = ["dot", "cosine", "l2"]


@pytest.fixture(params=LEVELS)
def level(request):
    chosen = kernels.simd_info()["level"]
    kernels.set_level(request.param)
    yield request.param
    kernels.set_level(chosen)


def unaligned(rng, shape, offset=1):
    """A float32 array whose data starts ``offset`` floats past an aligned start."""
    size = int(np.prod(shape))
    flat = rng.uniform(-1, 1, size + offset).astype(np.float32)
    return flat[offset:].reshape(shape)


def ref_scores(X, Q, metric):
    """float64 reference, (m, n); cosine with a zero vector is 0."""
    X = X.astype(np.float64)
    Q = np.atleast_2d(Q).astype(np.float64)
    if metric == "l2":
        return np.sqrt(((Q[:, None, :] - X[None, :, :]) ** 2).sum(-1))
    dots = Q @ X.T
    if metric == "dot":
        return dots
    qn = np.linalg.norm(Q, axis=1)[:, None]
    xn = np.linalg.norm(X, axis=1)[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = dots / (qn * xn)
    return np.where((qn == 0) | (xn == 0), 0.0, cos)


def tolerance(X, Q, metric):
    """Error bound for float32 sums of d products, per (query, row)."""
    d = X.shape[1]
    scale = np.abs(np.atleast_2d(Q)).astype(np.float64) @ np.abs(X).T.astype(np.float64)
    if metric == "cosine":
        return 2e-5 * np.sqrt(d) + 1e-6
    if metric == "l2":
        return 2e-5 * np.sqrt(d) * (1 + ref_scores(X, Q, "l2"))
    return 2e-6 * np.sqrt(d) * (scale + 1)


# ---------------------------------------------------------------- levels and dispatch


def test_simd_info_shape():
    info = kernels.simd_info()
    assert set(info) >= {"level", "available", "cpu_features", "forced", "threads"}
    assert info["level"] in info["available"]
    assert info["available"][0] == "scalar"
    assert info["available"] == kernels.available_levels()
    assert all(isinstance(v, bool) for v in info["cpu_features"].values())
    for name in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq"):
        assert name in info["cpu_features"]
    assert isinstance(info["threads"], int) and info["threads"] >= 1
    if "JADEVEC_SIMD" not in os.environ:
        assert info["forced"] is False
        assert info["level"] == info["available"][-1]  # the best one


def test_available_levels_follow_features():
    feats = kernels.simd_info()["cpu_features"]
    assert ("avx2" in LEVELS) == (feats["avx2"] and feats["fma"] and feats["os_avx"])
    assert ("avx512" in LEVELS) == (feats["avx512f"] and feats["os_avx512"])


def test_set_level_round_trip(level):
    assert kernels.simd_info()["level"] == level


@pytest.mark.parametrize("name", ["sse", "AVX2", "", None, 3])
def test_set_level_unknown(name):
    with pytest.raises(InvalidInputError, match="SIMD level"):
        kernels.set_level(name)


@pytest.mark.parametrize("name", MISSING)
def test_set_level_unavailable(name):
    with pytest.raises(SimdUnavailableError, match="lacks"):
        kernels.set_level(name)


def run_with_simd(value):
    code = (
        "import json; from jadevec._core import kernels; "
        "i = kernels.simd_info(); print(json.dumps([i['level'], i['forced']]))"
    )
    env = dict(os.environ, JADEVEC_SIMD=value)
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("name", LEVELS)
def test_env_forces_level(name):
    proc = run_with_simd(name)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f'["{name}", true]'


@pytest.mark.parametrize("name", MISSING)
def test_env_unavailable_level_fails_clearly(name):
    proc = run_with_simd(name)
    assert proc.returncode != 0
    assert "SimdUnavailableError" in proc.stderr and f"JADEVEC_SIMD={name}" in proc.stderr


def test_env_unknown_level_fails_clearly():
    proc = run_with_simd("sse9")
    assert proc.returncode != 0
    assert "InvalidInputError" in proc.stderr and "JADEVEC_SIMD='sse9'" in proc.stderr


# ---------------------------------------------------------------- pair kernels


def test_pair_kernels_every_dim(level, rng):
    for d in DIMS:
        a = unaligned(rng, (d,), 1)
        b = unaligned(rng, (d,), 3)
        for metric, fn in (("dot", kernels.dot), ("cosine", kernels.cosine), ("l2", kernels.l2)):
            got = fn(a, b)
            ref = ref_scores(a[None], b, metric)[0, 0]
            tol = tolerance(a[None], b, metric)
            assert abs(got - ref) <= np.max(tol), (level, metric, d, got, ref)


def test_pair_zero_vectors(level, rng):
    for d in DIMS:
        z = np.zeros(d, np.float32)
        b = unaligned(rng, (d,), 1)
        assert kernels.cosine(z, b) == 0.0
        assert kernels.cosine(b, z) == 0.0
        assert kernels.cosine(z, z) == 0.0
        assert kernels.dot(z, b) == 0.0
        assert kernels.l2(z, z) == 0.0
        assert kernels.l2(z, b) == pytest.approx(np.linalg.norm(b.astype(np.float64)), rel=1e-5)


def test_pair_strided_input_is_copied(level, rng):
    a = rng.uniform(-1, 1, 40).astype(np.float32)
    assert kernels.dot(a[::2], a[1::2]) == pytest.approx(float(a[::2] @ a[1::2]), rel=1e-5)


def test_repeat_matches_single_call(level, rng):
    a, b = unaligned(rng, (77,)), unaligned(rng, (77,), 2)
    assert kernels._repeat("dot", a, b, 3) == kernels.dot(a, b)
    assert kernels._repeat("cosine", a, b, 1) == kernels.cosine(a, b)
    assert kernels._repeat("l2", a, b, 2) == pytest.approx(kernels.l2(a, b) ** 2, rel=1e-6)


def test_read_sum(level, rng):
    a = rng.uniform(0, 1, 100_003).astype(np.float32)
    assert kernels._read_sum(a) == pytest.approx(float(a.astype(np.float64).sum()), rel=1e-4)
    assert kernels._read_sum(a, threads=1) == pytest.approx(kernels._read_sum(a), rel=1e-5)


# ---------------------------------------------------------------- batch scoring


def padded(rng, n, d, pad=5, offset=1):
    """An (n, d) view of a wider array: row stride (d + pad) * 4, rows unaligned."""
    wide = rng.uniform(-1, 1, (n, d + pad + offset)).astype(np.float32)
    return wide[:, offset : offset + d]


@pytest.mark.parametrize("metric", METRICS)
def test_scores_every_dim(level, metric, rng):
    for d in DIMS:
        n = 13 if d < 1000 else 5  # odd: exercises the last partial group of rows
        X = padded(rng, n, d)
        X[2] = 0.0  # a zero row
        q = unaligned(rng, (d,), 1)
        got = kernels.scores(X, q, metric)
        assert got.dtype == np.float32 and got.shape == (n,)
        ref = ref_scores(X, q, metric)[0]
        assert np.all(np.abs(got - ref) <= tolerance(X, q, metric)), (level, metric, d)


@pytest.mark.parametrize("m", [3, 9, 40])  # below and above the blocked-kernel threshold
@pytest.mark.parametrize("metric", METRICS)
def test_scores_many_every_dim(level, metric, m, rng):
    dims = DIMS if m == 9 else [1, 7, 16, 17, 33, 128, 768]
    for d in dims:
        n = 21 if d < 1000 else 6
        X = padded(rng, n, d)
        X[0] = 0.0
        Q = unaligned(rng, (m, d), 1)
        Q[1] = 0.0
        got = kernels.scores_many(X, Q, metric)
        assert got.dtype == np.float32 and got.shape == (m, n)
        ref = ref_scores(X, Q, metric)
        assert np.all(np.abs(got - ref) <= tolerance(X, Q, metric)), (level, metric, d, m)
        assert not np.isnan(got).any()


def test_scores_out_argument(level, rng):
    X = rng.uniform(-1, 1, (50, 8)).astype(np.float32)
    out = np.full(50, np.nan, np.float32)
    res = kernels.scores(X, X[3], "dot", out=out)
    assert res is out and not np.isnan(out).any()


def test_scores_parallel_matches_serial_rows(level, rng):
    X = rng.uniform(-1, 1, (20_000, 24)).astype(np.float32)
    q = X[7].copy()
    full = kernels.scores(X, q, "cosine")
    assert np.array_equal(full[100:200], kernels.scores(X[100:200], q, "cosine"))


def test_empty_matrix():
    X = np.zeros((0, 4), np.float32)
    assert kernels.scores(X, np.ones(4, np.float32), "dot").shape == (0,)
    assert kernels.scores_many(X, np.ones((3, 4), np.float32), "l2").shape == (3, 0)
    idx, sc = kernels.topk(X, np.ones((2, 4), np.float32), 5, "dot")
    assert idx.shape == (2, 0) and sc.shape == (2, 0)


# ---------------------------------------------------------------- top-k


def ref_topk(X, Q, k, metric, skip=None):
    """Reference top-k: best score first, ties by lower row index."""
    S = ref_scores(X, Q, metric)
    rows = np.arange(X.shape[0])
    live = rows if skip is None else rows[skip == 0]
    out = []
    for s in S:
        key = s[live] if metric == "l2" else -s[live]
        order = live[np.lexsort((live, key))][:k]
        out.append(order)
    return np.array(out, dtype=np.int64).reshape(len(S), -1), S


def int_matrix(rng, n, d):
    """Small-integer data: dot and squared L2 are exact in float32, so ties are exact."""
    return rng.integers(-3, 4, (n, d)).astype(np.float32)


@pytest.mark.parametrize("metric", ["dot", "l2"])
@pytest.mark.parametrize("m", [1, 12])
@pytest.mark.parametrize("threads", [1, 0])
def test_topk_exact_with_ties(level, metric, m, threads, rng):
    for d in (1, 3, 16, 19, 64):
        X = int_matrix(rng, 300, d)
        X[200:230] = X[10]  # many exact ties
        Q = int_matrix(rng, m, d)
        Q[0] = X[10]
        for k in (1, 5, 37, 300, 1000):
            idx, sc = kernels.topk(X, Q, k, metric, threads=threads)
            ref, S = ref_topk(X, Q, k, metric)
            assert idx.dtype == np.int64 and sc.dtype == np.float32
            assert idx.shape == (m, min(k, 300)) == sc.shape
            assert np.array_equal(idx, ref), (level, metric, d, k)
            assert np.allclose(sc, np.take_along_axis(S, ref, 1), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("m", [1, 12])
def test_topk_cosine(level, m, rng):
    for d in (1, 5, 16, 33, 128):
        X = padded(rng, 400, d)
        X[5] = 0.0
        Q = unaligned(rng, (m, d))
        for k in (1, 10, 400, 500):
            idx, sc = kernels.topk(X, Q, k, "cosine")
            ref, S = ref_topk(X, Q, k, "cosine")
            kk = min(k, 400)
            assert idx.shape == (m, kk)
            # Every returned score is right, in order, and as good as the reference's.
            got_ref = np.take_along_axis(S, idx, 1)
            assert np.allclose(sc, got_ref, atol=1e-5)
            assert np.all(np.diff(sc, axis=1) <= 0)
            assert np.allclose(sc, np.take_along_axis(S, ref, 1), atol=1e-5)
            assert not np.isnan(sc).any()


@pytest.mark.parametrize("metric", METRICS)
def test_topk_zero_query_cosine_defined(level, metric, rng):
    X = int_matrix(rng, 50, 8)
    Q = np.zeros((2, 8), np.float32)
    idx, sc = kernels.topk(X, Q, 50, metric)
    assert not np.isnan(sc).any()
    if metric == "cosine":
        assert np.all(sc == 0) and np.array_equal(idx[0], np.arange(50))


@pytest.mark.parametrize("metric", ["dot", "l2"])
@pytest.mark.parametrize("m", [1, 12])
def test_topk_skip(level, metric, m, rng):
    X = int_matrix(rng, 500, 12)
    Q = int_matrix(rng, m, 12)
    skip = (rng.random(500) < 0.3).astype(np.uint8)
    for k in (1, 10, 400):
        idx, _ = kernels.topk(X, Q, k, metric, skip=skip)
        ref, _ = ref_topk(X, Q, k, metric, skip)
        assert np.array_equal(idx, ref)
        assert not skip[idx].any()
    idx, _ = kernels.topk(X, Q, 10, metric, skip=skip.astype(bool))
    assert np.array_equal(idx, ref_topk(X, Q, 10, metric, skip)[0])
    all_skipped = np.ones(500, np.uint8)
    idx, sc = kernels.topk(X, Q, 10, metric, skip=all_skipped)
    assert idx.shape == (m, 0) == sc.shape


@pytest.mark.parametrize("metric", ["dot", "l2"])
def test_topk_padded_rows(level, metric, rng):
    wide = int_matrix(rng, 257, 48)
    X = wide[:, 3:35]  # row stride 192 bytes, rows start 12 bytes in
    Q = int_matrix(rng, 9, 32)
    idx, sc = kernels.topk(X, Q, 7, metric)
    ref, S = ref_topk(X, Q, 7, metric)
    assert np.array_equal(idx, ref)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("m", [1, 3, 20])
def test_topk_same_for_any_thread_count(level, metric, m, rng):
    X = rng.standard_normal((30_000, 20)).astype(np.float32)
    X[1000:1100] = X[5]
    Q = rng.standard_normal((m, 20)).astype(np.float32)
    Q[0] = X[5]
    one = kernels.topk(X, Q, 150, metric, threads=1)
    for threads in (0, 2, 3):
        many = kernels.topk(X, Q, 150, metric, threads=threads)
        assert np.array_equal(one[0], many[0]) and np.array_equal(one[1], many[1])


# ---------------------------------------------------------------- non-finite scores


def total_order_ref(S, k, metric):
    """Reference top-k under the kernels' total order: the better score first
    (higher for dot and cosine, lower for l2), NaN after every number (even
    -inf, or +inf for l2), equal scores by lower row index."""
    rows = np.arange(S.shape[1])
    out = []
    for s in S:
        nan = np.isnan(s)
        key = np.where(nan, 0.0, s if metric == "l2" else -s)
        out.append(np.lexsort((rows, key, nan))[:k])
    return np.array(out, dtype=np.int64).reshape(len(S), -1)


def special_matrix(rng, n, d):
    """Small integers, with rows holding a NaN, a +inf or a -inf in one column,
    zero rows and many copies of row 0 (exact ties)."""
    X = int_matrix(rng, n, d)
    kind = rng.integers(0, 6, n)
    col = rng.integers(0, d, n)
    rows = np.arange(n)
    X[rows[kind == 1], col[kind == 1]] = np.nan
    X[rows[kind == 2], col[kind == 2]] = np.inf
    X[rows[kind == 3], col[kind == 3]] = -np.inf
    X[kind == 4] = X[0]
    X[kind == 5] = 0.0
    return X


def nonzero_queries(rng, m, d):
    """Integers 1..3 of either sign: no 0 * inf, so a row's score is exact."""
    return (rng.integers(1, 4, (m, d)) * rng.choice([-1, 1], (m, d))).astype(np.float32)


def exact_ref_scores(X, Q, metric):
    """float64 scores with IEEE special values (no BLAS: it may not propagate NaN)."""
    X64, Q64 = X.astype(np.float64), Q.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        if metric == "dot":
            return (Q64[:, None, :] * X64[None, :, :]).sum(-1)
        return ((Q64[:, None, :] - X64[None, :, :]) ** 2).sum(-1)  # l2, squared


def same_results(a, b):
    return np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1], equal_nan=True)


@pytest.mark.parametrize("metric", ["dot", "l2"])
@pytest.mark.parametrize("m", [1, 12])
def test_topk_total_order_with_nan_and_inf(level, metric, m, rng):
    n, d = 40_000, 8  # large enough to run on several threads
    X = special_matrix(rng, n, d)
    Q = nonzero_queries(rng, m, d)
    S = exact_ref_scores(X, Q, metric)
    for k in (10, 7_000, n):
        ref = total_order_ref(S, k, metric)
        one = kernels.topk(X, Q, k, metric, threads=1)
        assert np.array_equal(one[0], ref), (level, metric, m, k)
        for threads in (2, 0):
            assert same_results(one, kernels.topk(X, Q, k, metric, threads=threads))


@pytest.mark.parametrize("m", [1, 12])
def test_topk_cosine_total_order_with_nan_and_inf(level, m, rng):
    X = special_matrix(rng, 40_000, 8)
    Q = nonzero_queries(rng, m, 8)
    for k in (10, 7_000, 40_000):
        one = kernels.topk(X, Q, k, "cosine", threads=1)
        check_total_order(*one, "cosine")
        for threads in (2, 0):
            assert same_results(one, kernels.topk(X, Q, k, "cosine", threads=threads))


def check_total_order(idx, sc, metric):
    """Results are sorted under the total order: numbers best first, then NaN;
    equal scores (and the NaN block) by ascending row."""
    for rows, scores in zip(idx, sc, strict=True):
        nan = np.isnan(scores)
        assert not np.any(nan[:-1] & ~nan[1:])  # no number after a NaN
        num, first, then = scores[~nan], rows[~nan], rows[nan]
        # comparisons, not differences: inf - inf would be NaN
        assert np.all(num[:-1] <= num[1:]) if metric == "l2" else np.all(num[:-1] >= num[1:])
        tied = num[:-1] == num[1:]
        assert np.all(first[:-1][tied] < first[1:][tied])
        assert np.all(then[:-1] < then[1:])


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("m", [1, 8])
def test_nan_ranks_last_for_every_metric(level, metric, m):
    X = np.array([[np.nan], [-np.inf], [1], [np.inf], [np.nan], [1]], np.float32)
    Q = np.ones((m, 1), np.float32)
    expected = {"dot": [3, 2, 5, 1, 0, 4], "l2": [2, 5, 1, 3, 0, 4],
                "cosine": [2, 5, 0, 1, 3, 4]}[metric]
    for threads in (1, 2, 0):
        for k in (1, 3, 6):
            idx, _ = kernels.topk(X, Q, k, metric, threads=threads)
            assert idx.tolist() == [expected[:k]] * m, (metric, threads, k)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("m", [1, 12])
def test_topk_overflowing_scores_same_for_any_thread_count(level, metric, m, rng):
    # Finite float32 data whose products overflow: dot and l2 give inf, -inf
    # and NaN (inf - inf) scores, which must still rank the same on any thread count.
    X = (rng.standard_normal((40_000, 16)) * 1e30).astype(np.float32)
    X[::7] *= 1e-30
    Q = (rng.standard_normal((m, 16)) * 1e30).astype(np.float32)
    for k in (10, 40_000):
        one = kernels.topk(X, Q, k, metric, threads=1)
        check_total_order(*one, metric)
        for threads in (2, 0):
            assert same_results(one, kernels.topk(X, Q, k, metric, threads=threads))
    if metric == "cosine":  # overflowing squared norms do not spoil a cosine
        idx, sc = kernels.topk(X, Q, 50, "cosine")
        S = ref_scores(X, Q, "cosine")
        assert np.allclose(sc, np.take_along_axis(S, idx, 1), rtol=0, atol=1e-5)
        assert np.allclose(sc, np.sort(S, axis=1)[:, ::-1][:, :50], rtol=0, atol=1e-5)


# ---------------------------------------------------------------- cosine at extreme scales

# Tiny (the squared norm underflows float32, down to subnormal components),
# ordinary, and huge (the squared norm overflows float32) vectors.
SCALES = [1e-30, 1e-36, 1e-40, 1e-44, 1.0, 1e15, 1e25]


def scaled(rng, n, d, offset=0):
    """n random directions; row i scaled by SCALES[(i + offset) % len(SCALES)]."""
    X = rng.uniform(-1, 1, (n, d))
    X *= np.array(SCALES)[(np.arange(n) + offset) % len(SCALES)][:, None]
    return X.astype(np.float32)


def test_cosine_of_a_tiny_vector(level):
    t = np.zeros(16, np.float32)
    t[:2] = [1e-30, 2e-30]
    assert kernels.cosine(t, t) == pytest.approx(1.0, abs=1e-6)
    u = np.ones(16, np.float32)
    ref = 3e-30 / (np.sqrt(5e-60) * 4)
    assert kernels.cosine(t, u) == pytest.approx(ref, abs=1e-6)
    assert kernels.cosine(u, t) == pytest.approx(ref, abs=1e-6)
    assert kernels.scores(t[None], t, "cosine")[0] == pytest.approx(1.0, abs=1e-6)
    assert kernels.topk(t[None], t[None], 1, "cosine")[1][0, 0] == pytest.approx(1.0, abs=1e-6)


def test_cosine_pairs_at_extreme_scales(level, rng):
    for d in (1, 3, 8, 17, 33, 128):
        A = scaled(rng, len(SCALES), d)
        B = scaled(rng, len(SCALES), d)
        for a in A:
            for b in B:
                ref = ref_scores(a[None], b, "cosine")[0, 0]
                assert abs(kernels.cosine(a, b) - ref) <= 1e-5, (level, d, a[0], b[0])
                assert kernels._repeat("cosine", a, b, 1) == kernels.cosine(a, b)


@pytest.mark.parametrize("m", [1, 3, 12])  # one query, several, the blocked kernel
def test_cosine_scores_at_extreme_scales(level, m, rng):
    for d in (1, 5, 16, 33, 128):
        X = scaled(rng, 71, d)
        X[3] = 0.0
        Q = scaled(rng, m, d, offset=m)
        ref = ref_scores(X, Q, "cosine")
        for j in range(m):
            got = kernels.scores(X, Q[j], "cosine")
            assert np.all(np.abs(got - ref[j]) <= 1e-5), (level, d, j)
        got = kernels.scores_many(X, Q, "cosine")
        assert np.all(np.abs(got - ref) <= 1e-5), (level, d, m)
        for threads in (1, 0):
            idx, sc = kernels.topk(X, Q, 71, "cosine", threads=threads)
            assert np.all(np.abs(sc - np.take_along_axis(ref, idx, 1)) <= 1e-5)
            assert np.all(np.abs(sc - -np.sort(-ref, axis=1)) <= 1e-5)
            assert np.all(np.diff(sc, axis=1) <= 0)
        assert kernels.scores(X, np.zeros(d, np.float32), "cosine").tolist() == [0.0] * 71


def test_cosine_many_rows_at_extreme_scales(level, rng):
    X = scaled(rng, 30_000, 24)  # big enough for several threads and many tiles
    for m in (1, 12):
        Q = scaled(rng, m, 24, offset=2)
        ref = ref_scores(X, Q, "cosine")
        idx, sc = kernels.topk(X, Q, 100, "cosine")
        assert np.all(np.abs(sc - np.take_along_axis(ref, idx, 1)) <= 1e-5)
        assert np.all(np.abs(sc - -np.sort(-ref, axis=1)[:, :100]) <= 1e-5)
        assert same_results((idx, sc), kernels.topk(X, Q, 100, "cosine", threads=1))


# ---------------------------------------------------------------- error paths


def test_pair_errors():
    a = np.ones(4, np.float32)
    for bad in (np.ones(4), [1.0, 2.0], np.ones((2, 2), np.float32), "x"):
        with pytest.raises(InvalidInputError, match="a must be"):
            kernels.dot(bad, a)
    with pytest.raises(InvalidInputError, match="differ in length"):
        kernels.l2(a, np.ones(5, np.float32))
    with pytest.raises(InvalidInputError, match="metric"):
        kernels._repeat("hamming", a, a, 1)


def test_topk_errors(rng):
    X = rng.standard_normal((10, 4)).astype(np.float32)
    Q = X[:2].copy()
    cases = [
        (dict(matrix=X.astype(np.float64)), "matrix"),
        (dict(matrix=X[0]), "matrix"),
        (dict(matrix=np.asfortranarray(X)), "matrix rows must be contiguous"),
        (dict(matrix=X[::-1]), "row stride"),
        (dict(queries=Q[0]), "queries"),
        (dict(queries=Q[:, :3]), "queries must have 4 columns"),
        (dict(k=0), "k must be"),
        (dict(k=True), "k must be"),
        (dict(k=2.0), "k must be"),
        (dict(k="3"), "k must be"),
        (dict(metric="cos"), "metric"),
        (dict(skip=np.zeros(9, np.uint8)), "skip"),
        (dict(skip=np.zeros(10, np.int32)), "skip"),
        (dict(threads=-1), "threads"),
        (dict(threads=1.5), "threads"),
    ]
    for override, message in cases:
        args = dict(matrix=X, queries=Q, k=3, metric="dot") | override
        with pytest.raises(InvalidInputError, match=message):
            kernels.topk(**args)
    idx, _ = kernels.topk(X, Q, np.int64(2), "dot", threads=np.int32(1))
    assert idx.shape == (2, 2)


def test_scores_errors(rng):
    X = rng.standard_normal((10, 4)).astype(np.float32)
    with pytest.raises(InvalidInputError, match="query must have length 4"):
        kernels.scores(X, np.ones(3, np.float32), "dot")
    for out in (np.empty(9, np.float32), np.empty(10), np.empty(20, np.float32)[::2]):
        with pytest.raises(InvalidInputError, match="out must be"):
            kernels.scores(X, X[0], "dot", out=out)
    with pytest.raises(InvalidInputError, match="metric"):
        kernels.scores_many(X, X, "L2")


FORK_SCRIPT = """
import os, numpy as np
from jadevec._core import kernels
X = np.random.default_rng(0).random((200_000, 64), dtype=np.float32)
q = X[:1].copy()
parent = kernels.topk(X, q, 3, "dot", threads=2)[0]  # starts the OpenMP pool
pid = os.fork()
if pid == 0:
    child = kernels.topk(X, q, 3, "dot")[0]
    ok = np.array_equal(child, parent) and kernels.simd_info()["threads"] == 1
    os._exit(0 if ok else 1)
_, status = os.waitpid(pid, 0)
print("child", os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_search_in_forked_child_does_not_hang():
    proc = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "child 0"
