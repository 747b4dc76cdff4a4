/*
 * A file-system shim for jadevec's torture tests, loaded with LD_PRELOAD.
 *
 * It interposes the libc calls that change files (open, write, truncate,
 * allocate, the barriers and the namespace calls) and, for calls on paths
 * under JVFS_ROOT only, counts them, logs them, can fail one (or all from one
 * on) with a chosen errno, and can record what each barrier made durable.
 * Everything else passes straight to libc.
 *
 * Environment (read once, when the library loads):
 *   JVFS_ROOT=/abs/dir     scope: only calls on paths under it are counted
 *   JVFS_LOG=/path         one line per counted call, one write() each:
 *                          "<seq> <call> <path> [<offset> <len>]"
 *                          (rename: "<seq> rename <old> <new>")
 *   JVFS_FAIL_AT=k         the k-th counted call fails without being done
 *   JVFS_FAIL_ERRNO=ENOSPC|EIO|EFBIG
 *   JVFS_FAIL_MODE=once|persist
 *   JVFS_IMAGES=/dir       record durable images (see record_* below)
 *
 * Run-time control (ctypes.CDLL(None) finds these): jvfs_calls(),
 * jvfs_arm(k, errno, persist) (k counted from now), jvfs_disarm().
 *
 * Durable images (JVFS_IMAGES): a file is keyed by "<dev>_<ino>" in hex, so
 * an image follows its file through renames.
 *   f_<key>         the bytes and size a barrier made durable
 *   d_<key>         a directory's durable entries, one "<type> <key> <name>" a line
 * A write through an O_DSYNC or O_SYNC descriptor goes into the image when
 * it returns, as it is durable then.
 * The snapshot is taken when the barrier STARTS (what was written before the
 * call is what the call guarantees; a concurrent writer's later bytes are
 * not) and put in place only when the call succeeds, through a rename, so a
 * process killed in the middle leaves the previous image. One lock is held
 * from a barrier's snapshot to its image's install, so two threads' barriers
 * on one file cannot install their images out of order (an older snapshot
 * over a newer one) or lose each other's msync ranges.
 *
 * A file system reuses the number of a freed inode, so a new file can get
 * the key of a deleted one. When a file or directory is created under a key
 * that has images, they belong to the dead inode: they are renamed to
 * "<key>~<n>" and every directory image that names the key is rewritten to
 * name "<key>~<n>", so a state built from a directory image that still lists
 * the deleted name gets the dead file's bytes, and the new file starts with
 * no durable bytes. Each such rebirth is logged as "0 reborn <key>~<n>".
 *
 * Safety: the constructor only reads the environment into static buffers (it
 * runs before Python, even before malloc may be safe to use); the shim's own
 * I/O calls the real functions through pointers and a thread-local flag lets
 * any call made while the shim works pass straight through.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <pthread.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define JV_PATH 4096

/* Paths are bounded by JV_PATH; a longer one is cut and simply not in scope. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

static char g_root[JV_PATH];
static size_t g_root_len;
static char g_log[JV_PATH];
static char g_images[JV_PATH];
static int g_log_fd = -1;
static long g_calls;            /* counted calls so far (atomic) */
static long g_fail_at;          /* absolute seq that fails; 0: disarmed */
static int g_fail_errno = ENOSPC;
static int g_fail_persist;
static __thread int t_busy;     /* inside the shim: pass everything through */
static pthread_mutex_t g_images_lock = PTHREAD_MUTEX_INITIALIZER;  /* images change under it */
static long g_rebirths;         /* suffixes given to dead inodes' images */

/* ------------------------------------------------------------ real calls */

#define REAL(name) \
    static __typeof__(&name) real_##name; \
    static __typeof__(&name) get_##name(void) { \
        if (!real_##name) real_##name = (__typeof__(&name))dlsym(RTLD_NEXT, #name); \
        return real_##name; \
    }

REAL(open) REAL(open64) REAL(openat) REAL(openat64) REAL(creat) REAL(creat64)
REAL(write) REAL(pwrite) REAL(pwrite64) REAL(pwritev) REAL(pwritev64)
REAL(ftruncate) REAL(ftruncate64) REAL(fallocate) REAL(fallocate64)
REAL(posix_fallocate) REAL(posix_fallocate64)
REAL(fsync) REAL(fdatasync) REAL(msync) REAL(sync_file_range)
REAL(rename) REAL(renameat) REAL(unlink) REAL(unlinkat) REAL(mkdir) REAL(rmdir)
REAL(pread) REAL(close)

