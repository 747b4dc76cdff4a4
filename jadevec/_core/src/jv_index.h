/* The id hash table of a file set, in 4 KiB pages reached through a page map.
 *
 * Open addressing with linear probing, tombstones, 32-byte entries
 * (jv_layout.h). Position j is entry j % 128 of page map[j / 128], so a table
 * can be copied on write one page at a time: a writer's table has a page
 * pool (`pages`) and copies a page that a commit owns before its first change;
 * a reader's snapshot has none and never writes.
 *
 * Entries name their id by reference (offset and length in the ids mapping),
 * so a matched hash is always confirmed against the real id bytes. Every
 * loop is bounded by the table size, so a full or damaged table ends in an
 * error code, never a hang. Nothing here locks or does I/O: the file set
 * grows the file and hands the new pages to the pool. */
#ifndef JV_INDEX_H
#define JV_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "jv_layout.h"

/* A FIFO of retired items (slots or pages), each tagged with the newest
 * commit generation that may still name it. Tags never decrease along the
 * queue. */
typedef struct jv_retired {
    uint32_t *item;
    uint64_t *tag;
    uint64_t head, tail, cap;
} jv_retired;

int jv_retired_reserve(jv_retired *r, uint64_t more);   /* 0, or ENOMEM */
/* Push one item (room reserved first, so a push never fails). */
void jv_retired_push(jv_retired *r, uint32_t item, uint64_t tag);
uint64_t jv_retired_count(const jv_retired *r);
/* Pop the items whose tag is below `limit` (in order) into out (room for
 * jv_retired_count items); return how many. */
uint64_t jv_retired_release(jv_retired *r, uint64_t limit, uint32_t *out);
void jv_retired_free(jv_retired *r);

/* The writer's pool of index pages. */
typedef struct jv_pages {
    uint64_t npages;        /* pages in the file (page 0 is the header) */
    uint32_t *epoch;        /* per page: the epoch it was allocated in */
    uint32_t now;           /* current epoch, +1 per commit: a page is owned
                               (allocated since the last commit) iff its epoch is `now` */
    uint32_t *free;         /* stack of free pages */
    uint64_t nfree;
    uint64_t cap;           /* capacity of epoch and free */
    jv_retired retired;
    uint64_t tag;           /* generation a page retired now is tagged with */
} jv_pages;

/* Make room for the file to have `npages` pages; 0 or ENOMEM. */
int jv_pages_resize(jv_pages *p, uint64_t npages);
/* The file grew to p->npages + n pages: the new pages are free. */
void jv_pages_add_free(jv_pages *p, uint64_t n);
/* Pop a free page and mark it owned; -1 if none (callers reserved them). */
int jv_pages_alloc(jv_pages *p, uint32_t *page);
/* A page stops being used: one allocated since the last commit is free at
 * once (no commit names it); any other is retired with the current tag.
 * Room in the retired queue was reserved. */
void jv_pages_drop(jv_pages *p, uint32_t page);
/* A commit was written: every page allocated since the last one belongs to it. */
void jv_pages_committed(jv_pages *p);
void jv_pages_free_all(jv_pages *p);

typedef struct jv_table {
    char *base;           /* the index mapping (page 0 is the header) */
    uint32_t *map;        /* table page -> index page; owned by whoever built the table */
    uint64_t size;        /* entries: a power of two >= JV_MIN_TABLE */
    uint64_t live;
    uint64_t tombs;
    const char *ids;      /* the ids mapping ... */
    uint64_t ids_end;     /* ... of which this many bytes are valid */
    uint64_t slot_limit;  /* an entry's slot must be below this */
    jv_pages *pages;      /* writer: where copies come from; NULL: never written */
    uint64_t owned_pages; /* table pages allocated since the last commit */
} jv_table;

static inline int jv_page_owned(const jv_pages *p, uint32_t page)
{
    return p->epoch[page] == p->now;
}

static inline jv_entry *jv_entry_at(const jv_table *t, uint64_t pos)
{
    return (jv_entry *)(t->base + ((uint64_t)t->map[pos >> JV_PAGE_ENTRIES_SHIFT] << JV_PAGE_SHIFT) +
                        ((pos & (JV_PAGE_ENTRIES - 1)) * sizeof(jv_entry)));
}

static inline uint64_t jv_table_pages(const jv_table *t)
{
    return t->size / JV_PAGE_ENTRIES;
}

/* Results of jv_table_find (>= 0) and errors (< 0). */
enum { JV_FOUND = 1, JV_ABSENT = 0, JV_ERR_ENTRY = -1, JV_ERR_KEY = -2, JV_ERR_FULL = -3 };

/* Look `key` (hash h) up. JV_FOUND: *pos is its LIVE entry. JV_ABSENT: *pos is
 * where an insert goes (the first tombstone passed, else the empty entry).
 * JV_ERR_ENTRY: the entry at *pos has the hash but a bad CRC or flags.
 * JV_ERR_KEY: the entry at *pos has a slot or id reference out of bounds.
 * JV_ERR_FULL: no empty entry in size steps. */
int jv_table_find(const jv_table *t, uint64_t h, const char *key, uint32_t len, uint64_t *pos);
uint32_t jv_entry_crc(const jv_entry *e);
/* Whether an entry read from disk is usable: CRC, flags, slot below the limit
 * and id reference inside the valid ids (0), or not (-1). Empty entries pass. */
int jv_entry_check(const jv_table *t, const jv_entry *e);
/* The entry at pos for writing: its page is copied first if a commit owns it
 * (writer tables only; the pool has a free page reserved). */
jv_entry *jv_entry_w(jv_table *t, uint64_t pos);
/* Fill the entry at pos as LIVE (updating live/tombs counters if it was not). */
void jv_table_put(jv_table *t, uint64_t pos, uint64_t h, uint32_t slot, uint64_t id_offset,
                  uint32_t id_length, uint32_t vector_crc);
void jv_table_remove(jv_table *t, uint64_t pos);
/* Insert by hash only into a table known not to hold the id (rebuilds). */
int jv_table_insert_new(jv_table *t, const jv_entry *e);
/* Smallest power of two table size holding n entries at load <= 1/2, >= 128. */
uint64_t jv_table_size_for(uint64_t n);
/* Whether adding `more` entries would pass the load bound (7/10). */
int jv_table_needs_grow(const jv_table *t, uint64_t more);
/* Table pages that a write of `ops` entries may have to copy. */
uint64_t jv_table_copies_needed(const jv_table *t, uint64_t ops);

#endif
