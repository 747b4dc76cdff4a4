"""SIMD kernels and exact top-k search.

Dispatch: at import, CPUID and XGETBV (``src/cpu_features.c``) say which
instruction sets the CPU and the OS support; the best table of C kernels
(``src/kernels_*.c``: scalar, AVX2+FMA, AVX-512F) is chosen once and kept in a
module global.  ``JADEVEC_SIMD=scalar|avx2|avx512`` forces a level (for tests
and benchmarks); :func:`set_level` switches at run time (not while a search
runs in another thread).

Scores: dot product and cosine similarity (higher is better), Euclidean
distance for ``"l2"`` (lower is better).  The cosine of a zero vector with
anything is defined as 0.0, never NaN.  Cosine is right at any scale: dot
products run in float32 against the query scaled to unit length, and a row
whose float32 squared norm underflows (a tiny non-zero vector) or overflows
is scored again in double, that row only.

Search (``topk``) cuts the rows into chunks handed to OpenMP threads
(``prange``, dynamic schedule).  Each thread scores a tile of rows that fits
in cache into a scratch buffer and offers the scores to its own bounded heaps
(one per query); the per-thread heaps are merged at the end under the total
order (better score, then lower row index; a NaN score ranks after every
number, infinities included, whichever the metric), so results never depend
on the thread count, even for scores that overflowed.  With many queries,
tiles are scored by a register-blocked kernel (several rows against a packed
block of queries) so each row is read from memory once per batch.  Every
O(n) loop runs without the GIL.
"""

import os

import numpy as np

from jadevec.errors import InvalidInputError, SimdUnavailableError

cimport numpy as cnp
from cython.parallel cimport prange, threadid
from libc.math cimport INFINITY, NAN, sqrt, sqrtf
from libc.stdlib cimport calloc, free, malloc, qsort

from jadevec._core._types cimport int64_t, uint8_t

cnp.import_array()

__all__ = [
    "available_levels",
    "cosine",
    "dot",
    "l2",
    "scores",
    "scores_many",
    "set_level",
    "simd_info",
    "squared_norm",
    "topk",
]

cdef enum:
    # From this many queries on, a batch is scored by the register-blocked
    # kernel; below it, each query runs the one-query kernel over a cached tile.
    MULTI_MIN = 8
    # Bytes of rows per tile: about a quarter of a typical L2.
    TILE_BYTES_ONE = 64 * 1024
    TILE_BYTES_MULTI = 256 * 1024
    # Largest parallel work item, in bytes of rows.
    CHUNK_BYTES = 4 << 20
    # Below this many floats of rows, one thread beats waking a team.
    PARALLEL_MIN_FLOATS = 1 << 18

_LEVELS = ("scalar", "avx2", "avx512")
_METRICS = {"dot": JV_DOT, "cosine": JV_COSINE, "l2": JV_L2}

cdef const jv_kernel_table* _tables[3]
_tables[0] = jv_table_scalar()
_tables[1] = jv_table_avx2()
_tables[2] = jv_table_avx512()

cdef const jv_kernel_table* _K = _tables[0]
cdef int _default_threads = 1
# Set in the child of os.fork(): GNU OpenMP's thread pool does not survive a
# fork (a parallel region in the child waits forever for the parent's threads),
# so a forked child runs every loop on its own thread.
cdef bint _fork_child = False

cdef jv_cpu_features _cpu
jv_detect_cpu(&_cpu)

# What each level needs from the CPU and OS, named as simd_info() names them.
_NEEDS = {
    "scalar": (),
    "avx2": ("avx", "avx2", "fma", "os_avx"),
    "avx512": ("avx512f", "os_avx512"),
}


def _features():
    return {
        "sse4_2": bool(_cpu.sse4_2),
        "avx": bool(_cpu.avx),
        "avx2": bool(_cpu.avx2),
        "fma": bool(_cpu.fma),
        "f16c": bool(_cpu.f16c),
        "avx512f": bool(_cpu.avx512f),
        "avx512bw": bool(_cpu.avx512bw),
        "avx512vl": bool(_cpu.avx512vl),
        "avx512dq": bool(_cpu.avx512dq),
        "avx512cd": bool(_cpu.avx512cd),
        "avx512vnni": bool(_cpu.avx512vnni),
        "os_avx": bool(_cpu.os_avx),
        "os_avx512": bool(_cpu.os_avx512),
    }


def _missing(str level):
    """Features (or a compiler-less table) that keep ``level`` from running here."""
    feats = _features()
    missing = [name for name in _NEEDS[level] if not feats[name]]
    if _tables[_LEVELS.index(level)] == NULL:
        missing.append("x86-64 kernels (not built for this platform)")
    return missing


