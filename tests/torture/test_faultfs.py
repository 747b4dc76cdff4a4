"""The file-system shim (jadevec/testing/_faultfs.c) that the torture tests preload.

Each test runs a small child process with the shim in ``LD_PRELOAD`` and
checks what it counted, logged, failed and recorded: only calls under
``JVFS_ROOT`` count, the k-th counted call fails with the chosen errno
without being done, and a barrier records the bytes it made durable.
"""

from __future__ import annotations

import errno
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from jadevec.testing._faultfs import build_shim, shim_env

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="LD_PRELOAD is Linux")


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        return build_shim(tmp_path_factory.mktemp("shim"))
    except RuntimeError as exc:
        pytest.skip(str(exc))


def run_child(code: str, env: dict[str, str]) -> dict:
    """Run ``code`` with the shim; it prints one JSON object as its last line."""
    prelude = textwrap.dedent("""
        import ctypes, errno, json, mmap, os
        from jadevec.testing._faultfs import ShimControl
        ctl = ShimControl()
        root = os.environ["JVFS_ROOT"]
    """)
    done = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def log_lines(log: Path) -> list[list[str]]:
    return [line.split(" ") for line in log.read_text().splitlines()]


def test_counts_and_logs_only_calls_under_the_root(shim: Path, tmp_path: Path) -> None:
    root, outside, log = tmp_path / "root", tmp_path / "outside", tmp_path / "log"
    root.mkdir()
    outside.mkdir()
    env = shim_env(shim, root, log=log)
    env["OUTSIDE"] = str(outside)
    out = run_child("""
        before = ctl.calls()
        o = os.open(os.path.join(os.environ["OUTSIDE"], "x"), os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(o, b"abc"); os.fsync(o); os.close(o)
        r = os.open(os.path.join(root, "a"), os.O_WRONLY | os.O_CREAT, 0o644)
        os.pwrite(r, b"hello", 10)
        os.fsync(r); os.close(r)
        os.rename(os.path.join(root, "a"), os.path.join(root, "b"))
        os.mkdir(os.path.join(root, "d"))
        os.unlink(os.path.join(root, "b"))
        print(json.dumps({"before": before, "after": ctl.calls()}))
    """, env)
    lines = log_lines(log)
    assert [line[1] for line in lines] == ["open", "pwrite", "fsync", "rename", "mkdir", "unlink"]
    assert [int(line[0]) for line in lines] == list(range(1, 7))
    assert all(line[2].startswith(str(root)) for line in lines)
    assert lines[1][3:] == ["10", "5"]  # offset and length
    assert lines[3][2:] == [str(root / "a"), str(root / "b")]
    assert out["after"] - out["before"] == 6
    assert (outside / "x").read_bytes() == b"abc"


