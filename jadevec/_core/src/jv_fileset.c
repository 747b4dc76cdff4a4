#define _GNU_SOURCE
#include "jv_fileset.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jv_crc32c.h"
#include "jv_hash.h"
#include "jv_records.h"

static const char *const NAMES[] = {"vectors.jvdb", "slots.jvsl", "index.jvix", "ids.jvid",
                                    "readers.jvrd"};

/* Address space reserved for a mapping: 64 GiB (vectors) or 4 GiB (the
 * others), or four times the file; PROT_NONE, so it costs no memory. */
#define RESERVE_VECTORS (64ull << 30)
#define RESERVE_OTHER (4ull << 30)
#define MIN_CAPACITY 64u

int jv_fail(jv_status *st, int code, int file, const char *what, uint64_t where)
{
    st->code = code;
    st->err = 0;
    st->file = file;
    st->what = what;
    st->where = where;
    return -1;
}

int jv_fail_os(jv_status *st, int err, int file, const char *what)
{
    if (err == JV_ENOTREG)
        return jv_fail(st, JV_ST_CORRUPT, file,
                       "not a regular file: a directory, FIFO or device is in its place",
                       JV_NO_POSITION);
    jv_fail(st, JV_ST_OS, file, what, 0);
    st->err = err;
    return -1;
}

int jv_table_status(int rc, uint64_t pos, jv_status *st)
{
    if (rc == JV_ERR_ENTRY)
        return jv_fail(st, JV_ST_CORRUPT, JV_FILE_INDEX, "index entry checksum or flags (entry)",
                       pos);
    if (rc == JV_ERR_KEY)
        return jv_fail(st, JV_ST_CORRUPT, JV_FILE_INDEX,
                       "slot or id reference of an index entry out of bounds (entry)", pos);
    return jv_fail(st, JV_ST_CORRUPT, JV_FILE_INDEX, "hash table has no empty entry", 0);
}

