/*
 * SIMD kernels of jadevec: one table of function pointers per instruction set.
 *
 * Each ISA lives in its own C file (kernels_scalar.c, kernels_avx2.c,
 * kernels_avx512.c) and carries its target in __attribute__((target(...))) on
 * every function, so the whole module builds for baseline x86-64 and the
 * Cython layer picks one table at import from CPUID + XGETBV (cpu_features.c).
 *
 * Conventions shared by every table:
 *   - vectors are float32; lengths and strides are counted in floats;
 *   - "rows" kernels read nrows rows of d floats, row i at base + i * stride;
 *     rows need not be aligned, tails need not be a multiple of the width;
 *   - cosine of a zero vector is 0.0, never NaN: a zero norm gives an inverse
 *     norm of 0, and every cosine is dot * inv_norm_a * inv_norm_b;
 *   - cosine is right at any scale: a squared norm summed in float32 that is
 *     outside [JV_NORM2_MIN, FLT_MAX] (tiny non-zero vectors underflow to 0,
 *     huge ones overflow to inf) is summed again in double for that row only,
 *     so the hot loops stay float32 and pay one comparison per row;
 *   - the arithmetic for one row never depends on which other rows are in the
 *     same call, so chunking rows across threads cannot change a score.
 */
#ifndef JV_KERNELS_H
#define JV_KERNELS_H

#include <float.h>
#include <math.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Metric codes of the rows kernels.  L2 kernels return the SQUARED distance;
 * callers take the square root where a distance is reported. */
enum { JV_DOT = 0, JV_COSINE = 1, JV_L2 = 2 };

typedef struct jv_kernel_table {
    const char *name;
    /* Queries are packed in blocks of this many for rows_multi. */
    size_t qw;
    float (*dot)(const float *a, const float *b, size_t n);
    float (*l2sq)(const float *a, const float *b, size_t n);
    /* Cosine similarity in one pass (dot and both norms); 0 if either is zero. */
    float (*cosine)(const float *a, const float *b, size_t n);
    /* out[i] = score of row i against q.  Cosine: dot * qscale / |row|, with
     * the row norm fused into the same pass; callers pass q scaled to unit
     * length and qscale = 1 (0 for a zero query), so a tiny or huge query
     * cannot underflow or overflow the dot products. */
    void (*rows)(const float *base, size_t nrows, size_t stride, size_t d,
                 const float *q, float qscale, int metric, float *out);
    /* out[i] = 1/|row i|, or 0 for a zero row, NaN for a row with NaN or
     * infinity, and JV_RINV_EXACT for a non-zero row shorter than
     * 2^-100, too small for float32 products with a unit query. */
    void (*rows_invnorm)(const float *base, size_t nrows, size_t stride, size_t d,
                         float *out);
    /* One block of nq <= qw queries packed as qt[k * qw + j] (zero padded).
     * out[j * ldo + i] = score of row i against query j.  Cosine: dot *
     * rinv[i] * qscale[j] (rinv from rows_invnorm; a row marked JV_RINV_EXACT
     * is scored in double against the packed unit query); other metrics
     * ignore both. */
    void (*rows_multi)(const float *base, size_t nrows, size_t stride, size_t d,
                       const float *qt, size_t nq, int metric, const float *rinv,
                       const float *qscale, float *out, size_t ldo);
    /* Sum of n floats, read once: the streaming read-bandwidth probe. */
    float (*sum)(const float *a, size_t n);
} jv_kernel_table;

/* The double fallbacks below run for rare rows only: kept out of line (and
 * out of the hot loops' registers and instruction cache). */
#if defined(__GNUC__) || defined(__clang__)
#define JV_COLD __attribute__((noinline, cold))
#else
#define JV_COLD
#endif

/* Float32 squared norms from 2^-100 to FLT_MAX are accurate: below, the
 * squares of small components have been lost to underflow (a whole tiny
 * vector sums to 0); above, the sum is inf. */
#define JV_NORM2_MIN 0x1p-100f
/* rows_invnorm's mark for a row that rows_multi must score in double. */
#define JV_RINV_EXACT (-1.0f)

static inline int jv_norm2_ok(float n2)
{
    return n2 >= JV_NORM2_MIN && n2 <= FLT_MAX; /* false for inf and NaN */
}

/* Cosine factor of one row against a unit query, summed in double: dot(r, q)
 * / |r|, with q[k] read at q[k * qs].  0 for a zero row, NaN for a row with
 * NaN or infinity.  The squares of float32 values are exact in double and
 * cannot overflow it, so any finite row gets its true cosine.  Only for rows
 * whose float32 norm is out of range: plain scalar code is fast enough. */
JV_COLD static float jv_cos_row_exact(const float *r, const float *q, size_t qs, size_t d)
{
    double rr = 0.0, rq = 0.0;
    for (size_t k = 0; k < d; k++) {
        double x = r[k];
        rr += x * x;
        rq += x * (double)q[k * qs];
    }
    if (rr == 0.0)
        return 0.0f;
    if (!(rr <= DBL_MAX))
        return NAN;
    return (float)(rq / sqrt(rr));
}

/* 1/|r| in double, as rows_invnorm reports it for a row whose float32
 * squared norm is out of range (see rows_invnorm). */
JV_COLD static float jv_invnorm_exact(const float *r, size_t d)
{
    double rr = 0.0;
    for (size_t k = 0; k < d; k++)
        rr += (double)r[k] * (double)r[k];
    if (rr == 0.0)
        return 0.0f;
    if (!(rr <= DBL_MAX))
        return NAN;
    if (rr < 0x1p-200)
        return JV_RINV_EXACT;
    return (float)(1.0 / sqrt(rr));
}

/* Cosine of two vectors summed in double (the pair kernels' fallback when a
 * float32 squared norm is out of range): 0 if either is zero, NaN if either
 * holds NaN or infinity. */
JV_COLD static float jv_cosine_exact(const float *a, const float *b, size_t n)
{
    double ab = 0.0, aa = 0.0, bb = 0.0;
    for (size_t i = 0; i < n; i++) {
        double x = a[i], y = b[i];
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if (aa == 0.0 || bb == 0.0)
        return 0.0f;
    if (!(aa <= DBL_MAX && bb <= DBL_MAX))
        return NAN;
    return (float)(ab / (sqrt(aa) * sqrt(bb)));
}

/* Tables; the SIMD ones are NULL where the compiler cannot build them. */
const jv_kernel_table *jv_table_scalar(void);
const jv_kernel_table *jv_table_avx2(void);
const jv_kernel_table *jv_table_avx512(void);

/* What the CPU and the OS support (OS: XGETBV says the register state is saved). */
typedef struct jv_cpu_features {
    int sse4_2, avx, avx2, fma, f16c, avx512f, avx512bw, avx512vl, avx512dq,
        avx512cd, avx512vnni, os_avx, os_avx512;
} jv_cpu_features;

void jv_detect_cpu(jv_cpu_features *out);

#ifdef __cplusplus
}
#endif
#endif /* JV_KERNELS_H */
