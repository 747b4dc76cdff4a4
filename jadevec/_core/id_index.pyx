"""Ids: validation at C speed and the on-disk hash.

* ``utf8_id`` (cdef): the UTF-8 bytes of a str id, checked (1 to 1,024 bytes,
  no lone surrogates), borrowed from the str object; every call of the core
  that takes an id goes through it.
* :func:`scan_ids`: the public API's fast path for a batch of ids, one C pass
  (exact str, ASCII, length, no repeats).
* :func:`hash_id`: ``jv_hash`` of an id, the 64-bit hash the index stores.

The hash table itself lives in the vector file set (``src/jv_index.c``,
paged and copied on write; docs/vector_file_format.md).
"""

from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.stdlib cimport free, malloc
from libc.string cimport memcmp, memset

from jadevec._core._types cimport uint32_t, uint64_t
from jadevec._core.layout cimport JV_MAX_ID_BYTES, jv_hash

from jadevec.errors import InvalidInputError

__all__ = ["hash_id", "scan_ids", "MAX_ID_BYTES"]

MAX_ID_BYTES = JV_MAX_ID_BYTES


cdef int utf8_id(object vector_id, const char **data, uint32_t *length,
                 str argument, Py_ssize_t index=-1) except -1:
    # The argument's name is formatted only on error: batches pass "ids", i.
    cdef Py_ssize_t n
    if type(vector_id) is not str and not isinstance(vector_id, str):
        raise InvalidInputError(
            f"{arg_name(argument, index)} must be a str, got "
            f"{type(vector_id).__name__}: {vector_id!r:.80}")
    try:
        data[0] = PyUnicode_AsUTF8AndSize(vector_id, &n)
    except UnicodeEncodeError:
        raise InvalidInputError(
            f"{arg_name(argument, index)} must be encodable as UTF-8 (no lone surrogates), "
            f"got {vector_id!r:.80}") from None
    if n < 1 or n > JV_MAX_ID_BYTES:
        raise InvalidInputError(
            f"{arg_name(argument, index)} must be 1 to {JV_MAX_ID_BYTES} UTF-8 bytes, "
            f"got {n} bytes")
    length[0] = <uint32_t>n
    return 0


cdef str arg_name(str argument, Py_ssize_t index):
    return argument if index < 0 else f"{argument}[{index}]"


def hash_id(vector_id):
    """Return ``jv_hash`` of an id (str, as UTF-8) or of bytes: the on-disk hash."""
    cdef const char *p
    cdef uint32_t n
    cdef const unsigned char[::1] raw
    if isinstance(vector_id, (bytes, bytearray)):
        raw = vector_id
        if raw.shape[0] == 0:
            return jv_hash(b"", 0)
        return jv_hash(&raw[0], raw.shape[0])
    utf8_id(vector_id, &p, &n, "vector_id")
    return jv_hash(p, n)


cdef extern from "Python.h":
    # Direct access to a str's storage: an ASCII str is its own UTF-8 encoding.
    bint PyUnicode_IS_ASCII(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    void *PyUnicode_DATA(object o)


cdef Py_ssize_t first_duplicate(const char **keys, const Py_ssize_t *lengths, Py_ssize_t n,
                                Py_ssize_t *first) except -2 nogil:
    """Return the smallest j with keys[j] equal to an earlier keys[i] (i in *first), or -1."""
    cdef size_t size = 16, mask, h
    cdef Py_ssize_t j, other
    cdef uint64_t *hashes
    cdef Py_ssize_t *table
    while size < <size_t>n * 2:
        size *= 2
    mask = size - 1
    hashes = <uint64_t *>malloc(n * sizeof(uint64_t) + 1)
    table = <Py_ssize_t *>malloc(size * sizeof(Py_ssize_t))
    if hashes == NULL or table == NULL:
        free(hashes)
        free(table)
        with gil:
            raise MemoryError()
    memset(table, 0xFF, size * sizeof(Py_ssize_t))  # every slot -1: empty
    try:
        for j in range(n):
            hashes[j] = jv_hash(keys[j], lengths[j])
            h = hashes[j] & mask
            while table[h] != -1:  # at most n entries in 2n slots: always terminates
                other = table[h]
                if (hashes[other] == hashes[j] and lengths[other] == lengths[j]
                        and memcmp(keys[other], keys[j], lengths[j]) == 0):
                    first[0] = other
                    return j
                h = (h + 1) & mask
            table[h] = j
        return -1
    finally:
        free(hashes)
        free(table)


def scan_ids(list ids not None, Py_ssize_t max_length=JV_MAX_ID_BYTES):
    """Check a list of ids in one C pass: the fast path of id validation.

    Returns ``(-1, -1)`` when every item is an exact ``str``, ASCII, of 1 to
    ``max_length`` characters, and no id repeats; ``(i, -1)`` when ``ids[i]``
    is not such a str (the caller checks it the slow way, for its message);
    ``(i, j)`` when ``ids[j]`` repeats ``ids[i]`` (the smallest such ``j``).
    The list must not change during the call (the caller passes its own copy).
    """
    cdef Py_ssize_t n = len(ids), i, length, dup, first = -1
    cdef object item
    cdef const char **keys = <const char **>malloc(n * sizeof(char *) + 1)
    cdef Py_ssize_t *lengths = <Py_ssize_t *>malloc(n * sizeof(Py_ssize_t) + 1)
    if keys == NULL or lengths == NULL:
        free(keys)
        free(lengths)
        raise MemoryError()
    try:
        for i in range(n):
            item = ids[i]
            if type(item) is not str or not PyUnicode_IS_ASCII(item):
                return (i, -1)
            length = PyUnicode_GET_LENGTH(item)
            if length < 1 or length > max_length:
                return (i, -1)
            keys[i] = <const char *>PyUnicode_DATA(item)
            lengths[i] = length
        with nogil:
            dup = first_duplicate(keys, lengths, n, &first)
        if dup < 0:
            return (-1, -1)
        return (first, dup)
    finally:
        free(keys)
        free(lengths)
