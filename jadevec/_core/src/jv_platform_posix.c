/* POSIX (Linux, macOS) implementation of jv_platform.h. */
#define _GNU_SOURCE
#include "jv_platform.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MAP_NORESERVE
#define MAP_NORESERVE 0
#endif

size_t jv_page_size(void)
{
    static size_t page;
    if (!page) {
        long p = sysconf(_SC_PAGESIZE);
        page = p > 0 ? (size_t)p : 4096;
    }
    return page;
}

static size_t round_page(size_t n)
{
    size_t p = jv_page_size();
    return (n + p - 1) / p * p;
}

int jv_open(int dir, const char *path, int create, int read_only, int *fd)
{
    int flags = O_CLOEXEC | O_NONBLOCK | (read_only ? O_RDONLY : O_RDWR);
    if (create)
        flags |= O_CREAT | O_EXCL;
    int f;
    do {
        f = openat(dir == JV_CWD ? AT_FDCWD : dir, path, flags, 0644);
    } while (f < 0 && errno == EINTR);
    if (f < 0)
        return errno == EISDIR ? JV_ENOTREG : errno;
    struct stat st;
    if (fstat(f, &st) != 0) {
        int rc = errno;
        close(f);
        return rc;
    }
    if (!S_ISREG(st.st_mode)) {
        close(f);
        return JV_ENOTREG;
    }
    /* O_NONBLOCK has no effect on regular files; clear it anyway so nothing
     * later depends on it. */
    int fl = fcntl(f, F_GETFL);
    if (fl >= 0)
        (void)fcntl(f, F_SETFL, fl & ~O_NONBLOCK);
    *fd = f;
    return 0;
}

int jv_open_dir(const char *path, int *fd)
{
    int f;
    do {
        f = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    } while (f < 0 && errno == EINTR);
    if (f < 0)
        return errno;
    *fd = f;
    return 0;
}

int jv_dir_moved(int fd, const char *path)
{
    struct stat held, now;
    if (fstat(fd, &held) != 0)
        return errno;
    if (stat(path, &now) != 0)
        return errno == ENOENT || errno == ENOTDIR ? 1 : errno;
    return held.st_dev != now.st_dev || held.st_ino != now.st_ino;
}

int jv_close(int fd)
{
    /* Never retry close: on Linux the descriptor is gone even on EINTR. */
    return close(fd) == 0 || errno == EINTR ? 0 : errno;
}

int jv_file_size(int fd, uint64_t *size)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return errno;
    *size = (uint64_t)st.st_size;
    return 0;
}

int jv_allocate(int fd, uint64_t offset, uint64_t len)
{
    if (len == 0)
        return 0;
#if defined(__APPLE__)
    /* macOS has no posix_fallocate: reserve with F_PREALLOCATE where the file
     * system allows, then extend and write zeros so the blocks exist. */
    uint64_t old;
    int rc = jv_file_size(fd, &old);
    if (rc)
        return rc;
    fstore_t fst = {F_ALLOCATEALL, F_PEOFPOSMODE, 0, (off_t)(offset + len - old), 0};
    if (offset + len > old)
        (void)fcntl(fd, F_PREALLOCATE, &fst);
    static const char zeros[65536];
    uint64_t pos = offset;
    while (pos < offset + len) {
        size_t n = (size_t)(offset + len - pos < sizeof zeros ? offset + len - pos : sizeof zeros);
        ssize_t w = pwrite(fd, zeros, n, (off_t)pos);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            (void)ftruncate(fd, (off_t)old);
            return e;
        }
        pos += (uint64_t)w;
    }
    return 0;
#else
    int rc;
    do {
        rc = posix_fallocate(fd, (off_t)offset, (off_t)len);
    } while (rc == EINTR);
    return rc;
#endif
}

int jv_pread(int fd, void *buf, size_t len, uint64_t offset, size_t *got)
{
    size_t done = 0;
    while (done < len) {
        ssize_t r = pread(fd, (char *)buf + done, len - done, (off_t)(offset + done));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        if (r == 0)
            break;
        done += (size_t)r;
    }
    *got = done;
    return 0;
}

int jv_fsync(int fd)
{
#if defined(__APPLE__)
    /* fsync on macOS does not reach the platter; F_FULLFSYNC does. */
    if (fcntl(fd, F_FULLFSYNC) == 0)
        return 0;
#endif
    return fsync(fd) == 0 ? 0 : errno;
}

int jv_fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_DIRECTORY);
    if (fd < 0)
        return errno;
    int rc = jv_fsync(fd);
    close(fd);
    return rc;
}

int jv_map_create(int fd, size_t reserve, size_t len, int writable, jv_map **out)
{
    jv_map *m = calloc(1, sizeof *m);
    if (!m)
        return ENOMEM;
    reserve = round_page(reserve > len ? reserve : len);
    if (reserve == 0)
        reserve = jv_page_size();
    void *base = mmap(NULL, reserve, PROT_NONE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) {
        int e = errno;
        free(m);
        return e;
    }
    m->base = base;
    m->reserved = reserve;
    m->mapped = 0;
    int rc = jv_map_extend(m, fd, len, writable);
    if (rc) {
        munmap(base, reserve);
        free(m);
        return rc;
    }
    *out = m;
    return 0;
}

int jv_map_extend(jv_map *m, int fd, size_t len, int writable)
{
    size_t want = round_page(len);
    if (want <= m->mapped)
        return 0;
    if (want > m->reserved)
        return ERANGE;
    int prot = PROT_READ | (writable ? PROT_WRITE : 0);
    void *at = m->base + m->mapped;
    void *p = mmap(at, want - m->mapped, prot, MAP_SHARED | MAP_FIXED, fd, (off_t)m->mapped);
    if (p == MAP_FAILED)
        return errno;
    m->mapped = want;
    return 0;
}

