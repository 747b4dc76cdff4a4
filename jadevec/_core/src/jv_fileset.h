/* One database's vector file set as one C unit (docs/vector_file_format.md).
 *
 * jv_fileset holds everything about an open file set: the four mapped files
 * and the reader table, the newest commit, and either the writer's working
 * state (page map, page pool, free and retired slots, search mask) or the
 * reader's current snapshot. The Cython modules take it by pointer:
 * vector_file.pyx is its Python face, recovery.pyx checks and recovers it,
 * compaction.pyx rewrites it. Nothing else keeps file-set state.
 *
 * Errors: every fallible call returns 0 (or a result >= 0) and fills a
 * jv_status on failure (-1); fileset.pyx turns a status into the typed
 * Python exception naming the file and the field.
 *
 * Locking (the caller's job): a writer's file set is guarded by `lock`, a
 * reader-writer lock taken with the GIL released: lookups and searches take
 * the read side, writes, checkpoints and close the write side. A read-only
 * file set takes no lock for reads: each call holds a reference to its
 * snapshot (jv_fs_snap_begin/end); building a snapshot takes `snap_lock`. */
#ifndef JV_FILESET_H
#define JV_FILESET_H

#include <pthread.h>
#include <stdint.h>

#include "jv_index.h"
#include "jv_layout.h"
#include "jv_mfile.h"
#include "jv_platform.h"
#include "jv_readers.h"

enum { JV_FILE_VEC = 0, JV_FILE_SLOTS = 1, JV_FILE_INDEX = 2, JV_FILE_IDS = 3, JV_NFILES = 4,
       JV_FILE_READERS = 4 };

/* Status codes. */
enum {
    JV_ST_OK = 0,
    JV_ST_OS = 1,       /* err: an errno */
    JV_ST_CORRUPT = 2,  /* what/where: the damaged field */
    JV_ST_CLOSED = 3,
    JV_ST_READONLY = 4,
    JV_ST_FAILED = 5,   /* an earlier sync failed */
    JV_ST_FULL = 6,     /* a limit of the format (more than 2**32-2 slots) */
    JV_ST_MOVED = 7,    /* a reader found the set replaced or removed */
    JV_ST_BUSY = 8,     /* every reader slot is held */
};

typedef struct jv_status {
    int code;
    int err;
    int file;           /* JV_FILE_* */
    const char *what;
    uint64_t where;     /* JV_NO_POSITION when no field or offset applies */
} jv_status;
#define JV_NO_POSITION UINT64_MAX

/* A reader's view of one commit. Its mappings are retained, so a call that
 * holds the snapshot reads valid memory whatever happens meanwhile. */
typedef struct jv_snapshot {
    uint64_t refs;              /* calls holding it, +1 while it is the current one */
    jv_commit commit;
    jv_map *maps[JV_NFILES];    /* retained */
    jv_table table;             /* map: this snapshot's own copy */
    pthread_mutex_t skip_lock;
    uint8_t *skip;              /* 1 for each slot below high_water not live; built once */
} jv_snapshot;

/* What a read needs, from either the writer's working state or a snapshot. */
typedef struct jv_view {
    const jv_table *table;
    const char *rows;
    const char *slots;
    uint32_t dimension;
    uint32_t row_stride;
    uint32_t high_water;
    uint64_t count;
    uint64_t hash_mask;
    int check_reads;
} jv_view;

typedef struct jv_fileset {
    jv_mfile f[JV_NFILES];
    jv_readers readers;
    int dir_fd;                 /* the folder, while opening; -1 otherwise */
    jv_rwlock lock;
    int lock_ready;
    pthread_mutex_t snap_lock;
    int snap_lock_ready;
    jv_snapshot *snap;          /* reader: the current snapshot */

    uint32_t dimension;
    uint32_t row_stride;
    uint32_t capacity;
    uint32_t high_water;
    uint64_t set_id;
    uint64_t hash_mask;

    jv_commit newest;           /* the newest commit, read at open or written */
    int newest_record;          /* 0: in record A, 1: in record B */
    uint64_t generation;        /* newest.generation */

    /* writer */
    uint64_t next_seq;
    uint64_t ids_end;
    jv_table table;
    jv_pages pages;
    uint32_t area[2];           /* first page of the two map areas; 0: none */
    uint64_t area_pages;
    int area_current;           /* the area the newest commit's map is in */
    uint32_t *free_slots;       /* stack */
    uint64_t nfree_slots;
    uint64_t free_slots_cap;
    jv_retired retired_slots;
    uint8_t *skip;              /* search mask over capacity; NULL until first search */
    uint64_t skip_size;

    int read_only;
    int check_reads;
    int dirty;                  /* a dirty commit was written since open */
    int changed;                /* a write began since the last commit record */
    int failed;                 /* a sync failed: refuse writes */
    int closed;
    int free_ready;             /* free slots and pages computed */
} jv_fileset;

