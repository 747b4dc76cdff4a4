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
    return rec->flags == JV_SLOT_FREE && rec->sequence == 0 && rec->crc == 0;
}

void jv_slot_supersede(jv_slot *rec)
{
    if (rec->flags == JV_SLOT_LIVE) {
        rec->flags = JV_SLOT_SUPERSEDED;
        jv_slot_seal(rec);
    }
}

void jv_commit_fill(jv_commit *c, uint32_t dimension, uint32_t state, uint64_t vector_count,
                    uint64_t generation, uint32_t capacity, uint32_t high_water,
                    uint32_t row_stride)
{
    memset(c, 0, sizeof(*c));
    c->magic = JV_MAGIC_VECTORS;
    c->version = JV_FORMAT_VERSION;
    c->dimension = dimension;
    c->state = state;
    c->vector_count = vector_count;
    c->index_offset = JV_FILE_HEADER;
    c->data_offset = JV_HEADER_PAGE;
    c->generation = generation;
    c->capacity = capacity;
    c->high_water = high_water;
    c->row_stride = row_stride;
    c->crc = jv_crc32c(0, c, offsetof(jv_commit, crc));
}

void jv_slots_header_fill(jv_slots_header *h, uint64_t generation, uint64_t next_sequence,
                          uint32_t dimension)
{
    memset(h, 0, sizeof(*h));
    h->magic = JV_MAGIC_SLOTS;
    h->version = JV_FORMAT_VERSION;
    h->generation = generation;
    h->next_sequence = next_sequence;
    h->record_size = sizeof(jv_slot);
    h->dimension = dimension;
    h->crc = jv_crc32c(0, h, offsetof(jv_slots_header, crc));
}

void jv_index_header_fill(jv_index_header *h, uint64_t generation, uint64_t table_size,
                          uint64_t live, uint64_t tombstones)
{
    memset(h, 0, sizeof(*h));
    h->magic = JV_MAGIC_INDEX;
    h->version = JV_FORMAT_VERSION;
    h->generation = generation;
    h->table_size = table_size;
    h->live = live;
    h->tombstones = tombstones;
    h->entry_size = sizeof(jv_entry);
    h->crc = jv_crc32c(0, h, offsetof(jv_index_header, crc));
}

void jv_ids_header_fill(jv_ids_header *h, uint64_t generation, uint64_t end)
{
    memset(h, 0, sizeof(*h));
    h->magic = JV_MAGIC_IDS;
    h->version = JV_FORMAT_VERSION;
    h->generation = generation;
    h->end = end;
    h->crc = jv_crc32c(0, h, offsetof(jv_ids_header, crc));
}

int jv_header_crc_ok(const void *header)
{
    uint32_t stored;
    memcpy(&stored, (const char *)header + 60, sizeof(stored));
    return jv_crc32c(0, header, 60) == stored;
}

int jv_key_of_slot(void *view, uint32_t slot, const char **key, uint32_t *len)
{
    const jv_key_view *kv = view;
    const jv_slot *rec;
    const jv_id_record *idr;
    uint64_t off;
    uint32_t n;
    if (slot >= kv->high_water)
        return -1;
    rec = (const jv_slot *)(kv->slots + JV_FILE_HEADER + (uint64_t)slot * sizeof(jv_slot));
    off = rec->id_offset;
    n = rec->id_length;
    if (n == 0 || n > JV_MAX_ID_BYTES || off < JV_FILE_HEADER || off % 8 != 0)
        return -1;
    if (off > kv->ids_size || kv->ids_size - off < 8 + (uint64_t)n)
        return -1;
    idr = (const jv_id_record *)(kv->ids + off);
    if (idr->length != n)
        return -1;
    *key = kv->ids + off + 8;
    *len = n;
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
