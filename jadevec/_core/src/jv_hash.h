/* jv_hash: the 64-bit id hash stored in index.jvix (part of the format).
 *
 * A multiply-fold hash of the wyhash family, our own code: 16 input bytes per
 * round, each round keeps both halves of a 64x64->128-bit product, so every
 * input bit reaches every output bit within two rounds. Input words are read
 * little-endian on every platform so files move between machines. */
#ifndef JV_HASH_H
#define JV_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define JV_K0 0xa0761d6478bd642fULL
#define JV_K1 0xe7037ed1a0b428dbULL
#define JV_K2 0x8ebc6af09c88c6e3ULL
#define JV_K3 0x589965cc75374cc3ULL

static inline uint64_t jv_fold(uint64_t a, uint64_t b)
{
    __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static inline uint64_t jv_le64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

/* Up to 8 bytes, little-endian, zero-extended. */
static inline uint64_t jv_tail64(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static inline uint64_t jv_hash(const void *data, size_t len)
{
    const uint8_t *p = (const uint8_t *)data;
    uint64_t seed = jv_fold((uint64_t)len ^ JV_K0, JV_K1);
    size_t n = len;
    while (n > 16) {
        seed = jv_fold(jv_le64(p) ^ JV_K1, jv_le64(p + 8) ^ seed);
        p += 16;
        n -= 16;
    }
    uint64_t a, b;
    if (n > 8) {
        a = jv_le64(p);
        b = jv_tail64(p + 8, n - 8);
    } else {
        a = jv_tail64(p, n);
        b = 0;
    }
    return jv_fold(jv_fold(a ^ JV_K2, b ^ seed) ^ (uint64_t)len, seed ^ JV_K3);
}

#endif
