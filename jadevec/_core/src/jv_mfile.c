#define _GNU_SOURCE
#include "jv_mfile.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#define DEFAULT_RESERVE (4ull << 30)

void jv_mfile_init(jv_mfile *f)
{
    f->fd = -1;
    f->map = NULL;
    f->size = 0;
    f->reserve = 0;
    f->writable = 0;
}

int jv_mfile_open(jv_mfile *f, int dir, const char *path, int create, int writable,
                  uint64_t size, uint64_t reserve)
{
    int fd = -1, rc;
    uint64_t actual = 0;
    jv_mfile_init(f);
    rc = jv_open(dir, path, create, !writable, &fd);
    if (rc)
        return rc;
    if (create && (rc = jv_allocate(fd, 0, size)) != 0)
        goto fail;
    if ((rc = jv_file_size(fd, &actual)) != 0)
        goto fail;
    if (reserve == 0)
        reserve = actual * 4 > DEFAULT_RESERVE ? actual * 4 : DEFAULT_RESERVE;
    if ((rc = jv_map_create(fd, reserve, actual, writable, &f->map)) != 0)
        goto fail;
    f->fd = fd;
    f->size = actual;
    f->reserve = reserve;
    f->writable = writable;
    return 0;
fail:
    jv_close(fd);
    if (create)
        unlinkat(dir == JV_CWD ? AT_FDCWD : dir, path, 0);
    return rc;
}

/* Map [0, size) of the file: in place when the reservation allows, else in a
 * new, larger reservation (the old mapping is retired and unmapped when its
 * last user lets go). */
static int remap(jv_mfile *f, uint64_t size)
{
    int rc = jv_map_extend(f->map, f->fd, size, f->writable);
    if (rc == ERANGE) {
        jv_map *fresh = NULL;
        size_t reserve = 2 * f->map->reserved;
        if (reserve < 4 * size)
            reserve = 4 * size;
        rc = jv_map_create(f->fd, reserve, size, f->writable, &fresh);
        if (rc)
            return rc;
        jv_map *old = f->map;
        f->map = fresh;
        jv_map_retire(old);
    }
    if (rc)
        return rc;
    f->size = size;
    return 0;
}

int jv_mfile_grow(jv_mfile *f, uint64_t size)
{
    int rc;
    if (f->map == NULL)
        return EBADF;
    if (size <= f->size)
        return 0;
    if ((rc = jv_allocate(f->fd, f->size, size - f->size)) != 0)
        return rc;
    return remap(f, size);
}

int jv_mfile_cover(jv_mfile *f, uint64_t size)
{
    uint64_t actual;
    int rc;
    if (f->map == NULL)
        return EBADF;
    if (size <= f->size)
        return 0;
    if ((rc = jv_file_size(f->fd, &actual)) != 0)
        return rc;
    if (actual < size)
        return JV_ESHORT;
    return remap(f, size);
}

int jv_mfile_sync(jv_mfile *f, uint64_t offset, uint64_t length, int async_)
{
    if (f->map == NULL)
        return EBADF;
    if (offset >= f->size)
        return 0;
    if (length > f->size - offset)
        length = f->size - offset;
    return jv_sync(f->map->base + offset, length, async_);
}

int jv_mfile_stat(const jv_mfile *f, uint64_t *size)
{
    if (f->fd < 0)
        return EBADF;
    return jv_file_size(f->fd, size);
}

void jv_mfile_close(jv_mfile *f)
{
    if (f->map != NULL) {
        jv_map_retire(f->map);
        f->map = NULL;
    }
    if (f->fd >= 0) {
        jv_close(f->fd);
        f->fd = -1;
    }
    f->size = 0;
}