/* --------------------------------------------------------------- set-up */

static void copy_env(const char *name, char *dst) {
    const char *v = getenv(name);
    if (v && strlen(v) < JV_PATH) strcpy(dst, v);
}

__attribute__((constructor)) static void jvfs_init(void) {
    copy_env("JVFS_ROOT", g_root);
    /* A trailing slash would make the prefix test miss the root itself. */
    g_root_len = strlen(g_root);
    while (g_root_len > 1 && g_root[g_root_len - 1] == '/') g_root[--g_root_len] = 0;
    if (g_root[0] != '/') g_root_len = 0;  /* relative or unset: nothing is in scope */
    copy_env("JVFS_LOG", g_log);
    copy_env("JVFS_IMAGES", g_images);
    const char *at = getenv("JVFS_FAIL_AT");
    if (at && *at) {
        long k = strtol(at, NULL, 10);
        const char *e = getenv("JVFS_FAIL_ERRNO");
        const char *m = getenv("JVFS_FAIL_MODE");
        int err = ENOSPC;
        if (e && strcmp(e, "EIO") == 0) err = EIO;
        else if (e && strcmp(e, "EFBIG") == 0) err = EFBIG;
        if (k > 0) {
            g_fail_at = k;
            g_fail_errno = err;
            g_fail_persist = m && strcmp(m, "persist") == 0;
        }
    }
}

/* ------------------------------------------------------------- control */

long jvfs_calls(void) { return __atomic_load_n(&g_calls, __ATOMIC_SEQ_CST); }

void jvfs_arm(long k, int err, int persist) {
    g_fail_errno = err;
    g_fail_persist = persist;
    __atomic_store_n(&g_fail_at, k > 0 ? jvfs_calls() + k : 0, __ATOMIC_SEQ_CST);
}

void jvfs_disarm(void) { __atomic_store_n(&g_fail_at, 0, __ATOMIC_SEQ_CST); }

/* --------------------------------------------------------------- scope */

static int under_root(const char *abs) {
    if (!g_root_len || abs[0] != '/') return 0;
    if (strncmp(abs, g_root, g_root_len) != 0) return 0;
    return abs[g_root_len] == 0 || abs[g_root_len] == '/' || g_root_len == 1;
}

/* The path of an open descriptor, or "" (then it is not in scope). */
static void fd_path(int fd, char *out) {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, out, JV_PATH - 1);
    out[n > 0 ? n : 0] = 0;
}

/* An absolute spelling of (dirfd, path); lexical only, which is enough for
 * the absolute paths jadevec, SQLite and LMDB use. */
static void abs_path(int dirfd, const char *path, char *out) {
    out[0] = 0;
    if (!path) return;
    if (path[0] == '/') {
        snprintf(out, JV_PATH, "%s", path);
        return;
    }
    char base[JV_PATH];
    if (dirfd == AT_FDCWD) {
        if (!getcwd(base, sizeof base)) return;
    } else {
        fd_path(dirfd, base);
        if (!base[0]) return;
    }
    snprintf(out, JV_PATH, "%s/%s", base, path);
}

/* ------------------------------------------------------ count and fail */

static void log_line(const char *line, size_t n) {
    if (!g_log[0]) return;
    if (g_log_fd < 0) {
        int fd = get_open()(g_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) return;
        int expected = -1;
        if (!__atomic_compare_exchange_n(&g_log_fd, &expected, fd, 0, __ATOMIC_SEQ_CST,
                                         __ATOMIC_SEQ_CST))
            get_close()(fd);
    }
    (void)get_write()(g_log_fd, line, n);
}

