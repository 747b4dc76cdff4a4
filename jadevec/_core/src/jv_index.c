#include "jv_index.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "jv_crc32c.h"
#include "jv_records.h"

/* -- retired FIFO ----------------------------------------------------------- */

uint64_t jv_retired_count(const jv_retired *r)
{
    return r->tail - r->head;
}

int jv_retired_reserve(jv_retired *r, uint64_t more)
{
    uint64_t n = r->tail - r->head;
    if (r->tail + more <= r->cap)
        return 0;
    if (r->head > 0 && n + more <= r->cap) {
        /* Slide the live part to the front instead of growing. */
        memmove(r->item, r->item + r->head, n * sizeof *r->item);
        memmove(r->tag, r->tag + r->head, n * sizeof *r->tag);
        r->head = 0;
        r->tail = n;
        return 0;
    }
    uint64_t cap = r->cap ? r->cap : 64;
    while (cap < n + more)
        cap *= 2;
    uint32_t *item = malloc(cap * sizeof *item);
    uint64_t *tag = malloc(cap * sizeof *tag);
    if (!item || !tag) {
        free(item);
        free(tag);
        return ENOMEM;
    }
    if (n) {
        memcpy(item, r->item + r->head, n * sizeof *item);
        memcpy(tag, r->tag + r->head, n * sizeof *tag);
    }
    free(r->item);
    free(r->tag);
    r->item = item;
    r->tag = tag;
    r->cap = cap;
    r->head = 0;
    r->tail = n;
    return 0;
}

void jv_retired_push(jv_retired *r, uint32_t item, uint64_t tag)
{
    r->item[r->tail] = item;
    r->tag[r->tail] = tag;
    r->tail++;
}

uint64_t jv_retired_release(jv_retired *r, uint64_t limit, uint32_t *out)
{
    uint64_t n = 0;
    while (r->head < r->tail && r->tag[r->head] < limit)
        out[n++] = r->item[r->head++];
    if (r->head == r->tail)
        r->head = r->tail = 0;
    return n;
}

void jv_retired_free(jv_retired *r)
{
    free(r->item);
    free(r->tag);
    memset(r, 0, sizeof *r);
}

/* -- page pool -------------------------------------------------------------- */

int jv_pages_resize(jv_pages *p, uint64_t npages)
{
    if (npages <= p->cap)
        return 0;
    uint64_t cap = p->cap ? p->cap : 64;
    while (cap < npages)
        cap *= 2;
    uint32_t *epoch = realloc(p->epoch, cap * sizeof *epoch);
    if (!epoch)
        return ENOMEM;
    p->epoch = epoch;
    memset(epoch + p->cap, 0, (cap - p->cap) * sizeof *epoch);
    if (p->now == 0)
        p->now = 1;
    uint32_t *fr = realloc(p->free, cap * sizeof *fr);
    if (!fr)
        return ENOMEM;
    p->free = fr;
    p->cap = cap;
    return 0;
}

void jv_pages_add_free(jv_pages *p, uint64_t n)
{
    /* Highest first on the stack, so the lowest new page is taken first. */
    for (uint64_t i = n; i > 0; i--)
        p->free[p->nfree++] = (uint32_t)(p->npages + i - 1);
    p->npages += n;
}

int jv_pages_alloc(jv_pages *p, uint32_t *page)
{
    if (p->nfree == 0)
        return -1;
    uint32_t pg = p->free[--p->nfree];
    p->epoch[pg] = p->now;
    *page = pg;
    return 0;
}

void jv_pages_drop(jv_pages *p, uint32_t page)
{
    if (jv_page_owned(p, page)) {
        /* Never part of a commit: nobody can be reading it. */
        p->epoch[page] = 0;
        p->free[p->nfree++] = page;
        return;
    }
    jv_retired_push(&p->retired, page, p->tag);
}

void jv_pages_committed(jv_pages *p)
{
    if (++p->now == UINT32_MAX) {
        /* Wrapped (after four billion commits): start the epochs again. */
        memset(p->epoch, 0, p->cap * sizeof *p->epoch);
        p->now = 1;
    }
}

void jv_pages_free_all(jv_pages *p)
{
    free(p->epoch);
    free(p->free);
    jv_retired_free(&p->retired);
    memset(p, 0, sizeof *p);
}

/* -- entries ---------------------------------------------------------------- */

uint32_t jv_entry_crc(const jv_entry *e)
{
    return jv_crc32c(0, e, offsetof(jv_entry, crc));
}

static void entry_seal(jv_entry *e)
{
    e->crc = jv_entry_crc(e);
}

