/*
 * AVX-512F kernels (Skylake-SP, Ice Lake, Zen 4 and later).  Every function
 * carries its target attribute, so this file builds with baseline flags and
 * runs only after cpu_features.c said the CPU has AVX-512F and the OS saves
 * the ZMM state.  Tails use masked loads: masked lanes are never read, so a
 * row may end at the last byte of a mapping.  Only AVX-512F is needed: masks
 * are __mmask16 and the horizontal sum is _mm512_reduce_add_ps.
 */
#include "jv_kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#define JV_AVX512 __attribute__((target("avx512f")))
#define QW_AVX512 32 /* queries per rows_multi block: two ZMM registers */
#define R_AVX512 8   /* rows per rows_multi micro-tile: 16 accumulators */

static inline __mmask16 tail_mask(size_t r)
{
    return (__mmask16)((1u << r) - 1u);
}

static inline float inv_norm(float n2)
{
    return n2 > 0.0f ? 1.0f / sqrtf(n2) : 0.0f;
}

/* Four accumulators hide the FMA latency on in-cache data. */
JV_AVX512 static float dot_avx512(const float *a, const float *b, size_t n)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    __m512 s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
    }
    for (; i + 16 <= n; i += 16)
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i),
                             s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

JV_AVX512 static float l2sq_avx512(const float *a, const float *b, size_t n)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    __m512 s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    __m512 t0, t1, t2, t3;
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        t0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
        t1 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));
        t2 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32));
        t3 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48));
        s0 = _mm512_fmadd_ps(t0, t0, s0);
        s1 = _mm512_fmadd_ps(t1, t1, s1);
        s2 = _mm512_fmadd_ps(t2, t2, s2);
        s3 = _mm512_fmadd_ps(t3, t3, s3);
    }
    for (; i + 16 <= n; i += 16) {
        t0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
        s0 = _mm512_fmadd_ps(t0, t0, s0);
    }
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        t1 = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i));
        s1 = _mm512_fmadd_ps(t1, t1, s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

JV_AVX512 static float cosine_avx512(const float *a, const float *b, size_t n)
{
    __m512 ab0 = _mm512_setzero_ps(), aa0 = _mm512_setzero_ps(), bb0 = _mm512_setzero_ps();
    __m512 ab1 = _mm512_setzero_ps(), aa1 = _mm512_setzero_ps(), bb1 = _mm512_setzero_ps();
    __m512 x, y;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        x = _mm512_loadu_ps(a + i);
        y = _mm512_loadu_ps(b + i);
        ab0 = _mm512_fmadd_ps(x, y, ab0);
        aa0 = _mm512_fmadd_ps(x, x, aa0);
        bb0 = _mm512_fmadd_ps(y, y, bb0);
        x = _mm512_loadu_ps(a + i + 16);
        y = _mm512_loadu_ps(b + i + 16);
        ab1 = _mm512_fmadd_ps(x, y, ab1);
        aa1 = _mm512_fmadd_ps(x, x, aa1);
        bb1 = _mm512_fmadd_ps(y, y, bb1);
    }
    for (; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);
        x = _mm512_maskz_loadu_ps(m, a + i);
        y = _mm512_maskz_loadu_ps(m, b + i);
        ab0 = _mm512_fmadd_ps(x, y, ab0);
        aa0 = _mm512_fmadd_ps(x, x, aa0);
        bb0 = _mm512_fmadd_ps(y, y, bb0);
    }
    float ab = _mm512_reduce_add_ps(_mm512_add_ps(ab0, ab1));
    float aa = _mm512_reduce_add_ps(_mm512_add_ps(aa0, aa1));
    float bb = _mm512_reduce_add_ps(_mm512_add_ps(bb0, bb1));
    if (!jv_norm2_ok(aa) || !jv_norm2_ok(bb))
        return jv_cosine_exact(a, b, n);
    return ab * inv_norm(aa) * inv_norm(bb);
}