def available_levels():
    """Return the SIMD levels this CPU and OS can run, slowest first.

    Returns
    -------
    list of str
        A subset of ``["scalar", "avx2", "avx512"]``; ``"scalar"`` is always there.
    """
    return [level for level in _LEVELS if not _missing(level)]


def set_level(name):
    """Switch every kernel to the SIMD level ``name`` (for tests and benchmarks).

    Parameters
    ----------
    name : {"scalar", "avx2", "avx512"}

    Raises
    ------
    InvalidInputError
        ``name`` is not a level.
    SimdUnavailableError
        The CPU or OS cannot run it; the message names what is missing.

    Notes
    -----
    Not thread-safe with respect to searches running at the same time.
    """
    global _K
    if not isinstance(name, str) or name not in _LEVELS:
        raise InvalidInputError(
            f"SIMD level must be one of {', '.join(_LEVELS)}; got {name!r}"
        )
    missing = _missing(name)
    if missing:
        raise SimdUnavailableError(
            f"SIMD level {name!r} is not available on this machine: it lacks "
            f"{', '.join(missing)} (available: {', '.join(available_levels())})"
        )
    _K = _tables[_LEVELS.index(name)]


def simd_info():
    """Report the chosen SIMD level and what the CPU supports.

    Returns
    -------
    dict
        ``level`` (str: the kernels in use), ``available`` (list of str: levels
        this CPU and OS can run), ``cpu_features`` (dict of str to bool; the
        ``os_*`` entries say whether the OS saves the AVX / AVX-512 register
        state), ``forced`` (bool: ``JADEVEC_SIMD`` chose the level) and
        ``threads`` (int: threads a search uses by default, one per core
        available to this process; 1 in the child of ``os.fork()``).
    """
    return {
        "level": _K.name.decode("ascii"),
        "available": available_levels(),
        "cpu_features": _features(),
        "forced": _forced,
        "threads": _default_threads,
    }


def _init():
    """Pick the level at import: JADEVEC_SIMD if set, else the best available."""
    global _default_threads
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    _default_threads = max(1, cores)
    wanted = os.environ.get("JADEVEC_SIMD", "").strip().lower()
    if not wanted:
        set_level(available_levels().pop())
        return False
    if wanted not in _LEVELS:
        raise InvalidInputError(
            f"JADEVEC_SIMD={wanted!r} is not a SIMD level; use one of {', '.join(_LEVELS)}"
        )
    try:
        set_level(wanted)
    except SimdUnavailableError as exc:
        raise SimdUnavailableError(f"JADEVEC_SIMD={wanted}: {exc}") from None
    return True


_forced = _init()


def _after_fork_in_child():
    global _fork_child, _default_threads
    _fork_child = True
    _default_threads = 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


cdef inline int _team_size(int requested) noexcept nogil:
    """Threads for a parallel loop: requested, 0 = every core, 1 in a forked child."""
    if _fork_child:
        return 1
    return requested if requested > 0 else _default_threads


# ---------------------------------------------------------------- validation

cdef int metric_code(object metric) except -1:
    if isinstance(metric, str) and metric in _METRICS:
        return _METRICS[metric]
    raise InvalidInputError(f"metric must be one of 'dot', 'cosine', 'l2'; got {metric!r}")


cdef cnp.ndarray _vector(object a, str name):
    """A 1-D float32 array, made contiguous (a copy only if it was strided)."""
    if not isinstance(a, np.ndarray) or a.dtype != np.float32 or a.ndim != 1:
        raise InvalidInputError(f"{name} must be a 1-D float32 numpy array, got {_describe(a)}")
    return np.ascontiguousarray(a)


cdef cnp.ndarray _rows_matrix(object a, str name):
    """A 2-D float32 array whose rows are contiguous; rows may be padded (not copied)."""
    if not isinstance(a, np.ndarray) or a.dtype != np.float32 or a.ndim != 2:
        raise InvalidInputError(f"{name} must be a 2-D float32 numpy array, got {_describe(a)}")
    n, d = a.shape
    if n > 0 and d > 1 and a.strides[1] != 4:
        raise InvalidInputError(
            f"{name} rows must be contiguous (inner stride 4 bytes), got strides {a.strides}"
        )
    if n > 1 and (a.strides[0] < 0 or a.strides[0] % 4 != 0):
        raise InvalidInputError(
            f"{name} row stride must be a non-negative multiple of 4 bytes, "
            f"got {a.strides[0]}"
        )
    return a