int jv_entry_check(const jv_table *t, const jv_entry *e)
{
    const char *key;
    if (e->flags == JV_ENTRY_EMPTY)
        return 0;
    if (e->flags != JV_ENTRY_LIVE && e->flags != JV_ENTRY_TOMBSTONE)
        return -1;
    if (e->crc != jv_entry_crc(e))
        return -1;
    if (e->flags == JV_ENTRY_LIVE &&
        (e->slot >= t->slot_limit ||
         jv_id_at(t->ids, t->ids_end, e->id_offset, e->id_length, &key) != 0))
        return -1;
    return 0;
}

jv_entry *jv_entry_w(jv_table *t, uint64_t pos)
{
    jv_pages *p = t->pages;
    uint64_t tp = pos >> JV_PAGE_ENTRIES_SHIFT;
    uint32_t old = t->map[tp];
    if (!jv_page_owned(p, old)) {
        uint32_t fresh;
        /* reserve() made sure a free page exists; a table without one is a
         * bug, and writing into a committed page would be worse. */
        if (jv_pages_alloc(p, &fresh) != 0)
            abort();
        memcpy(t->base + ((uint64_t)fresh << JV_PAGE_SHIFT),
               t->base + ((uint64_t)old << JV_PAGE_SHIFT), JV_PAGE);
        jv_pages_drop(p, old);
        t->map[tp] = fresh;
        t->owned_pages++;
    }
    return jv_entry_at(t, pos);
}

int jv_table_find(const jv_table *t, uint64_t h, const char *key, uint32_t len, uint64_t *pos)
{
    uint64_t mask = t->size - 1;
    uint64_t i = h & mask;
    uint64_t first_tomb = UINT64_MAX;
    for (uint64_t step = 0; step < t->size; step++, i = (i + 1) & mask) {
        const jv_entry *e = jv_entry_at(t, i);
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
         * pays for the checks. */
        if (flags != JV_ENTRY_LIVE || e->crc != jv_entry_crc(e)) {
            *pos = i;
            return JV_ERR_ENTRY;
        }
        const char *k;
        if (e->slot >= t->slot_limit ||
            jv_id_at(t->ids, t->ids_end, e->id_offset, e->id_length, &k) != 0) {
            *pos = i;
            return JV_ERR_KEY;
        }
        if (e->id_length == len && memcmp(k, key, len) == 0) {
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

void jv_table_put(jv_table *t, uint64_t pos, uint64_t h, uint32_t slot, uint64_t id_offset,
                  uint32_t id_length, uint32_t vector_crc)
{
    jv_entry *e = jv_entry_w(t, pos);
    if (e->flags == JV_ENTRY_TOMBSTONE)
        t->tombs--;
    if (e->flags != JV_ENTRY_LIVE)
        t->live++;
    jv_entry n;
    memset(&n, 0, sizeof n);
    n.hash = h;
    n.slot = slot;
    n.id_length = (uint16_t)id_length;
    n.flags = JV_ENTRY_LIVE;
    n.id_offset = id_offset;
    n.vector_crc = vector_crc;
    entry_seal(&n);
    *e = n;
}

void jv_table_remove(jv_table *t, uint64_t pos)
{
    if (jv_entry_at(t, pos)->flags != JV_ENTRY_LIVE)
        return;
    jv_entry *e = jv_entry_w(t, pos);
    e->flags = JV_ENTRY_TOMBSTONE;
    entry_seal(e);
    t->live--;
    t->tombs++;
}

int jv_table_insert_new(jv_table *t, const jv_entry *e)
{
    uint64_t mask = t->size - 1;
    uint64_t i = e->hash & mask;
    for (uint64_t step = 0; step < t->size; step++, i = (i + 1) & mask) {
        if (jv_entry_at(t, i)->flags == JV_ENTRY_EMPTY) {
            *jv_entry_w(t, i) = *e;
            t->live++;
            return 0;
        }
    }
    return JV_ERR_FULL;
}

uint64_t jv_table_size_for(uint64_t n)
{
    uint64_t size = JV_MIN_TABLE;
    while (size < 2 * n)
        size <<= 1;
    return size;
}

int jv_table_needs_grow(const jv_table *t, uint64_t more)
{
    return (t->live + t->tombs + more) * 10 > t->size * 7;
}

uint64_t jv_table_copies_needed(const jv_table *t, uint64_t ops)
{
    uint64_t unowned = jv_table_pages(t) - t->owned_pages;
    return ops < unowned ? ops : unowned;
}
