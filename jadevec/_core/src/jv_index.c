#include "jv_index.h"

#include <string.h>

#include "jv_crc32c.h"

uint32_t jv_entry_crc(const jv_entry *e)
{
    return jv_crc32c(0, e, offsetof(jv_entry, crc));
}

void jv_entry_seal(jv_entry *e)
{
    e->crc = jv_entry_crc(e);
}

int jv_table_find(const jv_table *t, uint64_t h, const char *key, uint32_t len, uint64_t *pos)
{
    uint64_t mask = t->size - 1;
    uint64_t i = h & mask;
    uint64_t first_tomb = UINT64_MAX;
    for (uint64_t step = 0; step < t->size; step++, i = (i + 1) & mask) {
        const jv_entry *e = &t->entries[i];
        uint32_t flags = e->flags;
        if (flags == JV_ENTRY_EMPTY) {
            *pos = first_tomb != UINT64_MAX ? first_tomb : i;
            return JV_ABSENT;
        }
        if (flags == JV_ENTRY_TOMBSTONE) {
            if (first_tomb == UINT64_MAX)
                first_tomb = i;
            continue;
        }
        if (e->hash != h)
            continue;
        /* Only an entry whose hash matches is trusted further, so only it
         * pays for the CRC check. */
        if (flags != JV_ENTRY_LIVE || e->crc != jv_entry_crc(e)) {
            *pos = i;
            return JV_ERR_ENTRY;
        }
        const char *k;
        uint32_t klen;
        if (t->key(t->ctx, e->slot, &k, &klen) != 0) {
            *pos = i;
            return JV_ERR_KEY;
        }
        if (klen == len && memcmp(k, key, len) == 0) {
            *pos = i;
            return JV_FOUND;
        }
    }
    if (first_tomb != UINT64_MAX) {
        *pos = first_tomb;
        return JV_ABSENT;
    }
    return JV_ERR_FULL;
}

void jv_table_put(jv_table *t, uint64_t pos, uint64_t h, uint32_t slot, uint32_t size,
                  uint32_t vector_crc, uint32_t sequence)
{
    jv_entry *e = &t->entries[pos];
    if (e->flags == JV_ENTRY_TOMBSTONE)
        t->tombs--;
    if (e->flags != JV_ENTRY_LIVE)
        t->live++;
    jv_entry n = {h, slot, size, JV_ENTRY_LIVE, vector_crc, sequence, 0};
    jv_entry_seal(&n);
    *e = n;
}

void jv_table_remove(jv_table *t, uint64_t pos)
{
    jv_entry *e = &t->entries[pos];
    if (e->flags != JV_ENTRY_LIVE)
        return;
    e->flags = JV_ENTRY_TOMBSTONE;
    jv_entry_seal(e);
    t->live--;
    t->tombs++;
}

int jv_table_insert_new(jv_table *t, const jv_entry *e)
{
    uint64_t mask = t->size - 1;
    uint64_t i = e->hash & mask;
    for (uint64_t step = 0; step < t->size; step++, i = (i + 1) & mask) {
        if (t->entries[i].flags == JV_ENTRY_EMPTY) {
            t->entries[i] = *e;
            t->live++;
            return 0;
        }
    }
    return JV_ERR_FULL;
}

uint64_t jv_table_size_for(uint64_t n)
{
    uint64_t size = 8;
    while (size < 2 * n)
        size <<= 1;
    return size;
}

int jv_table_needs_grow(const jv_table *t, uint64_t more)
{
    return (t->live + t->tombs + more) * 10 > t->size * 7;
}

int jv_table_rehash_into(const jv_table *t, jv_table *dst)
{
    dst->live = 0;
    dst->tombs = 0;
    for (uint64_t i = 0; i < t->size; i++) {
        const jv_entry *e = &t->entries[i];
        if (e->flags == JV_ENTRY_LIVE && jv_table_insert_new(dst, e) != 0)
            return JV_ERR_FULL;
    }
    return 0;
}
