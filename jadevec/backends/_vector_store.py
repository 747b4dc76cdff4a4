"""``MemoryMappedVectorStore``: one vector file set per database, and the one table of open files.

Each database is a folder ``<root>/<folder>/`` holding a
:class:`jadevec._core.vector_file.VectorFile` (format:
docs/vector_file_format.md). This class is the only owner of open file sets:
one dict from folder to :class:`_Slot`, one lock, a state per slot. It is
policy over the core's mechanism: lazy opening, least-recently-used
eviction (at most ``max_open`` sets open), the folder swap of ``compact``,
crash leftovers, and which files a ``flush`` or ``sync`` covers.

States of a slot::

    (absent) --acquire--> OPENING --opened--> OPEN --evict/compact/replace--> CLOSING --> (absent)
                                               |
                                               +--retire (database deleted)--> gone, for good

* **Opening, recovery and closing run outside the table lock**, so a slow
  open (a recovery) or close (a checkpoint) of one database never stalls
  calls on the others. Whoever wants a slot that is OPENING or CLOSING waits
  on the table's condition until it settles.
* **Pins.** Every operation but the one-vector ones pins its file set for
  its duration (:meth:`call`): a pinned set is never closed, so eviction,
  compaction, deletion and store close first refuse new users (CLOSING), then
  wait for the current ones, then checkpoint and close.
* **Pin-free single calls.** One ``store``, ``update``, ``delete`` or
  ``retrieve`` takes no lock of ours (two lock round trips cost more than
  the write itself): it runs on the slot's ``VectorFile`` if it has one.
  That is safe because a ``VectorFile`` checks ``closed`` under its own
  reader-writer lock, and ``close`` and ``compact_into`` hold the writer
  side: a call that began before finishes on the old set (and compaction
  copies it), one that begins after gets ``StoreClosedError`` before doing
  anything and runs again on the pinned path, which waits and reopens.
* **Recency** is least-recently-used with a second chance for pin-free reads
  (the CLOCK approximation: a tick per read would cost a tenth of a
  retrieve; setting a bit costs nothing). A pinned use stamps ``used`` at
  release and clears ``hot``; eviction closes idle sets not read since the
  previous eviction before those that were, each group oldest first, then
  stamps the survivors' reads.
* **Readers** (``read_only=True``): a call that meets a file set replaced by
  compaction or removed (``FileSetMoved``) closes the stale slot and calls
  again, which reopens the folder or raises ``DatabaseNotFoundError``.

Lock order (the only place it is written): a backend's catalog lock, then a
database's write lock, then this table's lock, then a file set's own
reader-writer lock (inside ``_core``). The table lock is held only to read
or change slots: never while opening, closing or calling into a file set,
and never while waiting on anything but its own condition.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np

from jadevec._core.crashpoints import crash_point
from jadevec._core.vector_file import FileSetMoved, VectorFile, mark_moved, swap_folders
from jadevec.backends._catalog import fsync_dir
from jadevec.errors import (
    DatabaseExistsError,
    DatabaseNotFoundError,
    InvalidInputError,
    JadevecError,
    StorageFullError,
    StoreClosedError,
)

__all__ = ["MemoryMappedVectorStore"]

log = logging.getLogger("jadevec")

T = TypeVar("T")

_COMPACT = ".{}.compact"
_OLD = ".{}.old"
_CREATING = ".{}.creating"
_DELETING = ".{}.deleting"
# A reader opening a folder that compaction keeps swapping gives up after this
# many tries (each swap takes a whole compaction, so it is never reached in
# practice; the bound only stops a livelock).
_OPEN_TRIES = 100

OPENING, OPEN, CLOSING = "opening", "open", "closing"


@contextmanager
def _typed_errors(path: str, what: str) -> Iterator[None]:
    """Raise what fails inside as a typed error naming the full path.

    ``shutil.rmtree`` and calls relative to a folder's descriptor name the file
    alone, or nothing, and report a full disk as a bare ``OSError``.
    """
    try:
        yield
    except OSError as exc:
        if isinstance(exc, JadevecError) or exc.errno is None:
            raise
        name = exc.filename if isinstance(exc.filename, str) else ""
        where = os.path.join(path, name) if name and not os.path.isabs(name) else (name or path)
        message = f"{what} {path!r} failed: {exc.strerror}"
        if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            raise StorageFullError(exc.errno, message, where) from exc
        raise OSError(exc.errno, message, where) from exc


def _remove(path: str) -> None:
    """Remove a file or folder (typed errors naming the path)."""
    with _typed_errors(path, "removing"):
        if os.path.islink(path) or not os.path.isdir(path):
            os.unlink(path)
        else:
            shutil.rmtree(path)


def _mark_moved(path: str) -> None:
    """:func:`mark_moved` with typed errors naming the path."""
    with _typed_errors(path, "marking as moved"):
        mark_moved(path)


class _Slot:
    """One database's entry in the table (see the module docstring)."""

    __slots__ = ("state", "vf", "pins", "used", "hot", "gone")

    def __init__(self, state: str) -> None:
        self.state = state
        self.vf: VectorFile | None = None
        self.pins = 0
        self.used = 0
        self.hot = False
        self.gone: str | None = None  # why, once the database was deleted

    def __repr__(self) -> str:
        return f"<_Slot {self.state} pins={self.pins} used={self.used} gone={self.gone!r}>"


