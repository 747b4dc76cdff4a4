"""The vector file set's Python face: ``VectorFile``.

The file set itself is one C unit (``src/jv_fileset.c``: the write path,
checkpoints, reader snapshots); ``recovery.pyx`` checks and recovers it at
open and verifies it, ``compaction.pyx`` rewrites it. This module validates
Python input, takes the locks and turns statuses into typed errors.
docs/vector_file_format.md specifies every byte.

Two modes:

* **writer** (``read_only=False``): one per file set at a time (the backend's
  writer lock sees to that). Reads see every write of this process at once.
* **reader** (``read_only=True``): any number, in any process, beside the
  writer. Each call reads the newest commit at its start, registered in the
  reader table so nothing it reads is overwritten under it; a file set
  replaced by compaction or removed raises :class:`FileSetMoved` (reopen it).

Thread rules: one reader-writer lock per file set, always taken with the GIL
released (``with nogil``), so no thread ever blocks on it while holding the
GIL. Writer mode: reads take the read side, writes the write side, and a
checkpoint the write side only to build its commit and to write the commit
record (its syncs run without it; checkpoints, close and compaction are
serialised by a lock of their own). Reader mode: every call takes the read
side (only ``close`` takes the write side); the snapshot a call holds keeps
its mappings alive.

Fork: a file set inherited by a forked child refuses every call
(``StoreClosedError``) and is released without writing anything; the child
opens its own.
"""

cimport cython
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport UINT64_MAX
from libc.stdlib cimport free, malloc
from libc.string cimport memset

cimport numpy as cnp

from jadevec._core._types cimport float32_t, uint8_t, uint32_t, uint64_t
from jadevec._core.compaction cimport compact_into
from jadevec._core.fileset cimport create_at, new_fileset, raise_status
from jadevec._core.id_index cimport utf8_id
from jadevec._core.layout cimport (
    JV_ENTRY_LIVE,
    JV_FILE_VEC,
    JV_MAX_DIMENSION,
    JV_MAX_SLOTS,
    JV_ST_CLOSED,
    JV_ST_CORRUPT,
    JV_ST_READONLY,
    JV_FILE_INDEX,
    jv_entry,
    jv_entry_at,
    jv_entry_check,
    jv_fail,
    jv_fs_begin_write,
    jv_fs_build_skip,
    jv_fs_checkpoint_begin,
    jv_fs_checkpoint_end,
    jv_fs_checkpoint_sync,
    jv_pending,
    jv_fs_close,
    jv_fs_delete,
    jv_fs_flush,
    jv_fs_free,
    jv_fs_map_files,
    jv_fs_prefault,
    jv_fs_put,
    jv_fs_reserve,
    jv_fs_snap_begin,
    jv_fs_snap_end,
    jv_fs_view,
    jv_hash,
    jv_id_at,
    jv_id_record_size,
    jv_snap_skip,
    jv_snap_view,
    jv_snapshot,
    jv_status,
    jv_view,
    jv_view_get,
    jv_view_id_of,
    JV_STATE_DIRTY,
)
from jadevec._core.mapped_file cimport jv_map, jv_rdlock, jv_unlock, jv_wrlock, map_buffer
from jadevec._core.recovery cimport load, verify_fileset

import os
import threading

import numpy as np

from jadevec._core.fileset import (
    FILE_NAMES,
    FORMAT_VERSION,
    FileSetMoved,
    crc32c,
    mark_moved,
    swap_folders,
)
from jadevec.errors import (
    CorruptionError,
    DimensionMismatchError,
    InvalidInputError,
    StoreClosedError,
    VectorNotFoundError,
)

cnp.import_array()

__all__ = ["VectorFile", "FileSetMoved", "crc32c", "mark_moved", "swap_folders",
           "FILE_NAMES", "FORMAT_VERSION"]

# Bumped in the child of os.fork(): file sets opened before it are the
# parent's, and the child must neither use nor write them.
cdef int _fork_epoch = 0


