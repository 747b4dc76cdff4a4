"""MappedFile: growth in place, exports that outlive growth and close, errors."""

import errno
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from jadevec._core.mapped_file import MappedFile, page_size
from jadevec.errors import StorageFullError, StoreClosedError


def test_create_write_reopen(tmp_path):
    path = tmp_path / "f"
    with MappedFile(path, create=True, size=10_000) as mf:
        view = memoryview(mf)
        view[:4] = b"abcd"
        view.release()
        mf.sync()
        assert mf.size == 10_000
    with MappedFile(path, read_only=True) as mf:
        assert mf.size == 10_000
        assert bytes(memoryview(mf)[:4]) == b"abcd"
        assert mf.pread(0, 4) == b"abcd"
        view = memoryview(mf)
        assert view.readonly
        with pytest.raises(TypeError):
            view[0:1] = b"x"
        view.release()
        with pytest.raises(PermissionError):
            mf.grow(20_000)


def test_grow_in_place_keeps_address_and_data(tmp_path):
    with MappedFile(tmp_path / "f", create=True, size=100) as mf:
        a = np.frombuffer(mf, dtype=np.uint8)
        a[:] = 7
        base = a.ctypes.data
        for size in range(4096, 1 << 22, 4096 * 33):
            mf.grow(size)
            b = np.frombuffer(mf, dtype=np.uint8)
            assert b.ctypes.data == base  # never moves inside the reservation
            assert b.size == size and (b[:100] == 7).all() and not b[100:].any()
            del b
        assert mf.file_size() >= mf.size


def test_views_survive_reservation_exhaustion_and_close(tmp_path):
    mf = MappedFile(tmp_path / "f", create=True, size=100, reserve=page_size())
    old = np.frombuffer(mf, dtype=np.uint8)
    old[:] = 3
    assert mf.exports == 1
    mf.grow(1 << 20)  # past the reservation: mapped anew, the old mapping retired
    new = np.frombuffer(mf, dtype=np.uint8)
    assert (old == 3).all() and (new[:100] == 3).all() and new.size == 1 << 20
    new[0] = 9
    mf.close()
    assert mf.closed
    # both views still readable after close: their mappings wait for them
    assert old.sum() >= 3 * 99 and new[0] == 9
    with pytest.raises(StoreClosedError):
        memoryview(mf)
    with pytest.raises(StoreClosedError):
        mf.grow(1 << 21)
    del old, new


def test_never_truncates_and_checks_arguments(tmp_path):
    with MappedFile(tmp_path / "f", create=True, size=8192) as mf:
        mf.grow(100)
        assert mf.size == 8192
        with pytest.raises(ValueError):
            mf.grow(-1)
        with pytest.raises(ValueError):
            mf.advise("bogus")
        for hint in ("normal", "sequential", "random", "willneed"):
            mf.advise(hint)
        mf.flush()
        mf.sync(4096, 10)
        mf.fsync()


def test_os_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        MappedFile(tmp_path / "missing")
    assert str(tmp_path / "missing") in str(info.value)
    MappedFile(tmp_path / "x", create=True, size=1).close()
    with pytest.raises(FileExistsError):
        MappedFile(tmp_path / "x", create=True, size=1)


def test_disk_full_while_growing_is_a_clean_error(tmp_path):
    """RLIMIT_FSIZE makes fallocate fail with EFBIG: a typed error, data intact."""
    script = textwrap.dedent(f"""
        import resource, signal, numpy as np
        from jadevec._core.mapped_file import MappedFile
        from jadevec.errors import StorageFullError
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        mf = MappedFile({str(tmp_path / "f")!r}, create=True, size=1 << 16)
        a = np.frombuffer(mf, dtype=np.uint8); a[:] = 5
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
        try:
            mf.grow(1 << 24)
        except StorageFullError as exc:
            assert exc.errno == {errno.EFBIG}, exc
            assert {str(tmp_path / "f")!r} in str(exc)
            assert mf.size == 1 << 16 and (a == 5).all()
            print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=os.getcwd(), timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
    assert issubclass(StorageFullError, OSError)