/*
 * Four rows read side by side look like four short streams to the hardware
 * prefetcher, which then falls behind: on a 2-core EPYC (Zen 5) a scan ran at 15 GB/s
 * per thread without this, against 40 GB/s for a linear read.  Asking for the
 * rows about JV_PREFETCH_BYTES ahead restores a linear stream.  PREFETCH never
 * faults, so running past the last row (or the mapping) is harmless.
 */
#ifndef JV_PREFETCH_BYTES
#define JV_PREFETCH_BYTES 4096
#endif

/* Addresses past the end are formed as integers: PREFETCH accepts any address,
 * C pointer arithmetic does not. */
static inline void prefetch_at(const void *p, size_t offset)
{
    _mm_prefetch((const char *)((uintptr_t)p + offset), _MM_HINT_T0);
}

/* Prefetch the four rows that start `ahead` rows after r. */
static inline void prefetch_rows(const float *r, size_t stride, size_t d, size_t ahead)
{
    for (size_t j = ahead; j < ahead + 4; j++) {
        size_t row = j * stride * sizeof(float);
        for (size_t off = 0; off < d * sizeof(float); off += 64)
            prefetch_at(r, row + off);
        if (d)
            prefetch_at(r, row + d * sizeof(float) - 1); /* unaligned rows */
    }
}

/* Horizontal sums of four vectors at once, [sum a0, sum a1, sum a2, sum a3]:
 * about half the shuffles of four separate reductions. */
JV_AVX512 static inline __m128 reduce4(__m512 a0, __m512 a1, __m512 a2, __m512 a3)
{
#define JV_HALVES(v)                                                                       \
    _mm256_add_ps(_mm512_castps512_ps256(v),                                               \
                  _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)))
    __m256 b0 = JV_HALVES(a0), b1 = JV_HALVES(a1), b2 = JV_HALVES(a2), b3 = JV_HALVES(a3);
#undef JV_HALVES
    /* [b0 lo+hi pairs | b1 ...] then fold the two 128-bit lanes */
    __m256 c01 = _mm256_hadd_ps(b0, b1), c23 = _mm256_hadd_ps(b2, b3);
    __m256 d = _mm256_hadd_ps(c01, c23);
    return _mm_add_ps(_mm256_castps256_ps128(d), _mm256_extractf128_ps(d, 1));
}

/*
 * Four rows against one query, interleaved so the query chunk is loaded once
 * and four independent FMA chains run.  Each row has exactly one accumulator
 * and the same operation order whatever its neighbours, so a row's score does
 * not depend on how rows are grouped (threads cannot change a result).
 */
#define JV_INLINE inline __attribute__((always_inline))

/* One step of 16 components for four rows; m masks the tail (all ones before). */
#define JV_ROWS4_STEP(m)                                                                   \
    do {                                                                                   \
        __m512 qv = _mm512_maskz_loadu_ps(m, q + k);                                       \
        __m512 x0 = _mm512_maskz_loadu_ps(m, r0 + k);                                      \
        __m512 x1 = _mm512_maskz_loadu_ps(m, r1 + k);                                      \
        __m512 x2 = _mm512_maskz_loadu_ps(m, r2 + k);                                      \
        __m512 x3 = _mm512_maskz_loadu_ps(m, r3 + k);                                      \
        if (metric == JV_L2) {                                                             \
            x0 = _mm512_sub_ps(x0, qv);                                                    \
            x1 = _mm512_sub_ps(x1, qv);                                                    \
            x2 = _mm512_sub_ps(x2, qv);                                                    \
            x3 = _mm512_sub_ps(x3, qv);                                                    \
            a0 = _mm512_fmadd_ps(x0, x0, a0);                                              \
            a1 = _mm512_fmadd_ps(x1, x1, a1);                                              \
            a2 = _mm512_fmadd_ps(x2, x2, a2);                                              \
            a3 = _mm512_fmadd_ps(x3, x3, a3);                                              \
        } else {                                                                           \
            a0 = _mm512_fmadd_ps(x0, qv, a0);                                              \
            a1 = _mm512_fmadd_ps(x1, qv, a1);                                              \
            a2 = _mm512_fmadd_ps(x2, qv, a2);                                              \
            a3 = _mm512_fmadd_ps(x3, qv, a3);                                              \
            if (metric == JV_COSINE) { /* row norms fused into the same pass */            \
                n0 = _mm512_fmadd_ps(x0, x0, n0);                                          \
                n1 = _mm512_fmadd_ps(x1, x1, n1);                                          \
                n2 = _mm512_fmadd_ps(x2, x2, n2);                                          \
                n3 = _mm512_fmadd_ps(x3, x3, n3);                                          \
            }                                                                              \
        }                                                                                  \
    } while (0)