cdef Py_ssize_t _row_stride(cnp.ndarray a):
    return a.strides[0] if a.shape[0] > 1 else a.shape[1] * 4


cdef cnp.ndarray _queries(object q, Py_ssize_t d, str name):
    if not isinstance(q, np.ndarray) or q.dtype != np.float32 or q.ndim != 2:
        raise InvalidInputError(f"{name} must be a 2-D float32 numpy array, got {_describe(q)}")
    if q.shape[1] != d:
        raise InvalidInputError(
            f"{name} must have {d} columns (the matrix's dimension), got {q.shape[1]}"
        )
    return np.ascontiguousarray(q)


def _describe(a):
    if isinstance(a, np.ndarray):
        return f"an array of dtype {a.dtype} and shape {a.shape}"
    return f"{type(a).__name__}"


cdef int _threads_arg(object threads) except -1:
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)):
        raise InvalidInputError(f"threads must be an int >= 0, got {threads!r}")
    if threads < 0:
        raise InvalidInputError(f"threads must be an int >= 0, got {threads}")
    return min(int(threads), 1 << 16)


# ---------------------------------------------------------------- pairs

def dot(a, b):
    """Dot product of two 1-D float32 arrays of equal length.

    Raises
    ------
    InvalidInputError
        Not 1-D float32 numpy arrays, or lengths differ.
    """
    cdef cnp.ndarray x = _vector(a, "a"), y = _vector(b, "b")
    _same_length(x, y)
    return _K.dot(<const float*>cnp.PyArray_DATA(x), <const float*>cnp.PyArray_DATA(y),
                  x.shape[0])


def squared_norm(a):
    """Sum of squares of a C-contiguous float32 array, accumulated in float64.

    For finite input it never overflows (float32's largest square fits a
    double many times over) and it raises no floating-point warning: NaN or
    infinity in the input comes out as NaN or infinity. The public API's
    check of a vector uses it.
    """
    if not (isinstance(a, np.ndarray) and a.dtype == np.float32 and a.flags.c_contiguous):
        raise InvalidInputError(f"a must be a C-contiguous float32 numpy array, got {_describe(a)}")
    cdef const float* p = <const float*>cnp.PyArray_DATA(a)
    cdef Py_ssize_t i, n = a.size
    cdef double total = 0.0, x
    with nogil:
        for i in range(n):
            x = p[i]
            total += x * x
    return total


def cosine(a, b):
    """Cosine similarity of two 1-D float32 arrays of equal length.

    The cosine of a zero vector with anything is defined as 0.0 (never NaN).
    Tiny and huge vectors get their true cosine: a float32 squared norm that
    underflows or overflows is summed again in double.

    Raises
    ------
    InvalidInputError
        Not 1-D float32 numpy arrays, or lengths differ.
    """
    cdef cnp.ndarray x = _vector(a, "a"), y = _vector(b, "b")
    _same_length(x, y)
    return _K.cosine(<const float*>cnp.PyArray_DATA(x), <const float*>cnp.PyArray_DATA(y),
                     x.shape[0])


def l2(a, b):
    """Euclidean distance (not squared) of two 1-D float32 arrays of equal length.

    Raises
    ------
    InvalidInputError
        Not 1-D float32 numpy arrays, or lengths differ.
    """
    cdef cnp.ndarray x = _vector(a, "a"), y = _vector(b, "b")
    _same_length(x, y)
    return sqrtf(_K.l2sq(<const float*>cnp.PyArray_DATA(x),
                         <const float*>cnp.PyArray_DATA(y), x.shape[0]))


cdef int _same_length(cnp.ndarray x, cnp.ndarray y) except -1:
    if x.shape[0] != y.shape[0]:
        raise InvalidInputError(f"a and b differ in length: {x.shape[0]} and {y.shape[0]}")
    return 0


def _repeat(metric, a, b, Py_ssize_t reps):
    """Run one pair kernel ``reps`` times without the GIL; return the last result.

    For benchmarks: ns per call of the kernel itself, free of Python overhead.
    """
    cdef int code = metric_code(metric)
    cdef cnp.ndarray x = _vector(a, "a"), y = _vector(b, "b")
    _same_length(x, y)
    cdef const float* pa = <const float*>cnp.PyArray_DATA(x)
    cdef const float* pb = <const float*>cnp.PyArray_DATA(y)
    cdef size_t n = x.shape[0]
    cdef const jv_kernel_table* K = _K
    cdef float r = 0.0
    cdef Py_ssize_t _
    with nogil:
        for _ in range(reps):
            if code == JV_DOT:
                r = K.dot(pa, pb, n)
            elif code == JV_COSINE:
                r = K.cosine(pa, pb, n)
            else:
                r = K.l2sq(pa, pb, n)
    return r


