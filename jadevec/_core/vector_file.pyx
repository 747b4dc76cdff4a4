"""The vector file set: rows, slot records, the persisted id index, id strings.

docs/vector_file_format.md specifies every byte; this module follows it.
Invariants:

* The slot records are the truth; ``index.jvix`` is a cache of them and the
  commit record a checkpoint marker. Writes go row, slot record, entry.
* An update writes a fresh slot and flips the entry; a freed slot passes
  through *pending* and *cooling* and is reused only after two checkpoints
  (see "Slot life cycle" in the doc).
* Nothing read from disk is trusted: headers are read with ``pread`` and
  checked before anything is mapped; every slot number, offset and length
  from a mapped entry or record is bounds-checked before use.

Thread rules: one reader-writer lock per file, always taken with the GIL
released (``with nogil``), so no thread ever blocks on it while holding the
GIL. Readers run in parallel; writers and checkpoints are serialised. Code
under the lock is C; failures come back as a ``Status`` and become typed
errors in ``raise_status`` after the lock is released.
"""

cimport cython
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.errno cimport ENOMEM
from libc.stdint cimport UINT64_MAX
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy, memset

cimport numpy as cnp

from jadevec._core._types cimport float32_t, int64_t, uint8_t, uint32_t, uint64_t
from jadevec._core.id_index cimport utf8_id
from jadevec._core.layout cimport (
    JV_ABSENT,
    JV_COMMIT_B_OFFSET,
    JV_ENTRY_LIVE,
    JV_ERR_ENTRY,
    JV_ERR_KEY,
    JV_FILE_HEADER,
    JV_FORMAT_VERSION,
    JV_FOUND,
    JV_HEADER_PAGE,
    JV_MAX_DIMENSION,
    JV_MAX_SLOTS,
    JV_SLOT_DELETED,
    JV_SLOT_LIVE,
    JV_STATE_CLEAN,
    JV_STATE_DIRTY,
    jv_crc32c,
    jv_crc32c_force_software,
    jv_entry,
    jv_commit,
    jv_commit_fill,
    jv_hash,
    jv_id_append,
    jv_id_record_size,
    jv_ids_header,
    jv_ids_header_fill,
    jv_index_header,
    jv_index_header_fill,
    jv_key_of_slot,
    jv_slot_seal,
    jv_slot_supersede,
    jv_slots_header,
    jv_slots_header_fill,
    jv_slot,
    jv_table_find,
    jv_table_insert_new,
    jv_table_needs_grow,
    jv_table_put,
    jv_table_remove,
    jv_table_size_for,
)
from jadevec._core.mapped_file cimport (
    MappedFile,
    jv_fsync_dir,
    jv_prefault_write,
    jv_rdlock,
    jv_rwlock_destroy,
    jv_rwlock_init,
    jv_unlock,
    jv_wrlock,
    raise_os_error,
)

import os

import numpy as np

from jadevec.errors import (
    CorruptionError,
    DimensionMismatchError,
    InvalidInputError,
    StorageFullError,
    StoreClosedError,
    StoreFailedError,
    VectorNotFoundError,
)

cnp.import_array()

__all__ = ["VectorFile", "crc32c", "FILE_NAMES", "FORMAT_VERSION"]

FILE_NAMES = ("vectors.jvdb", "slots.jvsl", "index.jvix", "ids.jvid")
FORMAT_VERSION = JV_FORMAT_VERSION

# Address space reserved for a mapping: 64 GiB (vectors) or 4 GiB (the
# others), or four times the file; PROT_NONE, so it costs no memory.
cdef uint64_t RESERVE_VECTORS = 64ULL << 30
cdef uint64_t RESERVE_OTHER = 4ULL << 30


def crc32c(data, crc=0):
    """Return the CRC32C of ``data`` (bytes-like), continuing ``crc``."""
    cdef const unsigned char[::1] view = memoryview(data).cast("B")
    if view.shape[0] == 0:
        return crc
    return jv_crc32c(crc, &view[0], view.shape[0])


def _crc32c_force_software(bint force):
    """Test hook: use the portable CRC32C (True) or the best one (False)."""
    return bool(jv_crc32c_force_software(force))


cdef int raise_status(VectorFile vf, const Status *st) except -1:
    """Turn a failed Status into the typed exception, naming file and field."""
    path = os.path.join(vf.path, FILE_NAMES[st.file])
    what = st.what.decode("ascii") if st.what != NULL else ""
    if st.code == ST_OS:
        return raise_os_error(st.err, what, path)
    if st.code == ST_CORRUPT:
        raise CorruptionError(f"{path}: {what} (at {st.where})")
    if st.code == ST_CLOSED:
        raise StoreClosedError(f"{vf.path}: the vector file is closed")
    if st.code == ST_READONLY:
        raise PermissionError(f"{vf.path}: the vector file was opened read-only")
    if st.code == ST_FAILED:
        raise StoreFailedError(
            f"{vf.path}: an earlier sync failed; reopen the file to recover it")
    if st.code == ST_FULL:
        raise StorageFullError(f"{path}: {what}")
    raise RuntimeError(f"{path}: unknown status {st.code}")


cdef int list_reserve(SlotList *l, uint64_t extra) noexcept nogil:
    cdef uint64_t want = l.n + extra
    cdef uint32_t *items
    if want <= l.size:
        return 0
    if want < 2 * l.size:
        want = 2 * l.size
    if want < 64:
        want = 64
    items = <uint32_t *>realloc(l.items, want * sizeof(uint32_t))
    if items == NULL:
        return -1
    l.items = items
    l.size = want
    return 0


