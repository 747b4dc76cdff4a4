/* A file mapped into memory that grows without moving (see jv_platform.h's
 * jv_map): the mechanism under MappedFile and under each file of a file set.
 *
 * Every fallible call returns 0 or a positive errno. Growth allocates blocks
 * first (posix_fallocate), so a full disk is a clean error, never a SIGBUS on
 * a later store. Not thread-safe by itself: the owner serialises growth
 * against use of `map->base` (a file set's lock, a snapshot's mutex). */
#ifndef JV_MFILE_H
#define JV_MFILE_H

#include <stdint.h>

#include "jv_platform.h"

typedef struct jv_mfile {
    int fd;             /* -1 when closed */
    jv_map *map;        /* the current mapping; NULL when closed */
    uint64_t size;      /* bytes mapped, all of them inside the file */
    uint64_t reserve;   /* address space asked for at the first mapping */
    int writable;
} jv_mfile;

/* Returned by jv_mfile_cover when the file is shorter than asked. */
#define JV_ESHORT (-1)

void jv_mfile_init(jv_mfile *f);
/* Open (or create, with `size` bytes allocated: the file must not exist) and
 * map the whole file; `path` is relative to the folder open at `dir` (or
 * JV_CWD). `reserve` 0 means max(4 GiB, 4 x size). */
int jv_mfile_open(jv_mfile *f, int dir, const char *path, int create, int writable,
                  uint64_t size, uint64_t reserve);
/* Writer: grow the file to `size` bytes (allocate, then map); nothing changes
 * on an error. A smaller size does nothing. */
int jv_mfile_grow(jv_mfile *f, uint64_t size);
/* Reader: make the mapping cover `size` bytes of a file another process grew;
 * JV_ESHORT if the file is shorter (damage), an errno on failure. */
int jv_mfile_cover(jv_mfile *f, uint64_t size);
int jv_mfile_sync(jv_mfile *f, uint64_t offset, uint64_t length, int async_);
/* Size of the file on disk now. */
int jv_mfile_stat(const jv_mfile *f, uint64_t *size);
/* Unmap (once every retained user is gone) and close. */
void jv_mfile_close(jv_mfile *f);

#endif
