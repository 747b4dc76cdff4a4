/* Encoding and checking of the vector file set's records
 * (docs/vector_file_format.md): commit records, static headers, slot
 * records, id records. Pure C over caller-owned memory: nothing here locks,
 * allocates or fails except where a return value says so. */
#ifndef JV_RECORDS_H
#define JV_RECORDS_H

#include <stddef.h>
#include <stdint.h>

#include "jv_layout.h"

/* CRCs: a slot record's and an index entry's cover bytes 0..27; a commit
 * record has two (bytes 0..59, and 0..123); an id's covers its UTF-8 bytes. */
uint32_t jv_slot_crc(const jv_slot *rec);
void jv_slot_seal(jv_slot *rec);
/* A FREE record is all zero and carries no CRC to check. */
int jv_slot_is_blank(const jv_slot *rec);
void jv_commit_seal(jv_commit *c);
/* Whether magic, version and both CRCs of a commit record check out. A newer
 * version gives 2 (the caller refuses it), an all-zero record 3 (empty),
 * another mismatch 1, a good record 0. */
int jv_commit_check(const jv_commit *c);
/* Zero `h` and fill a sealed static header. */
void jv_file_header_fill(jv_file_header *h, uint32_t magic, uint64_t set_id,
                         uint32_t dimension, uint32_t unit, uint32_t count);
/* Whether bytes 60..63 of a 64-byte header are the CRC32C of bytes 0..59. */
int jv_header_crc_ok(const void *header);

/* Bytes an id record of `n` id bytes takes in ids.jvid (header and padding). */
static inline uint64_t jv_id_record_size(uint32_t n)
{
    return 8 + (((uint64_t)n + 7) & ~(uint64_t)7);
}

/* The id bytes of the record at `off` of length `n` in an ids mapping of
 * which `end` bytes are valid: 0 and *key, or -1 when the reference is out of
 * bounds or disagrees with the record's length field. */
int jv_id_at(const char *ids, uint64_t end, uint64_t off, uint32_t n, const char **key);

/* Write an id record for key[0..n) at ids + end; return the new end. The
 * caller made room for jv_id_record_size(n) bytes. */
uint64_t jv_id_append(char *ids, uint64_t end, const char *key, uint32_t n);

#endif