cdef inline void list_push(SlotList *l, uint32_t slot) noexcept nogil:
    # Callers reserved room first, so a push never fails mid-write.
    l.items[l.n] = slot
    l.n += 1


cdef void list_free(SlotList *l) noexcept nogil:
    free(l.items)
    l.items = NULL
    l.n = 0
    l.size = 0


cdef object as_rows(object values, uint32_t dim, int ndim, str argument):
    """Return values as a C-contiguous float32 array of ``ndim`` dims, width dim."""
    if not (isinstance(values, np.ndarray) and values.dtype == np.float32
            and values.flags.c_contiguous):
        try:
            values = np.ascontiguousarray(values, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"{argument} must be numbers: {exc}") from None
    if values.ndim != ndim:
        raise InvalidInputError(
            f"{argument} must have {ndim} dimension(s), got shape {values.shape}")
    if values.shape[ndim - 1] != dim:
        raise DimensionMismatchError(
            f"{argument} must have {dim} values per vector, got shape {values.shape}")
    return values


# The UTF-8 bytes and masked hashes of a batch of ids, borrowed from the str
# objects (the caller keeps the list alive); freed by ids_free.
ctypedef struct IdBatch:
    Py_ssize_t n
    const char **keys
    uint32_t *lengths
    uint64_t *hashes
    uint64_t record_bytes    # ids.jvid bytes if every id were new


cdef object id_list(object ids):
    return ids if isinstance(ids, (list, tuple)) else list(ids)


cdef int ids_encode(object ids, uint64_t mask, IdBatch *b) except -1:
    """Check every id of the list ``ids`` (errors name ``ids[i]``) and hash it."""
    cdef Py_ssize_t i, m = len(ids)
    memset(b, 0, sizeof(IdBatch))
    b.keys = <const char **>malloc(max(m, 1) * sizeof(char *))
    b.lengths = <uint32_t *>malloc(max(m, 1) * sizeof(uint32_t))
    b.hashes = <uint64_t *>malloc(max(m, 1) * sizeof(uint64_t))
    if b.keys == NULL or b.lengths == NULL or b.hashes == NULL:
        raise MemoryError()
    for i in range(m):
        utf8_id(ids[i], &b.keys[i], &b.lengths[i], "ids", i)
        b.hashes[i] = jv_hash(b.keys[i], b.lengths[i]) & mask
        b.record_bytes += jv_id_record_size(b.lengths[i])
        b.n = i + 1
    return 0


cdef void ids_free(IdBatch *b) noexcept nogil:
    free(b.keys)
    free(b.lengths)
    free(b.hashes)
    memset(b, 0, sizeof(IdBatch))