def _after_fork_in_child():
    global _fork_epoch
    _fork_epoch += 1


os.register_at_fork(after_in_child=_after_fork_in_child)


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
# objects of a list the caller keeps alive (our own copy: a caller's list
# could change under the loop that runs without the GIL); freed by ids_free.
ctypedef struct IdBatch:
    Py_ssize_t n
    const char **keys
    uint32_t *lengths
    uint64_t *hashes
    uint64_t record_bytes    # ids.jvid bytes if every id were new


cdef list own_list(object ids):
    return list(ids)


cdef int ids_encode(list ids, uint64_t mask, IdBatch *b) except -1:
    """Check every id of ``ids`` (errors name ``ids[i]``) and hash it."""
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


# A read in progress: the view it reads and, in reader mode, the snapshot.
ctypedef struct Read:
    jv_view view
    jv_snapshot *snap


cdef int read_begin(jv_fileset *fs, Read *r, jv_status *st) noexcept nogil:
    """Take the read side of the lock and the view (reader: the newest snapshot)."""
    jv_rdlock(&fs.lock)
    r.snap = NULL
    if fs.closed:
        jv_unlock(&fs.lock)
        return jv_fail(st, JV_ST_CLOSED, JV_FILE_VEC, NULL, 0)
    if fs.read_only:
        if jv_fs_snap_begin(fs, &r.snap, st) != 0:
            jv_unlock(&fs.lock)
            return -1
        jv_snap_view(fs, r.snap, &r.view)
    else:
        jv_fs_view(fs, &r.view)
    return 0


cdef void read_end(jv_fileset *fs, Read *r) noexcept nogil:
    if r.snap != NULL:
        jv_fs_snap_end(fs, r.snap)
        r.snap = NULL
    jv_unlock(&fs.lock)


