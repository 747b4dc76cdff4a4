/*
 * AVX2 + FMA kernels (Haswell and later, Zen and later).  Every function
 * carries its target attribute, so this file builds with baseline flags and
 * runs only after cpu_features.c said the CPU and OS support AVX2 and FMA.
 * Tails shorter than 8 floats use masked loads (masked lanes read as zero and
 * never fault), so rows of any length and alignment are safe.
 */
#include "jv_kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#define JV_AVX2 __attribute__((target("avx2,fma")))
#define QW_AVX2 16 /* queries per rows_multi block: two YMM registers */
#define R_AVX2 4   /* rows per rows_multi micro-tile */

/* Eight -1 then eight 0: loading 8 ints at offset 8 - r gives a mask of r lanes. */
static const int tail_bits[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

JV_AVX2 static inline __m256i tail_mask(size_t r)
{
    return _mm256_loadu_si256((const __m256i *)(tail_bits + 8 - r));
}

JV_AVX2 static inline float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float inv_norm(float n2)
{
    return n2 > 0.0f ? 1.0f / sqrtf(n2) : 0.0f;
}

/* Four accumulators hide the FMA latency on in-cache data. */
JV_AVX2 static float dot_avx2(const float *a, const float *b, size_t n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    if (i < n) {
        __m256i m = tail_mask(n - i);
        s1 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m), s1);
    }
    return hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}

JV_AVX2 static float l2sq_avx2(const float *a, const float *b, size_t n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    __m256 t0, t1, t2, t3;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        t0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        t1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
        t2 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16));
        t3 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24));
        s0 = _mm256_fmadd_ps(t0, t0, s0);
        s1 = _mm256_fmadd_ps(t1, t1, s1);
        s2 = _mm256_fmadd_ps(t2, t2, s2);
        s3 = _mm256_fmadd_ps(t3, t3, s3);
    }
    for (; i + 8 <= n; i += 8) {
        t0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        s0 = _mm256_fmadd_ps(t0, t0, s0);
    }
    if (i < n) {
        __m256i m = tail_mask(n - i);
        t1 = _mm256_sub_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m));
        s1 = _mm256_fmadd_ps(t1, t1, s1);
    }
    return hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}

JV_AVX2 static float cosine_avx2(const float *a, const float *b, size_t n)
{
    __m256 ab0 = _mm256_setzero_ps(), aa0 = _mm256_setzero_ps(), bb0 = _mm256_setzero_ps();
    __m256 ab1 = _mm256_setzero_ps(), aa1 = _mm256_setzero_ps(), bb1 = _mm256_setzero_ps();
    __m256 x, y;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        x = _mm256_loadu_ps(a + i);
        y = _mm256_loadu_ps(b + i);
        ab0 = _mm256_fmadd_ps(x, y, ab0);
        aa0 = _mm256_fmadd_ps(x, x, aa0);
        bb0 = _mm256_fmadd_ps(y, y, bb0);
        x = _mm256_loadu_ps(a + i + 8);
        y = _mm256_loadu_ps(b + i + 8);
        ab1 = _mm256_fmadd_ps(x, y, ab1);
        aa1 = _mm256_fmadd_ps(x, x, aa1);
        bb1 = _mm256_fmadd_ps(y, y, bb1);
    }
    for (; i < n; i += 8) {
        if (i + 8 <= n) {
            x = _mm256_loadu_ps(a + i);
            y = _mm256_loadu_ps(b + i);
        } else {
            __m256i m = tail_mask(n - i);
            x = _mm256_maskload_ps(a + i, m);
            y = _mm256_maskload_ps(b + i, m);
        }
        ab0 = _mm256_fmadd_ps(x, y, ab0);
        aa0 = _mm256_fmadd_ps(x, x, aa0);
        bb0 = _mm256_fmadd_ps(y, y, bb0);
    }
    float ab = hsum(_mm256_add_ps(ab0, ab1));
    float aa = hsum(_mm256_add_ps(aa0, aa1)), bb = hsum(_mm256_add_ps(bb0, bb1));
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
JV_AVX2 static inline __m128 reduce4(__m256 a0, __m256 a1, __m256 a2, __m256 a3)
{
    __m256 d = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    return _mm_add_ps(_mm256_castps256_ps128(d), _mm256_extractf128_ps(d, 1));
}

/*
 * Four rows against one query, interleaved so the query chunk is loaded once
 * and four independent FMA chains run.  Each row has exactly one accumulator
 * and the same operation order whatever its neighbours, so a row's score does
 * not depend on how rows are grouped.
 */
#define JV_INLINE inline __attribute__((always_inline))

