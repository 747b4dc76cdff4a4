"""What the ``mmap`` and ``hybrid`` backends share. Private.

Both keep vectors in one ``MemoryMappedVectorStore`` file set per database
under ``<root>/vectors/<folder>/`` and differ only in where the catalog and
the per-vector metadata live (a JSON manifest and JSON-lines logs, or
SQLite). This module holds the policy they share:

* the writer lock (:mod:`._store_lock`), the background checkpoint
  (:mod:`._checkpoint`) and the lazily opened files (:mod:`._open_files`);
* the database lifecycle: the folder of a database is a generated id, never
  its name; create and delete go through the catalog so that a crash between
  the catalog and the files is finished on the next open;
* the write order of a vector and its metadata (:mod:`._pairing`): metadata
  record first, vector second (the commit point); delete: vector first, then
  the record;
* recovery on open: finish half-done creates and deletes, remove folders no
  catalog entry names, and, after an unclean shutdown, resolve every metadata
  record against the live vector.

Thread rules: the catalog is guarded by one lock; each database serialises
its writers with its own lock, so a metadata record and its vector are never
interleaved with another writer's; reads take no lock of ours (the vector
store's own locks let them run in parallel). Every operation pins its file
set in the open-files table (``acquire``/``release``) except single
``retrieve``, the hot read: it reads through the ``VectorFile`` its handle
cached and falls back to the pinned path when that file was closed under it
(the invariants that make this safe are in :mod:`._open_files`).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np

from jadevec.backends._checkpoint import Checkpointer
from jadevec.backends._open_files import UNOPENED, Entry, OpenFiles
from jadevec.backends._pairing import DROP, Record, fingerprints, resolve
from jadevec.backends._store_lock import WriterLock
from jadevec.backends._vector_store import MemoryMappedVectorStore
from jadevec.backends.base import (
    Backend,
    DatabaseBackend,
    DatabaseInfo,
    RecoveryReport,
    SearchResult,
    StoreOptions,
    VerifyReport,
)
from jadevec.errors import (
    DatabaseExistsError,
    DatabaseNotFoundError,
    InvalidInputError,
    ReadOnlyError,
    StoreClosedError,
    StoreNotFoundError,
    VectorNotFoundError,
)

__all__ = ["CatalogEntry", "PersistentBackend", "PersistentDatabase", "VECTORS_DIR"]

log = logging.getLogger("jadevec")

#: Folder of the vector file sets inside a store directory.
VECTORS_DIR = "vectors"

# Catalog states of a database (the intents of the lifecycle).
CREATING, LIVE, DELETING = "creating", "live", "deleting"


@dataclass(frozen=True)
class CatalogEntry:
    """A database as the catalog records it; ``folder`` is its on-disk id."""

    name: str
    dimension: int
    metric: str
    folder: str


class Catalog(Protocol):
    """Where a backend keeps its databases, its clean flag and its metadata."""

    was_clean: bool

    def entries(self) -> list[tuple[CatalogEntry, str]]: ...
    def begin_create(self, entry: CatalogEntry) -> None: ...
    def commit_create(self, entry: CatalogEntry) -> None: ...
    def begin_delete(self, entry: CatalogEntry) -> None: ...
    def finish_delete(self, entry: CatalogEntry) -> None: ...
    def set_clean(self, clean: bool) -> None: ...
    def has_any(self, folder: str) -> bool: ...
    def get(self, folder: str, vector_id: str) -> Record | None: ...
    def get_many(self, folder: str, ids: Sequence[str]) -> dict[str, Record]: ...
    def put(self, folder: str, items: list[tuple[str, Record]]) -> None: ...
    def remove(self, folder: str, ids: Sequence[str]) -> None: ...
    def all(self, folder: str) -> dict[str, Record]: ...
    def rewrite(self, folder: str, records: dict[str, Record]) -> None: ...
    def compact(self, folder: str) -> None: ...
    def drop(self, folder: str) -> None: ...
    def folders(self) -> set[str]: ...
    def sync(self) -> None: ...
    def close(self) -> None: ...


def new_folder_id() -> str:
    """A fresh folder name: short, lower-case hex, safe on every file system."""
    return "db-" + secrets.token_hex(6)


# A folder id, possibly inside the store's compaction names ``.<id>.compact``
# and ``.<id>.old``; anything else in the vectors folder is not ours to touch.
_FOLDER_NAME = re.compile(r"^\.?(db-[0-9a-f]{12})(?:\.(?:compact|old))?$")


def folder_of(name: str) -> str | None:
    """The database folder id an entry of the vectors folder belongs to, if any."""
    match = _FOLDER_NAME.match(name)
    return match.group(1) if match else None


def _vectors_held(folder: Path) -> str | None:
    """What an orphaned vector folder holds that recovery must not delete, or ``None``.

    A crash can only orphan an empty file set (a creation that never
    returned); a folder with vectors, or one that cannot be read, is orphaned
    by a damaged catalog and is kept.
    """
    from jadevec._core.vector_file import VectorFile

    if not (folder / "vectors.jvdb").exists():
        return None
    try:
        with VectorFile.open(folder, read_only=True) as vf:
            n = len(vf)
    except Exception as exc:  # noqa: BLE001 - unreadable: keep it for a human
        return f"an unreadable file set ({type(exc).__name__})"
    return f"{n} vectors" if n else None


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (created, renamed, removed files) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PersistentDatabase(DatabaseBackend):
    """One database of a persistent backend: vectors in the store, metadata in the catalog."""

    def __init__(self, backend: PersistentBackend, entry: CatalogEntry) -> None:
        self.info = DatabaseInfo(entry.name, entry.dimension, entry.metric)
        self._backend = backend
        self._key = entry.folder
        self._files = backend._files
        self._vectors = backend._vectors
        self._catalog = backend._catalog
        # Serialises the writers of this database (record, then vector).
        self._write_lock = threading.Lock()
        # The open-files entry the pin-free read path uses (see retrieve).
        self._entry: Entry = UNOPENED

    def _check_writable(self) -> None:
        if self._backend._read_only:
            raise ReadOnlyError(f"store {str(self._backend.path)!r} was opened with read_only=True")

    # -- writes ------------------------------------------------------------------

    def _write_records(
        self, ids: Sequence[str], vectors: np.ndarray, metas: Sequence[str | None] | None
    ) -> list[tuple[str, Record | None]]:
        """Write the metadata records of a batch before its vectors (see _pairing).

        Returns what undoes them (the previous record, or ``None`` for none),
        for a vector write that fails cleanly.
        """
        catalog, key = self._catalog, self._key
        wants = metas is not None and any(m is not None for m in metas)
        if not wants and not catalog.has_any(key):
            return []  # no metadata anywhere in this database: nothing to pair
        old = catalog.get_many(key, ids)
        rows = [
            i for i, vid in enumerate(ids)
            if vid in old or (metas is not None and metas[i] is not None)
        ]
        if not rows:
            return []
        fps = fingerprints(vectors[rows])
        items = []
        for fp, i in zip(fps, rows, strict=True):
            prev = old.get(ids[i])
            meta = metas[i] if metas is not None else None
            items.append((ids[i], Record(meta, fp, prev.meta if prev else None,
                                         prev.fp if prev else None)))
        catalog.put(key, items)
        return [(vid, old.get(vid)) for vid, _ in items]

    def _undo_records(self, undo: list[tuple[str, Record | None]]) -> None:
        """Restore the records a failed vector write had replaced (best effort)."""
        if not undo:
            return
        try:
            self._catalog.put(self._key, [(v, r) for v, r in undo if r is not None])
            self._catalog.remove(self._key, [v for v, r in undo if r is None])
        except Exception:  # the pairing rule still resolves them on read and at recovery
            log.exception("could not restore metadata records of %r", self.info.name)

    def store(
        self, ids: Sequence[str], vectors: np.ndarray, metadatas: Sequence[str | None] | None
    ) -> None:
        self._check_writable()
        if len(ids) == 0:
            return
        self._files.acquire(self._key)
        try:
            with self._write_lock:
                undo = self._write_records(ids, vectors, metadatas)
                try:
                    if len(ids) == 1:
                        self._vectors.store_vector(self._key, ids[0], vectors[0])
                    else:
                        self._vectors.batch_store(self._key, list(ids), vectors)
                except BaseException:
                    self._undo_records(undo)
                    raise
        finally:
            self._files.release(self._key)

    def update(self, vector_id: str, vector: np.ndarray, metadata: str | None,
               replace_metadata: bool) -> None:
        self._check_writable()
        self._files.acquire(self._key)
        try:
            with self._write_lock:
                if self._vectors.retrieve_vector(self._key, vector_id) is None:
                    raise VectorNotFoundError(
                        f"no vector {vector_id!r} in database {self.info.name!r}")
                rows = vector.reshape(1, -1)
                meta = metadata if replace_metadata else self._metadata_locked(vector_id)
                undo = self._write_records([vector_id], rows, [meta])
                try:
                    self._vectors.update_vector(self._key, vector_id, rows[0])
                except BaseException:
                    self._undo_records(undo)
                    raise
        finally:
            self._files.release(self._key)

    def delete(self, vector_id: str) -> bool:
        self._check_writable()
        self._files.acquire(self._key)
        try:
            with self._write_lock:
                existed = self._vectors.delete_vector(self._key, vector_id)
                # After the commit point: a crash before this line leaves a
                # record with no live vector, which recovery removes.
                if self._catalog.has_any(self._key):
                    self._catalog.remove(self._key, [vector_id])
                return bool(existed)
        finally:
            self._files.release(self._key)

    def compact(self) -> None:
        self._check_writable()
        self._files.acquire(self._key)
        try:
            with self._write_lock:
                self._vectors.compact(self._key)
                self._catalog.compact(self._key)
        finally:
            self._files.release(self._key)

    # -- reads -------------------------------------------------------------------

    def retrieve(self, vector_id: str) -> np.ndarray | None:
        # The pin-free read path (its invariants: jadevec.backends._open_files):
        # no lock of ours, just a recency mark and the cached VectorFile. A
        # file closed under us (evicted, compacted, deleted, store closed)
        # raises StoreClosedError before it reads anything: take the pinned path.
        entry = self._entry
        entry.hot = True
        try:
            return entry.vf.get(vector_id)
        except StoreClosedError:
            return self._retrieve_pinned(vector_id)

    def _retrieve_pinned(self, vector_id: str) -> np.ndarray | None:
        """Retrieve with the file set pinned (opening it), and refresh the fast path's cache."""
        key = self._key
        entry = self._files.acquire(key)  # DatabaseNotFoundError / StoreClosedError
        try:
            vector = self._vectors.retrieve_vector(key, vector_id)
            # Pinned, so not evicted meanwhile; a compaction may still close
            # it again, which the next read notices and repairs the same way.
            entry.vf = self._vectors.open_vector_file(key)
            self._entry = entry
            return vector
        finally:
            self._files.release(key)

    def retrieve_many(self, ids: Sequence[str]) -> list[np.ndarray | None]:
        self._files.acquire(self._key)
        try:
            return list(self._vectors.batch_retrieve(self._key, list(ids)))
        finally:
            self._files.release(self._key)

    def contains(self, vector_id: str) -> bool:
        return self.retrieve(vector_id) is not None

    def count(self) -> int:
        self._files.acquire(self._key)
        try:
            return int(self._vectors.count(self._key))
        finally:
            self._files.release(self._key)

    def list_ids(self) -> list[str]:
        self._files.acquire(self._key)
        try:
            return list(self._vectors.list_vectors(self._key))
        finally:
            self._files.release(self._key)

    def _metadata_locked(self, vector_id: str) -> str | None:
        record = self._catalog.get(self._key, vector_id)
        if record is None:
            return None
        live = self._vectors.retrieve_vector(self._key, vector_id)
        live_fp = None if live is None else fingerprints(live.reshape(1, -1))[0]
        meta = resolve(record, live_fp)
        return None if meta is DROP else meta  # type: ignore[return-value]

    def get_metadata(self, vector_id: str) -> str | None:
        self._files.acquire(self._key)
        try:
            return self._metadata_locked(vector_id)
        finally:
            self._files.release(self._key)

    def search(self, queries: np.ndarray, k: int) -> list[SearchResult]:
        self._files.acquire(self._key)
        try:
            return self._vectors.search(self._key, queries, k, self.info.metric)
        finally:
            self._files.release(self._key)