/* Inlined with a constant metric, so the metric tests vanish from the loop. */
JV_AVX512 static JV_INLINE void rows4_avx512(const float *r0, const float *r1,
                                             const float *r2, const float *r3, size_t d,
                                             const float *q, float qscale, const int metric,
                                             float out[4])
{
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    __m512 a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    __m512 n0 = _mm512_setzero_ps(), n1 = _mm512_setzero_ps();
    __m512 n2 = _mm512_setzero_ps(), n3 = _mm512_setzero_ps();
    size_t k = 0;
    for (; k + 16 <= d; k += 16)
        JV_ROWS4_STEP((__mmask16)0xffff);
    if (k < d)
        JV_ROWS4_STEP(tail_mask(d - k));
    __m128 dots = reduce4(a0, a1, a2, a3);
    if (metric == JV_COSINE) {
        /* dot * (qscale * (1 / sqrt(|row|^2))) for the four rows at once; a
         * row whose float32 squared norm is outside [JV_NORM2_MIN, FLT_MAX]
         * (or NaN) is scored again in double, which only rare rows pay. */
        __m128 nn = reduce4(n0, n1, n2, n3);
        __m128 ok = _mm_and_ps(_mm_cmpge_ps(nn, _mm_set1_ps(JV_NORM2_MIN)),
                               _mm_cmple_ps(nn, _mm_set1_ps(FLT_MAX)));
        __m128 inv = _mm_div_ps(_mm_set1_ps(1.0f), _mm_sqrt_ps(nn));
        dots = _mm_mul_ps(dots, _mm_mul_ps(_mm_set1_ps(qscale), inv));
        _mm_storeu_ps(out, dots);
        int good = _mm_movemask_ps(ok);
        if (good != 0xF) {
            const float *rows[4] = {r0, r1, r2, r3};
            for (int j = 0; j < 4; j++)
                if (!(good >> j & 1))
                    out[j] = jv_cos_row_exact(rows[j], q, 1, d) * qscale;
        }
        return;
    }
    _mm_storeu_ps(out, dots);
}
#undef JV_ROWS4_STEP

JV_AVX512 static JV_INLINE void rows_metric_avx512(const float *base, size_t nrows,
                                                   size_t stride, size_t d, const float *q,
                                                   float qscale, const int metric, float *out)
{
    float tmp[4];
    size_t i = 0;
    /* whole groups of four rows, at least one group ahead */
    size_t ahead = (JV_PREFETCH_BYTES / (stride * sizeof(float) + 1) + 4) / 4 * 4;
    for (; i + 4 <= nrows; i += 4) {
        const float *r = base + i * stride;
        prefetch_rows(r, stride, d, ahead);
        rows4_avx512(r, r + stride, r + 2 * stride, r + 3 * stride, d, q, qscale, metric,
                     out + i);
    }
    if (i < nrows) { /* last 1-3 rows: repeat the last valid row in the spare slots */
        const float *r[4];
        for (size_t j = 0; j < 4; j++)
            r[j] = base + (i + j < nrows ? i + j : nrows - 1) * stride;
        rows4_avx512(r[0], r[1], r[2], r[3], d, q, qscale, metric, tmp);
        for (size_t j = 0; i + j < nrows; j++)
            out[i + j] = tmp[j];
    }
}

