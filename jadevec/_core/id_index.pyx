"""The id hash table: strings to slot numbers, probed in C.

``IdIndex`` is the in-memory face of the table that ``VectorFile`` keeps in
``index.jvix`` (the same C code, jv_index.c, and the same 32-byte entries):
open addressing with linear probing on ``jv_hash`` of the UTF-8 id,
tombstones on delete, a rebuild at twice the size once live entries plus
tombstones pass 70 % of the table. Ids are stored per slot, so a hash match is
always confirmed by comparing the real id.

``hash_mask`` is for tests: ``hash_mask=0x3`` leaves four hash values, so
almost every id collides and the collision paths run.

Not thread-safe by itself; ``VectorFile`` guards its table with its lock.
"""

from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.stdint cimport UINT32_MAX, UINT64_MAX
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcmp, memcpy, memset

cimport numpy as cnp

from jadevec._core._types cimport int64_t, uint32_t, uint64_t
from jadevec._core.layout cimport (
    JV_ENTRY_LIVE,
    JV_FOUND,
    JV_MAX_ID_BYTES,
    jv_entry,
    jv_hash,
    jv_table,
    jv_table_find,
    jv_table_needs_grow,
    jv_table_put,
    jv_table_rehash_into,
    jv_table_remove,
    jv_table_size_for,
)

import numpy as np

from jadevec.errors import InvalidInputError

cnp.import_array()

__all__ = ["IdIndex", "hash_id", "scan_ids", "MAX_ID_BYTES"]

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


cdef int memory_key(void *ctx, uint32_t slot, const char **key, uint32_t *length) noexcept nogil:
    cdef KeyStore *keys = <KeyStore *>ctx
    if slot >= keys.n_keys or keys.key_length[slot] == 0:
        return -1
    key[0] = keys.arena + keys.key_offset[slot]
    length[0] = keys.key_length[slot]
    return 0