/* One step of 8 components for four rows; LOAD is a plain or a masked load. */
#define JV_ROWS4_STEP(LOAD)                                                                \
    do {                                                                                   \
        __m256 qv = LOAD(q + k);                                                           \
        __m256 x0 = LOAD(r0 + k), x1 = LOAD(r1 + k), x2 = LOAD(r2 + k), x3 = LOAD(r3 + k); \
        if (metric == JV_L2) {                                                             \
            x0 = _mm256_sub_ps(x0, qv);                                                    \
            x1 = _mm256_sub_ps(x1, qv);                                                    \
            x2 = _mm256_sub_ps(x2, qv);                                                    \
            x3 = _mm256_sub_ps(x3, qv);                                                    \
            a0 = _mm256_fmadd_ps(x0, x0, a0);                                              \
            a1 = _mm256_fmadd_ps(x1, x1, a1);                                              \
            a2 = _mm256_fmadd_ps(x2, x2, a2);                                              \
            a3 = _mm256_fmadd_ps(x3, x3, a3);                                              \
        } else {                                                                           \
            a0 = _mm256_fmadd_ps(x0, qv, a0);                                              \
            a1 = _mm256_fmadd_ps(x1, qv, a1);                                              \
            a2 = _mm256_fmadd_ps(x2, qv, a2);                                              \
            a3 = _mm256_fmadd_ps(x3, qv, a3);                                              \
            if (metric == JV_COSINE) { /* row norms fused into the same pass */            \
                n0 = _mm256_fmadd_ps(x0, x0, n0);                                          \
                n1 = _mm256_fmadd_ps(x1, x1, n1);                                          \
                n2 = _mm256_fmadd_ps(x2, x2, n2);                                          \
                n3 = _mm256_fmadd_ps(x3, x3, n3);                                          \
            }                                                                              \
        }                                                                                  \
    } while (0)
#define JV_TAIL_LOAD(p) _mm256_maskload_ps(p, m)

