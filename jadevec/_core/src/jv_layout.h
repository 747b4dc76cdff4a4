/* On-disk structs of the vector file set, byte for byte as in
 * docs/vector_file_format.md. The asserts fail the build if a compiler lays
 * them out differently. Little-endian hosts only (checked below); a
 * big-endian port would byte-swap at these structs. */
#ifndef JV_LAYOUT_H
#define JV_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "jadevec's file format is little-endian; this host is not"
#endif

#define JV_MAGIC_VECTORS 0x4A564442u /* "JVDB" */
#define JV_MAGIC_SLOTS 0x4A56534Cu   /* "JVSL" */
#define JV_MAGIC_INDEX 0x4A564958u   /* "JVIX" */
#define JV_MAGIC_IDS 0x4A564944u     /* "JVID" */
#define JV_MAGIC_READERS 0x4A565244u /* "JVRD" */
#define JV_FORMAT_VERSION 2u
#define JV_HEADER_PAGE 4096u
#define JV_COMMIT_B_OFFSET 2048u
#define JV_FILE_HEADER 64u
#define JV_MAX_DIMENSION 65536u
#define JV_MAX_ID_BYTES 1024u
#define JV_SLOT_RECORD 32u
#define JV_ID_ALIGN 8u
#define JV_READER_SLOT 64u
#define JV_READER_SLOTS 127u
/* Index pages: 4 KiB whatever the OS page size, 128 entries each. */
#define JV_PAGE 4096u
#define JV_PAGE_SHIFT 12
#define JV_PAGE_ENTRIES 128u
#define JV_PAGE_ENTRIES_SHIFT 7
#define JV_MIN_TABLE 128u
#define JV_MAX_TABLE (1ull << 40)
/* Generations and write sequences stay below this, so `+ 1` (or a
 * compaction's `+ 2`) never wraps and every value fits a signed 64-bit
 * integer (SQLite's). At a billion commits a second it is 146 years away:
 * a larger value on disk is damage. */
#define JV_MAX_COUNTER (1ull << 62)
/* Slots are u32 and 0xFFFFFFFF is never one. */
#define JV_MAX_SLOTS 0xFFFFFFFEull

enum { JV_SLOT_FREE = 0, JV_SLOT_LIVE = 1, JV_SLOT_DELETED = 2 };
enum { JV_STATE_CLEAN = 0, JV_STATE_DIRTY = 1, JV_STATE_MOVED = 2 };
enum { JV_ENTRY_EMPTY = 0, JV_ENTRY_LIVE = 1, JV_ENTRY_TOMBSTONE = 2 };

/* The commit record: the original 64-byte file header, then the root of the
 * committed state. */
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
    uint32_t header_crc;
    uint64_t table_size;
    uint64_t tombstones;
    uint64_t ids_end;
    uint64_t next_sequence;
    uint64_t set_id;
    uint32_t map_crc;
    uint8_t reserved[16];
    uint32_t crc;
} jv_commit;

/* The static header of slots.jvsl, index.jvix, ids.jvid and readers.jvrd. */
typedef struct jv_file_header {
    uint32_t magic;
    uint32_t version;
    uint64_t set_id;
    uint32_t dimension;
    uint32_t unit;
    uint32_t count;
    uint8_t reserved[32];
    uint32_t crc;
} jv_file_header;

typedef struct jv_slot {
    uint64_t id_offset;
    uint32_t id_length;
    uint32_t flags;
    uint64_t sequence;
    uint32_t vector_crc;
    uint32_t crc;
} jv_slot;

typedef struct jv_entry {
    uint64_t hash;
    uint32_t slot;
    uint16_t id_length;
    uint16_t flags;
    uint64_t id_offset;
    uint32_t vector_crc;
    uint32_t crc;
} jv_entry;

typedef struct jv_id_record {
    uint32_t length;
    uint32_t crc;
} jv_id_record;

typedef struct jv_reader_slot {
    uint64_t pid;
    uint64_t generation;
    uint8_t reserved[48];
} jv_reader_slot;

_Static_assert(sizeof(jv_commit) == 128, "commit record");
_Static_assert(offsetof(jv_commit, vector_count) == 16, "commit.vector_count");
_Static_assert(offsetof(jv_commit, index_offset) == 24, "commit.index_offset");
_Static_assert(offsetof(jv_commit, generation) == 40, "commit.generation");
_Static_assert(offsetof(jv_commit, capacity) == 48, "commit.capacity");
_Static_assert(offsetof(jv_commit, header_crc) == 60, "commit.header_crc");
_Static_assert(offsetof(jv_commit, table_size) == 64, "commit.table_size");
_Static_assert(offsetof(jv_commit, ids_end) == 80, "commit.ids_end");
_Static_assert(offsetof(jv_commit, set_id) == 96, "commit.set_id");
_Static_assert(offsetof(jv_commit, map_crc) == 104, "commit.map_crc");
_Static_assert(offsetof(jv_commit, crc) == 124, "commit.crc");
_Static_assert(sizeof(jv_file_header) == 64, "file header");
_Static_assert(offsetof(jv_file_header, unit) == 20, "header.unit");
_Static_assert(offsetof(jv_file_header, crc) == 60, "header.crc");
_Static_assert(sizeof(jv_slot) == JV_SLOT_RECORD, "slot record");
_Static_assert(offsetof(jv_slot, sequence) == 16, "slot.sequence");
_Static_assert(offsetof(jv_slot, crc) == 28, "slot.crc");
_Static_assert(sizeof(jv_entry) == 32, "index entry");
_Static_assert(offsetof(jv_entry, slot) == 8 && offsetof(jv_entry, id_length) == 12 &&
                   offsetof(jv_entry, flags) == 14 && offsetof(jv_entry, id_offset) == 16 &&
                   offsetof(jv_entry, crc) == 28,
               "index entry fields");
_Static_assert(sizeof(jv_id_record) == 8, "id record header");
_Static_assert(sizeof(jv_reader_slot) == JV_READER_SLOT, "reader slot");
_Static_assert(offsetof(jv_reader_slot, generation) == 8, "reader slot generation");
_Static_assert(JV_FILE_HEADER + JV_READER_SLOTS * JV_READER_SLOT == 8192, "reader table");
_Static_assert(JV_PAGE_ENTRIES * sizeof(jv_entry) == JV_PAGE, "index page");

#endif