def _read_sum(a, threads=0):
    """Sum a 1-D float32 array with SIMD loads on ``threads`` threads (0: all).

    A streaming read with no work besides the loads: run it over an array much
    larger than the caches to measure the machine's read bandwidth.
    """
    cdef cnp.ndarray x = _vector(a, "a")
    cdef int t = _team_size(_threads_arg(threads))
    cdef const float* p = <const float*>cnp.PyArray_DATA(x)
    # 4 MiB work items handed out dynamically, as the search does, so a core
    # borrowed by another process slows the probe no more than the search.
    cdef Py_ssize_t n = x.shape[0], chunk = 1 << 20
    cdef Py_ssize_t nchunks = (n + chunk - 1) // chunk, c, lo
    cdef const jv_kernel_table* K = _K
    cdef double total = 0.0
    with nogil:
        for c in prange(nchunks, num_threads=t, schedule="dynamic"):
            lo = c * chunk
            total += K.sum(p + lo, min(chunk, n - lo))
    return total


# ---------------------------------------------------------------- batch scoring

cdef struct Job:
    const jv_kernel_table* K
    const float* base
    Py_ssize_t n
    Py_ssize_t d
    Py_ssize_t stride        # floats between row starts
    const float* queries     # m x d, row-major (one-query path, cosine: qunit)
    Py_ssize_t m
    const float* qt          # queries packed for rows_multi, or NULL: one query at a time
    const float* qscale      # cosine: 1, 0 for a zero query, NaN for NaN/inf; else 1
    float* qunit             # one-query path, cosine: queries scaled to unit length
    int metric
    Py_ssize_t tile          # rows per tile
    Py_ssize_t chunk         # rows per parallel work item (a multiple of tile)
    Py_ssize_t nchunks
    int threads


