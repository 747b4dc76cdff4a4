# cython: freethreading_compatible = False
"""Files mapped into memory that grow without moving.

A ``MappedFile`` reserves address space once (``PROT_NONE``, no memory
committed) and maps the file at the start of it, so growing the file maps the
new range in place and every pointer into the mapping stays valid. Blocks are
allocated (``posix_fallocate``) before the mapping covers them, so a full disk
is a clean ``StorageFullError`` rather than a SIGBUS on a later store.

Exports: the object supports the buffer protocol. Each exported buffer counts
against the mapping it was taken from. When the reservation runs out, the file
is mapped anew in a larger reservation and the old mapping is *retired*; a
retired mapping (and the mapping of a closed file) is unmapped when its last
export is released. So a view never dangles, after growth or after close.

Thread rules: the mapping pointer is switched under ``maplock`` (taken
without the GIL); callers that read through ``map.base`` from C hold their own
lock that also serialises ``c_grow`` (``VectorFile`` does).
"""

from cpython.buffer cimport PyBUF_FORMAT, PyBUF_ND, PyBUF_WRITABLE
from libc.errno cimport EBADF, EFBIG, ENOSPC, ERANGE
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
# Address space reserved beyond the file by default: four times its size, at
# least this much, so growth rarely has to map anew.
cdef size_t DEFAULT_RESERVE = 4 << 30


