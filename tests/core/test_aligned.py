"""AlignedBuffer and aligned arrays: alignment, lifetime of views, error paths."""

import gc

import numpy as np
import pytest

from jadevec._core import aligned
from jadevec._core.aligned import AlignedBuffer, aligned_empty, aligned_zeros
from jadevec.errors import InvalidInputError


def owner_of(arr):
    """Walk an array's .base chain to the AlignedBuffer that owns its memory."""
    obj = arr
    while obj is not None and not isinstance(obj, AlignedBuffer):
        obj = obj.obj if isinstance(obj, memoryview) else obj.base
    return obj


@pytest.mark.parametrize("alignment", [8, 16, 64, 128, 4096])
@pytest.mark.parametrize("nbytes", [0, 1, 63, 64, 1000, 1 << 20])
def test_address_is_aligned(nbytes, alignment):
    buf = AlignedBuffer(nbytes, alignment)
    assert buf.address % alignment == 0
    assert buf.nbytes == nbytes
    assert buf.alignment == alignment
    assert buf.exports == 0
    assert len(memoryview(buf)) == nbytes


def test_default_alignment_is_64():
    assert AlignedBuffer(10).alignment == 64


def test_buffer_is_writable_bytes():
    buf = AlignedBuffer(16)
    view = memoryview(buf)
    assert view.format == "B" and not view.readonly
    view[:] = bytes(range(16))
    assert bytes(memoryview(buf)) == bytes(range(16))


def test_zero_fill():
    buf = AlignedBuffer(4096, zero=True)
    assert bytes(memoryview(buf)) == bytes(4096)


def test_exports_are_counted():
    buf = AlignedBuffer(32)
    v1 = memoryview(buf)
    v2 = memoryview(buf)
    assert buf.exports == 2
    v1.release()
    assert buf.exports == 1
    del v2
    assert buf.exports == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.uint8])
@pytest.mark.parametrize("shape", [(3, 5), (7,), 11, (0, 128), (2, 3, 4)])
def test_aligned_arrays(shape, dtype):
    for make in (aligned_empty, aligned_zeros):
        arr = make(shape, dtype)
        assert arr.dtype == np.dtype(dtype)
        assert arr.shape == (shape if isinstance(shape, tuple) else (shape,))
        assert arr.flags.c_contiguous and arr.flags.writeable
        assert arr.ctypes.data % 64 == 0
        assert isinstance(owner_of(arr), AlignedBuffer)
    assert not aligned_zeros(shape, dtype).any()


def test_default_dtype_is_float32():
    assert aligned_empty((2, 2)).dtype == np.float32


def test_view_outlives_owner():
    gc.collect()  # buffers of earlier tests' garbage must not be freed mid-count
    before = aligned._live_buffers()
    arr = aligned_zeros((100, 16))
    arr[:] = np.arange(1600, dtype=np.float32).reshape(100, 16)
    owner = owner_of(arr)
    view = arr[10:20]
    assert owner.exports == 1  # one memoryview under the whole .base chain
    del arr, owner
    gc.collect()
    assert aligned._live_buffers() == before + 1
    assert view[0, 0] == 160.0 and view[-1, -1] == 319.0
    view += 1  # still writable memory we own
    assert view[0, 0] == 161.0
    del view
    gc.collect()
    assert aligned._live_buffers() == before


def test_freed_exactly_once():
    gc.collect()  # buffers of earlier tests' garbage must not be freed mid-count
    before = aligned._live_buffers()
    bufs = [AlignedBuffer(1 << 12) for _ in range(10)]
    views = [memoryview(b) for b in bufs]
    arrays = [aligned_empty((8, 8)) for _ in range(10)]
    assert aligned._live_buffers() == before + 20
    del bufs
    gc.collect()
    assert aligned._live_buffers() == before + 20  # views keep their owners
    del views, arrays
    gc.collect()
    assert aligned._live_buffers() == before


def test_owner_sees_exports_drop_to_zero():
    arr = aligned_empty(64)
    owner = owner_of(arr)
    assert owner.exports == 1
    del arr
    gc.collect()
    assert owner.exports == 0


def test_reinit_refused():
    buf = AlignedBuffer(8)
    with pytest.raises(InvalidInputError):
        buf.__init__(16)
    assert buf.nbytes == 8


@pytest.mark.parametrize("nbytes", [-1, "10", 1.5, True, None])
def test_bad_nbytes(nbytes):
    with pytest.raises(InvalidInputError, match="nbytes"):
        AlignedBuffer(nbytes)


@pytest.mark.parametrize("alignment", [0, 1, 3, 4, 48, 8192, -64, 2.0])
def test_bad_alignment(alignment):
    with pytest.raises(InvalidInputError, match="alignment"):
        AlignedBuffer(64, alignment)


@pytest.mark.parametrize("nbytes", [1 << 62, 1 << 70])
def test_allocation_failure_is_memory_error(nbytes):
    with pytest.raises(MemoryError):
        AlignedBuffer(nbytes)


@pytest.mark.parametrize("shape", [-1, (2, -3), (2.5,), "3", (None,)])
def test_bad_shape(shape):
    with pytest.raises(InvalidInputError, match="shape"):
        aligned_empty(shape)


@pytest.mark.parametrize("dtype", [object, "not-a-dtype"])
def test_bad_dtype(dtype):
    with pytest.raises(InvalidInputError, match="dtype"):
        aligned_zeros(3, dtype)
