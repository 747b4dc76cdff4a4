# The VectorFile class and the pieces of its nogil write path that the other
# modules of the file set (recovery, compaction) cimport. Attributes are
# declared here so those modules read and update them directly.
cimport cython

from jadevec._core._types cimport float32_t, uint8_t, uint32_t, uint64_t
from jadevec._core.layout cimport (
    JV_FILE_HEADER,
    JV_HEADER_PAGE,
    jv_key_view,
    jv_slot,
    jv_table,
)
from jadevec._core.mapped_file cimport MappedFile, jv_rwlock


cdef enum:
    FILE_VEC = 0
    FILE_SLOTS = 1
    FILE_INDEX = 2
    FILE_IDS = 3

# Status codes; raise_status maps each to its exception.
cdef enum:
    ST_OK = 0
    ST_OS = 1
    ST_CORRUPT = 2
    ST_CLOSED = 3
    ST_READONLY = 4
    ST_FAILED = 5
    ST_FULL = 6

cdef enum:
    SLOT_RECORD = 32
    MIN_CAPACITY = 64


# Result of a fallible nogil step: raise_status turns it into a typed
# exception once the lock is released and the GIL held.
ctypedef struct Status:
    int code            # one of the ST_* codes
    int err             # errno for ST_OS
    int file            # FILE_* index of the file concerned
    const char *what    # operation or field
    uint64_t where      # entry, slot or byte offset, when known


# A growable array of slot numbers (free, pending and cooling slots).
ctypedef struct SlotList:
    uint32_t *items
    uint64_t n
    uint64_t size


cdef inline int fail(Status *st, int code, int file, const char *what,
                     uint64_t where) noexcept nogil:
    st.code = code
    st.file = file
    st.what = what
    st.where = where
    return -1


cdef inline int fail_os(Status *st, int err, int file, const char *what) noexcept nogil:
    st.err = err
    return fail(st, ST_OS, file, what, 0)


cdef int raise_status(VectorFile vf, const Status *st) except -1


cdef inline uint64_t row_stride_for(uint32_t dimension) noexcept nogil:
    return (<uint64_t>dimension * 4 + 63) & ~(<uint64_t>63)


@cython.final
cdef class VectorFile:
    cdef MappedFile vec
    cdef MappedFile slots
    cdef MappedFile index
    cdef MappedFile idfile
    cdef jv_rwlock lock
    cdef bint lock_ready
    cdef readonly str path
    cdef readonly uint32_t dimension
    cdef readonly uint32_t row_stride
    cdef readonly uint32_t capacity
    cdef readonly uint32_t high_water
    cdef readonly uint64_t generation
    cdef uint64_t next_seq
    cdef uint64_t ids_end
    cdef uint64_t hash_mask
    cdef jv_table table
    cdef jv_key_view keys
    cdef bint dirty
    cdef readonly bint failed
    cdef readonly bint closed
    cdef readonly bint read_only
    cdef bint free_ready
    cdef bint check_reads
    cdef SlotList free_slots
    cdef SlotList pending
    cdef SlotList cooling
    cdef uint8_t *skip_mask
    cdef uint32_t skip_size
    cdef object _report

    cdef str _file(self, int which)
    cdef object corrupt(self, int which, str message)
    cdef int sync_dir(self) except -1
    cdef void refresh(self) noexcept nogil
    cdef inline jv_slot *slot_rec(self, uint32_t slot) noexcept nogil:
        return <jv_slot *>(self.slots.map.base + JV_FILE_HEADER
                           + <uint64_t>slot * SLOT_RECORD)
    cdef inline char *row(self, uint32_t slot) noexcept nogil:
        return self.vec.map.base + JV_HEADER_PAGE + <uint64_t>slot * self.row_stride
    cdef int build_free_locked(self, Status *st) noexcept nogil
    cdef int write_commit(self, uint32_t state, Status *st) noexcept nogil
    cdef int begin_write(self, Status *st) noexcept nogil
    cdef int rehash_locked(self, uint64_t more, Status *st) noexcept nogil
    cdef int reserve(self, uint64_t vectors, uint64_t id_bytes, Status *st) noexcept nogil
    cdef void prefault_append(self, uint64_t vectors) noexcept nogil
    cdef int table_error(self, int rc, uint64_t pos, Status *st) noexcept nogil
    cdef int put_locked(self, uint64_t h, const char *key, uint32_t n,
                        const float32_t *values, bint must_exist, Status *st) noexcept nogil
    cdef int delete_locked(self, uint64_t h, const char *key, uint32_t n,
                           Status *st) noexcept nogil
    cdef int get_locked(self, uint64_t h, const char *key, uint32_t n, float32_t *out,
                        Status *st) noexcept nogil
    cdef int sync_files(self, bint async_, uint64_t rows_from, const char *what,
                        Status *st) noexcept nogil
    cdef int checkpoint_locked(self, uint32_t state, Status *st) noexcept nogil
    cdef int close_locked(self, Status *st) noexcept nogil
    cdef int check_open(self) except -1
    cdef int _put(self, object vector_id, object values, bint must_exist) except -1
    cdef str id_of_slot(self, uint32_t slot)
    cdef object _view(self)
    cdef int ensure_mask(self) except -1