static uint64_t reserve_for(int which, uint64_t size)
{
    uint64_t base = which == JV_FILE_VEC ? RESERVE_VECTORS : RESERVE_OTHER;
    return 4 * size > base ? 4 * size : base;
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static uint64_t area_pages_for(uint64_t table_pages)
{
    return (table_pages * sizeof(uint32_t) + JV_PAGE - 1) / JV_PAGE;
}

static uint64_t index_pages(const jv_fileset *fs)
{
    return fs->f[JV_FILE_INDEX].size / JV_PAGE;
}

/* Point the table at the current mappings (they may move when they grow). */
static void refresh(jv_fileset *fs)
{
    fs->table.base = fs->f[JV_FILE_INDEX].map->base;
    fs->table.ids = fs->f[JV_FILE_IDS].map->base;
    fs->table.ids_end = fs->ids_end;
    fs->table.slot_limit = fs->high_water;
}

jv_fileset *jv_fs_new(void)
{
    jv_fileset *fs = calloc(1, sizeof *fs);
    if (!fs)
        return NULL;
    for (int i = 0; i < JV_NFILES; i++)
        jv_mfile_init(&fs->f[i]);
    fs->readers.fd = -1;
    fs->readers.mine = -1;
    fs->dir_fd = -1;
    fs->closed = 1;
    fs->check_reads = 1;
    fs->hash_mask = UINT64_MAX;
    if (jv_rwlock_init(&fs->lock) != 0) {
        free(fs);
        return NULL;
    }
    fs->lock_ready = 1;
    if (pthread_mutex_init(&fs->snap_lock, NULL) != 0) {
        jv_rwlock_destroy(&fs->lock);
        free(fs);
        return NULL;
    }
    fs->snap_lock_ready = 1;
    return fs;
}

static void snap_free(jv_snapshot *s)
{
    for (int i = 0; i < JV_NFILES; i++)
        if (s->maps[i])
            jv_map_release(s->maps[i]);
    free(s->table.map);
    free(s->skip);
    pthread_mutex_destroy(&s->skip_lock);
    free(s);
}

static void snap_unref(jv_snapshot *s)
{
    if (--s->refs == 0)
        snap_free(s);
}

static void free_working_state(jv_fileset *fs)
{
    free(fs->table.map);
    memset(&fs->table, 0, sizeof fs->table);
    jv_pages_free_all(&fs->pages);
    free(fs->free_slots);
    fs->free_slots = NULL;
    fs->nfree_slots = fs->free_slots_cap = 0;
    jv_retired_free(&fs->retired_slots);
    free(fs->skip);
    fs->skip = NULL;
    fs->skip_size = 0;
}

void jv_fs_free(jv_fileset *fs, int inherited)
{
    jv_status st;
    if (!fs)
        return;
    if (!fs->closed)
        jv_fs_close(fs, inherited, &st);
    free_working_state(fs);
    if (fs->snap_lock_ready)
        pthread_mutex_destroy(&fs->snap_lock);
    if (fs->lock_ready)
        jv_rwlock_destroy(&fs->lock);
    free(fs);
}

/* -- creating, opening, closing ----------------------------------------------- */

static int write_header(jv_fileset *fs, int which, uint32_t magic, uint32_t dimension,
                        uint32_t unit)
{
    jv_file_header h;
    jv_file_header_fill(&h, magic, fs->set_id, dimension, unit, 0);
    memcpy(fs->f[which].map->base, &h, sizeof h);
    return 0;
}

int jv_fs_create(jv_fileset *fs, const char *dir, uint32_t dimension, uint32_t capacity,
                 uint64_t set_id, uint64_t first_generation, jv_status *st)
{
    int rc, i;
    if (capacity < MIN_CAPACITY)
        capacity = MIN_CAPACITY;
    fs->dimension = dimension;
    fs->row_stride = (uint32_t)jv_row_stride_for(dimension);
    fs->capacity = capacity;
    fs->set_id = set_id;
    uint64_t table_size = jv_table_size_for(capacity);
    uint64_t tp = table_size / JV_PAGE_ENTRIES;
    uint64_t ap = area_pages_for(tp);
    uint64_t npages = 1 + tp + 2 * ap;
    uint64_t sizes[JV_NFILES] = {
        JV_HEADER_PAGE + (uint64_t)capacity * fs->row_stride,
        JV_FILE_HEADER + (uint64_t)capacity * JV_SLOT_RECORD,
        npages * JV_PAGE,
        JV_FILE_HEADER + (uint64_t)capacity * 32,
    };
    for (i = 0; i < JV_NFILES; i++) {
        char *path = join(dir, NAMES[i]);
        if (!path)
            return jv_fail_os(st, ENOMEM, i, "create");
        rc = jv_mfile_open(&fs->f[i], JV_CWD, path, 1, 1, sizes[i], reserve_for(i, sizes[i]));
        free(path);
        if (rc) {
            int which = i;
            while (--i >= 0)
                jv_mfile_close(&fs->f[i]);
            return jv_fail_os(st, rc, which, "create");
        }
    }
    write_header(fs, JV_FILE_SLOTS, JV_MAGIC_SLOTS, dimension, JV_SLOT_RECORD);
    write_header(fs, JV_FILE_INDEX, JV_MAGIC_INDEX, 0, JV_PAGE);
    write_header(fs, JV_FILE_IDS, JV_MAGIC_IDS, 0, JV_ID_ALIGN);
    char *rpath = join(dir, NAMES[JV_FILE_READERS]);
    rc = rpath ? jv_readers_open(&fs->readers, JV_CWD, rpath, set_id, 0, 1) : ENOMEM;
    free(rpath);
    if (rc) {
        for (i = 0; i < JV_NFILES; i++)
            jv_mfile_close(&fs->f[i]);
        return jv_fail_os(st, rc, JV_FILE_READERS, "create");
    }
    uint32_t *map = malloc(tp * sizeof *map);
    if (!map || jv_pages_resize(&fs->pages, npages) != 0) {
        free(map);
        for (i = 0; i < JV_NFILES; i++)
            jv_mfile_close(&fs->f[i]);
        jv_readers_close(&fs->readers, 0);
        return jv_fail_os(st, ENOMEM, JV_FILE_INDEX, "create");
    }
    for (uint64_t p = 0; p < tp; p++)
        map[p] = (uint32_t)(1 + p);
    fs->pages.npages = npages;
    fs->table.map = map;
    fs->table.size = table_size;
    fs->table.pages = &fs->pages;
    fs->area[0] = (uint32_t)(1 + tp);
    fs->area[1] = (uint32_t)(1 + tp + ap);
    fs->area_pages = ap;
    fs->area_current = 1;  /* so the first commit writes its map into area 0 */
    fs->next_seq = 1;
    fs->ids_end = JV_FILE_HEADER;
    fs->generation = first_generation - 1;
    fs->newest_record = 1;  /* so the first commit goes into record A */
    fs->high_water = 0;
    fs->free_ready = 1;
    fs->closed = 0;
    fs->dirty = 1;
    refresh(fs);
    if (jv_fs_checkpoint(fs, JV_STATE_CLEAN, st) != 0) {
        jv_status ignored;
        fs->failed = 1;  /* no clean checkpoint at close */
        jv_fs_close(fs, 0, &ignored);
        return -1;
    }
    fs->dirty = 0;
    return 0;
}

/* A file of the set at `dir` is missing: the set was removed or replaced
 * while we opened it (the folder no longer has our folder's inode), or the
 * file is really missing (damage). */
static int missing_file(jv_fileset *fs, const char *dir, int which, jv_status *st)
{
    int moved = jv_dir_moved(fs->dir_fd, dir);
    if (moved == 1)
        return jv_fail(st, JV_ST_MOVED, which, NULL, 0);
    if (moved)
        return jv_fail_os(st, moved, which, "open");
    return jv_fail(st, JV_ST_CORRUPT, which, "file is missing from the file set",
                   JV_NO_POSITION);
}

int jv_fs_map_files(jv_fileset *fs, const char *dir, int read_only, jv_status *st)
{
    int rc, i;
    /* Every file is opened through one descriptor of the folder, so all of
     * them come from one file set even if compaction swaps the folder while
     * we open: the set we hold is then marked moved, and the caller reopens. */
    rc = jv_open_dir(dir, &fs->dir_fd);
    if (rc)
        return jv_fail_os(st, rc, -1, "open the folder");
    for (i = 0; i < JV_NFILES; i++) {
        uint64_t size = 0;
        rc = jv_mfile_open(&fs->f[i], fs->dir_fd, NAMES[i], 0, !read_only, 0, 0);
        if (rc == 0) {
            size = fs->f[i].size;
            /* Reserve by the file's size (jv_mfile_open used the default). */
            if (reserve_for(i, size) > fs->f[i].map->reserved) {
                jv_mfile_close(&fs->f[i]);
                rc = jv_mfile_open(&fs->f[i], fs->dir_fd, NAMES[i], 0, !read_only, 0,
                                   reserve_for(i, size));
            }
        }
        if (rc) {
            int which = i;
            while (--i >= 0)
                jv_mfile_close(&fs->f[i]);
            if (rc == ENOENT)
                missing_file(fs, dir, which, st);
            else
                jv_fail_os(st, rc, which, "open");
            jv_close(fs->dir_fd);
            fs->dir_fd = -1;
            return -1;
        }
    }
    fs->read_only = read_only;
    fs->closed = 0;
    return 0;
}

int jv_fs_open_readers(jv_fileset *fs, const char *dir, jv_status *st)
{
    /* A reader does not create the table in a folder that is being removed
     * (it would leave the folder not empty): missing means moved, or a set
     * that lost it (then it is created, as a writer would). */
    int rc = jv_readers_open(&fs->readers, fs->dir_fd, NAMES[JV_FILE_READERS], fs->set_id,
                             fs->read_only, !fs->read_only);
    if (rc == ENOENT) {
        int moved = jv_dir_moved(fs->dir_fd, dir);
        if (moved == 1)
            return jv_fail(st, JV_ST_MOVED, JV_FILE_READERS, NULL, 0);
        rc = moved ? moved
                   : jv_readers_open(&fs->readers, fs->dir_fd, NAMES[JV_FILE_READERS],
                                     fs->set_id, fs->read_only, 1);
    }
    jv_close(fs->dir_fd);  /* every file is open now */
    fs->dir_fd = -1;
    if (rc == EBUSY)
        return jv_fail(st, JV_ST_BUSY, JV_FILE_READERS, "every reader slot is held", 0);
    if (rc)
        return jv_fail_os(st, rc, JV_FILE_READERS, "open");
    return 0;
}

int jv_fs_close(jv_fileset *fs, int inherited, jv_status *st)
{
    int rc = 0;
    if (fs->closed)
        return 0;
    if (!inherited && !fs->read_only && fs->dirty && !fs->failed)
        rc = jv_fs_checkpoint(fs, JV_STATE_CLEAN, st);
    fs->closed = 1;
    if (fs->dir_fd >= 0) {  /* an open that failed half way */
        jv_close(fs->dir_fd);
        fs->dir_fd = -1;
    }
    for (int i = 0; i < JV_NFILES; i++)
        jv_mfile_close(&fs->f[i]);
    jv_readers_close(&fs->readers, inherited);
    if (fs->snap) {
        pthread_mutex_lock(&fs->snap_lock);
        snap_unref(fs->snap);
        fs->snap = NULL;
        pthread_mutex_unlock(&fs->snap_lock);
    }
    free_working_state(fs);
    return rc;
}

int jv_fs_read_newest(const jv_fileset *fs, jv_commit *c, int *record)
{
    jv_commit r[2];
    const char *page = fs->f[JV_FILE_VEC].map->base;
    memcpy(&r[0], page, sizeof(jv_commit));
    memcpy(&r[1], page + JV_COMMIT_B_OFFSET, sizeof(jv_commit));
    int ok0 = jv_commit_check(&r[0]) == 0, ok1 = jv_commit_check(&r[1]) == 0;
    if (!ok0 && !ok1)
        return -1;
    int pick = !ok0 || (ok1 && r[1].generation > r[0].generation);
    *c = r[pick];
    *record = pick;
    return 0;
}

int jv_fs_load_map(jv_fileset *fs, const jv_mfile *index, const jv_commit *c, uint32_t **out,
                   jv_status *st)
{
    (void)fs;
    uint64_t tp = c->table_size / JV_PAGE_ENTRIES;
    uint64_t bytes = tp * sizeof(uint32_t);
    uint64_t off = c->index_offset;
    uint64_t npages = index->size / JV_PAGE;
    /* Whole pages only: the map's pages are marked in seen[npages] below. */
    if (off % JV_PAGE || off < JV_PAGE || off > npages * JV_PAGE || npages * JV_PAGE - off < bytes)
        return jv_fail(st, JV_ST_CORRUPT, JV_FILE_INDEX,
                       "page map outside the file (commit field index_offset)", off);
    uint32_t *map = malloc(bytes ? bytes : 1);
    uint8_t *seen = calloc(npages ? npages : 1, 1);
    if (!map || !seen) {
        free(map);
        free(seen);
        return jv_fail_os(st, ENOMEM, JV_FILE_INDEX, "read the page map");
    }
    memcpy(map, index->map->base + off, bytes);
    if (jv_crc32c(0, map, bytes) != c->map_crc) {
        free(map);
        free(seen);
        return 1;
    }
    for (uint64_t p = off / JV_PAGE; p < (off + bytes + JV_PAGE - 1) / JV_PAGE; p++)
        seen[p] = 1;
    for (uint64_t i = 0; i < tp; i++) {
        if (map[i] == 0 || map[i] >= npages || seen[map[i]]) {
            free(map);
            free(seen);
            return jv_fail(st, JV_ST_CORRUPT, JV_FILE_INDEX,
                           "page map names a page outside the file, the header or one page "
                           "twice (map entry)",
                           i);
        }
        seen[map[i]] = 1;
    }
    free(seen);
    *out = map;
    return 0;
}

/* -- the writer's free lists ---------------------------------------------------- */

static int reserve_free_slots(jv_fileset *fs, uint64_t n)
{
    if (n <= fs->free_slots_cap)
        return 0;
    uint64_t cap = fs->free_slots_cap ? fs->free_slots_cap : 64;
    while (cap < n)
        cap *= 2;
    uint32_t *p = realloc(fs->free_slots, cap * sizeof *p);
    if (!p)
        return ENOMEM;
    fs->free_slots = p;
    fs->free_slots_cap = cap;
    return 0;
}

/* Move what the reuse rules allow from the retired queues to the free lists:
 * retired items tagged below both the newest commit's generation (a newer
 * commit is durable) and the oldest generation a reader uses. */
static void release_retired(jv_fileset *fs)
{
    uint64_t oldest = jv_readers_oldest(&fs->readers);
    uint64_t limit = oldest < fs->generation ? oldest : fs->generation;
    fs->pages.nfree += jv_retired_release(&fs->pages.retired, limit,
                                          fs->pages.free + fs->pages.nfree);
    if (reserve_free_slots(fs, fs->nfree_slots + jv_retired_count(&fs->retired_slots)) == 0)
        fs->nfree_slots += jv_retired_release(&fs->retired_slots, limit,
                                              fs->free_slots + fs->nfree_slots);
}

int jv_fs_build_free(jv_fileset *fs, const jv_table *committed, jv_status *st)
{
    uint64_t npages = index_pages(fs), i;
    uint64_t g = fs->generation;
    uint8_t *used = NULL, *live = NULL;
    if (committed == NULL)
        committed = &fs->table;
    if (jv_pages_resize(&fs->pages, npages) != 0 ||
        jv_retired_reserve(&fs->pages.retired, npages) != 0 ||
        jv_retired_reserve(&fs->retired_slots, (uint64_t)fs->high_water + 1) != 0 ||
        reserve_free_slots(fs, (uint64_t)fs->high_water + 1) != 0 ||
        !(used = calloc(npages ? npages : 1, 1)) ||
        !(live = calloc((uint64_t)fs->high_water + 1, 1))) {
        free(used);
        return jv_fail_os(st, ENOMEM, JV_FILE_INDEX, "allocate the free lists");
    }
    /* Start from nothing: everything is recomputed below. */
    fs->pages.npages = npages;
    fs->pages.nfree = 0;
    fs->pages.tag = g;
    fs->pages.retired.head = fs->pages.retired.tail = 0;
    fs->retired_slots.head = fs->retired_slots.tail = 0;
    /* used: 1 named by the working table or a map area, 2 named only by the
     * newest commit (a recovery rebuilt the table elsewhere). */
    used[0] = 1;
    for (i = 0; i < jv_table_pages(committed); i++)
        used[committed->map[i]] = 2;
    for (i = 0; i < jv_table_pages(&fs->table); i++)
        used[fs->table.map[i]] = 1;
    for (int a = 0; a < 2; a++)
        for (i = 0; fs->area[a] && i < fs->area_pages; i++)
            used[fs->area[a] + i] = 1;
    /* What the newest commit does not name may still be named by an older
     * one a reader uses: tag it with the generation before. */
    for (i = 1; i < npages; i++)
        if (used[i] != 1)
            jv_retired_push(&fs->pages.retired, (uint32_t)i, used[i] == 2 ? g : g - 1);
    for (i = 0; i < committed->size; i++) {
        const jv_entry *e = jv_entry_at(committed, i);
        if (e->flags == JV_ENTRY_LIVE && e->slot < fs->high_water)
            live[e->slot] = 2;
    }
    for (i = 0; i < fs->table.size; i++) {
        const jv_entry *e = jv_entry_at(&fs->table, i);
        if (e->flags == JV_ENTRY_LIVE && e->slot < fs->high_water)
            live[e->slot] = 1;
    }
    /* Tags must not decrease along the queue: the older ones first. */
    fs->nfree_slots = 0;
    for (int pass = 0; pass < 2; pass++)
        for (i = 0; i < fs->high_water; i++)
            if (live[i] == (pass ? 2 : 0))
                jv_retired_push(&fs->retired_slots, (uint32_t)i, pass ? g : g - 1);
    free(used);
    free(live);
    fs->free_ready = 1;
    return 0;
}

/* -- growth ----------------------------------------------------------------------- */

/* Grow index.jvix by n pages; with `to_pool` they become free pages, else the
 * caller uses them (map areas). *first is the first new page. */
static int grow_index(jv_fileset *fs, uint64_t n, int to_pool, uint64_t *first, jv_status *st)
{
    uint64_t old = index_pages(fs);
    int rc;
    if (old + n > UINT32_MAX)
        return jv_fail(st, JV_ST_FULL, JV_FILE_INDEX, "more than 2**32 index pages", old + n);
    if (jv_pages_resize(&fs->pages, old + n) != 0)
        return jv_fail_os(st, ENOMEM, JV_FILE_INDEX, "grow the page pool");
    if ((rc = jv_mfile_grow(&fs->f[JV_FILE_INDEX], (old + n) * JV_PAGE)) != 0)
        return jv_fail_os(st, rc, JV_FILE_INDEX, "grow");
    fs->pages.npages = old;
    if (to_pool)
        jv_pages_add_free(&fs->pages, n);
    else
        fs->pages.npages = old + n;
    *first = old;
    refresh(fs);
    return 0;
}

int jv_fs_reserve_pages(jv_fileset *fs, uint64_t n, jv_status *st)
{
    uint64_t first;
    if (fs->pages.nfree >= n)
        return 0;
    if (jv_retired_count(&fs->pages.retired))
        release_retired(fs);
    if (fs->pages.nfree >= n)
        return 0;
    uint64_t add = n - fs->pages.nfree, step = fs->pages.npages / 8;
    if (add < step)
        add = step;
    if (add < 4)
        add = 4;
    return grow_index(fs, add, 1, &first, st);
}

int jv_fs_rehash(jv_fileset *fs, uint64_t more, jv_status *st)
{
    jv_table *old = &fs->table;
    uint64_t size = jv_table_size_for(old->live + more);
    uint64_t tp = size / JV_PAGE_ENTRIES, i;
    if (size > JV_MAX_TABLE)
        return jv_fail(st, JV_ST_FULL, JV_FILE_INDEX, "a table of more than 2**40 entries", size);
    if (jv_fs_reserve_pages(fs, tp, st) != 0)
        return -1;
    if (jv_retired_reserve(&fs->pages.retired, jv_table_pages(old)) != 0)
        return jv_fail_os(st, ENOMEM, JV_FILE_INDEX, "allocate for a rebuild");
    uint32_t *map = malloc(tp * sizeof *map);
    if (!map)
        return jv_fail_os(st, ENOMEM, JV_FILE_INDEX, "allocate for a rebuild");
    jv_table t = *old;
    t.map = map;
    t.size = size;
    t.live = 0;
    t.tombs = 0;
    t.owned_pages = tp;
    for (i = 0; i < tp; i++) {
        jv_pages_alloc(&fs->pages, &map[i]);  /* reserved above */
        memset(t.base + ((uint64_t)map[i] << JV_PAGE_SHIFT), 0, JV_PAGE);
    }
    for (i = 0; i < old->size; i++) {
        const jv_entry *e = jv_entry_at(old, i);
        if (e->flags == JV_ENTRY_LIVE && jv_table_insert_new(&t, e) != 0) {
            /* Cannot happen (the new table is at most half full); undo. */
            for (uint64_t j = 0; j < tp; j++)
                jv_pages_drop(&fs->pages, map[j]);
            free(map);
            return jv_fail(st, JV_ST_CORRUPT, JV_FILE_INDEX, "rebuild found no free entry", i);
        }
    }
    for (i = 0; i < jv_table_pages(old); i++)
        jv_pages_drop(&fs->pages, old->map[i]);
    free(old->map);
    *old = t;
    return 0;
}

int jv_fs_reserve(jv_fileset *fs, uint64_t vectors, uint64_t id_bytes, jv_status *st)
{
    int rc;
    if (vectors > fs->nfree_slots && jv_retired_count(&fs->retired_slots))
        release_retired(fs);
    if (vectors > fs->nfree_slots) {
        uint64_t need = (uint64_t)fs->high_water + vectors - fs->nfree_slots;
        if (need > fs->capacity) {
            if (need > JV_MAX_SLOTS)
                return jv_fail(st, JV_ST_FULL, JV_FILE_VEC, "more than 2**32-2 slots", need);
            uint64_t cap = 2 * (uint64_t)fs->capacity;
            if (cap < need)
                cap = need;
            if (cap < MIN_CAPACITY)
                cap = MIN_CAPACITY;
            if (cap > JV_MAX_SLOTS)
                cap = JV_MAX_SLOTS;
            if (fs->skip && cap > fs->skip_size) {
                uint8_t *skip = realloc(fs->skip, cap);
                if (!skip)
                    return jv_fail_os(st, ENOMEM, JV_FILE_VEC, "grow the search mask");
                memset(skip + fs->skip_size, 1, cap - fs->skip_size);
                fs->skip = skip;
                fs->skip_size = cap;
            }
            if ((rc = jv_mfile_grow(&fs->f[JV_FILE_VEC], JV_HEADER_PAGE + cap * fs->row_stride)))
                return jv_fail_os(st, rc, JV_FILE_VEC, "grow");
            if ((rc = jv_mfile_grow(&fs->f[JV_FILE_SLOTS],
                                    JV_FILE_HEADER + cap * JV_SLOT_RECORD)))
                return jv_fail_os(st, rc, JV_FILE_SLOTS, "grow");
            fs->capacity = (uint32_t)cap;
        }
    }
    if (jv_table_needs_grow(&fs->table, vectors)) {
        if (jv_fs_rehash(fs, vectors, st) != 0)
            return -1;
    } else if (jv_fs_reserve_pages(fs, jv_table_copies_needed(&fs->table, vectors), st) != 0) {
        return -1;
    }
    uint64_t copies = jv_table_copies_needed(&fs->table, vectors);
    if (jv_retired_reserve(&fs->pages.retired, copies) != 0 ||
        jv_retired_reserve(&fs->retired_slots, vectors) != 0)
        return jv_fail_os(st, ENOMEM, JV_FILE_SLOTS, "allocate the retired lists");
    if (fs->ids_end + id_bytes > fs->f[JV_FILE_IDS].size) {
        uint64_t size = 2 * fs->f[JV_FILE_IDS].size;
        if (size < fs->ids_end + id_bytes)
            size = fs->ids_end + id_bytes;
        if ((rc = jv_mfile_grow(&fs->f[JV_FILE_IDS], size)))
            return jv_fail_os(st, rc, JV_FILE_IDS, "grow");
    }
    refresh(fs);
    return 0;
}

void jv_fs_prefault(jv_fileset *fs, uint64_t vectors)
{
    uint64_t n = vectors - (vectors < fs->nfree_slots ? vectors : fs->nfree_slots);
    if (n < 64)
        return;
    jv_prefault_write(jv_fs_row(fs, fs->high_water), n * fs->row_stride);
    jv_prefault_write(jv_fs_slot(fs, fs->high_water), n * JV_SLOT_RECORD);
}

/* -- commits ----------------------------------------------------------------------- */

void jv_fs_fill_commit(const jv_fileset *fs, uint32_t state, uint64_t generation,
                       uint32_t map_crc, uint64_t index_offset, jv_commit *c)
{
    memset(c, 0, sizeof *c);
    c->magic = JV_MAGIC_VECTORS;
    c->version = JV_FORMAT_VERSION;
    c->dimension = fs->dimension;
    c->state = state;
    c->vector_count = fs->table.live;
    c->index_offset = index_offset;
    c->data_offset = JV_HEADER_PAGE;
    c->generation = generation;
    c->capacity = fs->capacity;
    c->high_water = fs->high_water;
    c->row_stride = fs->row_stride;
    c->table_size = fs->table.size;
    c->tombstones = fs->table.tombs;
    c->ids_end = fs->ids_end;
    c->next_sequence = fs->next_seq;
    c->set_id = fs->set_id;
    c->map_crc = map_crc;
}

/* Write `c` into the record the newest commit does not occupy and wait for it. */
static int write_commit(jv_fileset *fs, jv_commit *c, jv_status *st)
{
    int record = 1 - fs->newest_record;
    uint64_t offset = record ? JV_COMMIT_B_OFFSET : 0;
    int rc;
    jv_commit_seal(c);
    memcpy(fs->f[JV_FILE_VEC].map->base + offset, c, sizeof *c);
    if ((rc = jv_mfile_sync(&fs->f[JV_FILE_VEC], offset, sizeof *c, 0))) {
        fs->failed = 1;  /* a failed barrier cannot be retried safely */
        return jv_fail_os(st, rc, JV_FILE_VEC, "msync of the commit record");
    }
    fs->newest = *c;
    fs->newest_record = record;
    fs->generation = c->generation;
    fs->pages.tag = c->generation;
    return 0;
}

int jv_fs_begin_write(jv_fileset *fs, jv_status *st)
{
    if (fs->closed)
        return jv_fail(st, JV_ST_CLOSED, JV_FILE_VEC, NULL, 0);
    if (fs->read_only)
        return jv_fail(st, JV_ST_READONLY, JV_FILE_VEC, NULL, 0);
    if (fs->failed)
        return jv_fail(st, JV_ST_FAILED, JV_FILE_VEC, NULL, 0);
    if (!fs->free_ready) {
        if (jv_fs_build_free(fs, NULL, st) != 0)
            return -1;
        release_retired(fs);
    }
    if (!fs->dirty) {
        /* The same state, marked dirty: an open that finds it recovers. */
        jv_commit c;
        jv_fs_fill_commit(fs, JV_STATE_DIRTY, fs->generation + 1, fs->newest.map_crc,
                          fs->newest.index_offset, &c);
        if (write_commit(fs, &c, st) != 0)
            return -1;
        fs->dirty = 1;
    }
    /* Set before the write, under the writer lock: a checkpoint that finds it
     * clear has nothing newer than the last commit record to make durable. */
    fs->changed = 1;
    return 0;
}

static int sync_all(jv_fileset *fs, int async_, jv_status *st)
{
    static const int order[] = {JV_FILE_SLOTS, JV_FILE_INDEX, JV_FILE_IDS, JV_FILE_VEC};
    for (int i = 0; i < 4; i++) {
        int which = order[i];
        /* The vectors file from its rows on: its header page is written on its own. */
        uint64_t from = which == JV_FILE_VEC ? JV_HEADER_PAGE : 0;
        int rc = jv_mfile_sync(&fs->f[which], from, fs->f[which].size, async_);
        if (rc)
            return jv_fail_os(st, rc, which, async_ ? "msync(MS_ASYNC)" : "msync");
    }
    return 0;
}

/* Step 1 of a checkpoint: the map areas sized for the current table (growth
 * first, so a full disk fails here with nothing changed) and the table's map
 * copied into the area the newest commit does not use. */
static int write_map(jv_fileset *fs, int *target, uint64_t *offset, uint32_t *map_crc,
                     jv_status *st)
{
    uint64_t tp = jv_table_pages(&fs->table), need = area_pages_for(tp), first, i;
    if (need != fs->area_pages) {
        if (jv_retired_reserve(&fs->pages.retired, 2 * fs->area_pages) != 0)
            return jv_fail_os(st, ENOMEM, JV_FILE_INDEX, "allocate the retired list");
        if (grow_index(fs, 2 * need, 0, &first, st) != 0)
            return -1;
        for (int a = 0; a < 2; a++)
            for (i = 0; fs->area[a] && i < fs->area_pages; i++)
                jv_pages_drop(&fs->pages, fs->area[a] + (uint32_t)i);
        fs->area[0] = (uint32_t)first;
        fs->area[1] = (uint32_t)(first + need);
        fs->area_pages = need;
        fs->area_current = 1;
    } else if (fs->area[1 - fs->area_current] == 0) {
        if (grow_index(fs, need, 0, &first, st) != 0)
            return -1;
        fs->area[1 - fs->area_current] = (uint32_t)first;
    }
    *target = 1 - fs->area_current;
    *offset = (uint64_t)fs->area[*target] << JV_PAGE_SHIFT;
    uint64_t bytes = tp * sizeof(uint32_t);
    memcpy(fs->f[JV_FILE_INDEX].map->base + *offset, fs->table.map, bytes);
    *map_crc = jv_crc32c(0, fs->table.map, bytes);
    return 0;
}

int jv_fs_checkpoint(jv_fileset *fs, uint32_t state, jv_status *st)
{
    int target;
    uint64_t offset;
    uint32_t map_crc;
    if (fs->failed)
        return jv_fail(st, JV_ST_FAILED, JV_FILE_VEC, NULL, 0);
    /* 1. The map, in the area the newest commit does not use. */
    if (write_map(fs, &target, &offset, &map_crc, st) != 0)
        return -1;
    /* 2. Everything the commit names reaches the disk ... */
    if (sync_all(fs, 0, st) != 0) {
        fs->failed = 1;  /* fsyncgate: a failed sync cannot be retried safely */
        return -1;
    }
    /* 3. ... before the commit record that names it. */
    jv_commit c;
    jv_fs_fill_commit(fs, state, fs->generation + 1, map_crc, offset, &c);
    if (write_commit(fs, &c, st) != 0)
        return -1;
    fs->changed = 0;  /* the writer lock is held: no write ran since the sync */
    fs->area_current = target;
    /* 4. Every table page now belongs to this commit; release what the
     * reuse rules allow. */
    jv_pages_committed(&fs->pages);
    fs->table.owned_pages = 0;
    release_retired(fs);
    return 0;
}

int jv_fs_checkpoint_begin(jv_fileset *fs, uint32_t state, jv_pending *p, jv_status *st)
{
    uint64_t offset;
    uint32_t map_crc;
    if (fs->failed)
        return jv_fail(st, JV_ST_FAILED, JV_FILE_VEC, NULL, 0);
    if (write_map(fs, &p->target, &offset, &map_crc, st) != 0)
        return -1;
    jv_fs_fill_commit(fs, state, fs->generation + 1, map_crc, offset, &p->commit);
    p->generation = fs->generation;
    static const int order[] = {JV_FILE_SLOTS, JV_FILE_INDEX, JV_FILE_IDS, JV_FILE_VEC};
    for (int i = 0; i < 4; i++) {
        p->maps[i] = fs->f[order[i]].map;
        jv_map_retain(p->maps[i]);
        p->sizes[i] = fs->f[order[i]].size;
    }
    /* Nothing the pending commit names may change before a newer commit:
     * its table pages are committed (a writer copies a page before changing
     * it), and whatever is retired from now on (pages dropped, slots of
     * deleted or replaced vectors) is tagged with its generation, so the
     * reuse rules keep it until a commit after it. Rows and slot records of
     * live slots are never written in place. */
    jv_pages_committed(&fs->pages);
    fs->table.owned_pages = 0;
    fs->pages.tag = p->commit.generation;
    fs->changed = 0;  /* writes from here on are after this commit */
    return 0;
}

int jv_fs_checkpoint_sync(jv_pending *p, jv_status *st)
{
    static const int order[] = {JV_FILE_SLOTS, JV_FILE_INDEX, JV_FILE_IDS, JV_FILE_VEC};
    for (int i = 0; i < 4; i++) {
        /* The vectors file from its rows on: its header page is written on its own. */
        uint64_t from = order[i] == JV_FILE_VEC ? JV_HEADER_PAGE : 0;
        if (p->sizes[i] <= from)
            continue;
        int rc = jv_sync(p->maps[i]->base + from, p->sizes[i] - from, 0);
        if (rc)
            return jv_fail_os(st, rc, order[i], "msync");
    }
    return 0;
}

int jv_fs_checkpoint_end(jv_fileset *fs, jv_pending *p, int sync_rc, jv_status *st)
{
    for (int i = 0; i < 4; i++) {
        jv_map_release(p->maps[i]);
        p->maps[i] = NULL;
    }
    if (sync_rc != 0) {
        fs->failed = 1;  /* fsyncgate: a failed sync cannot be retried safely */
        fs->changed = 1;
        return -1;
    }
    if (fs->closed)
        return jv_fail(st, JV_ST_CLOSED, JV_FILE_VEC, NULL, 0);
    if (fs->generation != p->generation) {
        fs->changed = 1;  /* another commit came first: the next tick writes anew */
        return 0;
    }
    if (write_commit(fs, &p->commit, st) != 0) {
        fs->changed = 1;
        return -1;
    }
    fs->area_current = p->target;
    release_retired(fs);
    return 0;
}

int jv_fs_flush(jv_fileset *fs, jv_status *st)
{
    if (fs->closed)
        return jv_fail(st, JV_ST_CLOSED, JV_FILE_VEC, NULL, 0);
    if (fs->read_only)
        return 0;
    return sync_all(fs, 1, st);
}

/* -- the write path ------------------------------------------------------------------ */

int jv_fs_put(jv_fileset *fs, uint64_t h, const char *key, uint32_t n, const float *values,
              int must_exist, jv_status *st)
{
    uint64_t pos, id_offset, seq;
    uint32_t slot, old = 0, vbytes = fs->dimension * 4;
    jv_slot rec;
    int rc = jv_table_find(&fs->table, h, key, n, &pos);
    if (rc < 0)
        return jv_table_status(rc, pos, st);
    if (rc == JV_ABSENT && must_exist)
        return 2;
    if (rc == JV_FOUND) {
        const jv_entry *e = jv_entry_at(&fs->table, pos);
        old = e->slot;
        id_offset = e->id_offset;
    } else {
        id_offset = fs->ids_end;
        fs->ids_end = jv_id_append(fs->f[JV_FILE_IDS].map->base, id_offset, key, n);
        fs->table.ids_end = fs->ids_end;
    }
    if (fs->nfree_slots) {
        slot = fs->free_slots[--fs->nfree_slots];
    } else {
        slot = fs->high_water++;
        fs->table.slot_limit = fs->high_water;
    }
    memcpy(jv_fs_row(fs, slot), values, vbytes);
    seq = fs->next_seq++;
    memset(&rec, 0, sizeof rec);
    rec.id_offset = id_offset;
    rec.id_length = n;
    rec.flags = JV_SLOT_LIVE;
    rec.sequence = seq;
    rec.vector_crc = jv_crc32c(0, values, vbytes);
    jv_slot_seal(&rec);
    memcpy(jv_fs_slot(fs, slot), &rec, sizeof rec);
    jv_table_put(&fs->table, pos, h, slot, id_offset, n, rec.vector_crc);
    if (fs->skip)
        fs->skip[slot] = 0;
    if (rc == JV_FOUND) {
        jv_retired_push(&fs->retired_slots, old, fs->pages.tag);
        if (fs->skip)
            fs->skip[old] = 1;
        return 1;
    }
    return 0;
}

int jv_fs_delete(jv_fileset *fs, uint64_t h, const char *key, uint32_t n, jv_status *st)
{
    uint64_t pos;
    jv_slot rec;
    int rc = jv_table_find(&fs->table, h, key, n, &pos);
    if (rc < 0)
        return jv_table_status(rc, pos, st);
    if (rc == JV_ABSENT)
        return 0;
    if (jv_retired_reserve(&fs->retired_slots, 1) != 0 ||
        jv_fs_reserve_pages(fs, jv_table_copies_needed(&fs->table, 1), st) != 0 ||
        jv_retired_reserve(&fs->pages.retired, 1) != 0) {
        if (st->code == JV_ST_OK)
            jv_fail_os(st, ENOMEM, JV_FILE_SLOTS, "allocate the retired list");
        return -1;
    }
    /* The entry may have moved if the index file was remapped. */
    const jv_entry *e = jv_entry_at(&fs->table, pos);
    uint32_t slot = e->slot;
    /* The tombstone record carries the delete's sequence, newer than every
     * version; written whole, in one copy. */
    memset(&rec, 0, sizeof rec);
    rec.id_offset = e->id_offset;
    rec.id_length = e->id_length;
    rec.flags = JV_SLOT_DELETED;
    rec.sequence = fs->next_seq++;
    rec.vector_crc = e->vector_crc;
    jv_slot_seal(&rec);
    memcpy(jv_fs_slot(fs, slot), &rec, sizeof rec);
    jv_table_remove(&fs->table, pos);
    jv_retired_push(&fs->retired_slots, slot, fs->pages.tag);
    if (fs->skip)
        fs->skip[slot] = 1;
    return 1;
}

int jv_fs_build_skip(jv_fileset *fs, jv_status *st)
{
    uint64_t size = fs->capacity ? fs->capacity : 1;
    if (fs->skip && fs->skip_size >= size)
        return 0;
    uint8_t *skip = malloc(size);
    if (!skip)
        return jv_fail_os(st, ENOMEM, JV_FILE_VEC, "allocate the search mask");
    memset(skip, 1, size);
    for (uint64_t i = 0; i < fs->table.size; i++) {
        const jv_entry *e = jv_entry_at(&fs->table, i);
        if (e->flags == JV_ENTRY_LIVE && e->slot < size)
            skip[e->slot] = 0;
    }
    free(fs->skip);
    fs->skip = skip;
    fs->skip_size = size;
    return 0;
}

void jv_fs_view(const jv_fileset *fs, jv_view *v)
{
    v->table = &fs->table;
    v->rows = fs->f[JV_FILE_VEC].map->base + JV_HEADER_PAGE;
    v->slots = fs->f[JV_FILE_SLOTS].map->base;
    v->dimension = fs->dimension;
    v->row_stride = fs->row_stride;
    v->high_water = fs->high_water;
    v->count = fs->table.live;
    v->hash_mask = fs->hash_mask;
    v->check_reads = fs->check_reads;
}

/* -- readers ---------------------------------------------------------------------------- */

/* Build the snapshot of commit `c`. 0, -1 with st, or 1: the page map did not
 * match its CRC because the writer moved on (the caller starts again). */
static int snap_build(jv_fileset *fs, const jv_commit *c, jv_snapshot **out, jv_status *st)
{
    uint64_t index_size;
    int rc;
    if (c->dimension != fs->dimension || c->row_stride != fs->row_stride ||
        c->set_id != fs->set_id || c->data_offset != JV_HEADER_PAGE)
        return jv_fail(st, JV_ST_CORRUPT, JV_FILE_VEC,
                       "commit record disagrees with the file set (dimension, row_stride, "
                       "data_offset or set_id; generation)",
                       c->generation);
    if (c->high_water > c->capacity || c->vector_count > c->high_water ||
        c->capacity > JV_MAX_SLOTS || c->table_size < JV_MIN_TABLE ||
        c->table_size > JV_MAX_TABLE || (c->table_size & (c->table_size - 1)) ||
        c->vector_count + c->tombstones > c->table_size || c->ids_end < JV_FILE_HEADER ||
        c->ids_end % JV_ID_ALIGN || c->generation >= JV_MAX_COUNTER ||
        c->next_sequence >= JV_MAX_COUNTER)
        return jv_fail(st, JV_ST_CORRUPT, JV_FILE_VEC,
                       "commit record fields out of range (generation)", c->generation);
    const uint64_t want[] = {
        JV_HEADER_PAGE + (uint64_t)c->capacity * c->row_stride,
        JV_FILE_HEADER + (uint64_t)c->capacity * JV_SLOT_RECORD,
        0,
        c->ids_end,
    };
    for (int i = 0; i < JV_NFILES; i++) {
        uint64_t size = want[i];
        if (i == JV_FILE_INDEX) {
            if ((rc = jv_mfile_stat(&fs->f[i], &index_size)))
                return jv_fail_os(st, rc, i, "stat");
            size = index_size / JV_PAGE * JV_PAGE;
        }
        rc = jv_mfile_cover(&fs->f[i], size);
        if (rc == JV_ESHORT)
            return jv_fail(st, JV_ST_CORRUPT, i,
                           "file is shorter than the newest commit needs (truncated; bytes)",
                           size);
        if (rc)
            return jv_fail_os(st, rc, i, "mmap");
    }
    uint32_t *map = NULL;
    rc = jv_fs_load_map(fs, &fs->f[JV_FILE_INDEX], c, &map, st);
    if (rc != 0)
        return rc;
    jv_snapshot *s = calloc(1, sizeof *s);
    if (!s || pthread_mutex_init(&s->skip_lock, NULL) != 0) {
        free(s);
        free(map);
        return jv_fail_os(st, ENOMEM, JV_FILE_INDEX, "allocate a snapshot");
    }
    s->commit = *c;
    for (int i = 0; i < JV_NFILES; i++) {
        s->maps[i] = fs->f[i].map;
        jv_map_retain(s->maps[i]);
    }
    s->table.base = s->maps[JV_FILE_INDEX]->base;
    s->table.map = map;
    s->table.size = c->table_size;
    s->table.live = c->vector_count;
    s->table.tombs = c->tombstones;
    s->table.ids = s->maps[JV_FILE_IDS]->base;
    s->table.ids_end = c->ids_end;
    s->table.slot_limit = c->high_water;
    s->refs = 1;
    *out = s;
    return 0;
}

int jv_fs_snap_begin(jv_fileset *fs, jv_snapshot **out, jv_status *st)
{
    jv_commit c, again;
    int record, rc;
    if (fs->closed)
        return jv_fail(st, JV_ST_CLOSED, JV_FILE_VEC, NULL, 0);
    /* Each turn takes nanoseconds and a writer commits in milliseconds, so
     * this ends; the bound only stops a pathological loop from hanging. */
    for (uint64_t turn = 0; turn < 10000000; turn++) {
        if (jv_fs_read_newest(fs, &c, &record) != 0)
            return jv_fail(st, JV_ST_CORRUPT, JV_FILE_VEC, "no valid commit record", 0);
        if (c.state == JV_STATE_MOVED)
            return jv_fail(st, JV_ST_MOVED, JV_FILE_VEC, NULL, 0);
        if ((rc = jv_readers_enter(&fs->readers, c.generation)))
            return jv_fail_os(st, rc, JV_FILE_READERS, "register a read");
        if (jv_fs_read_newest(fs, &again, &record) != 0 || again.generation != c.generation) {
            jv_readers_leave(&fs->readers, c.generation);
            continue;
        }
        pthread_mutex_lock(&fs->snap_lock);
        jv_snapshot *s = fs->snap;
        if (s == NULL || s->commit.generation != c.generation) {
            rc = snap_build(fs, &c, &s, st);
            if (rc == 1) {
                jv_commit now;
                int damaged = jv_fs_read_newest(fs, &now, &record) == 0 &&
                              now.generation == c.generation;
                pthread_mutex_unlock(&fs->snap_lock);
                jv_readers_leave(&fs->readers, c.generation);
                if (damaged)
                    return jv_fail(st, JV_ST_CORRUPT, JV_FILE_INDEX,
                                   "page map checksum mismatch (commit generation)",
                                   c.generation);
                continue;
            }
            if (rc < 0) {
                pthread_mutex_unlock(&fs->snap_lock);
                jv_readers_leave(&fs->readers, c.generation);
                return -1;
            }
            if (fs->snap)
                snap_unref(fs->snap);
            fs->snap = s;
        }
        s->refs++;
        pthread_mutex_unlock(&fs->snap_lock);
        *out = s;
        return 0;
    }
    return jv_fail_os(st, EAGAIN, JV_FILE_VEC, "read a stable commit");
}

void jv_fs_snap_end(jv_fileset *fs, jv_snapshot *s)
{
    jv_readers_leave(&fs->readers, s->commit.generation);
    pthread_mutex_lock(&fs->snap_lock);
    snap_unref(s);
    pthread_mutex_unlock(&fs->snap_lock);
}

void jv_snap_view(const jv_fileset *fs, const jv_snapshot *s, jv_view *v)
{
    v->table = &s->table;
    v->rows = s->maps[JV_FILE_VEC]->base + JV_HEADER_PAGE;
    v->slots = s->maps[JV_FILE_SLOTS]->base;
    v->dimension = fs->dimension;
    v->row_stride = fs->row_stride;
    v->high_water = s->commit.high_water;
    v->count = s->commit.vector_count;
    v->hash_mask = fs->hash_mask;
    v->check_reads = fs->check_reads;
}

const uint8_t *jv_snap_skip(jv_snapshot *s, jv_status *st)
{
    pthread_mutex_lock(&s->skip_lock);
    if (s->skip == NULL) {
        uint64_t hw = s->commit.high_water;
        uint8_t *skip = malloc(hw ? hw : 1);
        if (!skip) {
            pthread_mutex_unlock(&s->skip_lock);
            jv_fail_os(st, ENOMEM, JV_FILE_VEC, "allocate the search mask");
            return NULL;
        }
        memset(skip, 1, hw ? hw : 1);
        for (uint64_t i = 0; i < s->table.size; i++) {
            const jv_entry *e = jv_entry_at(&s->table, i);
            if (e->flags == JV_ENTRY_EMPTY)
                continue;
            if (jv_entry_check(&s->table, e) != 0) {
                free(skip);
                pthread_mutex_unlock(&s->skip_lock);
                jv_fail(st, JV_ST_CORRUPT, JV_FILE_INDEX, "index entry damaged (entry)", i);
                return NULL;
            }
            if (e->flags == JV_ENTRY_LIVE)
                skip[e->slot] = 0;
        }
        s->skip = skip;
    }
    pthread_mutex_unlock(&s->skip_lock);
    return s->skip;
}

/* -- reads on a view ------------------------------------------------------------------- */

int jv_view_get(const jv_view *v, uint64_t h, const char *key, uint32_t n, float *out,
                jv_status *st)
{
    uint64_t pos;
    int rc = jv_table_find(v->table, h, key, n, &pos);
    if (rc < 0)
        return jv_table_status(rc, pos, st);
    if (rc == JV_ABSENT)
        return 0;
    const jv_entry *e = jv_entry_at(v->table, pos);
    /* jv_table_find checked e->slot against the table's slot limit. */
    memcpy(out, v->rows + (uint64_t)e->slot * v->row_stride, (size_t)v->dimension * 4);
    if (v->check_reads && jv_crc32c(0, out, (size_t)v->dimension * 4) != e->vector_crc)
        return jv_fail(st, JV_ST_CORRUPT, JV_FILE_VEC, "vector checksum mismatch (slot)", e->slot);
    return 1;
}

int jv_view_id_of(const jv_view *v, uint32_t slot, const char **key, uint32_t *n,
                  jv_status *st)
{
    jv_slot rec;
    uint64_t pos;
    if (slot >= v->high_water)
        return jv_fail(st, JV_ST_CORRUPT, JV_FILE_SLOTS, "slot past high_water (slot)", slot);
    memcpy(&rec, v->slots + JV_FILE_HEADER + (uint64_t)slot * JV_SLOT_RECORD, sizeof rec);
    if (jv_id_at(v->table->ids, v->table->ids_end, rec.id_offset, rec.id_length, key) != 0)
        return jv_fail(st, JV_ST_CORRUPT, JV_FILE_SLOTS, "id reference out of bounds (slot)",
                       slot);
    int rc = jv_table_find(v->table, jv_hash(*key, rec.id_length) & v->hash_mask, *key,
                           rec.id_length, &pos);
    if (rc < 0)
        return jv_table_status(rc, pos, st);
    if (rc != JV_FOUND || jv_entry_at(v->table, pos)->slot != slot)
        return jv_fail(st, JV_ST_CORRUPT, JV_FILE_SLOTS,
                       "slot record and index disagree on the id (slot)", slot);
    *n = rec.id_length;
    return 0;
}
