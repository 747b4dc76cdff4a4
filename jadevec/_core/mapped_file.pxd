from jadevec._core._types cimport uint64_t


cdef extern from "jv_platform.h" nogil:
    ctypedef struct jv_rwlock:
        pass

    ctypedef struct jv_map:
        char *base
        size_t reserved
        size_t mapped
        uint64_t state

    enum:
        JV_ADV_NORMAL
        JV_ADV_SEQUENTIAL
        JV_ADV_RANDOM
        JV_ADV_WILLNEED
        JV_ADV_DONTNEED

    const int JV_ENOTREG
    const int JV_CWD

    size_t jv_page_size()
    int jv_pread(int fd, void *buf, size_t len, uint64_t offset, size_t *got)
    int jv_fsync(int fd)
    int jv_fsync_dir(const char *path)
    void jv_map_retain(jv_map *m)
    void jv_map_release(jv_map *m)
    uint64_t jv_map_exports(const jv_map *m)
    int jv_advise(void *addr, size_t len, int hint)
    int jv_prefault_write(void *addr, size_t len)
    int jv_rwlock_init(jv_rwlock *l)
    void jv_rwlock_destroy(jv_rwlock *l)
    void jv_rdlock(jv_rwlock *l)
    void jv_wrlock(jv_rwlock *l)
    void jv_unlock(jv_rwlock *l)
    int jv_rename_noreplace(const char *src, const char *dst)
    int jv_rename_exchange(const char *a, const char *b)


cdef extern from "jv_mfile.h" nogil:
    ctypedef struct jv_mfile:
        int fd
        jv_map *map
        uint64_t size
        uint64_t reserve
        int writable

    int JV_ESHORT
    void jv_mfile_init(jv_mfile *f)
    int jv_mfile_open(jv_mfile *f, int dir, const char *path, int create, int writable,
                      uint64_t size, uint64_t reserve)
    int jv_mfile_grow(jv_mfile *f, uint64_t size)
    int jv_mfile_sync(jv_mfile *f, uint64_t offset, uint64_t length, int async_)
    int jv_mfile_stat(const jv_mfile *f, uint64_t *size)
    void jv_mfile_close(jv_mfile *f)


cdef int raise_os_error(int err, str operation, str path) except -1

# A read-only buffer over `size` bytes at `base` inside mapping `m`, which it
# retains until the buffer object is gone (numpy views of mapped rows).
cdef object map_buffer(jv_map *m, const char *base, Py_ssize_t size)


cdef class MappedFile:
    cdef jv_mfile f
    cdef jv_rwlock maplock
    cdef bint lock_ready
    cdef readonly str path
    cdef bytes path_bytes

    cdef int _check_open(self) except -1
