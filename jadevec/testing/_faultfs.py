"""Build the file-system shim (``_faultfs.c``) used by the torture tests.

The shim is an ``LD_PRELOAD`` library (Linux, glibc) that counts, logs,
fails and records the file calls a process makes under one folder; the
C source documents its environment interface (``JVFS_ROOT``, ``JVFS_LOG``,
``JVFS_FAIL_AT``, ``JVFS_FAIL_ERRNO``, ``JVFS_FAIL_MODE``, ``JVFS_IMAGES``)
and its control functions (``jvfs_calls``, ``jvfs_arm``, ``jvfs_disarm``).
It ships as source and is compiled on first use, so the package needs no
compiler unless these tests run.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

__all__ = ["SOURCE", "ShimControl", "build_shim", "shim_env"]

SOURCE = Path(__file__).with_name("_faultfs.c")

_ERRNO_NAMES = {"ENOSPC": _errno.ENOSPC, "EIO": _errno.EIO, "EFBIG": _errno.EFBIG}


def _compiler() -> list[str]:
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    words = shlex.split(cc)
    if not words or shutil.which(words[0]) is None:
        # sysconfig names the compiler Python was built with, which may be absent here.
        for name in ("cc", "gcc", "clang"):
            if shutil.which(name):
                return [name]
        raise RuntimeError(
            f"the file-system shim needs a C compiler: {cc!r} (sysconfig's CC) is not "
            f"installed and neither cc, gcc nor clang is on PATH"
        )
    return words


def build_shim(cache_dir: Path | None = None) -> Path:
    """Compile the shim once and return the path of the shared library.

    The library is cached under ``cache_dir`` (default: a ``jadevec-faultfs``
    folder in the temporary directory) by a hash of the source and the
    compiler, so later calls cost a stat.

    Raises
    ------
    RuntimeError
        Not Linux, no C compiler, or the compilation failed (the message
        holds the compiler's output); tests skip with it.
    """
    if not sys.platform.startswith("linux"):
        raise RuntimeError(f"the file-system shim needs Linux (LD_PRELOAD), not {sys.platform}")
    cc = _compiler()
    source = SOURCE.read_bytes()
    digest = hashlib.sha256(source + " ".join(cc).encode()).hexdigest()[:16]
    folder = Path(cache_dir) if cache_dir is not None else (
        Path(tempfile.gettempdir()) / f"jadevec-faultfs-{os.getuid()}"
    )
    target = folder / f"faultfs-{digest}.so"
    if target.exists():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    # Built beside the target and renamed, so a concurrent build never loads half a file.
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=folder)
    os.close(fd)
    cmd = [*cc, "-shared", "-fPIC", "-O1", "-Wall", "-o", tmp, str(SOURCE), "-ldl"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as exc:
        os.unlink(tmp)
        raise RuntimeError(f"could not run the C compiler {cc[0]!r}: {exc}") from exc
    if done.returncode != 0:
        os.unlink(tmp)
        raise RuntimeError(
            f"compiling the file-system shim failed ({' '.join(cmd)}):\n{done.stderr}"
        )
    os.replace(tmp, target)
    return target


def shim_env(
    shim: Path,
    root: Path,
    *,
    log: Path | None = None,
    images: Path | None = None,
    fail_at: int | None = None,
    fail_errno: str = "ENOSPC",
    persist: bool = False,
    base: dict[str, str] | None = None,
) -> dict[str, str]:
    """An environment for a child process that loads the shim."""
    env = dict(os.environ if base is None else base)
    env["LD_PRELOAD"] = str(shim)
    env["JVFS_ROOT"] = os.path.abspath(root)
    for name, value in (("JVFS_LOG", log), ("JVFS_IMAGES", images)):
        if value is None:
            env.pop(name, None)
        else:
            env[name] = os.path.abspath(value)
    if fail_at is None:
        for name in ("JVFS_FAIL_AT", "JVFS_FAIL_ERRNO", "JVFS_FAIL_MODE"):
            env.pop(name, None)
    else:
        if fail_errno not in _ERRNO_NAMES:
            raise ValueError(
                f"fail_errno must be one of {sorted(_ERRNO_NAMES)}, got {fail_errno!r}")
        env["JVFS_FAIL_AT"] = str(fail_at)
        env["JVFS_FAIL_ERRNO"] = fail_errno
        env["JVFS_FAIL_MODE"] = "persist" if persist else "once"
    return env


class ShimControl:
    """The shim's control functions, from inside a process that preloads it.

    Raises ``RuntimeError`` when the shim is not loaded.
    """

    def __init__(self) -> None:
        lib = ctypes.CDLL(None)
        try:
            self._calls = lib.jvfs_calls
            self._arm = lib.jvfs_arm
            self._disarm = lib.jvfs_disarm
        except AttributeError:
            raise RuntimeError("the file-system shim is not loaded (LD_PRELOAD)") from None
        self._calls.restype = ctypes.c_long
        self._calls.argtypes = []
        self._arm.restype = None
        self._arm.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_int]
        self._disarm.restype = None
        self._disarm.argtypes = []

    def calls(self) -> int:
        """Counted calls so far."""
        return int(self._calls())

    def arm(self, k: int, errno: int | str = "ENOSPC", persist: bool = False) -> None:
        """Fail the k-th counted call from now (and every later one if ``persist``)."""
        code = _ERRNO_NAMES[errno] if isinstance(errno, str) else int(errno)
        self._arm(k, code, int(persist))

    def disarm(self) -> None:
        self._disarm()
