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
 *   - the arithmetic for one row never depends on which other rows are in the
 *     same call, so chunking rows across threads cannot change a score.
 */
#ifndef JV_KERNELS_H
#define JV_KERNELS_H

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
     * qscale = 1/|q| (0 for a zero query); row norm fused into the same pass. */
    void (*rows)(const float *base, size_t nrows, size_t stride, size_t d,
                 const float *q, float qscale, int metric, float *out);
    /* out[i] = 1/|row i|, or 0 for a zero row. */
    void (*rows_invnorm)(const float *base, size_t nrows, size_t stride, size_t d,
                         float *out);
    /* One block of nq <= qw queries packed as qt[k * qw + j] (zero padded).
     * out[j * ldo + i] = score of row i against query j.  Cosine: dot *
     * rinv[i] * qscale[j] (rinv from rows_invnorm); other metrics ignore both. */
    void (*rows_multi)(const float *base, size_t nrows, size_t stride, size_t d,
                       const float *qt, size_t nq, int metric, const float *rinv,
                       const float *qscale, float *out, size_t ldo);
    /* Sum of n floats, read once: the streaming read-bandwidth probe. */
    float (*sum)(const float *a, size_t n);
} jv_kernel_table;

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