class MemoryMappedVectorStore:
    """Vector file sets of many databases under one root folder.

    Parameters
    ----------
    root : str or os.PathLike
        Folder holding one sub-folder per database; made if missing (unless
        ``read_only``).
    read_only : bool
        Open every file set read-only (readers beside a writer); writes raise
        ``PermissionError``.
    max_open : int
        Most file sets kept open at once (>= 1); pinned sets may exceed it
        for a moment.
    on_recovery : callable, optional
        Called as ``on_recovery(folder, report)`` when opening a file set had
        to recover it (or fell back to an older commit record).
    """

    def __init__(self, root: str | os.PathLike[str], *, read_only: bool = False,
                 max_open: int = 100,
                 on_recovery: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        self.root = os.path.abspath(os.fsdecode(os.fspath(root)))
        self.read_only = read_only
        self.max_open = max(1, int(max_open))
        self._on_recovery = on_recovery
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._slots: dict[str, _Slot] = {}
        self._clock = itertools.count(1)
        self._waiters = 0  # threads waiting on the condition (so release can skip notify)
        self._closed = False
        #: How many times a file set was opened / evicted (for tests and reports).
        self.opens = 0
        self.evictions = 0
        if not read_only and not os.path.isdir(self.root):
            os.makedirs(self.root, exist_ok=True)
            # The folder's name must survive a power loss before any database
            # folder synced inside it can count on it.
            fsync_dir(os.path.dirname(self.root))

    # -- paths -------------------------------------------------------------------

    def _folder(self, key: str) -> str:
        if (not isinstance(key, str) or not key or key.startswith(".")
                or "/" in key or "\\" in key or "\0" in key
                or len(key.encode("utf-8", "surrogatepass")) > 200):
            raise InvalidInputError(
                f"database_id must be a folder name (not empty, no '/', not starting "
                f"with '.'), got {key!r}")
        return os.path.join(self.root, key)

    # -- the table -----------------------------------------------------------------

    def _acquire(self, key: str) -> VectorFile:
        """Pin ``key``'s file set, opening it first if needed."""
        with self._lock:
            while True:
                if self._closed:
                    raise StoreClosedError(f"the vector store at {self.root!r} is closed")
                slot = self._slots.get(key)
                if slot is None:
                    slot = self._slots[key] = _Slot(OPENING)
                    break
                if slot.gone is not None:
                    raise DatabaseNotFoundError(slot.gone)
                if slot.state is OPEN:
                    slot.pins += 1
                    return slot.vf  # type: ignore[return-value]
                self._wait_locked()
        try:
            vf = self._open(key)
        except BaseException:
            with self._lock:
                if self._slots.get(key) is slot and slot.gone is None:
                    del self._slots[key]
                slot.state = CLOSING
                self._changed.notify_all()
            raise
        with self._lock:
            refused = self._closed or slot.gone is not None
            if not refused:
                slot.vf = vf
                slot.state = OPEN
                slot.pins = 1
                slot.used = next(self._clock)
                self.opens += 1
                victims = self._pick_victims_locked()
            self._changed.notify_all()
        if refused:
            vf.close()
            with self._lock:
                slot.state = CLOSING
                self._changed.notify_all()
            if slot.gone is not None:
                raise DatabaseNotFoundError(slot.gone)
            raise StoreClosedError(f"the vector store at {self.root!r} is closed")
        self._close_victims(victims)
        return vf

    def _release(self, key: str) -> None:
        with self._lock:
            slot = self._slots[key]
            slot.pins -= 1
            slot.used = next(self._clock)  # this use is newer than any earlier read's mark
            slot.hot = False
            victims = (self._pick_victims_locked()
                       if slot.pins == 0 and len(self._slots) > self.max_open else [])
            if self._waiters:  # compaction waits for all pins but its own, close for none
                self._changed.notify_all()
        if victims:
            self._close_victims(victims)

    def _wait_locked(self, until: Callable[[], bool] | None = None) -> None:
        """Wait on the table's condition (lock held), counted so that releases wake us."""
        self._waiters += 1
        try:
            if until is None:
                self._changed.wait()
            else:
                self._changed.wait_for(until)
        finally:
            self._waiters -= 1

    def _pick_victims_locked(self) -> list[tuple[str, _Slot]]:
        """Mark the least recently used idle sets CLOSING until within ``max_open``."""
        live = [k for k, s in self._slots.items() if s.gone is None and s.state is not CLOSING]
        excess = len(live) - self.max_open
        if excess <= 0:
            return []
        slots = self._slots
        order = sorted((k for k in live if slots[k].state is OPEN),
                       key=lambda k: (slots[k].hot, slots[k].used))
        victims = []
        for key in order:
            if len(victims) == excess:
                break
            if slots[key].pins == 0:
                slots[key].state = CLOSING
                victims.append((key, slots[key]))
        # Second chance: stamp the survivors' reads, oldest first, and forget them.
        for key in order:
            slot = slots[key]
            if slot.state is OPEN and slot.hot:
                slot.hot = False
                slot.used = next(self._clock)
        return victims

    def _close_victims(self, victims: list[tuple[str, _Slot]]) -> None:
        for key, slot in victims:
            try:
                slot.vf.close()  # type: ignore[union-attr]
                self.evictions += 1
                log.debug("evicted the vector files of %s", key)
            except Exception:  # its next open recovers it
                log.exception("closing the vector files of %s failed", key)
            finally:
                self._forget(key, slot)

    def _forget(self, key: str, slot: _Slot) -> None:
        with self._lock:
            if self._slots.get(key) is slot and slot.gone is None:
                del self._slots[key]
            self._changed.notify_all()

    def _take_exclusive(self, key: str, slot: _Slot, own_pins: int) -> None:
        """Refuse new users of ``slot`` and wait until only ``own_pins`` remain (lock held)."""
        slot.state = CLOSING
        self._wait_locked(lambda: slot.pins == own_pins)

    def _open(self, key: str) -> VectorFile:
        folder = self._folder(key)
        if not self.read_only:
            self._finish_leftovers(key)
        for tries in itertools.count(1):
            try:
                vf = VectorFile.open(folder, read_only=self.read_only)
                break
            except FileNotFoundError:
                if self.read_only and tries < _OPEN_TRIES and self._swapping(key):
                    time.sleep(0.001)  # a swap by two renames, half done
                    continue
                raise DatabaseNotFoundError(
                    f"no vector file set for {key!r} in {self.root!r} (the database was "
                    f"deleted)") from None
            except FileSetMoved:
                # A reader opened the set compaction or deletion was replacing.
                if not self.read_only or tries >= _OPEN_TRIES:
                    raise
        report = vf.recovery_report
        if report is not None and self._on_recovery is not None:
            self._on_recovery(key, report)
        return vf

    def _swapping(self, key: str) -> bool:
        """Whether a compaction's swap by two renames may be between them."""
        return any(os.path.isdir(os.path.join(self.root, name.format(key)))
                   for name in (_COMPACT, _OLD))

    def _finish_leftovers(self, key: str) -> None:
        """Complete or undo what a crash left of a compaction or creation (see the format doc)."""
        folder = os.path.join(self.root, key)
        leftovers = [os.path.join(self.root, name.format(key))
                     for name in (_COMPACT, _OLD, _CREATING, _DELETING)]
        compact, old, creating, _ = leftovers
        changed = False
        if not os.path.isdir(folder):
            # A swap by two renames stopped between them: the new set (complete
            # and synced before the first rename) is at .compact; failing
            # that, the old one is at .old.
            for candidate in (compact, old):
                if os.path.isdir(candidate) and not os.path.islink(candidate):
                    with _typed_errors(candidate, "renaming"):
                        os.rename(candidate, folder)
                    changed = True
                    break
        for path in leftovers:
            if os.path.islink(path) or os.path.lexists(path) and not os.path.isdir(path):
                # Not something jadevec leaves: remove the name, never follow it.
                _remove(path)
                changed = True
            elif os.path.lexists(path):
                if path != creating:
                    _mark_moved(path)  # a reader may still have it open
                _remove(path)
                changed = True
        if changed:
            fsync_dir(self.root)

    def call(self, key: str, op: Callable[[VectorFile], T]) -> T:
        """Run ``op(vf)`` with ``key``'s file set pinned (a reader retries a moved set).

        Raises
        ------
        DatabaseNotFoundError
            The database was deleted (also when a reader finds its folder gone).
        StoreClosedError
            The store was closed.
        """
        while True:
            vf = self._acquire(key)
            try:
                return op(vf)
            except FileSetMoved:
                stale = vf
            finally:
                self._release(key)
            self._replace(key, stale)

    def _replace(self, key: str, stale: VectorFile) -> None:
        """Close a reader's file set that was replaced or removed, so the next call reopens."""
        with self._lock:
            slot = self._slots.get(key)
            if slot is None or slot.vf is not stale or slot.state is not OPEN:
                return  # another thread got here first
            self._take_exclusive(key, slot, 0)
        try:
            stale.close()
        finally:
            self._forget(key, slot)

    def retire(self, key: str, reason: str) -> None:
        """Refuse ``key`` from now on, wait for its users, close its files.

        A retired key stays in the table, so a handle to a deleted database
        raises ``DatabaseNotFoundError`` even if a new database later takes its
        name (it gets a new folder, a new key).
        """
        with self._lock:
            slot = self._slots.get(key)
            if slot is None:
                slot = self._slots[key] = _Slot(CLOSING)
            slot.gone = reason
            self._wait_locked(lambda: slot.pins == 0 and slot.state is not OPENING)
            vf, slot.vf = slot.vf, None
            slot.state = CLOSING
        if vf is not None:
            vf.close()

    def is_open(self, key: str) -> bool:
        """Whether ``key``'s files are open now."""
        with self._lock:
            slot = self._slots.get(key)
            return slot is not None and slot.state is OPEN

    def open_keys(self) -> list[str]:
        """Keys with open files, least recently used first."""
        with self._lock:
            slots = self._slots
            return sorted((k for k, s in slots.items() if s.state is OPEN),
                          key=lambda k: (slots[k].hot, slots[k].used))

    @contextmanager
    def _pinned_all(self) -> Iterator[list[tuple[str, VectorFile]]]:
        """Pin every open file set (for flush and sync) and release them after.

        A set that another thread is closing (an eviction) or compacting is
        waited for first: its acknowledged writes become durable through that
        close's checkpoint or the compacted copy's swap, and a sync that
        returned before either would promise what a power loss can still take.
        """
        with self._lock:
            if self._closed:
                raise StoreClosedError(f"the vector store at {self.root!r} is closed")
            settling = [(k, s) for k, s in self._slots.items()
                        if s.state is CLOSING and s.gone is None]
            if settling:
                self._wait_locked(lambda: all(
                    self._slots.get(k) is not s or s.state is not CLOSING for k, s in settling))
                if self._closed:
                    raise StoreClosedError(f"the vector store at {self.root!r} is closed")
            pinned = []
            for key, slot in self._slots.items():
                if slot.state is OPEN:
                    slot.pins += 1
                    pinned.append((key, slot.vf))
        try:
            yield pinned  # type: ignore[misc]
        finally:
            for key, _ in pinned:
                self._release(key)

    # -- lifecycle -------------------------------------------------------------------

    def create_vector_file(self, database_id: str, dimension: int,
                           initial_capacity: int = 64) -> None:
        """Create the file set of a new database (crash-atomically) and keep it open.

        Raises
        ------
        DatabaseExistsError
            The database already has a file set.
        """
        folder = self._folder(database_id)
        with self._lock:
            if self._closed:
                raise StoreClosedError(f"the vector store at {self.root!r} is closed")
            if database_id in self._slots:
                raise DatabaseExistsError(f"{folder}: a vector file set is already open")
            slot = self._slots[database_id] = _Slot(OPENING)
        try:
            if os.path.lexists(folder):
                raise DatabaseExistsError(f"{folder}: a vector file set already exists")
            vf = VectorFile.create(folder, dimension, initial_capacity)
        except BaseException:
            self._forget(database_id, slot)
            raise
        with self._lock:
            slot.vf = vf
            slot.state = OPEN
            slot.used = next(self._clock)
            victims = self._pick_victims_locked()
            self._changed.notify_all()
        self._close_victims(victims)

    def open_vector_file(self, database_id: str) -> None:
        """Open the file set now (recovering it if needed); nothing if it is open."""
        self.call(database_id, lambda vf: None)

    def close_vector_file(self, database_id: str) -> None:
        """Checkpoint and close the file set once its users are done; nothing if not open."""
        with self._lock:
            slot = self._slots.get(database_id)
            if slot is None or slot.state is not OPEN:
                return
            self._take_exclusive(database_id, slot, 0)
        try:
            slot.vf.close()  # type: ignore[union-attr]
        finally:
            self._forget(database_id, slot)

    def delete_database_vectors(self, database_id: str, reason: str = "") -> None:
        """Close the file set (waiting for its users) and remove its folder and leftovers.

        Readers in other processes learn of it at their next call: the folder
        is first renamed aside (an open finds it whole or not at all), then
        marked moved (a reader holding it reopens and finds it gone), then
        removed.
        """
        folder = self._folder(database_id)
        deleting = os.path.join(self.root, _DELETING.format(database_id))
        self.retire(database_id, reason or f"database folder {database_id!r} was deleted")
        if os.path.isdir(folder) and not os.path.islink(folder):
            if os.path.lexists(deleting):
                _remove(deleting)  # an earlier deletion cut short
            with _typed_errors(folder, "renaming"):
                os.rename(folder, deleting)
        crash_point("delete:renamed")
        _mark_moved(deleting)
        crash_point("delete:marked")
        for name in (database_id, _DELETING.format(database_id), _COMPACT.format(database_id),
                     _OLD.format(database_id), _CREATING.format(database_id)):
            path = os.path.join(self.root, name)
            if os.path.lexists(path):
                _remove(path)
        fsync_dir(self.root)

    def compact(self, database_id: str) -> None:
        """Rewrite the file set with only its live vectors, crash-safely.

        The new set is written and synced beside the old one, then the two
        folders are swapped in one rename (``RENAME_EXCHANGE``), the old set is
        marked moved (readers reopen) and removed.
        """
        folder = self._folder(database_id)
        new = os.path.join(self.root, _COMPACT.format(database_id))
        vf = self._acquire(database_id)
        with self._lock:
            slot = self._slots[database_id]
            self._take_exclusive(database_id, slot, 1)
        swapped = False
        try:
            if os.path.lexists(new):
                shutil.rmtree(new)
            vf.compact_into(new)  # closes vf
            crash_point("compact:written")
            fsync_dir(self.root)
            swap_folders(new, folder, os.path.join(self.root, _OLD.format(database_id)))
            swapped = True
            fsync_dir(self.root)
            crash_point("compact:swapped")
            for name in (_COMPACT.format(database_id), _OLD.format(database_id)):
                path = os.path.join(self.root, name)
                if os.path.isdir(path):
                    _mark_moved(path)
                    _remove(path)
            fsync_dir(self.root)
        finally:
            if not swapped and os.path.isdir(new):
                shutil.rmtree(new, ignore_errors=True)
            reopened = None
            try:
                reopened = vf if not vf.closed else self._open(database_id)
            finally:
                with self._lock:
                    slot.pins -= 1
                    if reopened is not None:
                        slot.vf = reopened
                        slot.state = OPEN
                        slot.used = next(self._clock)
                    elif self._slots.get(database_id) is slot:
                        del self._slots[database_id]
                    self._changed.notify_all()

    def close(self, before_files: Callable[[], None] | None = None) -> None:
        """Checkpoint and close every open file set once its users are done.

        ``before_files`` runs after the last call in flight has finished and
        before the file sets are checkpointed (the backend makes its catalog
        durable there). Every set is closed even if one fails; the first error
        is raised after. A second call does nothing.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._wait_locked(lambda: all(
                s.pins == 0 and s.state is not OPENING for s in self._slots.values()))
            closing = [(k, s) for k, s in self._slots.items() if s.state is OPEN]
            for _, s in closing:
                s.state = CLOSING
        errors = []
        if before_files is not None:
            try:
                before_files()
            except Exception as exc:  # noqa: BLE001 - close the files all the same
                errors.append(exc)
        for key, slot in closing:
            try:
                slot.vf.close()  # type: ignore[union-attr]
            except Exception as exc:  # noqa: BLE001 - close the others first
                errors.append(exc)
            finally:
                self._forget(key, slot)
        if errors:
            raise errors[0]

    def __enter__(self) -> MemoryMappedVectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<MemoryMappedVectorStore {self.root!r} open={self.open_keys()}>"

    # -- vector operations ----------------------------------------------------------

    def _call_unpinned(self, key: str, op: Callable[[VectorFile], T]) -> T:
        """Run a one-step ``op`` without a pin when the set is open (see the module notes).

        Only for calls that either happen whole or raise ``StoreClosedError``
        before changing anything (one put, update, delete or get), so that
        running them again on the pinned path is exact.
        """
        slot = self._slots.get(key)
        vf = slot.vf if slot is not None else None  # read once: retire sets it to None
        if vf is not None:
            slot.hot = True  # type: ignore[union-attr]
            try:
                return op(vf)
            except StoreClosedError:
                pass  # closed (or moved) under us: the pinned path reopens
        return self.call(key, op)

    def store_vector(self, database_id: str, vector_id: str, values: Any) -> None:
        """Store ``values`` under ``vector_id``, replacing any vector it had."""
        self._call_unpinned(database_id, lambda vf: vf.put(vector_id, values))

    def retrieve_vector(self, database_id: str, vector_id: str) -> np.ndarray | None:
        """Return a copy of the vector (float32), or ``None`` if the id is absent."""
        # _call_unpinned written out: this is the hot read, and each Python
        # call level costs a tenth of it.
        slot = self._slots.get(database_id)
        vf = slot.vf if slot is not None else None
        if vf is not None:
            slot.hot = True  # type: ignore[union-attr]
            try:
                return vf.get(vector_id)
            except StoreClosedError:
                pass
        return self.call(database_id, lambda vf: vf.get(vector_id))

    def update_vector(self, database_id: str, vector_id: str, values: Any) -> None:
        """Replace the vector of an existing id atomically.

        Raises
        ------
        VectorNotFoundError
            The id is absent; nothing changes.
        """
        self._call_unpinned(database_id, lambda vf: vf.update(vector_id, values))

    def delete_vector(self, database_id: str, vector_id: str) -> bool:
        """Delete the vector; return whether it existed."""
        return self._call_unpinned(database_id, lambda vf: vf.delete(vector_id))

    def batch_store(self, database_id: str, ids: Sequence[str], vectors: Any) -> None:
        """Store an (n, dimension) array under ``ids``: one growth, one C loop."""
        self.call(database_id, lambda vf: vf.put_batch(ids, vectors))

    def batch_retrieve(self, database_id: str, ids: Sequence[str]) -> list[np.ndarray | None]:
        """Return one copy (or ``None``) per id, in order (one commit, for a reader)."""
        rows, found = self.call(database_id, lambda vf: vf.get_batch(ids))
        return [row if hit else None for row, hit in zip(rows, found.tolist(), strict=True)]

    def list_vectors(self, database_id: str) -> list[str]:
        """Return every id of the database (in no particular order)."""
        return self.call(database_id, lambda vf: vf.ids())

    def count(self, database_id: str) -> int:
        """Return how many vectors the database holds."""
        return self.call(database_id, len)

    def search(self, database_id: str, queries: Any, k: int,
               metric: str = "cosine") -> list[list[tuple[str, float]]]:
        """Exact top-``k`` for each row of ``queries`` (m, dimension), best first."""
        return self.call(database_id, lambda vf: vf.search(queries, k, metric))

    def verify(self, database_id: str) -> list[str]:
        """Check every checksum of the file set; return the problems found."""
        return self.call(database_id, lambda vf: vf.verify())

    def flush(self, database_id: str | None = None) -> None:
        """``msync(MS_ASYNC)`` the open file sets (all, or one): a hint, not a barrier."""
        with self._pinned_all() as pinned:
            for key, vf in pinned:
                if database_id is None or key == database_id:
                    vf.flush()

    def sync(self, database_id: str | None = None) -> None:
        """Checkpoint the open file sets (all, or one): durable when this returns."""
        with self._pinned_all() as pinned:
            for key, vf in pinned:
                if database_id is None or key == database_id:
                    vf.checkpoint()