/* Count one call in scope and log it; return the errno it must fail with, or 0. */
static int count_call(const char *call, const char *path, const char *extra) {
    long seq = __atomic_add_fetch(&g_calls, 1, __ATOMIC_SEQ_CST);
    char line[2 * JV_PATH + 128];
    int n = snprintf(line, sizeof line, "%ld %s %s%s%s\n", seq, call, path,
                     extra ? " " : "", extra ? extra : "");
    if (n > 0) log_line(line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
    long at = __atomic_load_n(&g_fail_at, __ATOMIC_SEQ_CST);
    if (at > 0 && (seq == at || (g_fail_persist && seq > at))) return g_fail_errno;
    return 0;
}

static int fd_count(int fd, const char *call, const char *extra, char *path) {
    fd_path(fd, path);
    if (!under_root(path)) return -1;
    return count_call(call, path, extra);
}

/* -------------------------------------------------------------- images */

static void key_of(dev_t dev, ino_t ino, char *out) {
    snprintf(out, 64, "%lx_%lx", (unsigned long)dev, (unsigned long)ino);
}

static void image_path(char kind, const char *key, const char *suffix, char *out) {
    snprintf(out, JV_PATH, "%s/%c_%s%s", g_images, kind, key, suffix);
}

static int copy_fd(int src, int dst) {
    char buf[16384];
    off_t pos = 0;
    for (;;) {
        ssize_t n = get_pread()(src, buf, sizeof buf, pos);
        if (n < 0) return -1;
        if (n == 0) return 0;
        if (get_write()(dst, buf, (size_t)n) != n) return -1;
        pos += n;
    }
}

/* A pending image: written to <final>.<tid>, renamed onto <final> on success. */
struct pending {
    char tmp[JV_PATH];
    char final[JV_PATH];
    int ok;
};

static void pending_tmp(struct pending *p) {
    snprintf(p->tmp, JV_PATH, "%s.%ld.tmp", p->final, (long)syscall(SYS_gettid));
}

/* A regular file's whole content, or a directory's entries, at the start of fsync. */
static void snapshot_fd(int fd, struct pending *p) {
    struct stat st;
    p->ok = 0;
    if (fstat(fd, &st) != 0) return;
    char key[64];
    key_of(st.st_dev, st.st_ino, key);
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    if (S_ISREG(st.st_mode)) {
        image_path('f', key, "", p->final);
        pending_tmp(p);
        int src = get_open()(proc, O_RDONLY | O_CLOEXEC);
        if (src < 0) return;
        int dst = get_open()(p->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (dst >= 0) {
            p->ok = copy_fd(src, dst) == 0;
            get_close()(dst);
        }
        get_close()(src);
    } else if (S_ISDIR(st.st_mode)) {
        image_path('d', key, "", p->final);
        pending_tmp(p);
        int dir = get_open()(proc, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir < 0) return;
        int dst = get_open()(p->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (dst >= 0) {
            char buf[8192];
            p->ok = 1;
            for (;;) {
                long n = syscall(SYS_getdents64, dir, buf, sizeof buf);
                if (n <= 0) {
                    if (n < 0) p->ok = 0;
                    break;
                }
                for (long off = 0; off < n;) {
                    struct dirent64 *d = (struct dirent64 *)(buf + off);
                    off += d->d_reclen;
                    if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0) continue;
                    if (strchr(d->d_name, '\n')) continue;
                    char ekey[64], line[400];
                    key_of(st.st_dev, d->d_ino, ekey);
                    int len = snprintf(line, sizeof line, "%c %s %s\n",
                                       d->d_type == DT_DIR ? 'd' : 'f', ekey, d->d_name);
                    if (len > 0 && (size_t)len < sizeof line)
                        if (get_write()(dst, line, (size_t)len) != len) p->ok = 0;
                }
            }
            get_close()(dst);
        }
        get_close()(dir);
    }
}

static void pending_finish(struct pending *p, int success) {
    if (!p->ok) return;
    if (success) get_rename()(p->tmp, p->final);
    else get_unlink()(p->tmp);
}

/* Rewrite one directory image so that entries naming ``key`` name ``dead``. */
static void rename_key_in_listing(const char *listing, const char *key, const char *dead) {
    int fd = get_open()(listing, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    struct stat st;
    char *text = NULL, *out = NULL;
    if (fstat(fd, &st) != 0 || st.st_size <= 0) goto done;
    size_t size = (size_t)st.st_size, klen = strlen(key), dlen = strlen(dead);
    text = malloc(size + 1);
    out = malloc(size + size / 2 * dlen + 1);  /* each line "t k n": at most size/2 lines */
    if (!text || !out) goto done;
    size_t got = 0;
    while (got < size) {
        ssize_t n = get_pread()(fd, text + got, size - got, (off_t)got);
        if (n <= 0) goto done;
        got += (size_t)n;
    }
    text[size] = 0;
    size_t o = 0;
    int changed = 0;
    for (char *line = text; *line;) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) + 1 : strlen(line);
        /* "<type> <key> <name>": the key sits between the first two spaces. */
        if (len > klen + 3 && line[1] == ' ' && strncmp(line + 2, key, klen) == 0 &&
            line[2 + klen] == ' ') {
            memcpy(out + o, line, 2);
            memcpy(out + o + 2, dead, dlen);
            memcpy(out + o + 2 + dlen, line + 2 + klen, len - 2 - klen);
            o += len - klen + dlen;
            changed = 1;
        } else {
            memcpy(out + o, line, len);
            o += len;
        }
        line += len;
    }
    if (changed) {
        char tmp[JV_PATH];
        snprintf(tmp, sizeof tmp, "%s.%ld.tmp", listing, (long)syscall(SYS_gettid));
        int dst = get_open()(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (dst >= 0) {
            int ok = get_write()(dst, out, o) == (ssize_t)o;
            get_close()(dst);
            if (ok) get_rename()(tmp, listing);
            else get_unlink()(tmp);
        }
    }
done:
    free(text);
    free(out);
    get_close()(fd);
}

/* A new inode got ``st``'s key: move the images of the dead one out of its way. */
static void retire_key_images(const struct stat *st) {
    char key[64], f[JV_PATH], d[JV_PATH];
    key_of(st->st_dev, st->st_ino, key);
    image_path('f', key, "", f);
    image_path('d', key, "", d);
    pthread_mutex_lock(&g_images_lock);
    if (access(f, F_OK) == 0 || access(d, F_OK) == 0) {
        char dead[96], to[JV_PATH];
        snprintf(dead, sizeof dead, "%s~%ld", key, ++g_rebirths);
        image_path('f', dead, "", to);
        get_rename()(f, to);
        image_path('d', dead, "", to);
        get_rename()(d, to);
        DIR *dir = opendir(g_images);
        if (dir) {
            struct dirent *e;
            while ((e = readdir(dir)) != NULL) {
                size_t n = strlen(e->d_name);
                if (e->d_name[0] != 'd' || e->d_name[1] != '_' ||
                    (n > 4 && strcmp(e->d_name + n - 4, ".tmp") == 0))
                    continue;
                char listing[JV_PATH];
                snprintf(listing, sizeof listing, "%s/%s", g_images, e->d_name);
                rename_key_in_listing(listing, key, dead);
            }
            closedir(dir);
        }
        char line[160];
        int len = snprintf(line, sizeof line, "0 reborn %s\n", dead);
        if (len > 0 && (size_t)len < sizeof line) log_line(line, (size_t)len);
    }
    pthread_mutex_unlock(&g_images_lock);
}

/* A write through an O_DSYNC (or O_SYNC) descriptor is durable when it
 * returns (LMDB writes its meta page so): its bytes go into the image. */
static int is_dsync(int fd) {
    int fl = fcntl(fd, F_GETFL);
    return fl >= 0 && (fl & O_DSYNC) == O_DSYNC;
}

static void dsync_apply(int fd, off_t off, const void *buf, size_t n) {
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return;
    char key[64], path[JV_PATH];
    key_of(st.st_dev, st.st_ino, key);
    image_path('f', key, "", path);
    pthread_mutex_lock(&g_images_lock);
    int img = get_open()(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (img >= 0) {
        size_t done = 0;
        while (done < n) {
            ssize_t w = get_pwrite()(img, (const char *)buf + done, n - done,
                                     off + (off_t)done);
            if (w <= 0) break;
            done += (size_t)w;
        }
        get_close()(img);
    }
    pthread_mutex_unlock(&g_images_lock);
}

static void dsync_after(int fd, int counted, ssize_t rc, off_t off, const void *buf) {
    if (counted < 0 || rc <= 0 || !g_images[0]) return;
    t_busy = 1;
    if (is_dsync(fd)) {
        if (off < 0) off = lseek(fd, 0, SEEK_CUR) - rc;  /* write(): where it ended, less rc */
        if (off >= 0) dsync_apply(fd, off, buf, (size_t)rc);
    }
    t_busy = 0;
}

static void dsync_after_iov(int fd, int counted, ssize_t rc, off_t off,
                            const struct iovec *iov, int cnt) {
    for (int i = 0; i < cnt && rc > 0; i++) {
        size_t n = iov[i].iov_len < (size_t)rc ? iov[i].iov_len : (size_t)rc;
        dsync_after(fd, counted, (ssize_t)n, off, iov[i].iov_base);
        off += (off_t)n;
        rc -= (ssize_t)n;
    }
}

/* msync: each mapping of a file that the range covers. The bytes are copied
 * at the start into <image>.<tid>.msync; on success they are written into
 * the image (a copy of the image first, renamed into place). */
struct msync_part {
    char key[64];
    char path[JV_PATH];
    off_t file_off;
    size_t len;
    uintptr_t addr;
};

#define MAX_PARTS 8

static int find_mappings(uintptr_t start, size_t len, struct msync_part *parts) {
    int fd = get_open()("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buf[8192 + JV_PATH + 256];
    size_t have = 0;
    int count = 0;
    uintptr_t end = start + len;
    for (;;) {
        ssize_t n = read(fd, buf + have, sizeof buf - have - 1);
        if (n <= 0 && have == 0) break;
        if (n > 0) have += (size_t)n;
        buf[have] = 0;
        char *line = buf;
        char *nl;
        while ((nl = memchr(line, '\n', have - (size_t)(line - buf))) != NULL) {
            *nl = 0;
            unsigned long lo, hi, off, ino;
            unsigned int maj, min;
            char perms[8];
            int pos = 0;
            if (sscanf(line, "%lx-%lx %7s %lx %x:%x %lu %n", &lo, &hi, perms, &off, &maj, &min,
                       &ino, &pos) >= 7 && ino != 0 && hi > start && lo < end &&
                count < MAX_PARTS) {
                struct msync_part *p = &parts[count];
                uintptr_t a = lo > start ? lo : start;
                uintptr_t b = hi < end ? hi : end;
                p->addr = a;
                p->len = b - a;
                p->file_off = (off_t)(off + (a - lo));
                key_of(makedev(maj, min), (ino_t)ino, p->key);
                snprintf(p->path, JV_PATH, "%s", pos > 0 ? line + pos : "");
                count++;
            }
            line = nl + 1;
        }
        size_t rest = have - (size_t)(line - buf);
        memmove(buf, line, rest);
        have = rest;
        if (n <= 0) break;
        if (have >= sizeof buf - 1) have = 0;  /* an absurd line: drop it */
    }
    get_close()(fd);
    return count;
}

static int snapshot_msync(struct msync_part *p, struct pending *pend) {
    image_path('f', p->key, "", pend->final);
    pending_tmp(pend);
    pend->ok = 0;
    /* The image as it is, then the synced bytes over it, in the temporary copy. */
    int dst = get_open()(pend->tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (dst < 0) return 0;
    int src = get_open()(pend->final, O_RDONLY | O_CLOEXEC);
    int ok = 1;
    if (src >= 0) {
        ok = copy_fd(src, dst) == 0;
        get_close()(src);
    }
    size_t done = 0;
    while (ok && done < p->len) {
        ssize_t n = get_pwrite()(dst, (const void *)(p->addr + done), p->len - done,
                                 p->file_off + (off_t)done);
        if (n <= 0) ok = 0;
        else done += (size_t)n;
    }
    get_close()(dst);
    pend->ok = ok;
    return ok;
}

/* ------------------------------------------------------- interposition */

#define PASS_IF_BUSY(expr) do { if (t_busy || !g_root_len) return (expr); } while (0)

static int fail_with(int err) { errno = err; return -1; }

static int open_common(int dirfd, const char *path, int flags, mode_t mode, const char *call,
                       int *fail) {
    char abs[JV_PATH];
    abs_path(dirfd, path, abs);
    *fail = 0;
    if (!under_root(abs)) return 0;
    /* Only opens that may change something are counted: a plain read is not. */
    if ((flags & O_ACCMODE) == O_RDONLY && !(flags & (O_CREAT | O_TRUNC))) return 0;
    *fail = count_call(call, abs, NULL);
    (void)mode;
    return 1;
}

/* Whether an open with these flags is about to create a new inode. */
static int will_create(int dirfd, const char *path, int flags) {
    if (!g_images[0] || !(flags & O_CREAT)) return 0;
    struct stat st;
    return fstatat(dirfd, path, &st, 0) != 0 && errno == ENOENT;
}

/* After a call that created an inode: retire the images its key may still have. */
static void created(int fd, int dirfd, const char *path) {
    struct stat st;
    int rc = fd >= 0 ? fstat(fd, &st) : fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW);
    if (rc == 0) retire_key_images(&st);
}

#define OPEN_BODY(realcall, dirfd, call) \
    mode_t mode = 0; \
    if (flags & (O_CREAT | O_TMPFILE)) { \
        va_list ap; va_start(ap, flags); mode = (mode_t)va_arg(ap, int); va_end(ap); \
    } \
    if (t_busy || !g_root_len) return realcall; \
    t_busy = 1; int fail; int scoped = open_common(dirfd, path, flags, mode, call, &fail); \
    int creating = scoped && !fail && will_create(dirfd, path, flags); t_busy = 0; \
    if (fail) return fail_with(fail); \
    int fd = realcall; \
    if (creating && fd >= 0) { int e = errno; t_busy = 1; created(fd, dirfd, path); \
                               t_busy = 0; errno = e; } \
    return fd;

int open(const char *path, int flags, ...) {
    OPEN_BODY(get_open()(path, flags, mode), AT_FDCWD, "open")
}
int open64(const char *path, int flags, ...) {
    OPEN_BODY(get_open64()(path, flags, mode), AT_FDCWD, "open")
}
int openat(int dirfd, const char *path, int flags, ...) {
    OPEN_BODY(get_openat()(dirfd, path, flags, mode), dirfd, "open")
}
int openat64(int dirfd, const char *path, int flags, ...) {
    OPEN_BODY(get_openat64()(dirfd, path, flags, mode), dirfd, "open")
}

int creat(const char *path, mode_t mode) {
    PASS_IF_BUSY(get_creat()(path, mode));
    t_busy = 1; int fail; open_common(AT_FDCWD, path, O_CREAT | O_WRONLY, mode, "creat", &fail);
    t_busy = 0;
    if (fail) return fail_with(fail);
    return get_creat()(path, mode);
}
int creat64(const char *path, mode_t mode) {
    PASS_IF_BUSY(get_creat64()(path, mode));
    t_busy = 1; int fail; open_common(AT_FDCWD, path, O_CREAT | O_WRONLY, mode, "creat", &fail);
    t_busy = 0;
    if (fail) return fail_with(fail);
    return get_creat64()(path, mode);
}

/* A call on a descriptor: count it if its file is in scope. */
#define FD_CALL(call, extra_fmt, ...) \
    int fail; { \
        char path_[JV_PATH], extra_[64]; \
        t_busy = 1; \
        snprintf(extra_, sizeof extra_, extra_fmt, __VA_ARGS__); \
        fail = fd_count(fd, call, extra_[0] ? extra_ : NULL, path_); \
        t_busy = 0; \
    }

/* The write family: count the call (failing it if armed), make the real one,
 * and copy what an O_DSYNC descriptor made durable into its image. */
#define WRITE_BODY(realcall, after, call, extra_fmt, ...) \
    PASS_IF_BUSY(realcall); \
    FD_CALL(call, extra_fmt, __VA_ARGS__) \
    if (fail > 0) return fail_with(fail); \
    ssize_t rc = realcall; \
    if (fail == 0) { int e = errno; after; errno = e; } \
    return rc;

ssize_t write(int fd, const void *buf, size_t n) {
    WRITE_BODY(get_write()(fd, buf, n), dsync_after(fd, fail, rc, -1, buf),
               "write", "%s", "")
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
    WRITE_BODY(get_pwrite()(fd, buf, n, off), dsync_after(fd, fail, rc, off, buf),
               "pwrite", "%lld %zu", (long long)off, n)
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off) {
    WRITE_BODY(get_pwrite64()(fd, buf, n, off), dsync_after(fd, fail, rc, off, buf),
               "pwrite", "%lld %zu", (long long)off, n)
}

static size_t iov_len(const struct iovec *iov, int cnt) {
    size_t s = 0;
    for (int i = 0; i < cnt; i++) s += iov[i].iov_len;
    return s;
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off) {
    WRITE_BODY(get_pwritev()(fd, iov, cnt, off), dsync_after_iov(fd, fail, rc, off, iov, cnt),
               "pwritev", "%lld %zu", (long long)off, iov_len(iov, cnt))
}

ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off64_t off) {
    WRITE_BODY(get_pwritev64()(fd, iov, cnt, off),
               dsync_after_iov(fd, fail, rc, off, iov, cnt),
               "pwritev", "%lld %zu", (long long)off, iov_len(iov, cnt))
}

int ftruncate(int fd, off_t len) {
    PASS_IF_BUSY(get_ftruncate()(fd, len));
    FD_CALL("ftruncate", "0 %lld", (long long)len)
    if (fail > 0) return fail_with(fail);
    return get_ftruncate()(fd, len);
}

int ftruncate64(int fd, off64_t len) {
    PASS_IF_BUSY(get_ftruncate64()(fd, len));
    FD_CALL("ftruncate", "0 %lld", (long long)len)
    if (fail > 0) return fail_with(fail);
    return get_ftruncate64()(fd, len);
}

int fallocate(int fd, int mode, off_t off, off_t len) {
    PASS_IF_BUSY(get_fallocate()(fd, mode, off, len));
    FD_CALL("fallocate", "%lld %lld", (long long)off, (long long)len)
    if (fail > 0) return fail_with(fail);
    return get_fallocate()(fd, mode, off, len);
}

int fallocate64(int fd, int mode, off64_t off, off64_t len) {
    PASS_IF_BUSY(get_fallocate64()(fd, mode, off, len));
    FD_CALL("fallocate", "%lld %lld", (long long)off, (long long)len)
    if (fail > 0) return fail_with(fail);
    return get_fallocate64()(fd, mode, off, len);
}

/* posix_fallocate reports its error as the return value, not through errno. */
int posix_fallocate(int fd, off_t off, off_t len) {
    PASS_IF_BUSY(get_posix_fallocate()(fd, off, len));
    FD_CALL("posix_fallocate", "%lld %lld", (long long)off, (long long)len)
    if (fail > 0) return fail;
    return get_posix_fallocate()(fd, off, len);
}

int posix_fallocate64(int fd, off64_t off, off64_t len) {
    PASS_IF_BUSY(get_posix_fallocate64()(fd, off, len));
    FD_CALL("posix_fallocate", "%lld %lld", (long long)off, (long long)len)
    if (fail > 0) return fail;
    return get_posix_fallocate64()(fd, off, len);
}

static int barrier(int fd, int (*real)(int), const char *call) {
    FD_CALL(call, "%s", "")
    if (fail > 0) return fail_with(fail);
    if (fail < 0 || !g_images[0]) return real(fd);
    struct pending p;
    t_busy = 1;
    pthread_mutex_lock(&g_images_lock);
    snapshot_fd(fd, &p);
    t_busy = 0;
    int rc = real(fd);
    int saved = errno;
    t_busy = 1;
    pending_finish(&p, rc == 0);
    pthread_mutex_unlock(&g_images_lock);
    t_busy = 0;
    errno = saved;
    return rc;
}

int fsync(int fd) {
    PASS_IF_BUSY(get_fsync()(fd));
    return barrier(fd, get_fsync(), "fsync");
}

int fdatasync(int fd) {
    PASS_IF_BUSY(get_fdatasync()(fd));
    return barrier(fd, get_fdatasync(), "fdatasync");
}

int sync_file_range(int fd, off64_t off, off64_t n, unsigned int flags) {
    PASS_IF_BUSY(get_sync_file_range()(fd, off, n, flags));
    /* Not a barrier (it never syncs metadata): counted and logged only. */
    FD_CALL("sync_file_range", "%lld %lld", (long long)off, (long long)n)
    if (fail > 0) return fail_with(fail);
    return get_sync_file_range()(fd, off, n, flags);
}

int msync(void *addr, size_t len, int flags) {
    PASS_IF_BUSY(get_msync()(addr, len, flags));
    struct msync_part parts[MAX_PARTS];
    struct pending pend[MAX_PARTS];
    t_busy = 1;
    int nparts = find_mappings((uintptr_t)addr, len, parts);
    int fail = 0, counted = 0;
    for (int i = 0; i < nparts; i++) {
        if (!under_root(parts[i].path)) continue;
        char extra[64];
        snprintf(extra, sizeof extra, "%lld %zu", (long long)parts[i].file_off, parts[i].len);
        /* One counted call per msync, however many files it covers. */
        if (!counted) {
            fail = count_call("msync", parts[i].path, extra);
            counted = 1;
        }
    }
    int record = counted && !fail && g_images[0] && (flags & MS_SYNC);
    if (record) {
        pthread_mutex_lock(&g_images_lock);
        for (int i = 0; i < nparts; i++) {
            pend[i].ok = 0;
            if (under_root(parts[i].path)) snapshot_msync(&parts[i], &pend[i]);
        }
    }
    t_busy = 0;
    if (fail) return fail_with(fail);
    int rc = get_msync()(addr, len, flags);
    if (record) {
        int saved = errno;
        t_busy = 1;
        for (int i = 0; i < nparts; i++) pending_finish(&pend[i], rc == 0);
        pthread_mutex_unlock(&g_images_lock);
        t_busy = 0;
        errno = saved;
    }
    return rc;
}

/* Namespace calls: counted and logged when either path is in scope. They
 * become durable only with their directory's fsync, which records the
 * directory's entries. */
static int path_call(const char *call, int dirfd, const char *path, int dirfd2,
                     const char *path2) {
    char a[JV_PATH], b[JV_PATH];
    t_busy = 1;
    abs_path(dirfd, path, a);
    b[0] = 0;
    if (path2) abs_path(dirfd2, path2, b);
    int fail = 0;
    if (under_root(a) || (path2 && under_root(b)))
        fail = count_call(call, a, path2 ? b : NULL);
    t_busy = 0;
    return fail;
}

int rename(const char *old, const char *new_) {
    PASS_IF_BUSY(get_rename()(old, new_));
    int fail = path_call("rename", AT_FDCWD, old, AT_FDCWD, new_);
    if (fail) return fail_with(fail);
    return get_rename()(old, new_);
}

int renameat(int od, const char *old, int nd, const char *new_) {
    PASS_IF_BUSY(get_renameat()(od, old, nd, new_));
    int fail = path_call("rename", od, old, nd, new_);
    if (fail) return fail_with(fail);
    return get_renameat()(od, old, nd, new_);
}

int unlink(const char *path) {
    PASS_IF_BUSY(get_unlink()(path));
    int fail = path_call("unlink", AT_FDCWD, path, 0, NULL);
    if (fail) return fail_with(fail);
    return get_unlink()(path);
}

int unlinkat(int dirfd, const char *path, int flags) {
    PASS_IF_BUSY(get_unlinkat()(dirfd, path, flags));
    int fail = path_call(flags & AT_REMOVEDIR ? "rmdir" : "unlink", dirfd, path, 0, NULL);
    if (fail) return fail_with(fail);
    return get_unlinkat()(dirfd, path, flags);
}

int mkdir(const char *path, mode_t mode) {
    PASS_IF_BUSY(get_mkdir()(path, mode));
    int fail = path_call("mkdir", AT_FDCWD, path, 0, NULL);
    if (fail) return fail_with(fail);
    int rc = get_mkdir()(path, mode);
    if (rc == 0 && g_images[0]) {
        int e = errno;
        t_busy = 1;
        created(-1, AT_FDCWD, path);
        t_busy = 0;
        errno = e;
    }
    return rc;
}

int rmdir(const char *path) {
    PASS_IF_BUSY(get_rmdir()(path));
    int fail = path_call("rmdir", AT_FDCWD, path, 0, NULL);
    if (fail) return fail_with(fail);
    return get_rmdir()(path);
}