JV_AVX512 static void rows_avx512(const float *base, size_t nrows, size_t stride, size_t d,
                                  const float *q, float qscale, int metric, float *out)
{
    if (metric == JV_L2)
        rows_metric_avx512(base, nrows, stride, d, q, qscale, JV_L2, out);
    else if (metric == JV_COSINE)
        rows_metric_avx512(base, nrows, stride, d, q, qscale, JV_COSINE, out);
    else
        rows_metric_avx512(base, nrows, stride, d, q, qscale, JV_DOT, out);
}

JV_AVX512 static void rows_invnorm_avx512(const float *base, size_t nrows, size_t stride,
                                          size_t d, float *out)
{
    for (size_t i = 0; i < nrows; i++) {
        const float *r = base + i * stride;
        float rr = dot_avx512(r, r, d);
        out[i] = jv_norm2_ok(rr) ? inv_norm(rr) : jv_invnorm_exact(r, d);
    }
}

/*
 * Register-blocked micro-kernel: R_AVX512 rows x 32 packed queries, sixteen
 * accumulators.  For each component k it broadcasts one float of each row and
 * multiplies it with 32 query components, so no horizontal sums are needed and
 * each pair of loaded query vectors feeds 16 FMAs (a GEMM micro-kernel).
 */
JV_AVX512 static void rows_multi_avx512(const float *base, size_t nrows, size_t stride,
                                        size_t d, const float *qt, size_t nq, int metric,
                                        const float *rinv, const float *qscale, float *out,
                                        size_t ldo)
{
    float tile[R_AVX512][QW_AVX512];
    for (size_t i = 0; i < nrows; i += R_AVX512) {
        const float *r[R_AVX512];
        size_t nr = nrows - i < R_AVX512 ? nrows - i : R_AVX512;
        for (size_t j = 0; j < R_AVX512; j++)
            r[j] = base + (i + (j < nr ? j : nr - 1)) * stride;
        __m512 c00 = _mm512_setzero_ps(), c01 = _mm512_setzero_ps();
        __m512 c10 = _mm512_setzero_ps(), c11 = _mm512_setzero_ps();
        __m512 c20 = _mm512_setzero_ps(), c21 = _mm512_setzero_ps();
        __m512 c30 = _mm512_setzero_ps(), c31 = _mm512_setzero_ps();
        __m512 c40 = _mm512_setzero_ps(), c41 = _mm512_setzero_ps();
        __m512 c50 = _mm512_setzero_ps(), c51 = _mm512_setzero_ps();
        __m512 c60 = _mm512_setzero_ps(), c61 = _mm512_setzero_ps();
        __m512 c70 = _mm512_setzero_ps(), c71 = _mm512_setzero_ps();
        if (metric == JV_L2) {
            for (size_t k = 0; k < d; k++) {
                __m512 q0 = _mm512_loadu_ps(qt + k * QW_AVX512);
                __m512 q1 = _mm512_loadu_ps(qt + k * QW_AVX512 + 16);
                __m512 b, t;
#define JV_L2_STEP(row, c0, c1)                                                            \
    b = _mm512_set1_ps(r[row][k]);                                                         \
    t = _mm512_sub_ps(q0, b);                                                              \
    c0 = _mm512_fmadd_ps(t, t, c0);                                                        \
    t = _mm512_sub_ps(q1, b);                                                              \
    c1 = _mm512_fmadd_ps(t, t, c1);
                JV_L2_STEP(0, c00, c01)
                JV_L2_STEP(1, c10, c11)
                JV_L2_STEP(2, c20, c21)
                JV_L2_STEP(3, c30, c31)
                JV_L2_STEP(4, c40, c41)
                JV_L2_STEP(5, c50, c51)
                JV_L2_STEP(6, c60, c61)
                JV_L2_STEP(7, c70, c71)
#undef JV_L2_STEP
            }
        } else {
            for (size_t k = 0; k < d; k++) {
                __m512 q0 = _mm512_loadu_ps(qt + k * QW_AVX512);
                __m512 q1 = _mm512_loadu_ps(qt + k * QW_AVX512 + 16);
                __m512 b;
#define JV_DOT_STEP(row, c0, c1)                                                           \
    b = _mm512_set1_ps(r[row][k]);                                                         \
    c0 = _mm512_fmadd_ps(b, q0, c0);                                                       \
    c1 = _mm512_fmadd_ps(b, q1, c1);
                JV_DOT_STEP(0, c00, c01)
                JV_DOT_STEP(1, c10, c11)
                JV_DOT_STEP(2, c20, c21)
                JV_DOT_STEP(3, c30, c31)
                JV_DOT_STEP(4, c40, c41)
                JV_DOT_STEP(5, c50, c51)
                JV_DOT_STEP(6, c60, c61)
                JV_DOT_STEP(7, c70, c71)
#undef JV_DOT_STEP
            }
        }
#define JV_STORE(row, c0, c1)                                                              \
    _mm512_storeu_ps(tile[row], c0);                                                       \
    _mm512_storeu_ps(tile[row] + 16, c1);
        JV_STORE(0, c00, c01)
        JV_STORE(1, c10, c11)
        JV_STORE(2, c20, c21)
        JV_STORE(3, c30, c31)
        JV_STORE(4, c40, c41)
        JV_STORE(5, c50, c51)
        JV_STORE(6, c60, c61)
        JV_STORE(7, c70, c71)
#undef JV_STORE
        for (size_t j = 0; j < nq; j++) {
            float *o = out + j * ldo + i;
            for (size_t rr = 0; rr < nr; rr++)
                o[rr] = metric == JV_COSINE ? tile[rr][j] * rinv[i + rr] * qscale[j]
                                            : tile[rr][j];
        }
        if (metric == JV_COSINE) /* rows too tiny for float32 products: redo in double */
            for (size_t rr = 0; rr < nr; rr++)
                if (rinv[i + rr] == JV_RINV_EXACT)
                    for (size_t j = 0; j < nq; j++)
                        out[j * ldo + i + rr] =
                            jv_cos_row_exact(r[rr], qt + j, QW_AVX512, d) * qscale[j];
    }
}

