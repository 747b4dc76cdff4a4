# cython: freethreading_compatible = False
"""Files mapped into memory that grow without moving.

A ``MappedFile`` is the Python face of ``jv_mfile`` (``src/jv_mfile.c``), the
mechanism every file of a vector file set is built on: address space is
reserved once (``PROT_NONE``, no memory committed) and the file is mapped at
the start of it, so growing the file maps the new range in place and every
pointer into the mapping stays valid. Blocks are allocated
(``posix_fallocate``) before the mapping covers them, so a full disk is a
clean ``StorageFullError`` rather than a SIGBUS on a later store.

Exports: the object supports the buffer protocol. Each exported buffer
retains the mapping it was taken from. When the reservation runs out, the
file is mapped anew in a larger reservation and the old mapping is *retired*;
a retired mapping (and the mapping of a closed file) is unmapped when its
last user is gone. So a view never dangles, after growth or after close.

Thread rules: ``maplock`` (taken without the GIL) guards the mapping pointer
and size: growth and close take it for writing, an export reads both under
it, so a buffer never describes more bytes than its mapping holds.
"""

from cpython.buffer cimport PyBUF_FORMAT, PyBUF_ND, PyBUF_WRITABLE
from libc.errno cimport EFBIG, EINVAL, ENOSPC
from libc.stdlib cimport free, malloc
from libc.string cimport strerror

from jadevec._core._types cimport uint64_t

import os

from jadevec.errors import StorageFullError, StoreClosedError

__all__ = ["MappedFile", "page_size"]

_HINTS = {
    "normal": JV_ADV_NORMAL,
    "sequential": JV_ADV_SEQUENTIAL,
    "random": JV_ADV_RANDOM,
    "willneed": JV_ADV_WILLNEED,
    "dontneed": JV_ADV_DONTNEED,
}


cdef int raise_os_error(int err, str operation, str path) except -1:
    """Raise the OSError subclass for ``err`` naming the operation and path."""
    if err == JV_ENOTREG:
        raise OSError(EINVAL, f"{operation} failed: not a regular file", path)
    reason = strerror(err).decode("utf-8", "replace")
    message = f"{operation} failed: {reason}"
    if err == ENOSPC or err == EFBIG:
        raise StorageFullError(err, message, path)
    # OSError(errno, ...) picks FileNotFoundError, PermissionError, ... itself.
    raise OSError(err, message, path)


ctypedef struct Export:
    jv_map *map
    Py_ssize_t shape


def page_size():
    """Return the size in bytes of a memory page (mappings are page granular)."""
    return jv_page_size()


cdef class _MapBuffer:
    """A read-only buffer over part of a mapping, which it retains."""

    cdef jv_map *map
    cdef const char *base
    cdef Py_ssize_t size

    def __dealloc__(self):
        if self.map != NULL:
            jv_map_release(self.map)

    def __getbuffer__(self, Py_buffer *view, int flags):
        if flags & PyBUF_WRITABLE:
            raise BufferError("mapped rows are read-only")
        view.buf = <void *>self.base
        view.obj = self
        view.len = self.size
        view.readonly = 1
        view.itemsize = 1
        view.format = NULL
        if flags & PyBUF_FORMAT:
            view.format = b"B"
        view.ndim = 1
        view.shape = NULL
        if flags & PyBUF_ND:
            view.shape = &self.size
        view.strides = NULL
        view.suboffsets = NULL
        view.internal = NULL

    def __releasebuffer__(self, Py_buffer *view):
        pass


cdef object map_buffer(jv_map *m, const char *base, Py_ssize_t size):
    cdef _MapBuffer b = _MapBuffer.__new__(_MapBuffer)
    jv_map_retain(m)
    b.map = m
    b.base = base
    b.size = size
    return b