class PersistentBackend(Backend):
    """A store directory: writer lock, catalog, vector store, checkpoint thread.

    Subclasses provide :meth:`_open_catalog`.

    Layout of ``path``::

        .lock                 writer lock (pid of the holder)
        <catalog files>       the subclass's catalog and metadata
        vectors/<folder>/     one MemoryMappedVectorStore file set per database
    """

    persistent: ClassVar[bool] = True
    supports_metadata: ClassVar[bool] = True
    #: A file whose presence marks ``path`` as a store of this backend.
    catalog_file: ClassVar[str]

    def __init__(self, path: Path | None, options: StoreOptions) -> None:
        if path is None:
            raise InvalidInputError(f"the {type(self).__name__} needs a directory path, got None")
        self.path = Path(path)
        self._read_only = bool(options.read_only)
        self._closed = False
        self._recovery: RecoveryReport | None = None
        self._lock: WriterLock | None = None
        self._checkpointer: Checkpointer | None = None
        self._handles: dict[str, PersistentDatabase] = {}
        self._databases: dict[str, CatalogEntry] = {}  # name.lower() -> entry
        self._catalog_lock = threading.RLock()
        if self._read_only:
            if not (self.path / self.catalog_file).is_file():
                raise StoreNotFoundError(
                    f"no {self.backend_name} store at {str(self.path)!r} (read_only=True "
                    f"opens an existing store; {self.catalog_file} is missing)")
        else:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock = WriterLock(self.path)
        catalog: Catalog | None = None
        try:
            catalog = self._open_catalog(self.path, self._read_only)
            self._catalog = catalog
            self._vectors = MemoryMappedVectorStore(self.path / VECTORS_DIR,
                                                   read_only=self._read_only)
            self._files = OpenFiles(self._vectors, options.max_open_files)
            entries = catalog.entries()
            for entry, state in entries:
                if state == LIVE:
                    self._databases[entry.name.lower()] = entry
            if not self._read_only:
                self._recovery = self._recover(entries)
                catalog.set_clean(False)  # durable before the first write is accepted
                self._checkpointer = Checkpointer(options.flush_interval, self._checkpoint,
                                                  name=f"jadevec-checkpoint {self.path}")
        except BaseException:
            if catalog is not None:
                catalog.close()
            if self._lock is not None:
                self._lock.release()
            raise

    backend_name: ClassVar[str] = "persistent"

    def _open_catalog(self, root: Path, read_only: bool) -> Catalog:
        raise NotImplementedError

    # -- recovery ----------------------------------------------------------------

    def _remove_files(self, folder: str) -> None:
        """Remove every file of a database folder (idempotent)."""
        vectors_dir = self.path / VECTORS_DIR
        if (vectors_dir / folder).exists():
            self._vectors.delete_database_vectors(folder)
        # The store removes what it knows; what is left (a half-done
        # compaction's folders, stray files) is ours to clear.
        for name in (folder, f".{folder}.compact", f".{folder}.old"):
            shutil.rmtree(vectors_dir / name, ignore_errors=True)
        self._catalog.drop(folder)

    def _recover(self, entries: list[tuple[CatalogEntry, str]]) -> RecoveryReport | None:
        """Finish intents, sweep orphans, and pair metadata after an unclean shutdown."""
        started = time.perf_counter()
        actions: list[str] = []
        touched: list[str] = []
        catalog = self._catalog
        for entry, state in entries:
            if state == CREATING:
                held = _vectors_held(self.path / VECTORS_DIR / entry.folder)
                if held:  # a creation that never returned stored nothing: damage
                    actions.append(f"kept database {entry.name!r}: marked as being created, "
                                   f"but its folder holds {held} (is the catalog damaged?)")
                    continue
                self._remove_files(entry.folder)
                catalog.finish_delete(entry)
                actions.append(f"rolled back the unfinished creation of database {entry.name!r}")
                touched.append(entry.name)
            elif state == DELETING:
                self._remove_files(entry.folder)
                catalog.finish_delete(entry)
                actions.append(f"finished the interrupted deletion of database {entry.name!r}")
                touched.append(entry.name)
        live = {e.folder for e in self._databases.values()}
        vectors_dir = self.path / VECTORS_DIR
        names = [p.name for p in vectors_dir.iterdir()] if vectors_dir.is_dir() else []
        on_disk = {f for f in map(folder_of, names) if f is not None}
        for folder in sorted((on_disk | catalog.folders()) - live):
            held = _vectors_held(vectors_dir / folder)
            if held:  # a damaged catalog entry must not cost the data: keep it
                actions.append(f"kept folder {folder!r}: no database names it, but it holds "
                               f"{held} (is the catalog damaged?)")
                continue
            self._remove_files(folder)
            actions.append(f"removed orphaned folder {folder!r} that no database names")
        if actions and vectors_dir.is_dir():
            fsync_dir(vectors_dir)
        if not catalog.was_clean:
            actions.append("the store was not closed cleanly; metadata paired with vectors")
            for entry in self._databases.values():
                fixed = self._pair_metadata(entry)
                if fixed:
                    actions.extend(fixed)
                    touched.append(entry.name)
        if not actions:
            return None
        report = RecoveryReport(actions=actions, databases=sorted(set(touched)),
                                seconds=time.perf_counter() - started)
        log.warning("recovered store %s: %s", self.path, "; ".join(actions))
        return report

    def _pair_metadata(self, entry: CatalogEntry) -> list[str]:
        """Resolve every metadata record of a database against its live vectors."""
        records = self._catalog.all(entry.folder)
        if not records:
            return []
        ids = list(records)
        self._files.acquire(entry.folder)
        try:
            live = self._vectors.batch_retrieve(entry.folder, ids)
        finally:
            self._files.release(entry.folder)
        dropped = rolled_back = unknown = 0
        kept: dict[str, Record] = {}
        for vid, vec in zip(ids, live, strict=True):
            record = records[vid]
            live_fp = None if vec is None else fingerprints(vec.reshape(1, -1))[0]
            meta = resolve(record, live_fp)
            if meta is DROP:
                dropped += 1
                continue
            if live_fp != record.fp:
                if record.prev_fp is None or live_fp == record.prev_fp:
                    rolled_back += 1
                else:
                    unknown += 1
            kept[vid] = Record(meta, live_fp, None, None)  # type: ignore[arg-type]
        if kept == records:
            return []
        self._catalog.rewrite(entry.folder, kept)
        out = []
        if dropped:
            out.append(f"{entry.name!r}: removed {dropped} metadata records whose vector "
                       "was never written or was deleted")
        if rolled_back:
            out.append(f"{entry.name!r}: rolled {rolled_back} metadata records back to the "
                       "version paired with the live vector")
        if unknown:
            out.append(f"{entry.name!r}: {unknown} vectors lost their metadata (their record "
                       "and vector disagree, as after a power loss inside the checkpoint window)")
        return out

    @property
    def recovery_report(self) -> RecoveryReport | None:
        return self._recovery

    # -- catalog -----------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(f"store {str(self.path)!r} is closed")

    def _check_writable(self) -> None:
        self._check_open()
        if self._read_only:
            raise ReadOnlyError(f"store {str(self.path)!r} was opened with read_only=True")

    def _handle(self, entry: CatalogEntry) -> PersistentDatabase:
        handle = self._handles.get(entry.folder)
        if handle is None:
            handle = self._handles[entry.folder] = PersistentDatabase(self, entry)
        return handle

    def create_database(self, name: str, dimension: int, metric: str) -> DatabaseBackend:
        self._check_writable()
        with self._catalog_lock:
            if name.lower() in self._databases:
                taken = self._databases[name.lower()].name
                raise DatabaseExistsError(f"a database named {taken!r} already exists")
            entry = CatalogEntry(name, int(dimension), metric, new_folder_id())
            self._catalog.begin_create(entry)
            self._vectors.create_vector_file(entry.folder, entry.dimension)
            # create_vector_file leaves the files open: make the table own them.
            self._vectors.close_vector_file(entry.folder)
            fsync_dir(self.path / VECTORS_DIR)
            self._catalog.commit_create(entry)
            self._databases[name.lower()] = entry
            return self._handle(entry)

    def open_database(self, name: str) -> DatabaseBackend:
        self._check_open()
        with self._catalog_lock:
            entry = self._databases.get(name.lower())
            if entry is None:
                raise DatabaseNotFoundError(f"no database named {name!r} in {str(self.path)!r}")
            return self._handle(entry)

    def list_databases(self) -> list[DatabaseInfo]:
        self._check_open()
        with self._catalog_lock:
            return [DatabaseInfo(e.name, e.dimension, e.metric) for e in self._databases.values()]

    def has_database(self, name: str) -> bool:
        self._check_open()
        with self._catalog_lock:
            return name.lower() in self._databases

    def delete_database(self, name: str) -> None:
        self._check_writable()
        with self._catalog_lock:
            entry = self._databases.get(name.lower())
            if entry is None:
                raise DatabaseNotFoundError(f"no database named {name!r} in {str(self.path)!r}")
            self._catalog.begin_delete(entry)
            del self._databases[name.lower()]
            self._handles.pop(entry.folder, None)
        # Outside the catalog lock: waiting for in-flight users of this
        # database must not block every other database's lookups.
        self._files.retire(entry.folder, f"database {entry.name!r} was deleted; this handle is "
                                          "no longer valid")
        self._remove_files(entry.folder)
        fsync_dir(self.path / VECTORS_DIR)
        self._catalog.finish_delete(entry)

    # -- lifecycle ---------------------------------------------------------------

    def _checkpoint(self) -> None:
        """Catalog and metadata durable first, then the vectors (rule 8's order)."""
        self._catalog.sync()
        self._vectors.sync()

    def flush(self) -> None:
        self._check_open()
        if not self._read_only:
            self._vectors.flush()

    def sync(self) -> None:
        self._check_open()
        if not self._read_only:
            self._checkpoint()

    def verify(self) -> VerifyReport:
        self._check_open()
        report = VerifyReport()
        with self._catalog_lock:
            entries = list(self._databases.values())
        vectors = records = 0
        for entry in entries:
            handle = self._handle(entry)
            try:
                self._files.acquire(entry.folder)
            except Exception as exc:  # a damaged file set is reported, not raised
                report.problems.append(f"database {entry.name!r}: cannot open: {exc}")
                continue
            try:
                with handle._write_lock:
                    vectors += int(self._vectors.count(entry.folder))
                    report.problems.extend(f"database {entry.name!r}: {p}"
                                           for p in self._vectors.verify(entry.folder))
                    stored = self._catalog.all(entry.folder)
                    records += len(stored)
                    ids = list(stored)
                    found = self._vectors.batch_retrieve(entry.folder, ids)
                    for vid, vec in zip(ids, found, strict=True):
                        live_fp = None if vec is None else fingerprints(vec.reshape(1, -1))[0]
                        if live_fp is None or live_fp != stored[vid].fp:
                            report.problems.append(
                                f"database {entry.name!r}: metadata of {vid!r} is not paired "
                                "with its vector")
            finally:
                self._files.release(entry.folder)
        report.checked.update(databases=len(entries), vectors=vectors, metadata_records=records)
        return report

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._checkpointer is not None:
                self._checkpointer.stop()
            if not self._read_only:
                self._checkpoint()
            self._files.close_all()
            self._vectors.close()
            if not self._read_only:
                self._catalog.set_clean(True)
        finally:
            self._catalog.close()
            if self._lock is not None:
                self._lock.release()

    def open_file_count(self) -> int:
        """How many databases have their vector files open now (lazy loading, for tests)."""
        return len(self._files.open_keys())

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("read-only" if self._read_only else "open")
        return f"<{type(self).__name__} {str(self.path)!r} {state}>"
