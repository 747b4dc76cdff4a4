"""Aligned, reference-counted memory exposed to numpy without a copy.

An :class:`AlignedBuffer` owns one allocation whose first byte sits on an
``alignment`` boundary (64 bytes by default: a cache line and an AVX-512
register, so aligned loads never split a line).  It exports itself through the
buffer protocol; every view (a ``memoryview`` or a numpy array built on one)
holds a reference to the buffer, so the memory is freed exactly once, in
``__dealloc__``, after the last view is gone, even when the Python name of the
owner was deleted long before.  ``exports`` counts the views alive right now.

Thread rules: the buffer itself is immutable after construction; writes into
the memory through views are the caller's to synchronise.
"""

from cpython.buffer cimport PyBUF_FORMAT
from cpython.pyport cimport PY_SSIZE_T_MAX
from libc.stdint cimport uintptr_t
from libc.stdlib cimport calloc, free, malloc

import operator

import numpy as np

from jadevec.errors import InvalidInputError

__all__ = ["AlignedBuffer", "aligned_empty", "aligned_zeros"]

# Largest alignment accepted: a 4 KiB page.  Anything larger is a mistake, not a need.
cdef enum:
    MAX_ALIGNMENT = 4096

# Allocations not yet freed; tests use it to check that each is freed exactly once.
cdef Py_ssize_t _live = 0


cdef Py_ssize_t _as_size(object value, str name) except -1:
    """Return ``value`` as a non-negative Py_ssize_t, or raise InvalidInputError."""
    if isinstance(value, bool):
        raise InvalidInputError(f"{name} must be an int, got bool")
    try:
        size = operator.index(value)
    except TypeError:
        raise InvalidInputError(
            f"{name} must be an int, got {type(value).__name__}"
        ) from None
    if size < 0:
        raise InvalidInputError(f"{name} must be >= 0, got {size}")
    if size > PY_SSIZE_T_MAX:
        raise MemoryError(f"{name}={size} is larger than any allocation")
    return size


cdef class AlignedBuffer:
    """An owned block of memory whose address is a multiple of ``alignment``.

    Parameters
    ----------
    nbytes : int
        Size in bytes (0 is allowed and gives an empty buffer).
    alignment : int, default 64
        A power of two from 8 to 4096.
    zero : bool, default False
        Fill the memory with zero bytes (``calloc``: large zeroed blocks cost
        nothing until touched).

    Raises
    ------
    InvalidInputError
        ``nbytes`` is negative or not an int, or ``alignment`` is not a power of
        two in range.
    MemoryError
        The allocation failed.

    Notes
    -----
    The buffer protocol exports it as writable unsigned bytes (format ``"B"``).
    The memory is freed once, when the object and every view of it are gone.
    """

    def __init__(self, nbytes, alignment=64, bint zero=False):
        global _live
        if self._raw != NULL:
            raise InvalidInputError("AlignedBuffer is already initialised")
        cdef Py_ssize_t size = _as_size(nbytes, "nbytes")
        cdef Py_ssize_t align = _as_size(alignment, "alignment")
        if align < 8 or align > MAX_ALIGNMENT or (align & (align - 1)) != 0:
            raise InvalidInputError(
                f"alignment must be a power of two from 8 to {MAX_ALIGNMENT}, got {align}"
            )
        if size > PY_SSIZE_T_MAX - align:
            raise MemoryError(f"cannot allocate {size} bytes")
        # Over-allocate by the alignment and round up: portable, and the same
        # free() whatever the platform's aligned allocator is.
        cdef size_t total = <size_t>size + <size_t>align
        with nogil:
            self._raw = calloc(total, 1) if zero else malloc(total)
        if self._raw == NULL:
            raise MemoryError(f"cannot allocate {size} bytes aligned to {align}")
        _live += 1
        self._data = <char*>((<uintptr_t>self._raw + <uintptr_t>align)
                             & ~(<uintptr_t>align - 1))
        self._nbytes = size
        self._alignment = align
        self._exports = 0
        self._shape[0] = size
        self._strides[0] = 1

    def __dealloc__(self):
        global _live
        # Each exported view holds a reference to self, so no view is left here.
        if self._raw != NULL:
            free(self._raw)
            self._raw = NULL
            _live -= 1

    def __getbuffer__(self, Py_buffer* view, int flags):
        view.buf = self._data
        view.len = self._nbytes
        view.itemsize = 1
        view.readonly = 0
        view.format = NULL
        if flags & PyBUF_FORMAT:
            view.format = b"B"
        view.ndim = 1
        view.shape = self._shape
        view.strides = self._strides
        view.suboffsets = NULL
        view.internal = NULL
        # The view owns a reference to self: the memory outlives every view.
        view.obj = self
        self._exports += 1

    def __releasebuffer__(self, Py_buffer* view):
        self._exports -= 1

    @property
    def nbytes(self):
        """Size of the buffer in bytes."""
        return self._nbytes

    @property
    def address(self):
        """Address of the first byte, a multiple of ``alignment``."""
        return <uintptr_t>self._data

    @property
    def alignment(self):
        """Alignment of ``address`` in bytes."""
        return self._alignment

    @property
    def exports(self):
        """Number of buffer-protocol views alive now (memoryviews, numpy arrays)."""
        return self._exports

    def __repr__(self):
        return (f"<AlignedBuffer nbytes={self._nbytes} alignment={self._alignment} "
                f"exports={self._exports}>")


def _shape_tuple(shape):
    if isinstance(shape, (tuple, list)):
        dims = tuple(_as_size(s, "shape") for s in shape)
    else:
        dims = (_as_size(shape, "shape"),)
    return dims


def _aligned(shape, dtype, bint zero):
    dims = _shape_tuple(shape)
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise InvalidInputError(f"dtype {dtype!r} is not a numpy dtype: {exc}") from None
    if dt.hasobject or dt.itemsize == 0:
        raise InvalidInputError(f"dtype must be a fixed-size, non-object dtype, got {dt}")
    count = 1
    for s in dims:
        count *= s
    buf = AlignedBuffer(count * dt.itemsize, 64, zero)
    # frombuffer keeps a reference to buf in the array's .base chain.
    return np.frombuffer(buf, dtype=dt, count=count).reshape(dims)


def aligned_empty(shape, dtype=np.float32):
    """Return an uninitialised C-contiguous array whose data is 64-byte aligned.

    Parameters
    ----------
    shape : int or tuple of int
        Shape of the array; every dimension >= 0.
    dtype : numpy dtype, default float32

    Returns
    -------
    numpy.ndarray
        A writable view (no copy) of a fresh :class:`AlignedBuffer`, which its
        ``.base`` chain keeps alive.

    Raises
    ------
    InvalidInputError
        A negative or non-integer dimension, or an object dtype.
    MemoryError
        The allocation failed.
    """
    return _aligned(shape, dtype, False)


def aligned_zeros(shape, dtype=np.float32):
    """Return a zero-filled C-contiguous array whose data is 64-byte aligned.

    Same parameters, result and errors as :func:`aligned_empty`.
    """
    return _aligned(shape, dtype, True)


def _live_buffers():
    """Number of AlignedBuffer allocations not yet freed (for tests)."""
    return _live