static inline uint64_t jv_row_stride_for(uint32_t dimension)
{
    return ((uint64_t)dimension * 4 + 63) & ~(uint64_t)63;
}

static inline char *jv_fs_row(const jv_fileset *fs, uint32_t slot)
{
    return fs->f[JV_FILE_VEC].map->base + JV_HEADER_PAGE + (uint64_t)slot * fs->row_stride;
}

static inline jv_slot *jv_fs_slot(const jv_fileset *fs, uint32_t slot)
{
    return (jv_slot *)(fs->f[JV_FILE_SLOTS].map->base + JV_FILE_HEADER +
                       (uint64_t)slot * JV_SLOT_RECORD);
}

int jv_fail(jv_status *st, int code, int file, const char *what, uint64_t where);
int jv_fail_os(jv_status *st, int err, int file, const char *what);

/* Allocate and initialise (locks) an empty, closed file set; NULL: no memory. */
jv_fileset *jv_fs_new(void);
/* Close if open (without writing when `inherited`: a forked child), free. */
void jv_fs_free(jv_fileset *fs, int inherited);

/* Create the five files in the existing, empty folder `dir` and write a clean
 * commit of generation `first_generation`; the set is then open for writing. */
int jv_fs_create(jv_fileset *fs, const char *dir, uint32_t dimension, uint32_t capacity,
                 uint64_t set_id, uint64_t first_generation, jv_status *st);
/* Open and map the four files of `dir` (and the reader table: a reader
 * claims a slot). The caller checks the headers next (recovery.pyx). */
int jv_fs_map_files(jv_fileset *fs, const char *dir, int read_only, jv_status *st);
/* Open the reader table of `dir`: a reader claims a slot (JV_ST_BUSY when
 * every slot is held), a writer just maps it. After the headers are checked
 * (set_id known). */
int jv_fs_open_readers(jv_fileset *fs, const char *dir, jv_status *st);
/* Unmap and close; a writer's open set gets a clean checkpoint first (its
 * status is returned; the files are closed in any case). */
int jv_fs_close(jv_fileset *fs, int inherited, jv_status *st);

/* The page map of `c`: checked (CRC, every page inside the index file and
 * distinct) and copied into a new array (*out, freed by the caller).
 * Returns 0, -1 with st, or 1 when the CRC fails (the caller decides whether
 * the writer moved on or the map is damaged). */
int jv_fs_load_map(jv_fileset *fs, const jv_mfile *index, const jv_commit *c, uint32_t **out,
                   jv_status *st);
/* Read the newest valid commit record from the mapped header page (a reader's
 * view, racing the writer). 0 and *c, or -1: neither record is valid. */
int jv_fs_read_newest(const jv_fileset *fs, jv_commit *c, int *record);

/* -- writer ---------------------------------------------------------------- */

/* Refuse writes on closed, read-only or failed sets; compute the free lists
 * once; write the dirty commit before the first write. */
int jv_fs_begin_write(jv_fileset *fs, jv_status *st);
/* Grow everything once so that `vectors` stores (with `id_bytes` of new id
 * records) cannot fail halfway. */
int jv_fs_reserve(jv_fileset *fs, uint64_t vectors, uint64_t id_bytes, jv_status *st);
/* Fault in the rows and slot records that `vectors` appends (a hint). */
void jv_fs_prefault(jv_fileset *fs, uint64_t vectors);
/* Store one vector (reserve() done): 0 new, 1 replaced, 2 absent (must_exist). */
int jv_fs_put(jv_fileset *fs, uint64_t h, const char *key, uint32_t n, const float *values,
              int must_exist, jv_status *st);
