"""One database of the ``mmap`` and ``hybrid`` backends: vectors in its file set,
metadata in the catalog, paired by :mod:`._pairing`. Private.

Write order (research on SQLite and LMDB's rule: the two stores no single
write can change together are ordered, and the second write is the commit
point):

* **store / update / batch store**: grow the file set for the batch first
  (``VectorFile.reserve``: a full disk is reported before anything is
  written), then write the metadata records, each stamped with the
  fingerprint of its vector, then the vectors: the commit point. If the
  vector write fails cleanly the records are restored.
* **delete**: the vector first (the commit point), then the record.

Thread rules: a database's writers are serialised by its write lock, taken
before its file set is pinned (the lock order of
:mod:`jadevec.backends._vector_store`), so a record and its vector are never
interleaved with another writer's. Reads take no lock of ours.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np

from jadevec._core.vector_file import VectorFile
from jadevec.backends._catalog import CatalogEntry
from jadevec.backends._pairing import UNKNOWN, Record, fingerprints, next_record, resolve
from jadevec.backends.base import DatabaseBackend, DatabaseInfo, SearchResult
from jadevec.errors import VectorNotFoundError

if TYPE_CHECKING:
    from jadevec.backends._persistent import PersistentBackend

__all__ = ["PersistentDatabase"]

log = logging.getLogger("jadevec")

# How often a reader re-reads a metadata record and its vector when they
# were caught between two commits of the writer (see get_metadata).
_PAIRING_TRIES = 3


class WriteLock:
    """The write lock of one database: ``with lock:`` for a write, :meth:`compaction`
    for a compaction.

    Writers take it as they come (uncontended, this costs what a plain lock
    costs). A compaction holds it for the whole rewrite, and a plain lock is
    not fair: a thread compacting in a loop took it back microseconds after
    releasing it, before the writer woken by the release could run, and a
    store waited through compaction after compaction. So a compaction first
    lets in a writer that queued behind the previous one.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._turns = threading.Condition(threading.Lock())
        self._waiting = 0  # writers blocked on _lock
        self._entered = 0  # writers that got _lock after being blocked
        self._entered_by_last_compaction = 0  # _entered when the last compaction ended

    def __enter__(self) -> None:
        if self._lock.acquire(blocking=False):
            return
        with self._turns:
            self._waiting += 1
        try:
            self._lock.acquire()
        finally:
            with self._turns:
                self._waiting -= 1
                self._entered += 1
                self._turns.notify_all()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    @contextmanager
    def compaction(self) -> Iterator[None]:
        """Hold the lock for a compaction, once writers queued behind the last one got in."""
        with self._turns:
            self._turns.wait_for(lambda: self._waiting == 0
                                 or self._entered != self._entered_by_last_compaction)
        self._lock.acquire()
        try:
            yield
        finally:
            with self._turns:
                self._entered_by_last_compaction = self._entered
            self._lock.release()