cdef int _prepare(Job* job, const jv_kernel_table* K, const float* base, Py_ssize_t n,
                  Py_ssize_t d, Py_ssize_t stride_bytes, const float* queries,
                  Py_ssize_t m, int metric, int threads) except -1 nogil:
    """Fill job, allocate and pack the query side (caller frees qt and qscale)."""
    cdef Py_ssize_t j, b, kd, qw = K.qw, nblocks, tile_bytes, t
    cdef float* qt = NULL
    cdef float* qscale
    cdef float* qunit = NULL
    cdef double* qfac = NULL
    cdef double n2, x
    job.K = K
    job.base = base
    job.n = n
    job.d = d
    job.stride = stride_bytes // 4
    job.queries = queries
    job.m = m
    job.metric = metric
    job.qt = NULL
    job.qunit = NULL
    qscale = <float*>malloc(max(m, 1) * sizeof(float))
    qfac = <double*>malloc(max(m, 1) * sizeof(double))
    if qscale == NULL or qfac == NULL:
        free(qscale)
        free(qfac)
        with gil:
            raise MemoryError()
    for j in range(m):
        qscale[j] = 1.0
        qfac[j] = 1.0
    job.qscale = qscale
    if metric == JV_COSINE:
        # Cosine scores are dot(row, q / |q|) / |row|: each query is scaled to
        # unit length (per query, not per row), its norm summed in double where
        # float32 is not accurate, so a tiny query (whose float32 squared norm
        # underflows to 0) or a huge one cannot underflow or overflow the dot
        # products, and products of two tiny vectors cannot underflow.
        for j in range(m):
            n2 = K.dot(queries + j * d, queries + j * d, d)
            if not jv_norm2_ok(<float>n2):
                n2 = 0.0
                for kd in range(d):
                    x = queries[j * d + kd]
                    n2 = n2 + x * x
            if 0.0 < n2 < INFINITY:
                qfac[j] = 1.0 / sqrt(n2)
            else:  # zero (scores 0) or NaN/inf (no direction: scores NaN)
                qscale[j] = 0.0 if n2 == 0.0 else NAN
        if m < MULTI_MIN:  # the multi-query path scales while it packs, below
            qunit = <float*>malloc(max(m * d, 1) * sizeof(float))
            if qunit == NULL:
                free(qscale)
                free(qfac)
                with gil:
                    raise MemoryError()
            for j in range(m):
                x = qfac[j]
                for kd in range(d):
                    qunit[j * d + kd] = <float>(queries[j * d + kd] * x)
            job.qunit = qunit
            job.queries = qunit
    if m >= MULTI_MIN:
        # Pack queries in blocks of qw, component-major: qt[b][k][j], zero padded.
        nblocks = (m + qw - 1) // qw
        qt = <float*>calloc(nblocks * qw * max(d, 1), sizeof(float))
        if qt == NULL:
            free(qscale)
            free(qfac)
            with gil:
                raise MemoryError()
        for j in range(m):
            b = j // qw
            x = qfac[j]
            for kd in range(d):
                qt[(b * d + kd) * qw + j % qw] = <float>(queries[j * d + kd] * x)
        job.qt = qt
    free(qfac)
    tile_bytes = TILE_BYTES_MULTI if qt != NULL else TILE_BYTES_ONE
    job.tile = max(8, min(1024, tile_bytes // max(stride_bytes, 4))) // 8 * 8
    t = _team_size(threads)
    if n * max(d, 1) * max(m, 1) < PARALLEL_MIN_FLOATS:
        t = 1
    # Work items of at most CHUNK_BYTES of rows, and at least eight per thread,
    # handed out dynamically: a thread slowed by another process then holds
    # back the search by one small item at most.
    job.chunk = max(1, min((n + 8 * t - 1) // (8 * t), CHUNK_BYTES // max(stride_bytes, 4)))
    job.chunk = (job.chunk + job.tile - 1) // job.tile * job.tile
    job.nchunks = (n + job.chunk - 1) // job.chunk
    job.threads = <int>max(1, min(t, job.nchunks))
    return 0


cdef void _release(Job* job) noexcept nogil:
    free(<void*>job.qt)
    free(<void*>job.qscale)
    free(job.qunit)


cdef void _score_tile(const Job* job, Py_ssize_t row0, Py_ssize_t nr, float* out,
                      Py_ssize_t ldo, float* rinv) noexcept nogil:
    """Scores of rows [row0, row0 + nr) against every query: out[j * ldo + r]."""
    cdef const jv_kernel_table* K = job.K
    cdef const float* tile = job.base + row0 * job.stride
    cdef Py_ssize_t j, b, qw = K.qw
    if job.qt == NULL:
        for j in range(job.m):
            K.rows(tile, nr, job.stride, job.d, job.queries + j * job.d, job.qscale[j],
                   job.metric, out + j * ldo)
        return
    if job.metric == JV_COSINE:
        K.rows_invnorm(tile, nr, job.stride, job.d, rinv)
    b = 0
    while b < job.m:
        K.rows_multi(tile, nr, job.stride, job.d, job.qt + b * job.d, min(qw, job.m - b),
                     job.metric, rinv, job.qscale + b, out + b * ldo, ldo)
        b += qw


cdef void _scores_tile(const Job* job, Py_ssize_t c, float* out, float* rinv) noexcept nogil:
    """Tile c of a full score matrix out (m x n), Euclidean for l2."""
    cdef Py_ssize_t row0 = c * job.tile, n = job.n, nr, i, j
    if row0 >= n:
        return
    nr = min(job.tile, n - row0)
    _score_tile(job, row0, nr, out + row0, n, rinv)
    if job.metric == JV_L2:
        for j in range(job.m):
            for i in range(row0, row0 + nr):
                out[j * n + i] = sqrtf(out[j * n + i])


cdef int _scores_into(const float* base, Py_ssize_t n, Py_ssize_t d, Py_ssize_t stride_bytes,
                      const float* queries, Py_ssize_t m, int metric, float* out,
                      int threads) except -1 nogil:
    """out[j * n + i] = score of row i against query j (l2: Euclidean distance)."""
    cdef Job job
    cdef Py_ssize_t c, t
    cdef float* rinv = NULL
    _prepare(&job, _K, base, n, d, stride_bytes, queries, m, metric, threads)
    rinv = <float*>malloc(job.threads * job.tile * sizeof(float))
    if rinv == NULL:
        _release(&job)
        with gil:
            raise MemoryError()
    for c in prange((n + job.tile - 1) // job.tile, num_threads=job.threads,
                    schedule="dynamic"):
        t = threadid()
        _scores_tile(&job, c, out, rinv + t * job.tile)
    free(rinv)
    _release(&job)
    return 0


def scores(matrix, query, metric, out=None):
    """Score one query against every row of a matrix.

    Parameters
    ----------
    matrix : numpy.ndarray, float32, shape (n, d)
        Rows must be contiguous; the row stride may be larger than ``d * 4``
        (padded rows) as long as it is a multiple of 4 bytes.  Never copied.
    query : numpy.ndarray, float32, shape (d,)
    metric : {"dot", "cosine", "l2"}
        Cosine with a zero row or query is 0.0; l2 is the Euclidean distance.
    out : numpy.ndarray, float32, shape (n,), C-contiguous, optional
        Where to write the scores.

    Returns
    -------
    numpy.ndarray, float32, shape (n,)
    """
    cdef int code = metric_code(metric)
    cdef cnp.ndarray mat = _rows_matrix(matrix, "matrix")
    cdef cnp.ndarray q = _vector(query, "query")
    cdef Py_ssize_t n = mat.shape[0], d = mat.shape[1], stride = _row_stride(mat)
    if q.shape[0] != d:
        raise InvalidInputError(f"query must have length {d} (the matrix's dimension), "
                                f"got {q.shape[0]}")
    cdef cnp.ndarray res
    if out is None:
        res = np.empty(n, dtype=np.float32)
    else:
        if (not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.ndim != 1
                or out.shape[0] != n or not out.flags.c_contiguous
                or not out.flags.writeable):
            raise InvalidInputError(
                f"out must be a writable C-contiguous float32 array of shape ({n},), "
                f"got {_describe(out)}"
            )
        res = out
    cdef const float* pb = <const float*>cnp.PyArray_DATA(mat)
    cdef const float* pq = <const float*>cnp.PyArray_DATA(q)
    cdef float* po = <float*>cnp.PyArray_DATA(res)
    with nogil:
        _scores_into(pb, n, d, stride, pq, 1, code, po, 0)
    return res


def scores_many(matrix, queries, metric):
    """Score every query against every row of a matrix.

    Parameters
    ----------
    matrix : numpy.ndarray, float32, shape (n, d)
        As for :func:`scores` (padded rows accepted, never copied).
    queries : numpy.ndarray, float32, shape (m, d)
    metric : {"dot", "cosine", "l2"}

    Returns
    -------
    numpy.ndarray, float32, shape (m, n)
        ``result[j, i]`` is the score of row ``i`` against query ``j``.
    """
    cdef int code = metric_code(metric)
    cdef cnp.ndarray mat = _rows_matrix(matrix, "matrix")
    cdef Py_ssize_t n = mat.shape[0], d = mat.shape[1], stride = _row_stride(mat)
    cdef cnp.ndarray q = _queries(queries, d, "queries")
    cdef Py_ssize_t m = q.shape[0]
    cdef cnp.ndarray res = np.empty((m, n), dtype=np.float32)
    cdef const float* pb = <const float*>cnp.PyArray_DATA(mat)
    cdef const float* pq = <const float*>cnp.PyArray_DATA(q)
    cdef float* po = <float*>cnp.PyArray_DATA(res)
    if m and n:
        with nogil:
            _scores_into(pb, n, d, stride, pq, m, code, po, 0)
    return res


# ---------------------------------------------------------------- top-k

cdef struct Cand:
    float s
    int64_t i


cdef inline bint _worse(float s1, int64_t i1, float s2, int64_t i2) noexcept nogil:
    """Whether (s1, i1) ranks after (s2, i2): lower score, or equal score and higher row.

    A total order on every float: NaN ranks below every number (-inf included)
    and two NaNs are equal, so ties go by row. IEEE comparisons alone are not
    an order once NaN appears (NaN is neither above, below nor equal to
    anything), and a heap or sort fed such a comparison returns an answer
    that depends on the order rows arrive in, that is on the thread count.
    """
    if s1 < s2:
        return True
    if s1 > s2:
        return False
    if s1 == s2:
        return i1 > i2
    if s1 != s1:  # s1 is NaN: worse than a number, tied with another NaN
        return s2 == s2 or i1 > i2
    return False  # s2 is NaN, s1 a number


cdef inline void _offer(float* hs, int64_t* hi, Py_ssize_t* cnt, Py_ssize_t k,
                        float s, int64_t i) noexcept nogil:
    """Offer (s, i) to a bounded min-heap whose root is the worst kept candidate."""
    cdef Py_ssize_t pos, child, parent
    if cnt[0] < k:
        pos = cnt[0]
        cnt[0] += 1
        while pos > 0:
            parent = (pos - 1) // 2
            if not _worse(s, i, hs[parent], hi[parent]):
                break
            hs[pos] = hs[parent]
            hi[pos] = hi[parent]
            pos = parent
        hs[pos] = s
        hi[pos] = i
        return
    if not _worse(hs[0], hi[0], s, i):
        return
    pos = 0
    while True:
        child = 2 * pos + 1
        if child >= k:
            break
        if child + 1 < k and _worse(hs[child + 1], hi[child + 1], hs[child], hi[child]):
            child += 1
        if not _worse(hs[child], hi[child], s, i):
            break
        hs[pos] = hs[child]
        hi[pos] = hi[child]
        pos = child
    hs[pos] = s
    hi[pos] = i


cdef void _filter(const float* buf, Py_ssize_t nr, int64_t row0, float sign,
                  const uint8_t* skip, float* hs, int64_t* hi, Py_ssize_t* cnt,
                  Py_ssize_t k) noexcept nogil:
    """Offer a tile's scores to one heap; most are rejected by one comparison.

    A NaN score, or a NaN threshold, fails that comparison and goes to
    _offer, whose comparison is the total order."""
    cdef float thr = hs[0] if cnt[0] == k else -INFINITY
    cdef float s
    cdef Py_ssize_t r
    for r in range(nr):
        s = sign * buf[r]
        if s < thr:
            continue
        if skip != NULL and skip[row0 + r]:
            continue
        _offer(hs, hi, cnt, k, s, row0 + r)
        if cnt[0] == k:
            thr = hs[0]


cdef int _cmp_cand(const void* a, const void* b) noexcept nogil:
    cdef const Cand* x = <const Cand*>a
    cdef const Cand* y = <const Cand*>b
    if _worse(x.s, x.i, y.s, y.i):
        return 1
    if _worse(y.s, y.i, x.s, x.i):
        return -1
    return 0


cdef void _topk_chunk(const Job* job, Py_ssize_t c, int t, const uint8_t* skip,
                      Py_ssize_t kk, float* buf, float* rinv, float* hs, int64_t* hi,
                      Py_ssize_t* cnt) noexcept nogil:
    """Score chunk c tile by tile and feed thread t's heaps."""
    cdef Py_ssize_t row0, nr, j, end = min(job.n, (c + 1) * job.chunk)
    cdef Py_ssize_t slot
    cdef float sign = -1.0 if job.metric == JV_L2 else 1.0
    row0 = c * job.chunk
    while row0 < end:
        nr = min(job.tile, end - row0)
        _score_tile(job, row0, nr, buf, job.tile, rinv)
        for j in range(job.m):
            slot = t * job.m + j
            _filter(buf + j * job.tile, nr, row0, sign, skip, hs + slot * kk,
                    hi + slot * kk, cnt + slot, kk)
        row0 += job.tile


cdef void _free_scratch(void* a, void* b, void* c, void* d, void* e, void* f) noexcept nogil:
    free(a)
    free(b)
    free(c)
    free(d)
    free(e)
    free(f)


cdef Py_ssize_t topk_raw(const float* base, Py_ssize_t n, Py_ssize_t d,
                         Py_ssize_t row_stride_bytes, const uint8_t* skip,
                         const float* queries, Py_ssize_t m, Py_ssize_t k, int metric,
                         int64_t* out_idx, float* out_scores, int threads) except -1 nogil:
    cdef Job job
    cdef Py_ssize_t live = n, i, j, t, r, c, kk, ncand, buf_len, mpad
    cdef float* buf = NULL
    cdef float* rinv = NULL
    cdef float* hs = NULL
    cdef int64_t* hi = NULL
    cdef Py_ssize_t* cnt = NULL
    cdef Cand* cand = NULL
    if skip != NULL:
        for i in range(n):
            live -= skip[i] != 0
    kk = min(k, live)
    if kk <= 0 or m <= 0:
        return max(kk, 0)
    _prepare(&job, _K, base, n, d, row_stride_bytes, queries, m, metric, threads)
    mpad = (m + job.K.qw - 1) // job.K.qw * job.K.qw if job.qt != NULL else m
    buf_len = mpad * job.tile
    t = job.threads
    buf = <float*>malloc(t * buf_len * sizeof(float))
    rinv = <float*>malloc(t * job.tile * sizeof(float))
    hs = <float*>malloc(t * m * kk * sizeof(float))
    hi = <int64_t*>malloc(t * m * kk * sizeof(int64_t))
    cnt = <Py_ssize_t*>calloc(t * m, sizeof(Py_ssize_t))
    cand = <Cand*>malloc(t * kk * sizeof(Cand))
    if buf == NULL or rinv == NULL or hs == NULL or hi == NULL or cnt == NULL or cand == NULL:
        _free_scratch(buf, rinv, hs, hi, cnt, cand)
        _release(&job)
        with gil:
            raise MemoryError(f"top-k scratch for {m} queries x k={kk} x {t} threads")
    for c in prange(job.nchunks, num_threads=job.threads, schedule="dynamic"):
        i = threadid()
        _topk_chunk(&job, c, <int>i, skip, kk, buf + i * buf_len, rinv + i * job.tile,
                    hs, hi, cnt)
    # Merge: the union of the per-thread heaps holds the top kk under a total
    # order, so sorting it gives the same answer for any thread count.
    for j in range(m):
        ncand = 0
        for i in range(t):
            for r in range(cnt[i * m + j]):
                cand[ncand].s = hs[(i * m + j) * kk + r]
                cand[ncand].i = hi[(i * m + j) * kk + r]
                ncand += 1
        qsort(cand, ncand, sizeof(Cand), _cmp_cand)
        for r in range(kk):
            out_idx[j * kk + r] = cand[r].i
            out_scores[j * kk + r] = sqrtf(-cand[r].s) if metric == JV_L2 else cand[r].s
    _free_scratch(buf, rinv, hs, hi, cnt, cand)
    _release(&job)
    return kk


def topk(matrix, queries, k, metric, skip=None, threads=0):
    """Exact top-k rows of a matrix for each query.

    Parameters
    ----------
    matrix : numpy.ndarray, float32, shape (n, d)
        Rows must be contiguous; the row stride may exceed ``d * 4`` (rows
        padded to 64 bytes in mapped files) if it is a multiple of 4 bytes.
        Never copied.
    queries : numpy.ndarray, float32, shape (m, d)
    k : int
        Results wanted per query, >= 1.  Fewer come back when fewer rows are
        live: ``kk = min(k, number of rows not skipped)``.
    metric : {"dot", "cosine", "l2"}
        "dot" and "cosine": similarity, best (highest) first; cosine with a
        zero row or query is 0.0, never NaN.  "l2": Euclidean distance, best
        (lowest) first.
    skip : numpy.ndarray, uint8 or bool, shape (n,), optional
        Nonzero marks a row as deleted: it is never returned.
    threads : int, default 0
        Threads to use; 0 means one per available core.  In the child of
        ``os.fork()`` every search runs on one thread (GNU OpenMP's thread
        pool does not survive a fork); spawned processes are unaffected.

    Returns
    -------
    indices : numpy.ndarray, int64, shape (m, kk)
        Row numbers, best first; equal scores are ordered by lower row number,
        and NaN scores (from NaN or infinite input, or products that
        overflow float32) rank after every number, -inf and +inf included,
        so the answer is the same for any thread count.
    scores : numpy.ndarray, float32, shape (m, kk)

    Raises
    ------
    InvalidInputError
        An argument has the wrong type, dtype, shape or value (the message
        names it).
    """
    cdef int code = metric_code(metric)
    cdef cnp.ndarray mat = _rows_matrix(matrix, "matrix")
    cdef Py_ssize_t n = mat.shape[0], d = mat.shape[1], stride = _row_stride(mat)
    cdef cnp.ndarray q = _queries(queries, d, "queries")
    cdef Py_ssize_t m = q.shape[0], kk, kmax
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InvalidInputError(f"k must be an int >= 1, got {k!r}")
    cdef int nthreads = _threads_arg(threads)
    cdef cnp.ndarray sk = None
    cdef const uint8_t* ps = NULL
    if skip is not None:
        if (not isinstance(skip, np.ndarray) or skip.ndim != 1
                or skip.dtype not in (np.uint8, np.bool_) or skip.shape[0] != n):
            raise InvalidInputError(
                f"skip must be None or a uint8 array of shape ({n},), got {_describe(skip)}"
            )
        sk = np.ascontiguousarray(skip).view(np.uint8)
        ps = <const uint8_t*>cnp.PyArray_DATA(sk)
    kmax = min(int(k), n)
    cdef cnp.ndarray idx = np.empty(m * kmax, dtype=np.int64)
    cdef cnp.ndarray sc = np.empty(m * kmax, dtype=np.float32)
    cdef const float* pb = <const float*>cnp.PyArray_DATA(mat)
    cdef const float* pq = <const float*>cnp.PyArray_DATA(q)
    cdef int64_t* pi = <int64_t*>cnp.PyArray_DATA(idx)
    cdef float* po = <float*>cnp.PyArray_DATA(sc)
    with nogil:
        kk = topk_raw(pb, n, d, stride, ps, pq, m, kmax, code, pi, po, nthreads)
    return idx[:m * kk].reshape(m, kk), sc[:m * kk].reshape(m, kk)