cdef class IdIndex:
    """In-memory id -> slot hash table (the table of ``index.jvix``).

    Parameters
    ----------
    capacity : int
        Ids to hold before the first rebuild.
    hash_mask : int
        AND-ed into every hash; for tests that force collisions.
    """

    def __cinit__(self, capacity=8, *, hash_mask=UINT64_MAX):
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        self.hash_mask = hash_mask
        self.table.size = jv_table_size_for(capacity)
        self.table.entries = <jv_entry *>calloc(self.table.size, sizeof(jv_entry))
        if self.table.entries == NULL:
            raise MemoryError()
        self.table.key = memory_key
        self.table.ctx = &self.keys

    def __dealloc__(self):
        free(self.table.entries)
        free(self.keys.arena)
        free(self.keys.key_offset)
        free(self.keys.key_length)

    cdef int _reserve_keys(self, uint64_t slot) except -1:
        cdef uint64_t n = self.keys.n_keys
        if slot < n:
            return 0
        cdef uint64_t want = max(2 * n, slot + 1)
        if want < 8:
            want = 8
        cdef uint64_t *off = <uint64_t *>realloc(self.keys.key_offset, want * sizeof(uint64_t))
        if off == NULL:
            raise MemoryError()
        self.keys.key_offset = off
        cdef uint32_t *ln = <uint32_t *>realloc(self.keys.key_length, want * sizeof(uint32_t))
        if ln == NULL:
            raise MemoryError()
        self.keys.key_length = ln
        for i in range(n, want):
            self.keys.key_length[i] = 0
        self.keys.n_keys = want
        return 0

    cdef int _grow_for(self, uint64_t more) except -1:
        if not jv_table_needs_grow(&self.table, more):
            return 0
        cdef jv_table fresh = self.table
        fresh.size = jv_table_size_for(self.table.live + more)
        fresh.entries = <jv_entry *>calloc(fresh.size, sizeof(jv_entry))
        if fresh.entries == NULL:
            raise MemoryError()
        if jv_table_rehash_into(&self.table, &fresh) != 0:
            free(fresh.entries)
            raise RuntimeError("id index rehash found no free entry")
        free(self.table.entries)
        self.table = fresh
        return 0

    cdef int _find(self, object vector_id, uint64_t *pos, const char **p,
                   uint32_t *n, uint64_t *h) except -2:
        utf8_id(vector_id, p, n, "vector_id")
        h[0] = jv_hash(p[0], n[0]) & self.hash_mask
        cdef int rc
        with nogil:
            rc = jv_table_find(&self.table, h[0], p[0], n[0], pos)
        if rc < 0:
            raise RuntimeError(f"id index probe failed ({rc})")
        return rc

    def insert(self, vector_id, slot):
        """Map ``vector_id`` to ``slot``; return the slot it replaced, or -1.

        ``slot`` (0 .. 2**32-2) must not belong to another id.
        """
        if not 0 <= slot < UINT32_MAX:
            raise ValueError(f"slot must be in 0..{UINT32_MAX - 1}, got {slot}")
        cdef uint64_t pos, h
        cdef const char *p
        cdef uint32_t n, s = slot
        cdef uint64_t size
        cdef char *grown
        self._grow_for(1)
        rc = self._find(vector_id, &pos, &p, &n, &h)
        cdef int64_t previous = -1
        if rc == JV_FOUND:
            previous = self.table.entries[pos].slot
            if previous == s:
                return previous
        if s < self.keys.n_keys and self.keys.key_length[s] != 0:
            raise ValueError(f"slot {slot} already holds another id")
        self._reserve_keys(s)
        if self.keys.arena_used + n > self.keys.arena_size:
            size = max(2 * self.keys.arena_size, self.keys.arena_used + n)
            if size < 4096:
                size = 4096
            grown = <char *>realloc(self.keys.arena, size)
            if grown == NULL:
                raise MemoryError()
            self.keys.arena = grown
            self.keys.arena_size = size
        memcpy(self.keys.arena + self.keys.arena_used, p, n)
        self.keys.key_offset[s] = self.keys.arena_used
        self.keys.key_length[s] = n
        self.keys.arena_used += n
        if previous >= 0:
            self.keys.key_length[previous] = 0
        jv_table_put(&self.table, pos, h, s, 0, 0, 0)
        return previous

    def get(self, vector_id, default=-1):
        """Return the slot of ``vector_id``, or ``default``."""
        cdef uint64_t pos, h
        cdef const char *p
        cdef uint32_t n
        if self._find(vector_id, &pos, &p, &n, &h) == JV_FOUND:
            return self.table.entries[pos].slot
        return default

    def delete(self, vector_id):
        """Remove ``vector_id`` (leaving a tombstone); return its slot or -1."""
        cdef uint64_t pos, h
        cdef const char *p
        cdef uint32_t n
        if self._find(vector_id, &pos, &p, &n, &h) != JV_FOUND:
            return -1
        cdef uint32_t s = self.table.entries[pos].slot
        jv_table_remove(&self.table, pos)
        self.keys.key_length[s] = 0
        return s

    def lookup(self, ids):
        """Return an int64 array of the slots of ``ids`` (-1 where absent)."""
        cdef Py_ssize_t i, m = len(ids)
        out = np.empty(m, dtype=np.int64)
        cdef int64_t[::1] res = out
        cdef uint64_t pos, h
        cdef const char *p
        cdef uint32_t n
        for i in range(m):
            if self._find(ids[i], &pos, &p, &n, &h) == JV_FOUND:
                res[i] = self.table.entries[pos].slot
            else:
                res[i] = -1
        return out

    def __len__(self):
        return self.table.live

    def __contains__(self, vector_id):
        cdef uint64_t pos, h
        cdef const char *p
        cdef uint32_t n
        if not isinstance(vector_id, str):
            return False
        return self._find(vector_id, &pos, &p, &n, &h) == JV_FOUND

    @property
    def table_size(self):
        """Entries in the table (a power of two)."""
        return self.table.size

    @property
    def tombstones(self):
        """Entries marking deleted ids."""
        return self.table.tombs

    def items(self):
        """Return ``[(id, slot), ...]`` in table order."""
        out = []
        cdef uint64_t i
        cdef uint32_t s
        cdef uint64_t start
        for i in range(self.table.size):
            if self.table.entries[i].flags == JV_ENTRY_LIVE:
                s = self.table.entries[i].slot
                start = self.keys.key_offset[s]
                key = self.keys.arena[start:start + self.keys.key_length[s]]
                out.append((key.decode("utf-8"), s))
        return out
