#include "jv_records.h"

#include <string.h>

#include "jv_crc32c.h"

uint32_t jv_slot_crc(const jv_slot *rec)
{
    return jv_crc32c(0, rec, offsetof(jv_slot, crc));
}

void jv_slot_seal(jv_slot *rec)
{
    rec->crc = jv_slot_crc(rec);
}

int jv_slot_is_blank(const jv_slot *rec)
{
    static const jv_slot zero;
    return memcmp(rec, &zero, sizeof zero) == 0;
}

void jv_commit_seal(jv_commit *c)
{
    c->header_crc = jv_crc32c(0, c, offsetof(jv_commit, header_crc));
    c->crc = jv_crc32c(0, c, offsetof(jv_commit, crc));
}

int jv_commit_check(const jv_commit *c)
{
    static const jv_commit zero;
    if (memcmp(c, &zero, sizeof zero) == 0)
        return 3;
    if (c->magic != JV_MAGIC_VECTORS)
        return 1;
    if (c->version > JV_FORMAT_VERSION)
        return 2;
    if (c->version != JV_FORMAT_VERSION)
        return 1;
    if (c->header_crc != jv_crc32c(0, c, offsetof(jv_commit, header_crc)))
        return 1;
    if (c->crc != jv_crc32c(0, c, offsetof(jv_commit, crc)))
        return 1;
    return 0;
}

void jv_file_header_fill(jv_file_header *h, uint32_t magic, uint64_t set_id,
                         uint32_t dimension, uint32_t unit, uint32_t count)
{
    memset(h, 0, sizeof(*h));
    h->magic = magic;
    h->version = JV_FORMAT_VERSION;
    h->set_id = set_id;
    h->dimension = dimension;
    h->unit = unit;
    h->count = count;
    h->crc = jv_crc32c(0, h, offsetof(jv_file_header, crc));
}

int jv_header_crc_ok(const void *header)
{
    uint32_t stored;
    memcpy(&stored, (const char *)header + 60, sizeof(stored));
    return jv_crc32c(0, header, 60) == stored;
}

int jv_id_at(const char *ids, uint64_t end, uint64_t off, uint32_t n, const char **key)
{
    jv_id_record rec;
    if (n == 0 || n > JV_MAX_ID_BYTES || off < JV_FILE_HEADER || off % JV_ID_ALIGN != 0)
        return -1;
    if (off > end || end - off < 8 + (uint64_t)n)
        return -1;
    memcpy(&rec, ids + off, sizeof rec);
    if (rec.length != n)
        return -1;
    *key = ids + off + 8;
    return 0;
}

uint64_t jv_id_append(char *ids, uint64_t end, const char *key, uint32_t n)
{
    jv_id_record header;
    uint64_t size = jv_id_record_size(n);
    char *at = ids + end;
    header.length = n;
    header.crc = jv_crc32c(0, key, n);
    memcpy(at, &header, sizeof(header));
    memcpy(at + 8, key, n);
    memset(at + 8 + n, 0, size - 8 - n);
    return end + size;
}