def test_the_kth_call_fails_with_the_errno_without_being_done(shim: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    # Call 1 is the open, call 2 the first write: it fails and writes nothing;
    # "once" lets the next write through.
    env = shim_env(shim, root, fail_at=2, fail_errno="ENOSPC")
    out = run_child("""
        fd = os.open(os.path.join(root, "f"), os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.write(fd, b"lost")
            first = None
        except OSError as exc:
            first = exc.errno
        os.write(fd, b"kept")
        # Armed at run time, counted from now, persisting: every later call fails.
        ctl.arm(1, "EIO", persist=True)
        codes = []
        for _ in range(2):
            try:
                os.fsync(fd)
                codes.append(0)
            except OSError as exc:
                codes.append(exc.errno)
        ctl.disarm()
        os.fsync(fd)
        print(json.dumps({"first": first, "codes": codes}))
    """, env)
    assert out["first"] == errno.ENOSPC
    assert out["codes"] == [errno.EIO] * 2
    assert (root / "f").read_bytes() == b"kept"


def test_posix_fallocate_returns_the_errno(shim: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    env = shim_env(shim, root, fail_at=2, fail_errno="EFBIG")
    out = run_child("""
        fd = os.open(os.path.join(root, "f"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.posix_fallocate(fd, 0, 8192)
            code = 0
        except OSError as exc:
            code = exc.errno
        print(json.dumps({"code": code, "size": os.fstat(fd).st_size}))
    """, env)
    assert out == {"code": errno.EFBIG, "size": 0}


def test_barriers_record_durable_images(shim: Path, tmp_path: Path) -> None:
    root, images, log = tmp_path / "root", tmp_path / "images", tmp_path / "log"
    root.mkdir()
    images.mkdir()
    env = shim_env(shim, root, log=log, images=images)
    out = run_child("""
        path = os.path.join(root, "f")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        os.write(fd, b"synced")
        os.fsync(fd)
        os.write(fd, b"-not-synced")
        os.rename(path, os.path.join(root, "g"))   # the image follows the inode
        d = os.open(root, os.O_RDONLY)
        os.fsync(d)
        # A mapped file: msync of one page records those bytes only.
        m = os.open(os.path.join(root, "m"), os.O_RDWR | os.O_CREAT, 0o644)
        os.ftruncate(m, 3 * 4096)
        mm = mmap.mmap(m, 3 * 4096)
        mm[4096:4100] = b"PAGE"
        mm[0:4] = b"LOST"
        mm.flush(4096, 4096)
        # A write through an O_DSYNC descriptor is durable when it returns.
        ds = os.open(os.path.join(root, "ds"), os.O_WRONLY | os.O_CREAT | os.O_DSYNC, 0o644)
        os.pwrite(ds, b"meta", 8)
        st = os.fstat(fd)
        sm = os.fstat(m)
        sd = os.fstat(d)
        key = lambda s: "%x_%x" % (s.st_dev, s.st_ino)
        print(json.dumps({"f": key(st), "m": key(sm), "d": key(sd), "ds": key(os.fstat(ds))}))
    """, env)
    assert (images / f"f_{out['f']}").read_bytes() == b"synced"
    assert (root / "g").read_bytes() == b"synced-not-synced"
    entries = (images / f"d_{out['d']}").read_text().splitlines()
    assert entries == [f"f {out['f']} g"]  # "m" was created after the directory's fsync
    mapped = (images / f"f_{out['m']}").read_bytes()
    assert len(mapped) == 2 * 4096  # nothing past the synced range was made durable
    assert mapped[4096:4100] == b"PAGE"
    assert mapped[:4096] == bytes(4096)  # the page never synced is not in the image
    assert (images / f"f_{out['ds']}").read_bytes() == bytes(8) + b"meta"
    assert [line[1] for line in log_lines(log)][-3:] == ["msync", "open", "pwrite"]
    assert not [p for p in images.iterdir() if p.name.endswith(".tmp")]


def test_a_new_file_on_a_reused_inode_does_not_inherit_the_dead_files_images(
        shim: Path, tmp_path: Path) -> None:
    root, images, log = tmp_path / "root", tmp_path / "images", tmp_path / "log"
    root.mkdir()
    images.mkdir()
    env = shim_env(shim, root, log=log, images=images)
    # Create, sync and delete files until the file system hands a deleted
    # file's inode number to a new file (ext4 does so at once; tmpfs never).
    out = run_child("""
        key = lambda s: "%x_%x" % (s.st_dev, s.st_ino)
        d = os.open(root, os.O_RDONLY)
        dead = {}
        for i in range(200):
            path = os.path.join(root, f"old{i}")
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            k = key(os.fstat(fd))
            if k in dead:
                os.write(fd, b"new, never synced")
                print(json.dumps({"key": k, "dead": dead[k], "new": f"old{i}"}))
                break
            os.write(fd, f"dead file {i}".encode())
            os.fsync(fd)
            os.fsync(d)          # its name is durable too
            os.close(fd)
            os.unlink(path)      # not synced: the directory image still lists it
            dead[k] = f"old{i}"
        else:
            print(json.dumps({}))
    """, env)
    if not out:
        pytest.skip("this file system did not reuse an inode number")
    reborn = [line[2] for line in log_lines(log) if line[1] == "reborn"]
    assert len(reborn) == 1 and reborn[0].startswith(out["key"] + "~")
    # The dead file keeps its synced bytes under its retired key, and the
    # directory image that lists its name points there; the new file has no
    # durable bytes yet.
    i = int(out["dead"][3:])
    assert (images / f"f_{reborn[0]}").read_bytes() == f"dead file {i}".encode()
    assert not (images / f"f_{out['key']}").exists()
    listing = dict(line.split(" ")[2:0:-1] for line in
                   next(images.glob("d_*")).read_text().splitlines())
    assert listing[out["dead"]] == reborn[0]
    assert not [p for p in images.iterdir() if p.name.endswith(".tmp")]
