/* On-disk structs of the vector file set, byte for byte as in
 * docs/vector_file_format.md. The asserts fail the build if a compiler lays
 * them out differently. Little-endian hosts only (checked below); a
 * big-endian port would byte-swap at these structs. */
#ifndef JV_LAYOUT_H
#define JV_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "jv_index.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "jadevec's file format is little-endian; this host is not"
#endif

#define JV_MAGIC_VECTORS 0x4A564442u /* "JVDB" */
#define JV_MAGIC_SLOTS 0x4A56534Cu   /* "JVSL" */
#define JV_MAGIC_INDEX 0x4A564958u   /* "JVIX" */
#define JV_MAGIC_IDS 0x4A564944u     /* "JVID" */
#define JV_FORMAT_VERSION 1u
#define JV_HEADER_PAGE 4096u
#define JV_COMMIT_B_OFFSET 2048u
#define JV_FILE_HEADER 64u
#define JV_MAX_DIMENSION 65536u
#define JV_MAX_ID_BYTES 1024u

enum { JV_SLOT_FREE = 0, JV_SLOT_LIVE = 1, JV_SLOT_DELETED = 2, JV_SLOT_SUPERSEDED = 3 };
enum { JV_STATE_CLEAN = 0, JV_STATE_DIRTY = 1 };

typedef struct jv_commit {
    uint32_t magic;
    uint32_t version;
    uint32_t dimension;
    uint32_t state;
    uint64_t vector_count;
    uint64_t index_offset;
    uint64_t data_offset;
    uint64_t generation;
    uint32_t capacity;
    uint32_t high_water;
    uint32_t row_stride;
    uint32_t crc;
} jv_commit;

typedef struct jv_slots_header {
    uint32_t magic;
    uint32_t version;
    uint64_t generation;
    uint64_t next_sequence;
    uint32_t record_size;
    uint32_t dimension;
    uint8_t reserved[28];
    uint32_t crc;
} jv_slots_header;

typedef struct jv_index_header {
    uint32_t magic;
    uint32_t version;
    uint64_t generation;
    uint64_t table_size;
    uint64_t live;
    uint64_t tombstones;
    uint32_t entry_size;
    uint8_t reserved[16];
    uint32_t crc;
} jv_index_header;

typedef struct jv_ids_header {
    uint32_t magic;
    uint32_t version;
    uint64_t generation;
    uint64_t end;
    uint8_t reserved[36];
    uint32_t crc;
} jv_ids_header;

typedef struct jv_slot {
    uint64_t id_offset;
    uint32_t id_length;
    uint32_t flags;
    uint64_t sequence;
    uint32_t vector_crc;
    uint32_t crc;
} jv_slot;

typedef struct jv_id_record {
    uint32_t length;
    uint32_t crc;
} jv_id_record;

_Static_assert(sizeof(jv_commit) == 64, "commit record");
_Static_assert(offsetof(jv_commit, vector_count) == 16, "commit.vector_count");
_Static_assert(offsetof(jv_commit, generation) == 40, "commit.generation");
_Static_assert(offsetof(jv_commit, capacity) == 48, "commit.capacity");
_Static_assert(offsetof(jv_commit, crc) == 60, "commit.crc");
_Static_assert(sizeof(jv_slots_header) == 64, "slots header");
_Static_assert(offsetof(jv_slots_header, next_sequence) == 16, "slots.next_sequence");
_Static_assert(offsetof(jv_slots_header, crc) == 60, "slots.crc");
_Static_assert(sizeof(jv_index_header) == 64, "index header");
_Static_assert(offsetof(jv_index_header, entry_size) == 40, "index.entry_size");
_Static_assert(offsetof(jv_index_header, crc) == 60, "index.crc");
_Static_assert(sizeof(jv_ids_header) == 64, "ids header");
_Static_assert(offsetof(jv_ids_header, crc) == 60, "ids.crc");
_Static_assert(sizeof(jv_slot) == 32, "slot record");
_Static_assert(offsetof(jv_slot, sequence) == 16, "slot.sequence");
_Static_assert(offsetof(jv_slot, crc) == 28, "slot.crc");
_Static_assert(sizeof(jv_id_record) == 8, "id record header");
_Static_assert(offsetof(jv_entry, slot) == 8 && offsetof(jv_entry, flags) == 16 &&
                   offsetof(jv_entry, crc) == 28,
               "index entry");

#endif
