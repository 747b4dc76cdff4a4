/* The reader table of a file set (readers.jvrd, docs/vector_file_format.md,
 * "readers.jvrd"): how read-only processes tell the writer which commit
 * generations they are reading, so that nothing those commits name is
 * overwritten under them.
 *
 * A reader process claims one slot (an exclusive lock on the slot's first
 * byte, held by its open file description, dropped by the kernel when the
 * process dies) and publishes in it the oldest generation its read calls in
 * flight use. Threads of one process share the slot: `enter`/`leave` keep a
 * small count per generation under a mutex. The writer reads the slots whose
 * lock is held (`oldest`). */
#ifndef JV_READERS_H
#define JV_READERS_H

#include <pthread.h>
#include <stdint.h>

#include "jv_layout.h"

typedef struct jv_readers {
    int fd;                  /* -1: no table (unregistered reader on a read-only file system) */
    jv_reader_slot *slots;   /* the mapped table, JV_READER_SLOTS entries */
    void *mapping;
    int32_t mine;            /* claimed slot, -1 for a writer or an unregistered reader */
    pthread_mutex_t mu;
    int mu_ready;
    uint64_t *gens;          /* generations of calls in flight in this process ... */
    uint32_t *counts;        /* ... and how many use each */
    uint32_t n, cap;
} jv_readers;

/* Open (creating it if `create`, repairing a damaged header in place) and
 * map the table at `path`, relative to the folder open at `dir` (or JV_CWD);
 * claim a slot if `claim`. Returns 0 or an errno (ENOENT: missing and not
 * `create`); EROFS with claim leaves an unregistered reader (fd -1) and
 * returns 0; EBUSY when every slot is held. */
int jv_readers_open(jv_readers *r, int dir, const char *path, uint64_t set_id, int claim,
                    int create);
/* Publish that a call reads generation `gen` (then a full fence). 0 or ENOMEM. */
int jv_readers_enter(jv_readers *r, uint64_t gen);
void jv_readers_leave(jv_readers *r, uint64_t gen);
/* Writer: the oldest generation a live reader uses, or UINT64_MAX. */
uint64_t jv_readers_oldest(jv_readers *r);
/* Release the slot and unmap. In a forked child pass `inherited`: the parent
 * still owns the slot, so only this process's descriptor is closed. */
void jv_readers_close(jv_readers *r, int inherited);

#endif
