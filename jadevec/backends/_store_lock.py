"""The writer lock of a store directory. Private.

One process at a time may write a store: a writer takes
``flock(LOCK_EX | LOCK_NB)`` on ``<root>/.lock`` through one file descriptor
opened with ``O_CLOEXEC`` and holds it for the store's life. The kernel, not
the file's content, is authoritative: the lock dies with the process, so a
killed writer never leaves a stale lock. The holder's pid is written into the
file only so that the next writer's error can name it.

``flock`` locks belong to an open file description, so a second writer in
the *same* process is refused too (it opens its own description). A forked
child would share the parent's description and thus its lock; the child
closes its copy at fork so that only the parent holds it. A lock object that
is collected without ``release()`` closes its descriptor (a finaliser), so a
dropped store never keeps its folder locked.

Read-only opens take no lock and never write the file.
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
LOCK_FILE = ".lock"

# Live locks of this process, so that a forked child can drop its copies.
_live: weakref.WeakSet[WriterLock] = weakref.WeakSet()
_live_guard = threading.Lock()


class WriterLock:
    """The exclusive writer lock of one store directory.

    Parameters
    ----------
    root : Path
        The store directory; it must exist.

    Raises
    ------
    StoreLockedError
        Another open store (in this or another process) holds the lock; the
        message names the holder's pid when the lock file records one.
    """

    def __init__(self, root: Path) -> None:
        self.path = Path(root) / LOCK_FILE
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"process {holder}" if holder else "another process"
            raise StoreLockedError(
                f"store {str(Path(root))!r} is open for writing by {who} "
                f"(lock file {str(self.path)!r}); open it with read_only=True or close the other"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        pid = f"{os.getpid()}\n".encode()
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, pid, 0)
        except OSError as exc:
            os.close(fd)  # the lock goes with it: a failed open must not keep it
            raise OSError(exc.errno, f"cannot write the lock file: {exc.strerror}",
                          str(self.path)) from exc
        self._fd: int | None = fd
        # Closing the descriptor drops the flock: enough if the object is lost.
        self._finalizer = weakref.finalize(self, os.close, fd)
        with _live_guard:
            _live.add(self)

    @property
    def held(self) -> bool:
        """Whether this object still holds the lock."""
        return self._fd is not None

    def release(self) -> None:
        """Drop the lock and close its descriptor. Idempotent.

        The pid is left in the file: clearing it would be a write racing the
        next holder's, and the lock itself says who holds the store.
        """
        fd, self._fd = self._fd, None
        if fd is not None:
            self._finalizer.detach()
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def _forget_in_child(self) -> None:
        # Closing (without LOCK_UN, which would release the parent's lock on
        # the shared description) drops only the child's reference.
        fd, self._fd = self._fd, None
        if fd is not None:
            self._finalizer.detach()
            os.close(fd)


def _read_pid(fd: int) -> int | None:
    """The pid the current holder wrote into the lock file, if readable."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _after_fork_in_child() -> None:
    for lock in list(_live):
        lock._forget_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