class PersistentDatabase(DatabaseBackend):
    """One database of a persistent backend: vectors in the store, metadata in the catalog."""

    def __init__(self, backend: PersistentBackend, entry: CatalogEntry) -> None:
        self.info = DatabaseInfo(entry.name, entry.dimension, entry.metric)
        self._backend = backend
        self._key = entry.folder
        self._vectors = backend._vectors
        self._catalog = backend._catalog
        # Serialises the writers of this database (record, then vector).
        self._write_lock = WriteLock()

    def _check_writable(self) -> None:
        self._backend._check_writable()

    # -- writes ------------------------------------------------------------------

    def _needs_records(self, metas: Sequence[str | None] | None) -> bool:
        """Whether a write must write metadata records: it has metadata, or the
        database has records that the write must supersede."""
        wants = metas is not None and any(m is not None for m in metas)
        return wants or self._catalog.has_any(self._key)

    def _write_records(
        self, vf: VectorFile, ids: Sequence[str], vectors: np.ndarray,
        metas: Sequence[str | None] | None,
    ) -> list[tuple[str, Record | None]]:
        """Write the metadata records of a batch before its vectors (see _pairing).

        Returns what undoes them (the previous record, or ``None`` for none),
        for a vector write that fails cleanly.
        """
        catalog, key = self._catalog, self._key
        old = catalog.get_many(key, ids)
        rows = [
            i for i, vid in enumerate(ids)
            if vid in old or (metas is not None and metas[i] is not None)
        ]
        if not rows:
            return []
        fps = fingerprints(vectors[rows])
        generation = vf.generation
        items = []
        for fp, i in zip(fps, rows, strict=True):
            meta = metas[i] if metas is not None else None
            items.append((ids[i], next_record(old.get(ids[i]), meta, fp, generation)))
        catalog.put(key, items)
        return [(vid, old.get(vid)) for vid, _ in items]

    def _undo_records(self, undo: list[tuple[str, Record | None]]) -> None:
        """Restore the records a failed vector write had replaced.

        If this fails too, the records are ahead of their vectors, which every
        read resolves (the pairing rule) and the next recovery settles.
        """
        if not undo:
            return
        try:
            self._catalog.put(self._key, [(v, r) for v, r in undo if r is not None])
            self._catalog.remove(self._key, [v for v, r in undo if r is None])
        except Exception:
            log.exception("could not restore the metadata records of %r; reads pair them "
                          "with their vectors and the next recovery settles them",
                          self.info.name)

    def store(
        self, ids: Sequence[str], vectors: np.ndarray, metadatas: Sequence[str | None] | None
    ) -> None:
        self._check_writable()
        if len(ids) == 0:
            return

        def write(vf: VectorFile) -> None:
            undo: list[tuple[str, Record | None]] = []
            if self._needs_records(metadatas):
                vf.reserve(ids)  # a full disk is reported here, before any record is written
                undo = self._write_records(vf, ids, vectors, metadatas)
            try:
                if len(ids) == 1:
                    vf.put(ids[0], vectors[0])
                else:
                    vf.put_batch(ids, vectors)
            except BaseException:
                self._undo_records(undo)
                raise

        with self._write_lock:
            self._vectors.call(self._key, write)

    def update(self, vector_id: str, vector: np.ndarray, metadata: str | None,
               replace_metadata: bool) -> None:
        self._check_writable()

        def write(vf: VectorFile) -> None:
            live = vf.get(vector_id)
            if live is None:
                raise VectorNotFoundError(
                    f"no vector {vector_id!r} in database {self.info.name!r}")
            rows = vector.reshape(1, -1)
            meta = metadata if replace_metadata else self._resolve(vector_id, live)
            undo: list[tuple[str, Record | None]] = []
            if self._needs_records([meta]):
                vf.reserve([vector_id])
                undo = self._write_records(vf, [vector_id], rows, [meta])
            try:
                vf.update(vector_id, rows[0])
            except BaseException:
                self._undo_records(undo)
                raise

        with self._write_lock:
            self._vectors.call(self._key, write)

    def delete(self, vector_id: str) -> bool:
        self._check_writable()

        def write(vf: VectorFile) -> bool:
            existed = vf.delete(vector_id)
            # After the commit point: a crash (or a failed write) here leaves a
            # record with no live vector, which reads ignore and the next open
            # removes. The delete happened, so the call must not raise.
            try:
                if self._catalog.has_any(self._key):
                    self._catalog.remove(self._key, [vector_id])
            except OSError as exc:
                log.warning("vector %r is deleted, but removing its metadata record failed "
                            "(%s); reads ignore the record and the next open removes it",
                            vector_id, exc)
            return bool(existed)

        with self._write_lock:
            return self._vectors.call(self._key, write)

    def compact(self) -> None:
        self._check_writable()
        with self._write_lock.compaction():
            self._vectors.compact(self._key)
            self._catalog.compact(self._key)

    # -- reads -------------------------------------------------------------------

    def retrieve(self, vector_id: str) -> np.ndarray | None:
        return self._vectors.retrieve_vector(self._key, vector_id)

    def retrieve_many(self, ids: Sequence[str]) -> list[np.ndarray | None]:
        return self._vectors.batch_retrieve(self._key, list(ids))

    def contains(self, vector_id: str) -> bool:
        return self.retrieve(vector_id) is not None

    def count(self) -> int:
        return int(self._vectors.count(self._key))

    def list_ids(self) -> list[str]:
        return list(self._vectors.list_vectors(self._key))

    def _resolve(self, vector_id: str, live: np.ndarray | None) -> str | None:
        """The metadata of ``vector_id`` given its live vector."""
        record = self._catalog.get(self._key, vector_id)
        if record is None or live is None:
            return None
        meta = resolve(record, fingerprints(live.reshape(1, -1))[0])
        return None if meta is UNKNOWN else meta  # type: ignore[return-value]

    def get_metadata(self, vector_id: str) -> str | None:
        def read(vf: VectorFile) -> str | None:
            # A reader sees the newest record but the vector of the newest
            # commit; the record keeps the committed version for exactly that
            # (see _pairing). Only a commit *and* another write of this id
            # between the two reads below can leave no match: then read again.
            for _ in range(_PAIRING_TRIES):
                live = vf.get(vector_id)
                record = self._catalog.get(self._key, vector_id)
                if record is None or live is None:
                    return None
                meta = resolve(record, fingerprints(live.reshape(1, -1))[0])
                if meta is not UNKNOWN:
                    return meta  # type: ignore[return-value]
                if not vf.read_only:
                    break
            return None

        return self._vectors.call(self._key, read)

    def search(self, queries: np.ndarray, k: int) -> list[SearchResult]:
        return self._vectors.search(self._key, queries, k, self.info.metric)

