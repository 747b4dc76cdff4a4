"""Lazily opened vector file sets with least-recently-used eviction. Private.

Shared by the ``mmap`` and ``hybrid`` backends (the seed's T11.7.2). Opening
a store opens no vector file; a database's file set is opened by its first
operation; at most ``max_open`` stay open, and the least recently used one
is flushed and closed first.

Invariants and thread rules:

* Every operation on a database brackets its work with ``acquire(key)`` and
  ``release(key)``. An acquired (pinned) file set is never closed, so a
  thread never works on a file another thread evicted under it. When every
  open file set is pinned the limit is exceeded for the moment and restored
  at the next ``release``: correctness first, the limit second.
* ``retire(key)`` (database deletion) forbids new acquires at once, waits for
  pinned users to finish and closes the files. A retired key stays retired,
  so a handle to a deleted database raises ``DatabaseNotFoundError`` even if
  a new database later takes its name (it gets a new folder, a new key).
* One lock guards the table. Opening and closing run under it: both are
  short (a clean open reads a header and maps the file), and doing them
  there makes "open exactly once" and "never close while pinned" simple.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any

from jadevec.errors import DatabaseNotFoundError, StoreClosedError

__all__ = ["OpenFiles"]

log = logging.getLogger("jadevec")


class OpenFiles:
    """The table of open vector file sets of one ``MemoryMappedVectorStore``.

    Parameters
    ----------
    store : MemoryMappedVectorStore
        Provides ``open_vector_file``, ``flush`` and ``close_vector_file``.
    max_open : int
        Most file sets kept open at once (>= 1).
    """

    def __init__(self, store: Any, max_open: int) -> None:
        self._store = store
        self.max_open = max(1, int(max_open))
        # The hot path takes the plain lock; the condition (on the same lock)
        # is only for retire() and close_all(), which wait for pins to drop.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._waiters = 0
        # key -> number of threads using it; order is recency (last = newest).
        self._pins: OrderedDict[str, int] = OrderedDict()
        self._retired: dict[str, str] = {}  # key -> why it is gone
        self._closed = False
        #: How many times a file set was opened / evicted (for tests and reports).
        self.opens = 0
        self.evictions = 0

    def acquire(self, key: str) -> None:
        """Pin ``key``'s file set, opening it (and evicting others) if needed.

        Raises
        ------
        DatabaseNotFoundError
            The key was retired (its database was deleted).
        StoreClosedError
            ``close_all`` ran.
        """
        with self._lock:
            pins = self._pins.get(key)
            if pins is not None and not self._closed:  # already open: the common case
                self._pins[key] = pins + 1
                return
        self._acquire_slow(key)

    def _acquire_slow(self, key: str) -> None:
        with self._lock:
            if self._closed:
                raise StoreClosedError("the store is closed")
            pins = self._pins.get(key)
            if pins is not None:  # another thread opened it meanwhile
                self._pins[key] = pins + 1
                return
            if key in self._retired:
                raise DatabaseNotFoundError(self._retired[key])
            self._store.open_vector_file(key)
            self.opens += 1
            self._pins[key] = 1
            self._evict_locked()

    def release(self, key: str) -> None:
        """Unpin ``key``; close surplus idle file sets."""
        with self._lock:
            left = self._pins[key] - 1
            self._pins[key] = left
            if left == 0:
                # Recency is the time of the last release: only idle sets are
                # eviction candidates, and they are ordered by when they went idle.
                self._pins.move_to_end(key)
                if len(self._pins) > self.max_open:
                    self._evict_locked()
                if self._waiters:
                    self._cond.notify_all()

    def _evict_locked(self) -> None:
        """Close least recently used unpinned file sets until within the limit."""
        excess = len(self._pins) - self.max_open
        if excess <= 0:
            return
        for key in [k for k, n in self._pins.items() if n == 0][:excess]:
            self._close_locked(key)
            self.evictions += 1

    def _close_locked(self, key: str) -> None:
        del self._pins[key]
        # Flush before closing: the seed's rule, and it keeps the close cheap.
        self._store.flush(key)
        self._store.close_vector_file(key)
        log.debug("closed vector files of %s", key)

    def retire(self, key: str, reason: str = "") -> None:
        """Forbid ``key`` from now on, wait for its users, and close it if open.

        ``reason`` is the message of the ``DatabaseNotFoundError`` later
        acquires raise.
        """
        with self._cond:
            self._retired[key] = reason or f"database was deleted (folder {key!r})"
            self._wait_locked(lambda: self._pins.get(key, 0) == 0)
            if key in self._pins:
                del self._pins[key]
                self._store.close_vector_file(key)

    def _wait_locked(self, done: Any) -> None:
        self._waiters += 1
        try:
            self._cond.wait_for(done)
        finally:
            self._waiters -= 1

    def is_open(self, key: str) -> bool:
        """Whether ``key``'s files are open now."""
        with self._cond:
            return key in self._pins

    def open_keys(self) -> list[str]:
        """Keys with open files, least recently used first."""
        with self._cond:
            return list(self._pins)

    def close_all(self) -> None:
        """Close every open file set once its users are done; refuse new acquires."""
        with self._cond:
            self._closed = True
            self._wait_locked(lambda: not any(self._pins.values()))
            for key in list(self._pins):
                del self._pins[key]
                self._store.close_vector_file(key)
