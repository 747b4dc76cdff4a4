"""The writer lock of a store directory.

LMDB serialises write transactions across processes but lets any number of
processes open an environment for writing, one after the other. jadevec
promises more: one writer *process* per store, and a second one is refused at
``open`` with the holder's pid. So a writer takes ``flock(LOCK_EX | LOCK_NB)``
on ``<store>/writer.lock`` and holds it until ``close``. The kernel owns the
lock: it dies with the process, so a killed writer leaves no stale lock. The
pid in the file only serves the next writer's error message.

``flock`` belongs to an open file description, so a second writer in the same
process is refused as well. A forked child closes its inherited descriptor so
that the lock stays with the parent alone.
"""

from __future__ import annotations

import fcntl
import os
import threading
import weakref
from pathlib import Path

from jadevec.errors import StoreLockedError

__all__ = ["LOCK_FILE", "WriterLock"]

#: Name of the lock file inside a store directory.
LOCK_FILE = "writer.lock"

_live: weakref.WeakSet[WriterLock] = weakref.WeakSet()
_live_guard = threading.Lock()


class WriterLock:
    """The exclusive writer lock of one store directory.

    Parameters
    ----------
    directory : Path
        The store directory; it must exist.

    Raises
    ------
    StoreLockedError
        Another open store, in this or another process, holds the lock.
    """

    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK_FILE
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"process {holder}" if holder else "another process"
            raise StoreLockedError(
                f"store {str(directory)!r} is open for writing by {who} "
                f"(lock file {str(self.path)!r}); open it with read_only=True or close the other"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd: int | None = fd
        with _live_guard:
            _live.add(self)

    def release(self) -> None:
        """Give the lock up; a second call does nothing."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with _live_guard:
                _live.discard(self)
            os.close(fd)  # closing the only descriptor releases the flock


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def _forget_in_child() -> None:
    # The child shares the parent's open file description: unlocking it here
    # would unlock the parent, so only close the child's descriptor.
    for lock in list(_live):
        fd, lock._fd = lock._fd, None
        if fd is not None:
            os.close(fd)
    _live.clear()


os.register_at_fork(after_in_child=_forget_in_child)
