# C-level face of the SIMD kernels, for other Cython modules of jadevec._core.
from jadevec._core._types cimport int64_t, uint8_t

cdef extern from "jv_kernels.h" nogil:
    enum:
        JV_DOT
        JV_COSINE
        JV_L2

    ctypedef struct jv_kernel_table:
        const char* name
        size_t qw
        float (*dot)(const float* a, const float* b, size_t n) noexcept nogil
        float (*l2sq)(const float* a, const float* b, size_t n) noexcept nogil
        float (*cosine)(const float* a, const float* b, size_t n) noexcept nogil
        void (*rows)(const float* base, size_t nrows, size_t stride, size_t d,
                     const float* q, float qscale, int metric, float* out) noexcept nogil
        void (*rows_invnorm)(const float* base, size_t nrows, size_t stride, size_t d,
                             float* out) noexcept nogil
        void (*rows_multi)(const float* base, size_t nrows, size_t stride, size_t d,
                           const float* qt, size_t nq, int metric, const float* rinv,
                           const float* qscale, float* out, size_t ldo) noexcept nogil
        float (*sum)(const float* a, size_t n) noexcept nogil

    ctypedef struct jv_cpu_features:
        int sse4_2, avx, avx2, fma, f16c, avx512f, avx512bw, avx512vl, avx512dq
        int avx512cd, avx512vnni, os_avx, os_avx512

    # Whether a float32 squared norm is accurate: in [2^-100, FLT_MAX].
    int jv_norm2_ok(float n2)

    const jv_kernel_table* jv_table_scalar()
    const jv_kernel_table* jv_table_avx2()
    const jv_kernel_table* jv_table_avx512()
    void jv_detect_cpu(jv_cpu_features* out)


# Metric name ("dot", "cosine", "l2") -> JV_* code; InvalidInputError otherwise.
cdef int metric_code(object metric) except -1

# Exact top-k of m queries (row-major, m x d) against n rows of d floats, row i
# at base + i * row_stride_bytes (a multiple of 4).  skip: NULL or n bytes,
# nonzero = ignore the row.  Writes kk = min(k, live rows) results per query,
# best first (ties: lower row index), compactly: out_idx[j * kk + r]; both
# outputs need room for m * min(k, n).  Scores: dot and cosine similarity,
# Euclidean distance for JV_L2.  threads <= 0: every core.  Returns kk;
# raises MemoryError (with the GIL taken) if scratch memory is short.
cdef Py_ssize_t topk_raw(const float* base, Py_ssize_t n, Py_ssize_t d,
                         Py_ssize_t row_stride_bytes, const uint8_t* skip,
                         const float* queries, Py_ssize_t m, Py_ssize_t k, int metric,
                         int64_t* out_idx, float* out_scores, int threads) except -1 nogil