cdef class MappedFile:
    """A file mapped read-write (or read-only) into memory, growing in place.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    create : bool
        Create it (it must not exist) with ``size`` bytes allocated.
    size : int
        Initial size when creating.
    read_only : bool
        Map it read-only; ``grow`` and writable buffers are refused.
    reserve : int
        Bytes of address space to reserve; 0 means ``max(4 GiB, 4 x size)``.
    """

    def __cinit__(self, path, *, bint create=False, size=0, bint read_only=False, reserve=0):
        jv_mfile_init(&self.f)
        self.lock_ready = False
        self.path = os.fsdecode(os.fspath(path))
        self.path_bytes = os.fsencode(self.path)
        if b"\0" in self.path_bytes:  # C would stop at the NUL: another file
            raise ValueError(f"path must not contain a NUL byte, got {self.path!r}")
        if create and read_only:
            raise ValueError("create=True needs a writable file (read_only=False)")
        if size < 0 or reserve < 0:
            raise ValueError(f"size and reserve must be >= 0, got {size} and {reserve}")
        if jv_rwlock_init(&self.maplock) != 0:
            raise MemoryError("cannot create the mapping lock")
        self.lock_ready = True
        cdef int rc = jv_mfile_open(&self.f, JV_CWD, self.path_bytes, create, not read_only,
                                    size, reserve)
        if rc:
            raise_os_error(rc, "create" if create else "open", self.path)

    def __dealloc__(self):
        # __cinit__ may have failed before its first line (a missing or wrong
        # argument): the fields are then zero and nothing was opened.
        if self.lock_ready:
            jv_mfile_close(&self.f)
            jv_rwlock_destroy(&self.maplock)

    cdef int _check_open(self) except -1:
        if self.f.map == NULL:
            raise StoreClosedError(f"{self.path}: the mapped file is closed")
        return 0

    @property
    def size(self):
        """Bytes of the file that are mapped and usable."""
        return self.f.size

    @property
    def reserved(self):
        """Bytes of address space reserved for the current mapping."""
        self._check_open()
        return self.f.map.reserved

    @property
    def exports(self):
        """Buffers currently exported from the current mapping."""
        if self.f.map == NULL:
            return 0
        return jv_map_exports(self.f.map)

    @property
    def closed(self):
        """Whether ``close()`` was called."""
        return self.f.map == NULL

    @property
    def read_only(self):
        """Whether the file is mapped read-only."""
        return not self.f.writable

    def grow(self, new_size):
        """Grow the file to ``new_size`` bytes, allocating blocks first.

        A smaller or equal size does nothing (a mapped file is never
        truncated). ``StorageFullError`` when the disk or the file size limit
        refuses; the file and mapping are unchanged then.
        """
        self._check_open()
        if not self.f.writable:
            raise PermissionError(f"{self.path}: mapped read-only, cannot grow")
        if new_size < 0:
            raise ValueError(f"new_size must be >= 0, got {new_size}")
        cdef uint64_t n = new_size
        cdef int rc
        with nogil:
            jv_wrlock(&self.maplock)
            rc = jv_mfile_grow(&self.f, n)
            jv_unlock(&self.maplock)
        if rc:
            raise_os_error(rc, "grow", self.path)

    def _range(self, offset, length):
        if offset < 0 or (length is not None and length < 0):
            raise ValueError(f"offset and length must be >= 0, got {offset}, {length}")
        if length is None:
            length = max(0, self.f.size - offset)
        return offset, length

    def sync(self, offset=0, length=None):
        """Write dirty pages of the range to disk and wait (``msync(MS_SYNC)``)."""
        self._check_open()
        offset, length = self._range(offset, length)
        cdef int rc
        cdef uint64_t o = offset, n = length
        with nogil:
            jv_rdlock(&self.maplock)
            rc = jv_mfile_sync(&self.f, o, n, False)
            jv_unlock(&self.maplock)
        if rc:
            raise_os_error(rc, "msync", self.path)

    def flush(self, offset=0, length=None):
        """Ask for writeback of the range without waiting (``msync(MS_ASYNC)``).

        Not a durability barrier: on Linux it does nothing at all.
        """
        self._check_open()
        offset, length = self._range(offset, length)
        cdef int rc
        cdef uint64_t o = offset, n = length
        with nogil:
            jv_rdlock(&self.maplock)
            rc = jv_mfile_sync(&self.f, o, n, True)
            jv_unlock(&self.maplock)
        if rc:
            raise_os_error(rc, "msync", self.path)

    def advise(self, str hint, offset=0, length=None):
        """Tell the kernel how the range will be read.

        ``hint`` is one of "normal", "sequential", "random", "willneed",
        "dontneed" (``madvise``).
        """
        self._check_open()
        if hint not in _HINTS:
            raise ValueError(f"hint must be one of {sorted(_HINTS)}, got {hint!r}")
        offset, length = self._range(offset, length)
        cdef int rc = 0
        cdef int code = _HINTS[hint]
        cdef uint64_t o = offset, n = length
        with nogil:
            jv_rdlock(&self.maplock)
            if o < self.f.size:
                rc = jv_advise(self.f.map.base + o, min(n, self.f.size - o), code)
            jv_unlock(&self.maplock)
        if rc:
            raise_os_error(rc, "madvise", self.path)

    def pread(self, offset, length):
        """Read bytes with ``pread`` (not through the mapping).

        An I/O error becomes ``OSError`` here where a read through the mapping
        would be a SIGBUS; used to read unverified headers.
        """
        self._check_open()
        if offset < 0 or length < 0:
            raise ValueError(f"offset and length must be >= 0, got {offset}, {length}")
        buf = bytearray(length)
        cdef unsigned char[::1] view = buf
        cdef size_t got = 0
        cdef int rc = 0
        if length:
            rc = jv_pread(self.f.fd, &view[0], length, offset, &got)
        if rc:
            raise_os_error(rc, "pread", self.path)
        return bytes(buf[:got])

    def file_size(self):
        """Size of the file on disk now (``fstat``); may exceed ``size``."""
        self._check_open()
        cdef uint64_t s = 0
        cdef int rc = jv_mfile_stat(&self.f, &s)
        if rc:
            raise_os_error(rc, "stat", self.path)
        return s

    def fsync(self):
        """``fsync`` the file descriptor (data and metadata)."""
        self._check_open()
        cdef int rc
        with nogil:
            rc = jv_fsync(self.f.fd)
        if rc:
            raise_os_error(rc, "fsync", self.path)

    def close(self):
        """Close the file; exported views keep their pages until released."""
        if not self.lock_ready:
            return
        with nogil:
            jv_wrlock(&self.maplock)
            jv_mfile_close(&self.f)
            jv_unlock(&self.maplock)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        state = "closed" if self.f.map == NULL else f"size={self.f.size}"
        return f"<MappedFile {self.path!r} {state}>"

    def __getbuffer__(self, Py_buffer *view, int flags):
        self._check_open()
        if flags & PyBUF_WRITABLE and not self.f.writable:
            raise BufferError(f"{self.path}: mapped read-only")
        cdef Export *ex = <Export *>malloc(sizeof(Export))
        if ex == NULL:
            raise MemoryError()
        with nogil:
            jv_rdlock(&self.maplock)
        # Mapping and size are read together under the lock: a grow cannot
        # slip in between and leave a buffer longer than its mapping.
        ex.map = self.f.map
        ex.shape = <Py_ssize_t>self.f.size
        if ex.map != NULL:
            jv_map_retain(ex.map)
        jv_unlock(&self.maplock)
        if ex.map == NULL:
            free(ex)
            raise StoreClosedError(f"{self.path}: the mapped file is closed")
        view.buf = ex.map.base
        view.obj = self
        view.len = ex.shape
        view.readonly = not self.f.writable
        view.itemsize = 1
        view.format = NULL
        if flags & PyBUF_FORMAT:
            view.format = b"B"
        view.ndim = 1
        view.shape = NULL
        if flags & PyBUF_ND:
            view.shape = &ex.shape
        view.strides = NULL
        view.suboffsets = NULL
        view.internal = ex

    def __releasebuffer__(self, Py_buffer *view):
        cdef Export *ex = <Export *>view.internal
        jv_map_release(ex.map)
        free(ex)
