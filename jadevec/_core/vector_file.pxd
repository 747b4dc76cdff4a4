cimport cython

from jadevec._core._types cimport float32_t, uint8_t, uint32_t, uint64_t
from jadevec._core.layout cimport jv_commit, jv_slot, jv_table
from jadevec._core.mapped_file cimport MappedFile, jv_rwlock


# Result of a fallible nogil step: the module's raise_status turns it into a
# typed exception once the lock is released and the GIL held.
ctypedef struct Status:
    int code            # one of the ST_* codes in vector_file.pyx
    int err             # errno for ST_OS
    int file            # FILE_* index of the file concerned
    const char *what    # operation or field
    uint64_t where      # entry, slot or byte offset, when known


# A growable array of slot numbers (free, pending and cooling slots).
ctypedef struct SlotList:
    uint32_t *items
    uint64_t n
    uint64_t size


# What the index's key function needs to find a slot's id bytes.
ctypedef struct KeyView:
    char *slots
    char *ids
    uint64_t ids_size
    uint32_t high_water


@cython.final
cdef class VectorFile:
    cdef MappedFile vec
    cdef MappedFile slots
    cdef MappedFile index
    cdef MappedFile idfile
    cdef jv_rwlock lock
    cdef bint lock_ready
    cdef readonly str path
    cdef uint32_t dim
    cdef uint32_t stride
    cdef uint32_t cap
    cdef uint32_t hw
    cdef uint64_t gen
    cdef uint64_t next_seq
    cdef uint64_t ids_end
    cdef uint64_t hash_mask
    cdef jv_table table
    cdef KeyView keys
    cdef bint dirty
    cdef bint failed
    cdef bint closed
    cdef bint read_only
    cdef bint free_ready
    cdef bint check_reads
    cdef SlotList free_slots
    cdef SlotList pending
    cdef SlotList cooling
    cdef uint8_t *skip_mask
    cdef uint32_t skip_size
    cdef object _report

    cdef str _file(self, int which)
    cdef int sync_dir(self) except -1
    cdef void refresh(self) noexcept nogil
    cdef inline jv_slot *slot_rec(self, uint32_t slot) noexcept nogil
    cdef inline char *row(self, uint32_t slot) noexcept nogil
    cdef object corrupt(self, int which, str message)
    cdef int load(self) except -1
    cdef list load_headers(self, jv_commit best)
    cdef int count_table(self) except -1
    cdef int recover(self, list reasons) except -1
    cdef void supersede(self, uint32_t slot) noexcept nogil
    cdef int grow_file(self, MappedFile f, uint64_t size) except -1
    cdef int build_free(self) except -1
    cdef int rehash(self, uint64_t more) except -1
    cdef int build_free_locked(self, Status *st) noexcept nogil
    cdef int write_commit(self, uint32_t state, Status *st) noexcept nogil
    cdef int begin_write(self, Status *st) noexcept nogil
    cdef int rehash_locked(self, uint64_t more, Status *st) noexcept nogil
    cdef int reserve(self, uint64_t vectors, uint64_t id_bytes, Status *st) noexcept nogil
    cdef int table_error(self, int rc, uint64_t pos, Status *st) noexcept nogil
    cdef uint64_t append_id(self, const char *key, uint32_t n) noexcept nogil
    cdef int put_locked(self, uint64_t h, const char *key, uint32_t n,
                        const float32_t *values, bint must_exist, Status *st) noexcept nogil
    cdef int delete_locked(self, uint64_t h, const char *key, uint32_t n,
                           Status *st) noexcept nogil
    cdef int get_locked(self, uint64_t h, const char *key, uint32_t n, float32_t *out,
                        Status *st) noexcept nogil
    cdef int checkpoint_locked(self, uint32_t state, Status *st) noexcept nogil
    cdef int close_locked(self, Status *st) noexcept nogil
    cdef int check_open(self) except -1
    cdef int _put(self, object vector_id, object values, bint must_exist) except -1
    cdef str id_of_slot(self, uint32_t slot)
    cdef object _view(self)
    cdef int ensure_mask(self) except -1
    cdef int _verify(self, list problems) except -1
