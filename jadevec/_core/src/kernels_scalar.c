/*
 * Scalar reference kernels: the definition every SIMD table is tested against,
 * and the fallback for CPUs without AVX2.  Auto-vectorisation is turned off so
 * this file stays a reference (and the SIMD speed-ups stay honest): one
 * accumulator, elements in index order.
 */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-tree-vectorize", "no-tree-slp-vectorize")
#define JV_NOVEC
#elif defined(__clang__)
#define JV_NOVEC _Pragma("clang loop vectorize(disable) interleave(disable)")
#else
#define JV_NOVEC
#endif

#include <math.h>

#include "jv_kernels.h"

#define QW_SCALAR 8

static float inv_norm(float n2)
{
    return n2 > 0.0f ? 1.0f / sqrtf(n2) : 0.0f;
}

static float dot_scalar(const float *a, const float *b, size_t n)
{
    float acc = 0.0f;
    JV_NOVEC
    for (size_t i = 0; i < n; i++)
        acc += a[i] * b[i];
    return acc;
}

static float l2sq_scalar(const float *a, const float *b, size_t n)
{
    float acc = 0.0f;
    JV_NOVEC
    for (size_t i = 0; i < n; i++) {
        float t = a[i] - b[i];
        acc += t * t;
    }
    return acc;
}

static float cosine_scalar(const float *a, const float *b, size_t n)
{
    float ab = 0.0f, aa = 0.0f, bb = 0.0f;
    JV_NOVEC
    for (size_t i = 0; i < n; i++) {
        ab += a[i] * b[i];
        aa += a[i] * a[i];
        bb += b[i] * b[i];
    }
    if (!jv_norm2_ok(aa) || !jv_norm2_ok(bb))
        return jv_cosine_exact(a, b, n);
    return ab * inv_norm(aa) * inv_norm(bb);
}

static void rows_scalar(const float *base, size_t nrows, size_t stride, size_t d,
                        const float *q, float qscale, int metric, float *out)
{
    for (size_t i = 0; i < nrows; i++) {
        const float *r = base + i * stride;
        if (metric == JV_L2) {
            out[i] = l2sq_scalar(r, q, d);
        } else if (metric == JV_COSINE) {
            float dot = 0.0f, rr = 0.0f;
            JV_NOVEC
            for (size_t k = 0; k < d; k++) {
                dot += r[k] * q[k];
                rr += r[k] * r[k];
            }
            out[i] = jv_norm2_ok(rr) ? dot * qscale * inv_norm(rr)
                                     : jv_cos_row_exact(r, q, 1, d) * qscale;
        } else {
            out[i] = dot_scalar(r, q, d);
        }
    }
}

static void rows_invnorm_scalar(const float *base, size_t nrows, size_t stride, size_t d,
                                float *out)
{
    for (size_t i = 0; i < nrows; i++) {
        const float *r = base + i * stride;
        float rr = dot_scalar(r, r, d);
        out[i] = jv_norm2_ok(rr) ? inv_norm(rr) : jv_invnorm_exact(r, d);
    }
}

static void rows_multi_scalar(const float *base, size_t nrows, size_t stride, size_t d,
                              const float *qt, size_t nq, int metric, const float *rinv,
                              const float *qscale, float *out, size_t ldo)
{
    for (size_t i = 0; i < nrows; i++) {
        const float *r = base + i * stride;
        for (size_t j = 0; j < nq; j++) {
            float acc = 0.0f;
            if (metric == JV_L2) {
                JV_NOVEC
                for (size_t k = 0; k < d; k++) {
                    float t = r[k] - qt[k * QW_SCALAR + j];
                    acc += t * t;
                }
            } else {
                JV_NOVEC
                for (size_t k = 0; k < d; k++)
                    acc += r[k] * qt[k * QW_SCALAR + j];
                if (metric == JV_COSINE)
                    acc = rinv[i] != JV_RINV_EXACT
                              ? acc * rinv[i] * qscale[j]
                              : jv_cos_row_exact(r, qt + j, QW_SCALAR, d) * qscale[j];
            }
            out[j * ldo + i] = acc;
        }
    }
}

static float sum_scalar(const float *a, size_t n)
{
    float acc = 0.0f;
    JV_NOVEC
    for (size_t i = 0; i < n; i++)
        acc += a[i];
    return acc;
}

static const jv_kernel_table table_scalar = {
    "scalar",           QW_SCALAR,         dot_scalar,
    l2sq_scalar,        cosine_scalar,     rows_scalar,
    rows_invnorm_scalar, rows_multi_scalar, sum_scalar,
};

const jv_kernel_table *jv_table_scalar(void)
{
    return &table_scalar;
}
