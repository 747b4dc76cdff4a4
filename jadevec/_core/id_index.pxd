from jadevec._core._types cimport uint32_t, uint64_t
from jadevec._core.layout cimport jv_table


# The id's UTF-8 bytes (borrowed from the str object) after checking that it
# is a str of 1..1024 bytes; raises InvalidInputError naming `argument`, or
# `argument[index]` when index >= 0.
cdef int utf8_id(object vector_id, const char **data, uint32_t *length,
                 str argument, Py_ssize_t index=*) except -1


# Id bytes per slot for the in-memory table (the key function's context).
ctypedef struct KeyStore:
    char *arena
    uint64_t arena_used
    uint64_t arena_size
    uint64_t *key_offset
    uint32_t *key_length
    uint64_t n_keys


cdef class IdIndex:
    cdef jv_table table
    cdef uint64_t hash_mask
    cdef KeyStore keys

    cdef int _reserve_keys(self, uint64_t slot) except -1
    cdef int _grow_for(self, uint64_t more) except -1
    cdef int _find(self, object vector_id, uint64_t *pos, const char **p,
                   uint32_t *n, uint64_t *h) except -2