@cython.final
cdef class VectorFile:
    """One database's vector file set (see docs/vector_file_format.md).

    Make one with :meth:`create` or :meth:`open`. Every method is safe to
    call from several threads: reads run in parallel without the GIL, writes
    are serialised.

    Attributes
    ----------
    path : str
        The folder of the files (absolute).
    """

    def __cinit__(self):
        self.fs = NULL
        # A bare VectorFile() (never created or opened) is closed; its errors
        # still need a path to name.
        self.path = "<VectorFile not opened>"
        self._report = None
        self.fork_epoch = _fork_epoch
        # Serialises checkpoints with each other and with close and
        # compaction, since a checkpoint syncs without the writer lock.
        self._checkpoint_lock = threading.Lock()

    def __dealloc__(self):
        # A file set nobody closed: close it (a writer's gets its clean
        # checkpoint; a failure leaves it dirty and the next open recovers).
        # One inherited across fork() is the parent's: release, never write.
        if self.fs != NULL:
            jv_fs_free(self.fs, self.fork_epoch != _fork_epoch)
            self.fs = NULL

    # -- construction --------------------------------------------------------

    @classmethod
    def create(cls, path, dimension, capacity=64, *, hash_mask=UINT64_MAX,
               first_generation=1):
        """Create a new, empty file set in the folder ``path`` and open it for writing.

        The folder must not exist; it appears complete or not at all (a crash
        cannot leave half a file set there).

        Parameters
        ----------
        path : str or os.PathLike
        dimension : int
            Values per vector, 1 to 65,536.
        capacity : int
            Slots to allocate up front (at least 64).
        hash_mask : int
            Test hook: AND-ed into every id hash to force collisions. A file
            set must be opened with the mask it was created with.
        first_generation : int
            Generation of the first commit (compaction continues the source's).
        """
        if type(dimension) is not int or not 1 <= dimension <= JV_MAX_DIMENSION:
            raise InvalidInputError(
                f"dimension must be an int from 1 to {JV_MAX_DIMENSION}, got {dimension!r}")
        if type(capacity) is not int or not 0 <= capacity <= JV_MAX_SLOTS:
            raise InvalidInputError(
                f"capacity must be an int from 0 to {JV_MAX_SLOTS}, got {capacity!r}")
        if type(first_generation) is not int or not 1 <= first_generation < 2 ** 62:
            raise InvalidInputError(
                f"first_generation must be an int >= 1, got {first_generation!r}")
        cdef VectorFile self = VectorFile.__new__(VectorFile)
        self.path = os.path.abspath(os.fsdecode(os.fspath(path)))
        self.fs = new_fileset()
        self.fs.hash_mask = hash_mask
        create_at(self.fs, self.path, dimension, capacity, first_generation)
        return self

    @classmethod
    def open(cls, path, *, bint read_only=False, bint check_reads=True,
             hash_mask=UINT64_MAX):
        """Open an existing file set; a writer recovers it first if it was not closed.

        Parameters
        ----------
        path : str or os.PathLike
            The folder holding the files.
        read_only : bool
            Read beside a writer in any process: every call reads the newest
            commit (see "Readers beside a writer" in the format document).
        check_reads : bool
            Check each vector's CRC32C when it is read (a damaged row raises
            ``CorruptionError`` instead of returning wrong values).
        hash_mask : int
            The test hook given to :meth:`create`.

        Raises
        ------
        FileNotFoundError
            No folder at ``path``.
        CorruptionError
            A header, size or checksum check failed; the message names the
            file and the field.
        UnsupportedVersionError
            The files were written by a newer format version.
        FileSetMoved
            The set was replaced by compaction or removed while it was being
            opened (every file is opened through one descriptor of the
            folder, so they all come from one set): open the folder again.
        """
        cdef VectorFile self = VectorFile.__new__(VectorFile)
        self.path = os.path.abspath(os.fsdecode(os.fspath(path)))
        if not os.path.isdir(self.path):
            raise FileNotFoundError(2, "no vector file set here", self.path)
        self.fs = new_fileset()
        self.fs.hash_mask = hash_mask
        self.fs.check_reads = check_reads
        cdef bytes folder = os.fsencode(self.path)
        cdef jv_status st
        if jv_fs_map_files(self.fs, folder, read_only, &st) != 0:
            raise_status(self.path, &st)
        self._report = load(self.fs, self.path)
        return self

    # -- state ---------------------------------------------------------------

    cdef int check_usable(self) except -1:
        if self.fork_epoch != _fork_epoch:
            raise StoreClosedError(
                f"{self.path}: this vector file set was opened by the parent of a forked "
                f"process; open it again in the child")
        if self.fs == NULL or self.fs.closed:
            raise StoreClosedError(f"{self.path}: the vector file set is closed")
        return 0

    @property
    def dimension(self):
        """Values per vector."""
        return 0 if self.fs == NULL else self.fs.dimension

    @property
    def row_stride(self):
        """Bytes from one row to the next (``dimension * 4`` rounded up to 64)."""
        return 0 if self.fs == NULL else self.fs.row_stride

    @property
    def capacity(self):
        """Slots the files are sized for (writer: now; reader: at the newest commit)."""
        return self._commit_field("capacity")

    @property
    def high_water(self):
        """Slots used so far (writer: now; reader: at the newest commit)."""
        return self._commit_field("high_water")

    @property
    def generation(self):
        """Generation of the newest commit (written, or read by a reader)."""
        return self._commit_field("generation")

    def _commit_field(self, str name):
        cdef Read r
        cdef jv_status st
        cdef int rc
        self.check_usable()
        if not self.fs.read_only:
            return {"capacity": self.fs.capacity, "high_water": self.fs.high_water,
                    "generation": self.fs.generation}[name]
        with nogil:
            rc = read_begin(self.fs, &r, &st)
        if rc:
            raise_status(self.path, &st)
        c = r.snap.commit
        with nogil:
            read_end(self.fs, &r)
        return {"capacity": c.capacity, "high_water": c.high_water,
                "generation": c.generation}[name]

    @property
    def closed(self):
        """Whether the file set was closed (or never opened)."""
        return self.fs == NULL or bool(self.fs.closed)

    @property
    def read_only(self):
        """Whether the file set was opened read-only (reader mode)."""
        return self.fs != NULL and bool(self.fs.read_only)

    @property
    def failed(self):
        """Whether a sync failed; writes are refused until the set is reopened."""
        return self.fs != NULL and bool(self.fs.failed)

    @property
    def recovery_report(self):
        """``None`` after a clean open, else a dict saying what recovery did."""
        return self._report

    def __len__(self):
        cdef Read r
        cdef jv_status st
        cdef uint64_t n = 0
        cdef int rc
        self.check_usable()
        with nogil:
            rc = read_begin(self.fs, &r, &st)
            if rc == 0:
                n = r.view.count
                read_end(self.fs, &r)
        if rc:
            raise_status(self.path, &st)
        return n

    def __contains__(self, vector_id):
        if not isinstance(vector_id, str):
            return False
        try:
            return self.get(vector_id) is not None
        except InvalidInputError:
            return False

    def __repr__(self):
        if self.closed:
            return f"<VectorFile {self.path!r} closed>"
        mode = "read-only" if self.fs.read_only else "writer"
        return f"<VectorFile {self.path!r} dimension={self.fs.dimension} {mode}>"

    # -- writes --------------------------------------------------------------

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
        cdef jv_status st
        cdef int rc
        self.check_usable()
        utf8_id(vector_id, &key, &n, "vector_id")
        values = as_rows(values, self.fs.dimension, 1, "values")
        cdef const float32_t *v = <const float32_t *>cnp.PyArray_DATA(values)
        cdef uint64_t h = jv_hash(key, n) & self.fs.hash_mask
        cdef jv_fileset *fs = self.fs
        with nogil:
            jv_wrlock(&fs.lock)
            rc = jv_fs_begin_write(fs, &st)
            if rc == 0:
                rc = jv_fs_reserve(fs, 1, jv_id_record_size(n), &st)
            if rc == 0:
                rc = jv_fs_put(fs, h, key, n, v, must_exist, &st)
            jv_unlock(&fs.lock)
        if rc < 0:
            raise_status(self.path, &st)
        return rc

    def reserve(self, ids):
        """Grow the files so that storing ``ids`` (a sequence of str) cannot fail.

        After this returns, a ``put_batch`` of these ids writes into space
        that is already allocated: a full disk is reported here, before a
        caller has written anything that goes with the vectors.
        """
        ids = own_list(ids)
        cdef IdBatch b
        cdef jv_status st
        cdef int rc = 0
        cdef jv_fileset *fs
        self.check_usable()
        fs = self.fs
        try:
            ids_encode(ids, fs.hash_mask, &b)
            with nogil:
                jv_wrlock(&fs.lock)
                rc = jv_fs_begin_write(fs, &st)
                if rc == 0:
                    rc = jv_fs_reserve(fs, b.n, b.record_bytes, &st)
                jv_unlock(&fs.lock)
        finally:
            ids_free(&b)
        if rc < 0:
            raise_status(self.path, &st)

    def put_batch(self, ids, vectors):
        """Store many vectors: one growth, then one C loop that cannot fail halfway.

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
        ids = own_list(ids)
        self.check_usable()
        cdef Py_ssize_t i, m = len(ids)
        vectors = as_rows(vectors, self.fs.dimension, 2, "vectors")
        if vectors.shape[0] != m:
            raise InvalidInputError(f"vectors has {vectors.shape[0]} rows for {m} ids")
        if m == 0:
            return 0
        cdef const float32_t *rows = <const float32_t *>cnp.PyArray_DATA(vectors)
        cdef Py_ssize_t dim = self.fs.dimension
        cdef uint64_t replaced = 0
        cdef IdBatch b
        cdef jv_status st
        cdef int rc = 0
        cdef jv_fileset *fs = self.fs
        try:
            ids_encode(ids, fs.hash_mask, &b)
            with nogil:
                jv_wrlock(&fs.lock)
                rc = jv_fs_begin_write(fs, &st)
                if rc == 0:
                    rc = jv_fs_reserve(fs, m, b.record_bytes, &st)
                if rc == 0:
                    jv_fs_prefault(fs, m)
                    for i in range(m):
                        rc = jv_fs_put(fs, b.hashes[i], b.keys[i], b.lengths[i],
                                       rows + i * dim, False, &st)
                        if rc < 0:
                            break
                        replaced += rc
                jv_unlock(&fs.lock)
        finally:
            ids_free(&b)
        if rc < 0:
            raise_status(self.path, &st)
        return replaced

    def delete(self, vector_id):
        """Delete ``vector_id``; return whether it existed."""
        cdef const char *key
        cdef uint32_t n
        cdef jv_status st
        cdef int rc
        self.check_usable()
        utf8_id(vector_id, &key, &n, "vector_id")
        cdef uint64_t h = jv_hash(key, n) & self.fs.hash_mask
        cdef jv_fileset *fs = self.fs
        with nogil:
            jv_wrlock(&fs.lock)
            rc = jv_fs_begin_write(fs, &st)
            if rc == 0:
                rc = jv_fs_delete(fs, h, key, n, &st)
            jv_unlock(&fs.lock)
        if rc < 0:
            raise_status(self.path, &st)
        return rc == 1

    # -- reads ---------------------------------------------------------------

    def get(self, vector_id):
        """Return a copy of the vector of ``vector_id`` (float32), or ``None``."""
        cdef const char *key
        cdef uint32_t n
        cdef jv_status st
        cdef Read r
        cdef int rc
        self.check_usable()
        utf8_id(vector_id, &key, &n, "vector_id")
        cdef cnp.ndarray out = cnp.PyArray_EMPTY(1, [self.fs.dimension], cnp.NPY_FLOAT32, 0)
        cdef float32_t *dst = <float32_t *>cnp.PyArray_DATA(out)
        cdef uint64_t h = jv_hash(key, n) & self.fs.hash_mask
        cdef jv_fileset *fs = self.fs
        with nogil:
            rc = read_begin(fs, &r, &st)
            if rc == 0:
                rc = jv_view_get(&r.view, h, key, n, dst, &st)
                read_end(fs, &r)
        if rc < 0:
            raise_status(self.path, &st)
        return out if rc else None

    def get_batch(self, ids):
        """Copy many vectors out (all from one commit in reader mode).

        Returns
        -------
        vectors : numpy.ndarray, float32, shape (len(ids), dimension)
            Rows of absent ids are left uninitialised.
        found : numpy.ndarray, bool, shape (len(ids),)
        """
        ids = own_list(ids)
        self.check_usable()
        cdef Py_ssize_t i, m = len(ids), dim = self.fs.dimension
        out = np.empty((m, dim), dtype=np.float32)
        found = np.zeros(m, dtype=np.bool_)
        if m == 0:
            return out, found
        cdef float32_t *dst = <float32_t *>cnp.PyArray_DATA(out)
        cdef uint8_t *hit = <uint8_t *>cnp.PyArray_DATA(found)
        cdef IdBatch b
        cdef jv_status st
        cdef Read r
        cdef int rc = 0
        cdef jv_fileset *fs = self.fs
        try:
            ids_encode(ids, fs.hash_mask, &b)
            with nogil:
                rc = read_begin(fs, &r, &st)
                if rc == 0:
                    for i in range(m):
                        rc = jv_view_get(&r.view, b.hashes[i], b.keys[i], b.lengths[i],
                                         dst + i * dim, &st)
                        if rc < 0:
                            break
                        hit[i] = rc
                    read_end(fs, &r)
        finally:
            ids_free(&b)
        if rc < 0:
            raise_status(self.path, &st)
        return out, found

    def ids(self):
        """Return every live id (in no particular order)."""
        cdef Read r
        cdef jv_status st
        cdef uint64_t i
        cdef const jv_entry *e
        cdef const char *key
        cdef int rc
        self.check_usable()
        out = []
        with nogil:
            rc = read_begin(self.fs, &r, &st)
        if rc:
            raise_status(self.path, &st)
        try:
            for i in range(r.view.table.size):
                e = jv_entry_at(r.view.table, i)
                if e.flags != JV_ENTRY_LIVE:
                    continue
                if jv_entry_check(r.view.table, e) != 0:
                    jv_fail(&st, JV_ST_CORRUPT, JV_FILE_INDEX, "index entry damaged (entry)", i)
                    raise_status(self.path, &st)
                jv_id_at(r.view.table.ids, r.view.table.ids_end, e.id_offset, e.id_length, &key)
                try:
                    out.append(PyUnicode_DecodeUTF8(key, e.id_length, "strict"))
                except UnicodeDecodeError:
                    raise CorruptionError(
                        f"{os.path.join(self.path, FILE_NAMES[3])}: the id of index entry {i} "
                        f"is not UTF-8") from None
        finally:
            with nogil:
                read_end(self.fs, &r)
        return out

    def search(self, queries, k, metric, threads=0):
        """Exact top-k over the live vectors (reader: of one commit).

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

        cdef Read r
        cdef jv_status st
        cdef int rc = 0
        cdef const uint8_t *skip = NULL
        cdef jv_map *rows_map
        cdef const char *key
        cdef uint32_t n
        cdef uint32_t hw
        cdef jv_fileset *fs
        self.check_usable()
        fs = self.fs
        queries = as_rows(queries, fs.dimension, 2, "queries")
        if not fs.read_only:
            # The mask is built once (under the write side) and kept current by writes.
            with nogil:
                jv_wrlock(&fs.lock)
                rc = jv_fs_build_skip(fs, &st) if not fs.closed else jv_fail(
                    &st, JV_ST_CLOSED, JV_FILE_VEC, NULL, 0)
                jv_unlock(&fs.lock)
            if rc:
                raise_status(self.path, &st)
        with nogil:
            rc = read_begin(fs, &r, &st)
        if rc:
            raise_status(self.path, &st)
        try:
            hw = r.view.high_water
            if hw == 0 or r.view.count == 0:
                return [[] for _ in range(queries.shape[0])]
            if r.snap != NULL:
                skip = jv_snap_skip(r.snap, &st)
                if skip == NULL:
                    raise_status(self.path, &st)
                rows_map = r.snap.maps[JV_FILE_VEC]
            else:
                skip = fs.skip
                rows_map = fs.f[JV_FILE_VEC].map
            raw = np.frombuffer(map_buffer(rows_map, r.view.rows, <Py_ssize_t>hw * fs.row_stride),
                                dtype=np.uint8)
            view = np.ndarray((hw, fs.dimension), dtype=np.float32, buffer=raw,
                              strides=(fs.row_stride, 4))
            mask = np.asarray(<const uint8_t[:hw]>skip)
            rows, scores = kernels.topk(view, queries, k, metric, skip=mask, threads=threads)
            out = []
            for q in range(rows.shape[0]):
                hits = []
                for s, sc in zip(rows[q].tolist(), scores[q].tolist()):
                    if s < 0:
                        continue
                    if jv_view_id_of(&r.view, s, &key, &n, &st) != 0:
                        raise_status(self.path, &st)
                    try:
                        hits.append((PyUnicode_DecodeUTF8(key, n, "strict"), sc))
                    except UnicodeDecodeError:
                        raise CorruptionError(
                            f"{os.path.join(self.path, FILE_NAMES[3])}: the id of slot {s} is "
                            f"not UTF-8") from None
                out.append(hits)
            return out
        finally:
            with nogil:
                read_end(fs, &r)

    # -- durability ----------------------------------------------------------

    def checkpoint(self):
        """Make every write so far durable (``sync``): see "Checkpoint" in the doc.

        Does nothing (no write, no sync) on a read-only file set or one not
        written since its last commit record. The writer lock is held only to
        build the commit (in memory) and to write its record: the syncs of
        the data, slot, index and id files in between run without it, so
        writers and readers of this set go on meanwhile (what they change is
        not named by the pending commit; see ``jv_fs_checkpoint_begin``).

        Raises
        ------
        OSError
            A sync failed; the set is then *failed* (``StoreFailedError`` on
            every later write) until reopened.
        """
        cdef jv_status st
        cdef jv_pending pending
        cdef int rc = 0
        cdef int sync_rc = 0
        cdef bint started = False
        cdef jv_fileset *fs
        with self._checkpoint_lock:
            self.check_usable()
            fs = self.fs
            with nogil:
                jv_wrlock(&fs.lock)
                if fs.closed:
                    rc = jv_fail(&st, JV_ST_CLOSED, JV_FILE_VEC, NULL, 0)
                elif fs.dirty and fs.changed and not fs.read_only:
                    # Nothing written since the last commit record: that record
                    # already covers everything, so an idle set does no I/O.
                    rc = jv_fs_checkpoint_begin(fs, JV_STATE_DIRTY, &pending, &st)
                    started = rc == 0
                jv_unlock(&fs.lock)
                if started:
                    sync_rc = jv_fs_checkpoint_sync(&pending, &st)
                    jv_wrlock(&fs.lock)
                    rc = jv_fs_checkpoint_end(fs, &pending, sync_rc, &st)
                    jv_unlock(&fs.lock)
        if rc:
            raise_status(self.path, &st)

    def flush(self):
        """Ask for writeback of every file without waiting (``msync(MS_ASYNC)``).

        Not a barrier: writes no commit record.
        """
        cdef jv_status st
        cdef int rc
        self.check_usable()
        cdef jv_fileset *fs = self.fs
        with nogil:
            jv_rdlock(&fs.lock)
            rc = jv_fs_flush(fs, &st)
            jv_unlock(&fs.lock)
        if rc:
            raise_status(self.path, &st)

    def close(self):
        """Write a clean checkpoint (writer) and unmap. A second call does nothing.

        In a forked child, releases the inherited set without writing.
        """
        cdef jv_status st
        cdef int rc = 0
        cdef bint inherited = self.fork_epoch != _fork_epoch
        cdef jv_fileset *fs = self.fs
        if fs == NULL:
            return
        with self._checkpoint_lock:
            with nogil:
                jv_wrlock(&fs.lock)
                rc = jv_fs_close(fs, inherited, &st)
                jv_unlock(&fs.lock)
        if rc:
            raise_status(self.path, &st)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- verify and compact (recovery.pyx, compaction.pyx) --------------------

    def verify(self):
        """Check every checksum and cross-reference; return a list of problems.

        A writer checks its working state, slot records included; a reader
        checks the newest commit (everything but slot records, which the
        writer may be changing). An empty list means the file set is sound.
        """
        cdef Read r
        cdef jv_status st
        cdef int rc
        self.check_usable()
        with nogil:
            rc = read_begin(self.fs, &r, &st)
        if rc:
            raise_status(self.path, &st)
        try:
            return verify_fileset(self.fs, self.path, r.snap)
        finally:
            with nogil:
                read_end(self.fs, &r)

    def compact_into(self, dest):
        """Write the live vectors as a new, clean, synced file set in ``dest``; close self.

        ``dest`` must not exist. The source is closed when this returns (its
        writer lock is held throughout, so no write is lost); the caller swaps
        the folders (see "Compaction" in the doc).
        """
        cdef jv_status st
        self.check_usable()
        if self.fs.read_only:
            jv_fail(&st, JV_ST_READONLY, JV_FILE_VEC, NULL, 0)
            raise_status(self.path, &st)
        dest = os.path.abspath(os.fsdecode(os.fspath(dest)))
        cdef jv_fileset *fs = self.fs
        with self._checkpoint_lock:
            with nogil:
                jv_wrlock(&fs.lock)
            try:
                if fs.closed:
                    raise StoreClosedError(f"{self.path}: the vector file set is closed")
                compact_into(fs, self.path, dest)
            finally:
                jv_unlock(&fs.lock)