@cython.final
cdef class VectorFile:
    """One database's vector file set (see docs/vector_file_format.md).

    Make one with :meth:`create` or :meth:`open`. Every method is safe to
    call from several threads: readers run in parallel without the GIL,
    writers are serialised.

    Attributes
    ----------
    path : str
        The folder of the four files.
    dimension : int
        Values per vector.
    row_stride : int
        Bytes from one row to the next (``dimension * 4`` rounded up to 64).
    capacity : int
        Slots the files are sized for.
    high_water : int
        Slots used so far (rows ``0 .. high_water-1`` may hold data).
    generation : int
        Generation of the last commit record written or read.
    closed, read_only : bool
        Whether the file set was closed / opened read-only.
    failed : bool
        Whether a sync failed; writes are refused until the file is reopened.
    """

    def __cinit__(self):
        self.closed = True
        # A bare VectorFile() (never created or opened) is closed; its errors
        # still need a path to name.
        self.path = "<VectorFile not opened>"
        self.hash_mask = UINT64_MAX
        self.check_reads = True
        self._report = None
        if jv_rwlock_init(&self.lock) != 0:
            raise MemoryError("cannot create the vector file lock")
        self.lock_ready = True

    def __dealloc__(self):
        cdef Status st
        if not self.closed:
            # Best effort for a file nobody closed: a failure leaves it dirty,
            # and the next open recovers it.
            self.close_locked(&st)
        list_free(&self.free_slots)
        list_free(&self.pending)
        list_free(&self.cooling)
        free(self.skip_mask)
        if self.lock_ready:
            jv_rwlock_destroy(&self.lock)

    # -- construction --------------------------------------------------------

    @classmethod
    def create(cls, path, dimension, capacity=MIN_CAPACITY, *, hash_mask=UINT64_MAX):
        """Create a new, empty file set in the folder ``path`` and open it.

        Parameters
        ----------
        path : str or os.PathLike
            Folder for the four files; made if missing; the files must not exist.
        dimension : int
            Values per vector, 1 to 65,536.
        capacity : int
            Slots to allocate up front (at least 64).
        hash_mask : int
            Test hook: AND-ed into every id hash to force collisions. A file
            must be opened with the mask it was created with.
        """
        if not isinstance(dimension, int) or not 1 <= dimension <= JV_MAX_DIMENSION:
            raise InvalidInputError(
                f"dimension must be an int from 1 to {JV_MAX_DIMENSION}, got {dimension!r}")
        if not isinstance(capacity, int) or not 0 <= capacity <= JV_MAX_SLOTS:
            raise InvalidInputError(
                f"capacity must be an int from 0 to {JV_MAX_SLOTS}, got {capacity!r}")
        cdef VectorFile self = VectorFile.__new__(VectorFile)
        self.path = os.fsdecode(os.fspath(path))
        self.hash_mask = hash_mask
        os.makedirs(self.path, exist_ok=True)
        self.dimension = dimension
        self.row_stride = row_stride_for(self.dimension)
        self.capacity = max(capacity, MIN_CAPACITY)
        cdef uint64_t table_size = jv_table_size_for(self.capacity)
        cdef uint64_t vec_size = JV_HEADER_PAGE + <uint64_t>self.capacity * self.row_stride
        created = []
        cdef Status st
        cdef int rc
        try:
            self.vec = MappedFile(self._file(FILE_VEC), create=True, size=vec_size,
                                  reserve=max(RESERVE_VECTORS, 4 * vec_size))
            created.append(self.vec)
            self.slots = MappedFile(self._file(FILE_SLOTS), create=True,
                                    size=JV_FILE_HEADER + <uint64_t>self.capacity * SLOT_RECORD,
                                    reserve=RESERVE_OTHER)
            created.append(self.slots)
            self.index = MappedFile(self._file(FILE_INDEX), create=True,
                                    size=JV_FILE_HEADER + table_size * sizeof(jv_entry),
                                    reserve=RESERVE_OTHER)
            created.append(self.index)
            self.idfile = MappedFile(self._file(FILE_IDS), create=True,
                                     size=JV_FILE_HEADER + <uint64_t>self.capacity * 32,
                                     reserve=RESERVE_OTHER)
            created.append(self.idfile)
            self.table.size = table_size
            self.next_seq = 1
            self.ids_end = JV_FILE_HEADER
            self.free_ready = True
            self.closed = False
            self.dirty = True
            self.refresh()
            # Two checkpoints, as a clean close does: both commit records
            # valid, the second one clean.
            with nogil:
                rc = self.checkpoint_locked(JV_STATE_DIRTY, &st)
                if rc == 0:
                    rc = self.checkpoint_locked(JV_STATE_CLEAN, &st)
            if rc:
                raise_status(self, &st)
            self.dirty = False
            self.sync_dir()
        except BaseException:
            self.closed = True
            for f in created:
                f.close()
                os.unlink(f.path)
            raise
        return self

    @classmethod
    def open(cls, path, *, bint read_only=False, bint check_reads=True,
             hash_mask=UINT64_MAX):
        """Open an existing file set; recover it first if it was not closed cleanly.

        Parameters
        ----------
        path : str or os.PathLike
            The folder holding the four files.
        read_only : bool
            Map read-only; writes raise ``PermissionError``. A file that needs
            recovery is opened as it is (``recovery_report`` says so).
        check_reads : bool
            Check each vector's CRC32C when it is read (a damaged row raises
            ``CorruptionError`` instead of returning wrong values).
        hash_mask : int
            The test hook given to :meth:`create`.

        Raises
        ------
        CorruptionError
            A header, size or checksum check failed; the message names the
            file and the field.
        UnsupportedVersionError
            The files were written by a newer format version.
        """
        cdef VectorFile self = VectorFile.__new__(VectorFile)
        self.path = os.fsdecode(os.fspath(path))
        self.hash_mask = hash_mask
        self.read_only = read_only
        self.check_reads = check_reads
        opened = []
        try:
            for i in range(4):
                name = self._file(i)
                if not os.path.exists(name):
                    if i == FILE_VEC and not os.path.isdir(self.path):
                        raise FileNotFoundError(2, "no vector file set here", self.path)
                    raise CorruptionError(f"{name}: file is missing from the file set")
                size = os.path.getsize(name)
                reserve = RESERVE_VECTORS if i == FILE_VEC else RESERVE_OTHER
                opened.append(MappedFile(name, read_only=read_only,
                                         reserve=max(reserve, 4 * size)))
            self.vec, self.slots, self.index, self.idfile = opened
            recovery.load(self)
        except BaseException:
            for f in opened:
                f.close()
            raise
        return self

    cdef str _file(self, int which):
        return os.path.join(self.path, FILE_NAMES[which])

    cdef int sync_dir(self) except -1:
        cdef bytes p = os.fsencode(self.path)
        cdef int rc = jv_fsync_dir(p)
        if rc:
            raise_os_error(rc, "fsync", self.path)
        return 0

    cdef void refresh(self) noexcept nogil:
        """Point the table and key view at the current mappings."""
        self.table.entries = <jv_entry *>(self.index.map.base + JV_FILE_HEADER)
        self.table.key = jv_key_of_slot
        self.table.ctx = &self.keys
        self.keys.slots = self.slots.map.base
        self.keys.ids = self.idfile.map.base
        self.keys.ids_size = self.idfile._size
        self.keys.high_water = self.high_water

    cdef object corrupt(self, int which, str message):
        return CorruptionError(f"{self._file(which)}: {message}")

    # -- the write path (called with the writer lock held) --------------------

    cdef int build_free_locked(self, Status *st) noexcept nogil:
        """Free slots: every slot below high_water the index does not use."""
        cdef uint32_t s
        cdef uint64_t i
        cdef uint8_t *used
        list_free(&self.free_slots)
        if list_reserve(&self.free_slots, self.high_water) != 0:
            return fail_os(st, ENOMEM, FILE_SLOTS, "allocate the free list")
        used = <uint8_t *>malloc(self.high_water + 1)
        if used == NULL:
            return fail_os(st, ENOMEM, FILE_SLOTS, "allocate the free list")
        memset(used, 0, self.high_water + 1)
        for i in range(self.table.size):
            if (self.table.entries[i].flags == JV_ENTRY_LIVE
                    and self.table.entries[i].slot < self.high_water):
                used[self.table.entries[i].slot] = 1
        # Highest slots first on the stack, so reuse starts at the low ones.
        s = self.high_water
        while s > 0:
            s -= 1
            if not used[s]:
                list_push(&self.free_slots, s)
        free(used)
        self.free_ready = True
        return 0

    cdef int write_commit(self, uint32_t state, Status *st) noexcept nogil:
        """Write and sync commit record gen+1 in its alternate place."""
        cdef jv_commit c
        cdef uint64_t offset
        cdef int rc
        jv_commit_fill(&c, self.dimension, state, self.table.live, self.generation + 1,
                       self.capacity, self.high_water, self.row_stride)
        offset = JV_COMMIT_B_OFFSET if c.generation % 2 else 0
        memcpy(self.vec.map.base + offset, &c, sizeof(c))
        rc = self.vec.c_sync(offset, sizeof(c), False)
        if rc:
            self.failed = True
            return fail_os(st, rc, FILE_VEC, "msync of the commit record")
        self.generation = c.generation
        return 0

    cdef int begin_write(self, Status *st) noexcept nogil:
        """Refuse writes on closed, read-only or failed files; mark dirty durably."""
        if self.closed:
            return fail(st, ST_CLOSED, FILE_VEC, NULL, 0)
        if self.read_only:
            return fail(st, ST_READONLY, FILE_VEC, NULL, 0)
        if self.failed:
            return fail(st, ST_FAILED, FILE_VEC, NULL, 0)
        if not self.free_ready and self.build_free_locked(st) != 0:
            return -1
        if not self.dirty:
            if self.write_commit(JV_STATE_DIRTY, st) != 0:
                return -1
            self.dirty = True
        return 0

    cdef int rehash_locked(self, uint64_t more, Status *st) noexcept nogil:
        """Rebuild the table at the size for live + more entries, dropping tombstones."""
        cdef uint64_t size = jv_table_size_for(self.table.live + more)
        cdef uint64_t i, n = 0
        cdef jv_entry *keep = NULL
        cdef int rc
        if self.table.live:
            keep = <jv_entry *>malloc(self.table.live * sizeof(jv_entry))
            if keep == NULL:
                return fail_os(st, ENOMEM, FILE_INDEX, "allocate for a rehash")
            for i in range(self.table.size):
                if self.table.entries[i].flags == JV_ENTRY_LIVE and n < self.table.live:
                    keep[n] = self.table.entries[i]
                    n += 1
        rc = self.index.c_grow(JV_FILE_HEADER + size * sizeof(jv_entry))
        if rc:
            free(keep)
            return fail_os(st, rc, FILE_INDEX, "grow")
        self.refresh()
        # From here the table is rebuilt in place; a kill leaves a dirty file
        # whose index the next open rebuilds from the slot records.
        memset(self.table.entries, 0, size * sizeof(jv_entry))
        self.table.size = size
        self.table.live = 0
        self.table.tombs = 0
        for i in range(n):
            jv_table_insert_new(&self.table, &keep[i])
        free(keep)
        return 0

    cdef int reserve(self, uint64_t vectors, uint64_t id_bytes, Status *st) noexcept nogil:
        """Grow everything once so that `vectors` stores cannot fail halfway."""
        cdef uint64_t need, new_cap, size
        cdef uint8_t *mask
        cdef int rc
        if vectors > self.free_slots.n:
            need = <uint64_t>self.high_water + vectors - self.free_slots.n
            if need > self.capacity:
                if need > JV_MAX_SLOTS:
                    return fail(st, ST_FULL, FILE_VEC, "more than 2**32-2 slots", need)
                new_cap = max(need, 2 * <uint64_t>self.capacity)
                new_cap = min(max(new_cap, <uint64_t>MIN_CAPACITY), <uint64_t>JV_MAX_SLOTS)
                rc = self.vec.c_grow(JV_HEADER_PAGE + new_cap * self.row_stride)
                if rc:
                    return fail_os(st, rc, FILE_VEC, "grow")
                rc = self.slots.c_grow(JV_FILE_HEADER + new_cap * SLOT_RECORD)
                if rc:
                    return fail_os(st, rc, FILE_SLOTS, "grow")
                if self.skip_mask != NULL:
                    mask = <uint8_t *>realloc(self.skip_mask, new_cap)
                    if mask == NULL:
                        return fail_os(st, ENOMEM, FILE_VEC, "grow the live mask")
                    memset(mask + self.skip_size, 1, new_cap - self.skip_size)
                    self.skip_mask = mask
                    self.skip_size = <uint32_t>new_cap
                self.capacity = <uint32_t>new_cap
        if jv_table_needs_grow(&self.table, vectors):
            if self.rehash_locked(vectors, st) != 0:
                return -1
        if self.ids_end + id_bytes > self.idfile._size:
            size = max(self.ids_end + id_bytes, 2 * self.idfile._size)
            rc = self.idfile.c_grow(size)
            if rc:
                return fail_os(st, rc, FILE_IDS, "grow")
        if list_reserve(&self.pending, vectors) != 0:
            return fail_os(st, ENOMEM, FILE_SLOTS, "allocate the pending list")
        self.refresh()
        return 0

    cdef void prefault_append(self, uint64_t vectors) noexcept nogil:
        """Fault in the rows and slot records a batch appends past high_water.

        reserve() allocated them in the files; populating them in one call
        replaces a page fault per fresh page. A hint: failures are ignored.
        """
        cdef uint64_t n = vectors - min(vectors, self.free_slots.n)
        if n < 64:
            return
        jv_prefault_write(self.row(self.high_water), n * self.row_stride)
        jv_prefault_write(self.slot_rec(self.high_water), n * SLOT_RECORD)

    cdef int table_error(self, int rc, uint64_t pos, Status *st) noexcept nogil:
        if rc == JV_ERR_ENTRY:
            return fail(st, ST_CORRUPT, FILE_INDEX, "index entry checksum or flags", pos)
        if rc == JV_ERR_KEY:
            return fail(st, ST_CORRUPT, FILE_SLOTS,
                        "slot or id reference of an index entry out of bounds (index entry)",
                        pos)
        return fail(st, ST_CORRUPT, FILE_INDEX, "hash table has no empty entry", 0)

    cdef int put_locked(self, uint64_t h, const char *key, uint32_t n, const float32_t *values,
                        bint must_exist, Status *st) noexcept nogil:
        """Store one vector (reserve() done). 0 new, 1 replaced, 2 absent (must_exist)."""
        cdef uint64_t pos, id_offset, seq
        cdef uint32_t slot, old = 0
        cdef jv_slot rec
        cdef uint32_t vbytes = self.dimension * 4
        cdef int rc = jv_table_find(&self.table, h, key, n, &pos)
        if rc < 0:
            return self.table_error(rc, pos, st)
        if rc == JV_ABSENT and must_exist:
            return 2
        if rc == JV_FOUND:
            old = self.table.entries[pos].slot
            id_offset = self.slot_rec(old).id_offset
        else:
            id_offset = self.ids_end
            self.ids_end = jv_id_append(self.idfile.map.base, id_offset, key, n)
        if self.free_slots.n:
            self.free_slots.n -= 1
            slot = self.free_slots.items[self.free_slots.n]
        else:
            slot = self.high_water
            self.high_water += 1
            self.keys.high_water = self.high_water
        memcpy(self.row(slot), values, vbytes)
        seq = self.next_seq
        self.next_seq += 1
        rec.id_offset = id_offset
        rec.id_length = n
        rec.flags = JV_SLOT_LIVE
        rec.sequence = seq
        rec.vector_crc = jv_crc32c(0, values, vbytes)
        jv_slot_seal(&rec)
        memcpy(self.slot_rec(slot), &rec, sizeof(rec))
        jv_table_put(&self.table, pos, h, slot, vbytes, rec.vector_crc, <uint32_t>seq)
        if self.skip_mask != NULL:
            self.skip_mask[slot] = 0
        if rc == JV_FOUND:
            list_push(&self.pending, old)
            if self.skip_mask != NULL:
                self.skip_mask[old] = 1
            return 1
        return 0

    cdef int delete_locked(self, uint64_t h, const char *key, uint32_t n,
                           Status *st) noexcept nogil:
        """Delete one id: 1 deleted, 0 absent."""
        cdef uint64_t pos
        cdef uint32_t slot
        cdef jv_slot *rec
        cdef int rc = jv_table_find(&self.table, h, key, n, &pos)
        if rc < 0:
            return self.table_error(rc, pos, st)
        if rc == JV_ABSENT:
            return 0
        if list_reserve(&self.pending, 1) != 0:
            return fail_os(st, ENOMEM, FILE_SLOTS, "allocate the pending list")
        slot = self.table.entries[pos].slot
        rec = self.slot_rec(slot)
        # The tombstone carries the delete's sequence, newer than every version.
        rec.flags = JV_SLOT_DELETED
        rec.sequence = self.next_seq
        self.next_seq += 1
        jv_slot_seal(rec)
        jv_table_remove(&self.table, pos)
        list_push(&self.pending, slot)
        if self.skip_mask != NULL:
            self.skip_mask[slot] = 1
        return 1

    cdef int get_locked(self, uint64_t h, const char *key, uint32_t n, float32_t *out,
                        Status *st) noexcept nogil:
        """Copy one vector out: 1 found, 0 absent."""
        cdef uint64_t pos
        cdef const jv_entry *e
        cdef int rc
        if self.closed:
            return fail(st, ST_CLOSED, FILE_VEC, NULL, 0)
        rc = jv_table_find(&self.table, h, key, n, &pos)
        if rc < 0:
            return self.table_error(rc, pos, st)
        if rc == JV_ABSENT:
            return 0
        e = &self.table.entries[pos]
        # file_key already checked e.slot < high_water.
        memcpy(out, self.row(e.slot), self.dimension * 4)
        if self.check_reads and jv_crc32c(0, out, self.dimension * 4) != e.vector_crc:
            return fail(st, ST_CORRUPT, FILE_VEC, "vector checksum mismatch (slot)", e.slot)
        return 1

    cdef int sync_files(self, bint async_, uint64_t rows_from, const char *what,
                        Status *st) noexcept nogil:
        """msync slots, index and ids whole, then the vectors file from rows_from."""
        cdef int rc = self.slots.c_sync(0, self.slots._size, async_)
        cdef int which = FILE_SLOTS
        if rc == 0:
            rc = self.index.c_sync(0, self.index._size, async_)
            which = FILE_INDEX
        if rc == 0:
            rc = self.idfile.c_sync(0, self.idfile._size, async_)
            which = FILE_IDS
        if rc == 0:
            rc = self.vec.c_sync(rows_from, self.vec._size, async_)
            which = FILE_VEC
        if rc:
            return fail_os(st, rc, which, what)
        return 0

    cdef int checkpoint_locked(self, uint32_t state, Status *st) noexcept nogil:
        """Headers, sync of every file, commit record, then the slot life cycle."""
        cdef jv_slots_header sh
        cdef jv_index_header ih
        cdef jv_ids_header dh
        cdef uint64_t g = self.generation + 1, i
        cdef SlotList swap
        if self.failed:
            return fail(st, ST_FAILED, FILE_VEC, NULL, 0)
        jv_slots_header_fill(&sh, g, self.next_seq, self.dimension)
        memcpy(self.slots.map.base, &sh, sizeof(sh))
        jv_index_header_fill(&ih, g, self.table.size, self.table.live, self.table.tombs)
        memcpy(self.index.map.base, &ih, sizeof(ih))
        jv_ids_header_fill(&dh, g, self.ids_end)
        memcpy(self.idfile.map.base, &dh, sizeof(dh))
        # Rows: the header page is written after, on its own.
        if self.sync_files(False, JV_HEADER_PAGE, "msync", st) != 0:
            # fsyncgate: a failed sync cannot be retried safely.
            self.failed = True
            return -1
        if self.write_commit(state, st) != 0:
            return -1
        # The commit is durable: advance the slot life cycle.
        for i in range(self.pending.n):
            jv_slot_supersede(self.slot_rec(self.pending.items[i]))
        if self.cooling.n and list_reserve(&self.free_slots, self.cooling.n) == 0:
            for i in range(self.cooling.n):
                list_push(&self.free_slots, self.cooling.items[i])
            self.cooling.n = 0
        if self.cooling.n == 0:
            swap = self.cooling
            self.cooling = self.pending
            self.pending = swap
        return 0

    cdef int close_locked(self, Status *st) noexcept nogil:
        """Two checkpoints (the second clean) if written, then unmap. Lock held."""
        cdef int rc = 0
        if self.closed:
            return 0
        if self.dirty and not self.failed and not self.read_only:
            rc = self.checkpoint_locked(JV_STATE_DIRTY, st)
            if rc == 0:
                rc = self.checkpoint_locked(JV_STATE_CLEAN, st)
        self.closed = True
        self.vec.c_close()
        self.slots.c_close()
        self.index.c_close()
        self.idfile.c_close()
        return rc

    # -- Python face ---------------------------------------------------------

    cdef int check_open(self) except -1:
        if self.closed:
            raise StoreClosedError(f"{self.path}: the vector file is closed")
        return 0

    @property
    def recovery_report(self):
        """``None`` after a clean open, else a dict saying what recovery did."""
        return self._report

    def __len__(self):
        return self.table.live

    def __contains__(self, vector_id):
        if not isinstance(vector_id, str):
            return False
        try:
            return self.slot_of(vector_id) >= 0
        except InvalidInputError:
            return False

    def put(self, vector_id, values):
        """Store ``values`` under ``vector_id``, replacing any vector it had.

        Returns
        -------
        bool
            Whether an existing vector was replaced.
        """
        return self._put(vector_id, values, False) == 1

    def update(self, vector_id, values):
        """Replace the vector of an existing id, atomically.

        Raises
        ------
        VectorNotFoundError
            The id has no vector; nothing is written.
        """
        if self._put(vector_id, values, True) == 2:
            raise VectorNotFoundError(f"no vector with id {vector_id!r}")

    cdef int _put(self, object vector_id, object values, bint must_exist) except -1:
        cdef const char *key
        cdef uint32_t n
        cdef Status st
        cdef int rc
        utf8_id(vector_id, &key, &n, "vector_id")
        values = as_rows(values, self.dimension, 1, "values")
        cdef const float32_t[::1] v = values
        cdef uint64_t h = jv_hash(key, n) & self.hash_mask
        with nogil:
            jv_wrlock(&self.lock)
            rc = self.begin_write(&st)
            if rc == 0:
                rc = self.reserve(1, jv_id_record_size(n), &st)
            if rc == 0:
                rc = self.put_locked(h, key, n, &v[0], must_exist, &st)
            jv_unlock(&self.lock)
        if rc < 0:
            raise_status(self, &st)
        return rc

    def put_batch(self, ids, vectors):
        """Store many vectors: one growth, then one C loop.

        Parameters
        ----------
        ids : sequence of str
            A duplicate id is stored in order, so its last vector wins.
        vectors : array-like, shape (len(ids), dimension)

        Returns
        -------
        int
            How many existing ids were replaced.
        """
        ids = id_list(ids)
        cdef Py_ssize_t i, m = len(ids)
        vectors = as_rows(vectors, self.dimension, 2, "vectors")
        if vectors.shape[0] != m:
            raise InvalidInputError(
                f"vectors has {vectors.shape[0]} rows for {m} ids")
        if m == 0:
            return 0
        # as_rows gave a C-contiguous float32 array; a raw pointer (not a
        # memoryview) because a closed file has dimension 0 and put_locked
        # refuses it before reading anything.
        cdef const float32_t *rows = <const float32_t *>cnp.PyArray_DATA(vectors)
        cdef Py_ssize_t dim = self.dimension
        cdef uint64_t replaced = 0
        cdef IdBatch b
        cdef Status st
        cdef int rc = 0
        try:
            ids_encode(ids, self.hash_mask, &b)
            with nogil:
                jv_wrlock(&self.lock)
                rc = self.begin_write(&st)
                if rc == 0:
                    rc = self.reserve(m, b.record_bytes, &st)
                if rc == 0:
                    self.prefault_append(m)
                    for i in range(m):
                        rc = self.put_locked(b.hashes[i], b.keys[i], b.lengths[i], rows + i * dim,
                                             False, &st)
                        if rc < 0:
                            break
                        replaced += rc
                jv_unlock(&self.lock)
        finally:
            ids_free(&b)
        if rc < 0:
            raise_status(self, &st)
        return replaced

    def get(self, vector_id):
        """Return a copy of the vector of ``vector_id`` (float32), or ``None``."""
        cdef const char *key
        cdef uint32_t n
        cdef Status st
        cdef int rc
        utf8_id(vector_id, &key, &n, "vector_id")
        cdef cnp.ndarray out = cnp.PyArray_EMPTY(1, [self.dimension], cnp.NPY_FLOAT32, 0)
        cdef float32_t *dst = <float32_t *>cnp.PyArray_DATA(out)
        cdef uint64_t h = jv_hash(key, n) & self.hash_mask
        with nogil:
            jv_rdlock(&self.lock)
            rc = self.get_locked(h, key, n, dst, &st)
            jv_unlock(&self.lock)
        if rc < 0:
            raise_status(self, &st)
        return out if rc else None

    def get_batch(self, ids):
        """Copy many vectors out.

        Returns
        -------
        vectors : numpy.ndarray, float32, shape (len(ids), dimension)
            Rows of absent ids are left uninitialised.
        found : numpy.ndarray, bool, shape (len(ids),)
        """
        ids = id_list(ids)
        cdef Py_ssize_t i, m = len(ids), dim = self.dimension
        out = np.empty((m, dim), dtype=np.float32)
        found = np.zeros(m, dtype=np.bool_)
        if m == 0:
            return out, found
        # A raw pointer, not a memoryview: a closed (or never opened) file has
        # dimension 0, and get_locked refuses it before writing anything.
        cdef float32_t *dst = <float32_t *>cnp.PyArray_DATA(out)
        cdef uint8_t[::1] hit = found.view(np.uint8)
        cdef IdBatch b
        cdef Status st
        cdef int rc = 0
        try:
            ids_encode(ids, self.hash_mask, &b)
            with nogil:
                jv_rdlock(&self.lock)
                for i in range(m):
                    rc = self.get_locked(b.hashes[i], b.keys[i], b.lengths[i], dst + i * dim, &st)
                    if rc < 0:
                        break
                    hit[i] = rc
                jv_unlock(&self.lock)
        finally:
            ids_free(&b)
        if rc < 0:
            raise_status(self, &st)
        return out, found

    def delete(self, vector_id):
        """Delete ``vector_id``; return whether it existed."""
        cdef const char *key
        cdef uint32_t n
        cdef Status st
        cdef int rc
        utf8_id(vector_id, &key, &n, "vector_id")
        cdef uint64_t h = jv_hash(key, n) & self.hash_mask
        with nogil:
            jv_wrlock(&self.lock)
            rc = self.begin_write(&st)
            if rc == 0:
                rc = self.delete_locked(h, key, n, &st)
            jv_unlock(&self.lock)
        if rc < 0:
            raise_status(self, &st)
        return rc == 1

    def slot_of(self, vector_id):
        """Return the slot (row number) holding ``vector_id``, or -1."""
        return int(self.slots_of([vector_id])[0])

    def slots_of(self, ids):
        """Return an int64 array of the slots of ``ids`` (-1 where absent)."""
        ids = id_list(ids)
        cdef Py_ssize_t i, m = len(ids)
        out = np.full(m, -1, dtype=np.int64)
        if m == 0:
            return out
        cdef int64_t[::1] res = out
        cdef uint64_t pos
        cdef IdBatch b
        cdef Status st
        cdef int rc = 0
        try:
            ids_encode(ids, self.hash_mask, &b)
            with nogil:
                jv_rdlock(&self.lock)
                if self.closed:
                    rc = fail(&st, ST_CLOSED, FILE_VEC, NULL, 0)
                else:
                    for i in range(m):
                        rc = jv_table_find(&self.table, b.hashes[i], b.keys[i], b.lengths[i],
                                           &pos)
                        if rc < 0:
                            rc = self.table_error(rc, pos, &st)
                            break
                        if rc == JV_FOUND:
                            res[i] = self.table.entries[pos].slot
                jv_unlock(&self.lock)
        finally:
            ids_free(&b)
        if rc < 0:
            raise_status(self, &st)
        return out

    cdef str id_of_slot(self, uint32_t slot):
        """The id stored in a slot (lock held, slot < high_water)."""
        cdef const char *key
        cdef uint32_t n
        if jv_key_of_slot(&self.keys, slot, &key, &n) != 0:
            raise self.corrupt(FILE_SLOTS, f"slot {slot}: id reference out of bounds")
        try:
            return PyUnicode_DecodeUTF8(key, n, "strict")
        except UnicodeDecodeError:
            raise self.corrupt(FILE_IDS, f"id of slot {slot} is not UTF-8") from None

    def ids(self):
        """Return every live id (in no particular order)."""
        cdef uint64_t i
        out = []
        with nogil:
            jv_rdlock(&self.lock)
        try:
            self.check_open()
            for i in range(self.table.size):
                if self.table.entries[i].flags == JV_ENTRY_LIVE:
                    out.append(self.id_of_slot(self.table.entries[i].slot))
        finally:
            jv_unlock(&self.lock)
        return out

    def vectors_view(self):
        """Return a read-only (high_water, dimension) float32 view of the rows.

        Rows of deleted or superseded slots are included (see ``live_slots``).
        The view keeps its pages mapped, across growth and after ``close()``.
        """
        with nogil:
            jv_rdlock(&self.lock)
        try:
            self.check_open()
            return self._view()
        finally:
            jv_unlock(&self.lock)

    cdef object _view(self):
        raw = np.frombuffer(self.vec, dtype=np.uint8)
        view = np.ndarray((self.high_water, self.dimension), dtype=np.float32, buffer=raw,
                          offset=JV_HEADER_PAGE, strides=(self.row_stride, 4))
        view.flags.writeable = False
        return view

    cdef int ensure_mask(self) except -1:
        """Build the skip mask (1 = not live) once; writes keep it current."""
        cdef uint64_t i
        cdef uint8_t *mask
        cdef int ok = 1
        with nogil:
            jv_wrlock(&self.lock)
            if not self.closed and self.skip_mask == NULL:
                mask = <uint8_t *>malloc(max(self.capacity, 1))
                if mask == NULL:
                    ok = 0
                else:
                    memset(mask, 1, max(self.capacity, 1))
                    for i in range(self.table.size):
                        if (self.table.entries[i].flags == JV_ENTRY_LIVE
                                and self.table.entries[i].slot < self.capacity):
                            mask[self.table.entries[i].slot] = 0
                    self.skip_mask = mask
                    self.skip_size = max(self.capacity, 1)
            jv_unlock(&self.lock)
        if not ok:
            raise MemoryError()
        return 0

    def live_slots(self):
        """Return a uint8 array over ``0 .. high_water-1``: 1 where the slot is live."""
        self.check_open()
        self.ensure_mask()
        with nogil:
            jv_rdlock(&self.lock)
        try:
            self.check_open()
            if self.high_water == 0:
                return np.zeros(0, np.uint8)
            return 1 - np.asarray(<uint8_t[:self.high_water]>self.skip_mask)
        finally:
            jv_unlock(&self.lock)

    def search(self, queries, k, metric, threads=0):
        """Exact top-k over the live vectors.

        Parameters
        ----------
        queries : array-like, float32, shape (m, dimension)
        k : int
        metric : {"cosine", "dot", "l2"}
        threads : int
            Passed to ``kernels.topk`` (0: every core).

        Returns
        -------
        list of list of (str, float)
            Per query, best first.
        """
        from jadevec._core import kernels

        queries = as_rows(queries, self.dimension, 2, "queries")
        self.check_open()
        self.ensure_mask()
        with nogil:
            jv_rdlock(&self.lock)
        try:
            self.check_open()
            if self.high_water == 0 or self.table.live == 0:
                return [[] for _ in range(queries.shape[0])]
            skip = np.asarray(<uint8_t[:self.high_water]>self.skip_mask)
            rows, scores = kernels.topk(self._view(), queries, k, metric, skip=skip,
                                        threads=threads)
            out = []
            for r in range(rows.shape[0]):
                out.append([(self.id_of_slot(s), sc)
                            for s, sc in zip(rows[r].tolist(), scores[r].tolist()) if s >= 0])
            return out
        finally:
            jv_unlock(&self.lock)

    def checkpoint(self):
        """Make every write so far durable (``sync``): see "Checkpoint" in the doc.

        Raises
        ------
        OSError
            A sync failed; the file is then *failed* (``StoreFailedError`` on
            every later write) until reopened.
        """
        cdef Status st
        cdef int rc = 0
        with nogil:
            jv_wrlock(&self.lock)
            if self.closed:
                rc = fail(&st, ST_CLOSED, FILE_VEC, NULL, 0)
            elif self.dirty and not self.read_only:
                rc = self.checkpoint_locked(JV_STATE_DIRTY, &st)
            jv_unlock(&self.lock)
        if rc:
            raise_status(self, &st)

    def flush(self):
        """Ask for writeback of every file without waiting (``msync(MS_ASYNC)``).

        Not a barrier: releases no slots, writes no commit record.
        """
        cdef Status st
        cdef int rc = 0
        with nogil:
            jv_rdlock(&self.lock)
            if self.closed:
                rc = fail(&st, ST_CLOSED, FILE_VEC, NULL, 0)
            elif not self.read_only:
                rc = self.sync_files(True, 0, "msync(MS_ASYNC)", &st)
            jv_unlock(&self.lock)
        if rc:
            raise_status(self, &st)

    def close(self):
        """Checkpoint twice (the second marks the file clean) and unmap.

        Views from ``vectors_view`` stay valid until released. A second call
        does nothing.
        """
        cdef Status st
        cdef int rc
        with nogil:
            jv_wrlock(&self.lock)
            rc = self.close_locked(&st)
            jv_unlock(&self.lock)
        list_free(&self.free_slots)
        list_free(&self.pending)
        list_free(&self.cooling)
        if rc:
            raise_status(self, &st)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        if self.closed:
            return f"<VectorFile {self.path!r} closed>"
        return f"<VectorFile {self.path!r} dimension={self.dimension} count={self.table.live}>"

    # -- verify and compact (recovery.pyx, compaction.pyx) --------------------

    def verify(self):
        """Check every checksum and cross-reference; return a list of problems.

        Reads commit records, file headers, every index entry (with its slot
        record, id and vector), every slot record and every id record. An
        empty list means the file set is sound.
        """
        with nogil:
            jv_rdlock(&self.lock)
        try:
            self.check_open()
            return recovery.verify(self)
        finally:
            jv_unlock(&self.lock)

    def compact_into(self, dest):
        """Write the live vectors as a new, clean, synced file set in ``dest``; close self.

        ``dest`` must not hold a file set. The source is closed when this
        returns (its writer lock is held throughout, so no write is lost);
        the caller swaps the folders (see "Compaction" in the doc).
        """
        with nogil:
            jv_wrlock(&self.lock)
        try:
            self.check_open()
            compaction.compact_into(self, dest)
        finally:
            jv_unlock(&self.lock)


# Imported last: both cimport this module's VectorFile, which exists by now.
from jadevec._core import compaction, recovery  # noqa: E402
