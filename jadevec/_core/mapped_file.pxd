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

    size_t jv_page_size()
    int jv_open(const char *path, int create, int read_only, int *fd)
    int jv_close(int fd)
    int jv_file_size(int fd, uint64_t *size)
    int jv_allocate(int fd, uint64_t offset, uint64_t len)
    int jv_pread(int fd, void *buf, size_t len, uint64_t offset, size_t *got)
    int jv_fsync(int fd)
    int jv_fsync_dir(const char *path)
    int jv_map_create(int fd, size_t reserve, size_t len, int writable, jv_map **out)
    int jv_map_extend(jv_map *m, int fd, size_t len, int writable)
    void jv_map_retain(jv_map *m)
    void jv_map_release(jv_map *m)
    void jv_map_retire(jv_map *m)
    uint64_t jv_map_exports(const jv_map *m)
    int jv_sync(void *addr, size_t len, int async_)
    int jv_advise(void *addr, size_t len, int hint)
    int jv_prefault_write(void *addr, size_t len)
    int jv_rwlock_init(jv_rwlock *l)
    void jv_rwlock_destroy(jv_rwlock *l)
    void jv_rdlock(jv_rwlock *l)
    void jv_wrlock(jv_rwlock *l)
    void jv_unlock(jv_rwlock *l)


cdef int raise_os_error(int err, str operation, str path) except -1


cdef class MappedFile:
    cdef int fd
    cdef jv_map *map
    cdef jv_rwlock maplock
    cdef bint lock_ready
    cdef readonly str path
    cdef bytes path_bytes
    cdef uint64_t _size
    cdef size_t reserve_hint
    cdef bint writable
    cdef bint _closed

    cdef int c_grow(self, uint64_t new_size) noexcept nogil
    cdef int c_sync(self, uint64_t offset, uint64_t length, bint async_) noexcept nogil
    cdef void c_close(self) noexcept nogil
    cdef int _check_open(self) except -1