cdef int raise_os_error(int err, str operation, str path) except -1:
    """Raise the OSError subclass for ``err`` naming the operation and path."""
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
        self.fd = -1
        self.map = NULL
        self._closed = True
        self.lock_ready = False
        self.path = os.fsdecode(os.fspath(path))
        self.path_bytes = os.fsencode(self.path)
        if b"\0" in self.path_bytes:  # C would stop at the NUL: another file
            raise ValueError(f"path must not contain a NUL byte, got {self.path!r}")
        if jv_rwlock_init(&self.maplock) != 0:
            raise MemoryError("cannot create the mapping lock")
        self.lock_ready = True
        if create and read_only:
            raise ValueError("create=True needs a writable file (read_only=False)")
        if size < 0 or reserve < 0:
            raise ValueError(f"size and reserve must be >= 0, got {size} and {reserve}")
        self.writable = not read_only
        cdef int fd = -1
        cdef int rc = jv_open(self.path_bytes, create, read_only, &fd)
        if rc:
            raise_os_error(rc, "open", self.path)
        self.fd = fd
        cdef uint64_t actual = 0
        try:
            if create:
                rc = jv_allocate(fd, 0, size)
                if rc:
                    raise_os_error(rc, "allocate", self.path)
            rc = jv_file_size(fd, &actual)
            if rc:
                raise_os_error(rc, "stat", self.path)
            self.reserve_hint = reserve if reserve else max(DEFAULT_RESERVE, 4 * actual)
            rc = jv_map_create(fd, self.reserve_hint, actual, self.writable, &self.map)
            if rc:
                raise_os_error(rc, "mmap", self.path)
        except BaseException:
            jv_close(fd)
            self.fd = -1
            if create:
                os.unlink(self.path)
            raise
        self._size = actual
        self._closed = False

    def __dealloc__(self):
        # __cinit__ may have failed before its first line (a missing or wrong
        # argument): the fields are then zero, so _closed is False with no map
        # and no lock. Only a mapping that was made is closed.
        if not self._closed and self.map != NULL and self.lock_ready:
            self.c_close()
        if self.lock_ready:
            jv_rwlock_destroy(&self.maplock)

    cdef int c_grow(self, uint64_t new_size) noexcept nogil:
        """Grow to ``new_size`` bytes; return 0 or an errno (nothing changed then)."""
        cdef int rc
        cdef jv_map *fresh = NULL
        cdef jv_map *old
        cdef size_t reserve
        if self._closed:
            return EBADF
        if new_size <= self._size:
            return 0
        rc = jv_allocate(self.fd, self._size, new_size - self._size)
        if rc:
            return rc
        rc = jv_map_extend(self.map, self.fd, new_size, self.writable)
        if rc == ERANGE:
            # The reservation is used up: map the whole file in a larger one
            # and retire the old mapping (unmapped once its exports are gone).
            reserve = max(2 * self.map.reserved, 4 * new_size)
            rc = jv_map_create(self.fd, reserve, new_size, self.writable, &fresh)
            if rc:
                return rc
            jv_wrlock(&self.maplock)
            old = self.map
            self.map = fresh
            jv_unlock(&self.maplock)
            jv_map_retire(old)
        elif rc:
            return rc
        self._size = new_size
        return 0

    cdef int c_sync(self, uint64_t offset, uint64_t length, bint async_) noexcept nogil:
        if self._closed:
            return EBADF
        if offset >= self._size:
            return 0
        length = min(length, self._size - offset)
        return jv_sync(self.map.base + offset, length, async_)

    cdef void c_close(self) noexcept nogil:
        if self._closed:
            return
        self._closed = True
        jv_wrlock(&self.maplock)
        jv_map_retire(self.map)
        self.map = NULL
        jv_unlock(&self.maplock)
        jv_close(self.fd)
        self.fd = -1

    cdef int _check_open(self) except -1:
        if self._closed:
            raise StoreClosedError(f"{self.path}: the mapped file is closed")
        return 0

    @property
    def size(self):
        """Bytes of the file that are mapped and usable."""
        return self._size

    @property
    def reserved(self):
        """Bytes of address space reserved for the current mapping."""
        self._check_open()
        return self.map.reserved

    @property
    def exports(self):
        """Buffers currently exported from the current mapping."""
        if self._closed:
            return 0
        return jv_map_exports(self.map)

    @property
    def closed(self):
        """Whether ``close()`` was called."""
        return self._closed

    @property
    def read_only(self):
        """Whether the file is mapped read-only."""
        return not self.writable

    def grow(self, new_size):
        """Grow the file to ``new_size`` bytes, allocating blocks first.

        A smaller or equal size does nothing (a mapped file is never
        truncated). ``StorageFullError`` when the disk or the file size limit
        refuses; the file and mapping are unchanged then.
        """
        self._check_open()
        if not self.writable:
            raise PermissionError(f"{self.path}: mapped read-only, cannot grow")
        if new_size < 0:
            raise ValueError(f"new_size must be >= 0, got {new_size}")
        cdef uint64_t n = new_size
        cdef int rc
        with nogil:
            rc = self.c_grow(n)
        if rc:
            raise_os_error(rc, "grow", self.path)

    def _range(self, offset, length):
        if offset < 0 or (length is not None and length < 0):
            raise ValueError(f"offset and length must be >= 0, got {offset}, {length}")
        if length is None:
            length = max(0, self._size - offset)
        return offset, length

    def sync(self, offset=0, length=None):
        """Write dirty pages of the range to disk and wait (``msync(MS_SYNC)``)."""
        self._check_open()
        offset, length = self._range(offset, length)
        cdef int rc
        cdef uint64_t o = offset, n = length
        with nogil:
            rc = self.c_sync(o, n, False)
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
            rc = self.c_sync(o, n, True)
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
        if offset >= self._size:
            return
        length = min(length, self._size - offset)
        cdef int rc = jv_advise(self.map.base + <uint64_t>offset, length, _HINTS[hint])
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
            rc = jv_pread(self.fd, &view[0], length, offset, &got)
        if rc:
            raise_os_error(rc, "pread", self.path)
        return bytes(buf[:got])

    def file_size(self):
        """Size of the file on disk now (``fstat``); may exceed ``size``."""
        self._check_open()
        cdef uint64_t s = 0
        cdef int rc = jv_file_size(self.fd, &s)
        if rc:
            raise_os_error(rc, "stat", self.path)
        return s

    def fsync(self):
        """``fsync`` the file descriptor (data and metadata)."""
        self._check_open()
        cdef int rc
        with nogil:
            rc = jv_fsync(self.fd)
        if rc:
            raise_os_error(rc, "fsync", self.path)

    def close(self):
        """Close the file; exported views keep their pages until released."""
        self.c_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        state = "closed" if self._closed else f"size={self._size}"
        return f"<MappedFile {self.path!r} {state}>"

    def __getbuffer__(self, Py_buffer *view, int flags):
        self._check_open()
        if flags & PyBUF_WRITABLE and not self.writable:
            raise BufferError(f"{self.path}: mapped read-only")
        cdef Export *ex = <Export *>malloc(sizeof(Export))
        if ex == NULL:
            raise MemoryError()
        with nogil:
            jv_rdlock(&self.maplock)
        ex.map = self.map
        jv_map_retain(ex.map)
        jv_unlock(&self.maplock)
        ex.shape = <Py_ssize_t>self._size
        view.buf = ex.map.base
        view.obj = self
        view.len = ex.shape
        view.readonly = not self.writable
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