static void map_free(jv_map *m)
{
    munmap(m->base, m->reserved);
    free(m);
}

void jv_map_retain(jv_map *m)
{
    __atomic_add_fetch(&m->state, 2, __ATOMIC_ACQ_REL);
}

void jv_map_release(jv_map *m)
{
    if (__atomic_sub_fetch(&m->state, 2, __ATOMIC_ACQ_REL) == 1)
        map_free(m);
}

void jv_map_retire(jv_map *m)
{
    if (__atomic_fetch_or(&m->state, 1, __ATOMIC_ACQ_REL) == 0)
        map_free(m);
}

uint64_t jv_map_exports(const jv_map *m)
{
    return __atomic_load_n(&m->state, __ATOMIC_ACQUIRE) >> 1;
}

int jv_sync(void *addr, size_t len, int async)
{
    if (len == 0)
        return 0;
    /* msync needs a page-aligned start; callers pass offsets inside a mapping. */
    uintptr_t p = (uintptr_t)addr, page = jv_page_size();
    uintptr_t start = p & ~(page - 1);
    if (msync((void *)start, len + (p - start), async ? MS_ASYNC : MS_SYNC) != 0)
        return errno;
    return 0;
}

int jv_advise(void *addr, size_t len, int hint)
{
    static const int advice[] = {MADV_NORMAL, MADV_SEQUENTIAL, MADV_RANDOM,
                                 MADV_WILLNEED, MADV_DONTNEED};
    if (len == 0)
        return 0;
    if (hint < 0 || hint > JV_ADV_DONTNEED)
        return EINVAL;
    uintptr_t p = (uintptr_t)addr, page = jv_page_size();
    uintptr_t start = p & ~(page - 1);
    return madvise((void *)start, len + (p - start), advice[hint]) == 0 ? 0 : errno;
}

int jv_prefault_write(void *addr, size_t len)
{
#ifdef MADV_POPULATE_WRITE
    if (len == 0)
        return 0;
    uintptr_t p = (uintptr_t)addr, page = jv_page_size();
    uintptr_t start = p & ~(page - 1);
    return madvise((void *)start, len + (p - start), MADV_POPULATE_WRITE) == 0 ? 0 : errno;
#else
    (void)addr;
    (void)len;
    return ENOSYS;
#endif
}

#ifdef F_OFD_SETLK
#define JV_SETLK F_OFD_SETLK
#define JV_GETLK F_OFD_GETLK
#else
#define JV_SETLK F_SETLK
#define JV_GETLK F_GETLK
#endif

static int byte_lock_op(int fd, uint64_t offset, int cmd, short type, struct flock *fl)
{
    memset(fl, 0, sizeof *fl);
    fl->l_type = type;
    fl->l_whence = SEEK_SET;
    fl->l_start = (off_t)offset;
    fl->l_len = 1;
    int rc;
    do {
        rc = fcntl(fd, cmd, fl);
    } while (rc != 0 && errno == EINTR);
    return rc == 0 ? 0 : errno;
}

int jv_byte_lock(int fd, uint64_t offset)
{
    struct flock fl;
    int rc = byte_lock_op(fd, offset, JV_SETLK, F_WRLCK, &fl);
    return rc == EACCES ? EAGAIN : rc;
}

int jv_byte_unlock(int fd, uint64_t offset)
{
    struct flock fl;
    return byte_lock_op(fd, offset, JV_SETLK, F_UNLCK, &fl);
}

int jv_byte_locked(int fd, uint64_t offset)
{
    struct flock fl;
    int rc = byte_lock_op(fd, offset, JV_GETLK, F_WRLCK, &fl);
    if (rc)
        return -rc;
    return fl.l_type != F_UNLCK;
}

int jv_rename_noreplace(const char *from, const char *to)
{
#if defined(__linux__) && defined(SYS_renameat2)
    if (syscall(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to, 1 /* RENAME_NOREPLACE */) == 0)
        return 0;
    if (errno != ENOSYS && errno != EINVAL)
        return errno;
#endif
    /* No atomic no-replace rename: check, then rename. Only the writer of a
     * store creates file sets, under its catalog lock, so nothing races it. */
    struct stat st;
    if (lstat(to, &st) == 0)
        return EEXIST;
    return rename(from, to) == 0 ? 0 : errno;
}

int jv_rename_exchange(const char *a, const char *b)
{
#if defined(__linux__) && defined(SYS_renameat2)
    if (syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, 2 /* RENAME_EXCHANGE */) == 0)
        return 0;
    return errno == EINVAL ? ENOSYS : errno;
#elif defined(__APPLE__)
    return renamex_np(a, b, RENAME_SWAP) == 0 ? 0 : errno;
#else
    (void)a;
    (void)b;
    return ENOSYS;
#endif
}

int jv_rwlock_init(jv_rwlock *l)
{
    return pthread_rwlock_init(l, NULL);
}

void jv_rwlock_destroy(jv_rwlock *l)
{
    pthread_rwlock_destroy(l);
}

void jv_rdlock(jv_rwlock *l)
{
    pthread_rwlock_rdlock(l);
}

void jv_wrlock(jv_rwlock *l)
{
    pthread_rwlock_wrlock(l);
}

void jv_unlock(jv_rwlock *l)
{
    pthread_rwlock_unlock(l);
}
