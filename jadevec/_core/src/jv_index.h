/* The id hash table: open addressing, linear probing, tombstones.
 *
 * The table is an array of 32-byte jv_entry (the on-disk index entry of
 * docs/vector_file_format.md) living in a mapped file or in malloc'd memory.
 * Entries name a slot; the id bytes of a slot come from a caller's key
 * function, so a matched hash is always confirmed against the real id.
 * Every loop is bounded by the table size, so a full or damaged table ends
 * in an error code, never a hang. Nothing here locks: callers hold theirs. */
#ifndef JV_INDEX_H
#define JV_INDEX_H

#include <stddef.h>
#include <stdint.h>

enum { JV_ENTRY_EMPTY = 0, JV_ENTRY_LIVE = 1, JV_ENTRY_TOMBSTONE = 2 };

typedef struct jv_entry {
    uint64_t hash;
    uint32_t slot;
    uint32_t size;
    uint32_t flags;
    uint32_t vector_crc;
    uint32_t sequence;
    uint32_t crc;
} jv_entry;

_Static_assert(sizeof(jv_entry) == 32, "index entry is 32 bytes on disk");

/* Return 0 and the id bytes of `slot`, or -1 when the slot's record or id is
 * damaged or out of bounds. */
typedef int (*jv_key_fn)(void *ctx, uint32_t slot, const char **key, uint32_t *len);

typedef struct jv_table {
    jv_entry *entries;
    uint64_t size;    /* power of two */
    uint64_t live;
    uint64_t tombs;
    jv_key_fn key;
    void *ctx;
} jv_table;

/* Results of jv_table_find (>= 0) and errors (< 0). */
enum { JV_FOUND = 1, JV_ABSENT = 0, JV_ERR_ENTRY = -1, JV_ERR_KEY = -2, JV_ERR_FULL = -3 };

/* Look `key` (hash h) up. JV_FOUND: *pos is its LIVE entry. JV_ABSENT: *pos is
 * where an insert goes (the first tombstone passed, else the empty entry).
 * JV_ERR_ENTRY: the entry at *pos has the hash but a bad CRC or flags.
 * JV_ERR_KEY: the key function failed for the entry at *pos.
 * JV_ERR_FULL: no empty entry in size steps. */
int jv_table_find(const jv_table *t, uint64_t h, const char *key, uint32_t len, uint64_t *pos);
uint32_t jv_entry_crc(const jv_entry *e);
void jv_entry_seal(jv_entry *e);
/* Fill the entry at pos as LIVE (updating live/tombs counters if it was not). */
void jv_table_put(jv_table *t, uint64_t pos, uint64_t h, uint32_t slot, uint32_t size,
                  uint32_t vector_crc, uint32_t sequence);
void jv_table_remove(jv_table *t, uint64_t pos);
/* Insert by hash only into a table known not to hold the id (rehash). */
int jv_table_insert_new(jv_table *t, const jv_entry *e);
/* Smallest power of two table size holding n entries at load <= 1/2, >= 8. */
uint64_t jv_table_size_for(uint64_t n);
/* Whether adding `more` entries would pass the load bound (7/10). */
int jv_table_needs_grow(const jv_table *t, uint64_t more);
/* Rebuild `t` into `dst` (entries zeroed by the caller, new size): copies the
 * LIVE entries, drops tombstones. */
int jv_table_rehash_into(const jv_table *t, jv_table *dst);

#endif