/* Delete one id: 1 deleted, 0 absent. */
int jv_fs_delete(jv_fileset *fs, uint64_t h, const char *key, uint32_t n, jv_status *st);
/* Write a commit of `state` (sync first); then release what the reuse rules
 * allow. The writer lock is held throughout. */
int jv_fs_checkpoint(jv_fileset *fs, uint32_t state, jv_status *st);

/* A checkpoint in three steps, so that the long syncs run without the writer
 * lock (the caller serialises checkpoints, close and compaction by a lock of
 * its own):
 *   begin  (writer lock held): the commit of the state now is built but not
 *          written; from here writers copy the index pages it names instead
 *          of changing them, and what they retire is tagged with its
 *          generation, so nothing it names changes until a newer commit;
 *   sync   (no lock): every file, up to its size at begin, reaches the disk;
 *   end    (writer lock held): the commit record is written and synced,
 *          unless the sync failed (the set is then failed) or another
 *          commit came first. */
typedef struct jv_pending {
    jv_commit commit;
    int target;                 /* the map area the commit's map is in */
    uint64_t generation;        /* fs->generation at begin */
    jv_map *maps[4];            /* retained: a growth may replace the mappings */
    uint64_t sizes[4];
} jv_pending;
int jv_fs_checkpoint_begin(jv_fileset *fs, uint32_t state, jv_pending *p, jv_status *st);
int jv_fs_checkpoint_sync(jv_pending *p, jv_status *st);
int jv_fs_checkpoint_end(jv_fileset *fs, jv_pending *p, int sync_rc, jv_status *st);
/* msync(MS_ASYNC) of every file: a hint, not a barrier. */
int jv_fs_flush(jv_fileset *fs, jv_status *st);
/* Compute free slots and pages of a freshly opened (or recovered) writer:
 * what the working table does not use is retired, tagged with the newest
 * generation if `committed` (the newest commit's table; NULL: the working
 * table itself) names it, else with the generation before. */
int jv_fs_build_free(jv_fileset *fs, const jv_table *committed, jv_status *st);
/* Build (or keep current) the writer's search mask over `capacity` slots. */
int jv_fs_build_skip(jv_fileset *fs, jv_status *st);
/* Make sure the page pool has `n` free pages (releasing or growing). */
int jv_fs_reserve_pages(jv_fileset *fs, uint64_t n, jv_status *st);
/* Rebuild the table at the size for live + more entries (fresh pages). */
int jv_fs_rehash(jv_fileset *fs, uint64_t more, jv_status *st);
/* The writer's view for reads (under the read lock). */
void jv_fs_view(const jv_fileset *fs, jv_view *v);
/* A commit record describing the writer's working state (not sealed). */
void jv_fs_fill_commit(const jv_fileset *fs, uint32_t state, uint64_t generation,
                       uint32_t map_crc, uint64_t index_offset, jv_commit *c);

/* -- reader ---------------------------------------------------------------- */

/* Register and take the snapshot of the newest commit (building it if it is
 * new). JV_ST_MOVED: the set was replaced or removed. */
int jv_fs_snap_begin(jv_fileset *fs, jv_snapshot **out, jv_status *st);
void jv_fs_snap_end(jv_fileset *fs, jv_snapshot *s);
void jv_snap_view(const jv_fileset *fs, const jv_snapshot *s, jv_view *v);
/* The snapshot's search mask (built on first use). NULL and st on failure. */
const uint8_t *jv_snap_skip(jv_snapshot *s, jv_status *st);

/* -- reads on a view --------------------------------------------------------- */

/* Copy one vector out: 1 found, 0 absent. */
int jv_view_get(const jv_view *v, uint64_t h, const char *key, uint32_t n, float *out,
                jv_status *st);
/* The id of a live slot, confirmed by a lookup that leads back to the slot. */
int jv_view_id_of(const jv_view *v, uint32_t slot, const char **key, uint32_t *n,
                  jv_status *st);
/* Turn a table error code into a status. */
int jv_table_status(int rc, uint64_t pos, jv_status *st);

#endif
