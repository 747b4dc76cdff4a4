/* The few operating-system calls the storage core needs, behind one interface.
 *
 * jv_platform_posix.c implements them for Linux and macOS; a Windows file can
 * implement the same functions. Every fallible call returns 0 on success or a
 * positive errno value (never sets a Python error): the Cython callers turn
 * that into a typed exception naming the path once they hold the GIL.
 */
#ifndef JV_PLATFORM_H
#define JV_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

#ifdef _WIN32
#error "jadevec: no Windows platform file yet (add jv_platform_win32.c)"
#else
#include <pthread.h>
typedef pthread_rwlock_t jv_rwlock;
#endif

/* Hints for jv_advise. */
enum { JV_ADV_NORMAL = 0, JV_ADV_SEQUENTIAL = 1, JV_ADV_RANDOM = 2,
       JV_ADV_WILLNEED = 3, JV_ADV_DONTNEED = 4 };

/* A mapping: address space reserved once, the file mapped at its base.
 * `state` counts exported buffers (times 2) plus a retired bit (1): whoever
 * brings it to exactly "retired, no exports" unmaps it, so a view never
 * dangles and no mapping is unmapped twice. */
typedef struct jv_map {
    char *base;
    size_t reserved;   /* bytes of address space reserved at base */
    size_t mapped;     /* bytes of the file mapped at base (page multiple) */
    uint64_t state;
} jv_map;

size_t jv_page_size(void);

/* Returned (in place of an errno value) for a path that is not a regular
 * file: a directory, FIFO or device where a file of the set belongs. */
#define JV_ENOTREG 0x10000
/* `dir` argument meaning "relative to the working directory". */
#define JV_CWD (-1)
/* Open a regular file `path` relative to the folder open at `dir` (or JV_CWD),
 * never blocking (a FIFO would block open(2)). */
int jv_open(int dir, const char *path, int create, int read_only, int *fd);
/* Open a folder, for opening the files in it with jv_open: the files then all
 * come from that folder even if it is renamed meanwhile. */
int jv_open_dir(const char *path, int *fd);
/* Whether `path` still names the folder open at `fd` (0: yes, 1: no, or an
 * errno other than ENOENT/ENOTDIR). */
int jv_dir_moved(int fd, const char *path);
int jv_close(int fd);
int jv_file_size(int fd, uint64_t *size);
/* Allocate blocks for [offset, offset+len) so a later store cannot SIGBUS;
 * ENOSPC or EFBIG when the disk or the size limit says no. */
int jv_allocate(int fd, uint64_t offset, uint64_t len);
int jv_pread(int fd, void *buf, size_t len, uint64_t offset, size_t *got);
int jv_fsync(int fd);
int jv_fsync_dir(const char *path);

/* New mapping of `len` bytes of fd (len may be 0) inside `reserve` bytes. */
int jv_map_create(int fd, size_t reserve, size_t len, int writable, jv_map **out);
/* Extend m to cover `len` bytes of fd in place; ERANGE if over m->reserved. */
int jv_map_extend(jv_map *m, int fd, size_t len, int writable);
void jv_map_retain(jv_map *m);
void jv_map_release(jv_map *m);   /* drop an export */
void jv_map_retire(jv_map *m);    /* no longer current: unmap once unexported */
uint64_t jv_map_exports(const jv_map *m);

int jv_sync(void *addr, size_t len, int async);
int jv_advise(void *addr, size_t len, int hint);
/* Fault in [addr, addr+len) for writing now (MADV_POPULATE_WRITE, Linux
 * 5.14+), so a batch pays the page allocation once instead of one fault per
 * page. Only a hint: returns 0, or an errno (EINVAL, ENOSYS where the kernel
 * or platform lacks it) that callers ignore. The range must already be
 * allocated in the file (posix_fallocate), so no SIGBUS or ENOSPC can come
 * from it. */
int jv_prefault_write(void *addr, size_t len);

/* Exclusive lock on one byte of a file, held by this open file description
 * (Linux F_OFD_SETLK; process-associated fcntl locks elsewhere). The kernel
 * drops it when the holder closes the file or dies. jv_byte_lock: 0 taken,
 * EAGAIN held by someone else, or an errno. jv_byte_locked: 1 if another
 * holder has it, 0 if not, or -errno. */
int jv_byte_lock(int fd, uint64_t offset);
int jv_byte_unlock(int fd, uint64_t offset);
int jv_byte_locked(int fd, uint64_t offset);

/* Rename `from` to `to` only if `to` does not exist (EEXIST otherwise). */
int jv_rename_noreplace(const char *from, const char *to);
/* Swap two existing paths atomically (Linux renameat2 RENAME_EXCHANGE, macOS
 * renamex_np RENAME_SWAP); ENOSYS where neither exists. */
int jv_rename_exchange(const char *a, const char *b);

int jv_rwlock_init(jv_rwlock *l);
void jv_rwlock_destroy(jv_rwlock *l);
void jv_rdlock(jv_rwlock *l);
void jv_wrlock(jv_rwlock *l);
void jv_unlock(jv_rwlock *l);

#endif