/* The bandwidth probe prefetches 4 KiB ahead like the scan does, so it measures
 * the memory, not the hardware prefetcher. */
JV_AVX512 static float sum_avx512(const float *a, size_t n)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    __m512 s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        for (size_t o = 0; o < 64; o += 16) /* one per 64-byte line */
            prefetch_at(a + i + o, 4096);
        s0 = _mm512_add_ps(s0, _mm512_loadu_ps(a + i));
        s1 = _mm512_add_ps(s1, _mm512_loadu_ps(a + i + 16));
        s2 = _mm512_add_ps(s2, _mm512_loadu_ps(a + i + 32));
        s3 = _mm512_add_ps(s3, _mm512_loadu_ps(a + i + 48));
    }
    for (; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);
        s0 = _mm512_add_ps(s0, _mm512_maskz_loadu_ps(m, a + i));
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

static const jv_kernel_table table_avx512 = {
    "avx512",           QW_AVX512,           dot_avx512,
    l2sq_avx512,        cosine_avx512,       rows_avx512,
    rows_invnorm_avx512, rows_multi_avx512, sum_avx512,
};

const jv_kernel_table *jv_table_avx512(void)
{
    return &table_avx512;
}

#else

const jv_kernel_table *jv_table_avx512(void)
{
    return NULL;
}

#endif
