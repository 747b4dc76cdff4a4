"""Lazily opened vector file sets with least-recently-used eviction. Private.

Shared by the ``mmap`` and ``hybrid`` backends (the seed's T11.7.2). Opening
a store opens no vector file; a database's file set is opened by its first
operation; at most ``max_open`` stay open, and the least recently used one
is flushed and closed first.

Invariants and thread rules:

* Every open file set has one :class:`Entry` in the table: its pin count,
  its recency (``used``, a tick of one process-wide counter, and ``hot``,
  a reference bit) and ``vf``, a cache of its open ``VectorFile`` for the
  pin-free read path.
* Pinned operations bracket their work with ``acquire(key)`` (which returns
  the entry) and ``release(key)``. An acquired (pinned) file set is never
  closed, so a thread never works on a file another thread evicted under
  it. When every open file set is pinned the limit is exceeded for the
  moment and restored at the next ``release``: correctness first, the limit
  second.
* The pin-free read path (``PersistentDatabase.retrieve``) takes no lock of
  ours: it sets ``entry.hot = True`` and reads through ``entry.vf``. That is
  safe because a ``VectorFile`` checks ``closed`` under its own
  reader-writer lock and ``close`` takes the writer side: a read that
  started before an eviction, a deletion or a compaction finishes on the
  still-mapped file, and one that starts after gets ``StoreClosedError``
  (before it reads anything) and falls back to the pinned path, which
  reopens the file or raises ``DatabaseNotFoundError`` /
  ``StoreClosedError``. Before closing a file set the table sets its
  entry's ``vf`` to :data:`CLOSED` (so a stale entry keeps no file alive)
  and drops the entry; a mark on a dropped entry is harmless.
* Recency is least-recently-used with a second chance for pin-free reads
  (the CLOCK approximation of LRU: a tick per read, ``next(CLOCK)``, would
  add a tenth to a retrieve; setting a bit costs next to nothing). A pinned
  use stamps ``used = next(CLOCK)`` at ``release`` and clears ``hot``.
  Eviction closes idle entries not read since the last eviction before
  those that were, each group oldest ``used`` first; then it stamps the
  survivors' reads (oldest first) and clears their bits. So pinned uses are
  ordered exactly, and a read counts as a use made between the last
  eviction and this one.
* ``retire(key)`` (database deletion) forbids new acquires at once, waits for
  pinned users to finish and closes the files. A retired key stays retired,
  so a handle to a deleted database raises ``DatabaseNotFoundError`` even if
  a new database later takes its name (it gets a new folder, a new key).
* One lock guards the table. Opening and closing run under it: both are
  short (a clean open reads a header and maps the file), and doing them
  there makes "open exactly once" and "never close while pinned" simple.
"""

from __future__ import annotations

import itertools
import logging
import threading
from typing import Any

from jadevec.errors import DatabaseNotFoundError, StoreClosedError

__all__ = ["CLOCK", "CLOSED", "Entry", "OpenFiles", "UNOPENED"]

log = logging.getLogger("jadevec")

#: Process-wide use counter: ``next(CLOCK)`` orders uses for the LRU.
CLOCK = itertools.count(1)


class _ClosedFile:
    """Stands in for a closed ``VectorFile`` in an entry: every read raises."""

    __slots__ = ()
    closed = True

    def get(self, vector_id: str) -> Any:
        raise StoreClosedError("the vector file set is not open")

    def __repr__(self) -> str:
        return "<closed vector file>"


#: The ``vf`` of an entry whose file set is not (or no longer) open.
CLOSED: Any = _ClosedFile()


class Entry:
    """One open file set: pins, recency, and the cached ``VectorFile`` (see above)."""

    __slots__ = ("pins", "used", "hot", "vf")

    def __init__(self) -> None:
        self.pins = 0
        self.used = 0
        self.hot = False
        self.vf: Any = CLOSED

    def __repr__(self) -> str:
        return f"<Entry pins={self.pins} used={self.used} hot={self.hot} vf={self.vf!r}>"


#: The entry of a handle that has not used its file set yet: never in a table.
UNOPENED = Entry()


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
        self._open: dict[str, Entry] = {}  # key -> entry of its open file set
        self._retired: dict[str, str] = {}  # key -> why it is gone
        self._closed = False
        #: How many times a file set was opened / evicted (for tests and reports).
        self.opens = 0
        self.evictions = 0

    def acquire(self, key: str) -> Entry:
        """Pin ``key``'s file set, opening it (and evicting others) if needed.

        Returns
        -------
        Entry
            The key's entry, valid (never closed) until ``release(key)``.

        Raises
        ------
        DatabaseNotFoundError
            The key was retired (its database was deleted).
        StoreClosedError
            ``close_all`` ran.
        """
        with self._lock:
            entry = self._open.get(key)
            # Already open is the common case; a retired key (its database is
            # being deleted) refuses new users at once, even while retire()
            # still waits for the current ones.
            if entry is not None and not self._closed and key not in self._retired:
                entry.pins += 1
                return entry
            if self._closed:
                raise StoreClosedError("the store is closed")
            if key in self._retired:
                raise DatabaseNotFoundError(self._retired[key])
            self._store.open_vector_file(key)
            self.opens += 1
            entry = self._open[key] = Entry()
            entry.pins = 1
            entry.used = next(CLOCK)
            self._evict_locked()
            return entry

    def release(self, key: str) -> None:
        """Unpin ``key``; close surplus idle file sets."""
        with self._lock:
            entry = self._open[key]
            entry.pins -= 1
            entry.used = next(CLOCK)  # this use is newer than any earlier read's mark
            entry.hot = False
            if entry.pins == 0:
                if len(self._open) > self.max_open:
                    self._evict_locked()
                if self._waiters:
                    self._cond.notify_all()

    def _by_age_locked(self) -> list[str]:
        """Open keys, least recently used first (see "Recency" above)."""
        entries = self._open
        return sorted(entries, key=lambda k: (entries[k].hot, entries[k].used))

    def _evict_locked(self) -> None:
        """Close least recently used unpinned file sets until within the limit."""
        excess = len(self._open) - self.max_open
        if excess <= 0:
            return
        order = self._by_age_locked()
        for key in [k for k in order if self._open[k].pins == 0][:excess]:
            self._close_locked(key)
            self.evictions += 1
        # Second chance: stamp the survivors' reads, oldest first, and forget them.
        for key in order:
            entry = self._open.get(key)
            if entry is not None and entry.hot:
                entry.hot = False
                entry.used = next(CLOCK)

    def _close_locked(self, key: str, flush: bool = True) -> None:
        self._open.pop(key).vf = CLOSED
        if flush:
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
            self._wait_locked(lambda: key not in self._open or self._open[key].pins == 0)
            if key in self._open:
                self._close_locked(key, flush=False)

    def _wait_locked(self, done: Any) -> None:
        self._waiters += 1
        try:
            self._cond.wait_for(done)
        finally:
            self._waiters -= 1

    def is_open(self, key: str) -> bool:
        """Whether ``key``'s files are open now."""
        with self._cond:
            return key in self._open

    def open_keys(self) -> list[str]:
        """Keys with open files, least recently used first."""
        with self._cond:
            return self._by_age_locked()

    def close_all(self) -> None:
        """Close every open file set once its users are done; refuse new acquires."""
        with self._cond:
            self._closed = True
            self._wait_locked(lambda: not any(e.pins for e in self._open.values()))
            for key in list(self._open):
                self._close_locked(key, flush=False)
