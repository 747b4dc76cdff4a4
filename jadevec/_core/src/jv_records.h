/* Encoding and checking of the vector file set's records
 * (docs/vector_file_format.md): commit record, the three file headers, slot
 * records, id records. Pure C over caller-owned memory: nothing here locks,
 * allocates or fails except where a return value says so. */
#ifndef JV_RECORDS_H
#define JV_RECORDS_H

#include <stddef.h>
#include <stdint.h>

#include "jv_layout.h"

/* Slots are u32 and 0xFFFFFFFF is never one. */
#define JV_MAX_SLOTS 0xFFFFFFFEull

/* A slot record's CRC covers bytes 0..27; an id's covers its UTF-8 bytes. */
uint32_t jv_slot_crc(const jv_slot *rec);
void jv_slot_seal(jv_slot *rec);
/* A FREE record is all zero and carries no CRC to check. */
int jv_slot_is_blank(const jv_slot *rec);
/* Mark a LIVE record SUPERSEDED and reseal it; other records are left alone. */
void jv_slot_supersede(jv_slot *rec);

/* Zero `c` and fill a sealed commit record. */
void jv_commit_fill(jv_commit *c, uint32_t dimension, uint32_t state, uint64_t vector_count,
                    uint64_t generation, uint32_t capacity, uint32_t high_water,
                    uint32_t row_stride);
/* Zero and fill the sealed 64-byte headers of slots.jvsl, index.jvix, ids.jvid. */
void jv_slots_header_fill(jv_slots_header *h, uint64_t generation, uint64_t next_sequence,
                          uint32_t dimension);
void jv_index_header_fill(jv_index_header *h, uint64_t generation, uint64_t table_size,
                          uint64_t live, uint64_t tombstones);
void jv_ids_header_fill(jv_ids_header *h, uint64_t generation, uint64_t end);
/* Whether bytes 60..63 of a 64-byte header are the CRC32C of bytes 0..59. */
int jv_header_crc_ok(const void *header);

/* Bytes an id record of `n` id bytes takes in ids.jvid (header and padding). */
static inline uint64_t jv_id_record_size(uint32_t n)
{
    return 8 + (((uint64_t)n + 7) & ~(uint64_t)7);
}

/* What the index's key function reads: the mapped slot records and ids. */
typedef struct jv_key_view {
    char *slots;
    char *ids;
    uint64_t ids_size;
    uint32_t high_water;
} jv_key_view;

/* jv_key_fn over a jv_key_view: the id bytes of `slot`, every offset and
 * length from the (untrusted) slot and id records checked against the view's
 * sizes. Returns 0, or -1 when the reference is out of bounds. */
int jv_key_of_slot(void *view, uint32_t slot, const char **key, uint32_t *len);

/* Write an id record for key[0..n) at ids + end; return the new end. The
 * caller made room for jv_id_record_size(n) bytes. */
uint64_t jv_id_append(char *ids, uint64_t end, const char *key, uint32_t n);

#endif