/* Inlined with a constant metric, so the metric tests vanish from the loop. */
JV_AVX2 static JV_INLINE void rows4_avx2(const float *r0, const float *r1, const float *r2,
                                         const float *r3, size_t d, const float *q,
                                         float qscale, const int metric, float out[4])
{
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    __m256 n0 = _mm256_setzero_ps(), n1 = _mm256_setzero_ps();
    __m256 n2 = _mm256_setzero_ps(), n3 = _mm256_setzero_ps();
    size_t k = 0;
    for (; k + 8 <= d; k += 8)
        JV_ROWS4_STEP(_mm256_loadu_ps);
    if (k < d) {
        __m256i m = tail_mask(d - k);
        JV_ROWS4_STEP(JV_TAIL_LOAD);
    }
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
#undef JV_TAIL_LOAD

JV_AVX2 static JV_INLINE void rows_metric_avx2(const float *base, size_t nrows, size_t stride,
                                               size_t d, const float *q, float qscale,
                                               const int metric, float *out)
{
    float tmp[4];
    size_t i = 0;
    /* whole groups of four rows, at least one group ahead */
    size_t ahead = (JV_PREFETCH_BYTES / (stride * sizeof(float) + 1) + 4) / 4 * 4;
    for (; i + 4 <= nrows; i += 4) {
        const float *r = base + i * stride;
        prefetch_rows(r, stride, d, ahead);
        rows4_avx2(r, r + stride, r + 2 * stride, r + 3 * stride, d, q, qscale, metric,
                   out + i);
    }
    if (i < nrows) { /* last 1-3 rows: repeat the last valid row in the spare slots */
        const float *r[4];
        for (size_t j = 0; j < 4; j++)
            r[j] = base + (i + j < nrows ? i + j : nrows - 1) * stride;
        rows4_avx2(r[0], r[1], r[2], r[3], d, q, qscale, metric, tmp);
        for (size_t j = 0; i + j < nrows; j++)
            out[i + j] = tmp[j];
    }
}

JV_AVX2 static void rows_avx2(const float *base, size_t nrows, size_t stride, size_t d,
                              const float *q, float qscale, int metric, float *out)
{
    if (metric == JV_L2)
        rows_metric_avx2(base, nrows, stride, d, q, qscale, JV_L2, out);
    else if (metric == JV_COSINE)
        rows_metric_avx2(base, nrows, stride, d, q, qscale, JV_COSINE, out);
    else
        rows_metric_avx2(base, nrows, stride, d, q, qscale, JV_DOT, out);
}

JV_AVX2 static void rows_invnorm_avx2(const float *base, size_t nrows, size_t stride,
                                      size_t d, float *out)
{
    for (size_t i = 0; i < nrows; i++) {
        const float *r = base + i * stride;
        float rr = dot_avx2(r, r, d);
        out[i] = jv_norm2_ok(rr) ? inv_norm(rr) : jv_invnorm_exact(r, d);
    }
}

/*
 * Register-blocked micro-kernel: R_AVX2 rows x 16 packed queries.  For each
 * component k it broadcasts one float of each row and multiplies it with 16
 * query components, so no horizontal sums are needed and each loaded query
 * vector feeds R_AVX2 FMAs (the layout of a GEMM micro-kernel).
 */
JV_AVX2 static void rows_multi_avx2(const float *base, size_t nrows, size_t stride,
                                    size_t d, const float *qt, size_t nq, int metric,
                                    const float *rinv, const float *qscale, float *out,
                                    size_t ldo)
{
    float tile[R_AVX2][QW_AVX2];
    for (size_t i = 0; i < nrows; i += R_AVX2) {
        const float *r[R_AVX2];
        size_t nr = nrows - i < R_AVX2 ? nrows - i : R_AVX2;
        for (size_t j = 0; j < R_AVX2; j++)
            r[j] = base + (i + (j < nr ? j : nr - 1)) * stride;
        __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
        __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
        __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
        __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
        if (metric == JV_L2) {
            for (size_t k = 0; k < d; k++) {
                __m256 q0 = _mm256_loadu_ps(qt + k * QW_AVX2);
                __m256 q1 = _mm256_loadu_ps(qt + k * QW_AVX2 + 8);
                __m256 b, t;
#define JV_L2_STEP(row, c0, c1)                                                            \
    b = _mm256_broadcast_ss(r[row] + k);                                                   \
    t = _mm256_sub_ps(q0, b);                                                              \
    c0 = _mm256_fmadd_ps(t, t, c0);                                                        \
    t = _mm256_sub_ps(q1, b);                                                              \
    c1 = _mm256_fmadd_ps(t, t, c1);
                JV_L2_STEP(0, c00, c01)
                JV_L2_STEP(1, c10, c11)
                JV_L2_STEP(2, c20, c21)
                JV_L2_STEP(3, c30, c31)
#undef JV_L2_STEP
            }
        } else {
            for (size_t k = 0; k < d; k++) {
                __m256 q0 = _mm256_loadu_ps(qt + k * QW_AVX2);
                __m256 q1 = _mm256_loadu_ps(qt + k * QW_AVX2 + 8);
                __m256 b;
#define JV_DOT_STEP(row, c0, c1)                                                           \
    b = _mm256_broadcast_ss(r[row] + k);                                                   \
    c0 = _mm256_fmadd_ps(b, q0, c0);                                                       \
    c1 = _mm256_fmadd_ps(b, q1, c1);
                JV_DOT_STEP(0, c00, c01)
                JV_DOT_STEP(1, c10, c11)
                JV_DOT_STEP(2, c20, c21)
                JV_DOT_STEP(3, c30, c31)
#undef JV_DOT_STEP
            }
        }
        _mm256_storeu_ps(tile[0], c00);
        _mm256_storeu_ps(tile[0] + 8, c01);
        _mm256_storeu_ps(tile[1], c10);
        _mm256_storeu_ps(tile[1] + 8, c11);
        _mm256_storeu_ps(tile[2], c20);
        _mm256_storeu_ps(tile[2] + 8, c21);
        _mm256_storeu_ps(tile[3], c30);
        _mm256_storeu_ps(tile[3] + 8, c31);
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
                            jv_cos_row_exact(r[rr], qt + j, QW_AVX2, d) * qscale[j];
    }
}

/* The bandwidth probe prefetches 4 KiB ahead like the scan does, so it measures
 * the memory, not the hardware prefetcher. */
JV_AVX2 static float sum_avx2(const float *a, size_t n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        for (size_t o = 0; o < 32; o += 16) /* one per 64-byte line */
            prefetch_at(a + i + o, 4096);
        s0 = _mm256_add_ps(s0, _mm256_loadu_ps(a + i));
        s1 = _mm256_add_ps(s1, _mm256_loadu_ps(a + i + 8));
        s2 = _mm256_add_ps(s2, _mm256_loadu_ps(a + i + 16));
        s3 = _mm256_add_ps(s3, _mm256_loadu_ps(a + i + 24));
    }
    float acc = hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++)
        acc += a[i];
    return acc;
}

static const jv_kernel_table table_avx2 = {
    "avx2",           QW_AVX2,         dot_avx2,
    l2sq_avx2,        cosine_avx2,     rows_avx2,
    rows_invnorm_avx2, rows_multi_avx2, sum_avx2,
};

const jv_kernel_table *jv_table_avx2(void)
{
    return &table_avx2;
}

#else

const jv_kernel_table *jv_table_avx2(void)
{
    return NULL;
}

#endif
