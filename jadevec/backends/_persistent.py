"""What the ``mmap`` and ``hybrid`` backends share: the store. Private.

Both keep vectors in one file set per database under
``<root>/vectors/<folder>/`` (:mod:`._vector_store`, the one table of open
files) and differ only in where the catalog and the per-vector metadata live
(:mod:`._catalog`). This module holds the store-level policy:

* the writer lock (:mod:`._store_lock`) and the background checkpoint
  (:mod:`._checkpoint`);
* the database lifecycle: create and delete go through the catalog so that a
  crash at any point is finished on the next open (:mod:`._recovery`), and a
  failed create leaves nothing behind;
* checkpoint order: the catalog durable first, then the vector files;
* ``close``: refuse new calls, wait for those in flight, checkpoint, close
  every file (all of them, even if one fails), and only then mark the store
  clean;
* readers (``read_only=True``): the catalog is read anew for every lookup,
  so a reader sees databases created and deleted after it opened.

Databases themselves are :class:`._database.PersistentDatabase`.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

from jadevec._core.crashpoints import crash_point
from jadevec._core.vector_file import FILE_NAMES, VectorFile
from jadevec.backends._catalog import (
    CREATING,
    LIVE,
    VECTORS_DIR,
    Catalog,
    CatalogEntry,
    fsync_dir,
    new_folder_id,
)
from jadevec.backends._checkpoint import Checkpointer
from jadevec.backends._database import PersistentDatabase
from jadevec.backends._pairing import UNKNOWN, Record, fingerprints, resolve
from jadevec.backends._recovery import recover_store, remove_folder
from jadevec.backends._store_lock import WriterLock
from jadevec.backends._vector_store import MemoryMappedVectorStore
from jadevec.backends.base import (
    Backend,
    DatabaseBackend,
    DatabaseInfo,
    RecoveryReport,
    StoreOptions,
    VerifyReport,
    refuse_foreign_folder,
)
from jadevec.errors import (
    DatabaseExistsError,
    DatabaseNotFoundError,
    InvalidInputError,
    JadevecError,
    ReadOnlyError,
    StorageFullError,
    StoreClosedError,
    StoreFailedError,
    StoreNotFoundError,
    UnsupportedError,
)

__all__ = ["PersistentBackend"]

# The reader table of a file set: never copied by a backup.
READERS_FILE = FILE_NAMES[-1]

log = logging.getLogger("jadevec")


class PersistentBackend(Backend):
    """A store directory: writer lock, catalog, vector store, checkpoint thread.

    Subclasses provide :meth:`_open_catalog`.

    Layout of ``path``::

        .lock                 writer lock (pid of the holder)
        <catalog files>       the subclass's catalog and metadata
        vectors/<folder>/     one vector file set per database
    """

    persistent: ClassVar[bool] = True
    supports_metadata: ClassVar[bool] = True
    supports_backup: ClassVar[bool] = True
    #: A file whose presence marks ``path`` as a store of this backend.
    catalog_file: ClassVar[str]
    #: The names this backend makes at the top of a store besides hidden ones
    #: (the lock file, work folders): a folder without the catalog that holds
    #: anything else is not made into a store.
    own_names: ClassVar[frozenset[str]]
    backend_name: ClassVar[str] = "persistent"

    def __init__(self, path: Path | None, options: StoreOptions) -> None:
        if path is None:
            raise InvalidInputError(f"the {type(self).__name__} needs a directory path, got None")
        # Resolved once: a later os.chdir() must not move the store.
        self.path = Path(os.path.abspath(path))
        self._read_only = bool(options.read_only)
        self._closed = False
        # Why the store refuses writes until it is reopened (a sync failed).
        self._failed: str | None = None
        self._recovery: RecoveryReport | None = None
        self._recovery_lock = threading.Lock()
        self._lock: WriterLock | None = None
        self._checkpointer: Checkpointer | None = None
        self._handles: dict[str, PersistentDatabase] = {}
        self._databases: dict[str, CatalogEntry] = {}  # name.lower() -> entry
        # Guards the catalog's list of databases and the closed flag.
        self._catalog_lock = threading.RLock()
        if self._read_only:
            if not (self.path / self.catalog_file).is_file():
                raise StoreNotFoundError(
                    f"no {self.backend_name} store at {str(self.path)!r} (read_only=True "
                    f"opens an existing store; {self.catalog_file} is missing)")
        else:
            # Before the lock file is made there:
            refuse_foreign_folder(self.path, self.backend_name, self.catalog_file,
                                  self.own_names)
            try:
                self._make_root()
                self._lock = WriterLock(self.path)
            except OSError as exc:
                if isinstance(exc, JadevecError) or exc.errno not in (
                        errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
                    raise
                raise StorageFullError(
                    exc.errno, f"cannot make the store's folder or lock file: {exc.strerror}",
                    exc.filename if exc.filename is not None else str(self.path)) from exc
        catalog: Catalog | None = None
        try:
            catalog = self._open_catalog(self.path, self._read_only)
            self._catalog = catalog
            self._vectors = MemoryMappedVectorStore(
                self.path / VECTORS_DIR, read_only=self._read_only,
                max_open=options.max_open_files, on_recovery=self._file_recovered)
            entries = catalog.entries()
            self._databases = {e.name.lower(): e for e, state in entries if state == LIVE}
            if not self._read_only:
                started = time.perf_counter()
                actions, touched = recover_store(self, entries)
                if actions:
                    self._add_recovery(actions, touched, time.perf_counter() - started)
                catalog.set_clean(False)  # durable before the first write is accepted
                self._checkpointer = Checkpointer(options.flush_interval,
                                                  self._background_checkpoint,
                                                  name=f"jadevec-checkpoint {self.path}")
        except BaseException:
            if catalog is not None:
                catalog.close()
            if self._lock is not None:
                self._lock.release()
            raise

    def _make_root(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        # A writer creates files here (lock, catalog journal, vector folders):
        # say so plainly rather than fail later on one of them.
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise PermissionError(
                13, "the store folder is not writable by this process (open it with "
                "read_only=True to read it)", str(self.path))

    def _open_catalog(self, root: Path, read_only: bool) -> Catalog:
        raise NotImplementedError

    # -- recovery ----------------------------------------------------------------

    def _add_recovery(self, actions: list[str], databases: list[str], seconds: float) -> None:
        with self._recovery_lock:
            if self._recovery is None:
                self._recovery = RecoveryReport()
            self._recovery.actions.extend(actions)
            self._recovery.databases = sorted(set(self._recovery.databases) | set(databases))
            self._recovery.seconds += seconds
        log.warning("recovered store %s: %s", self.path, "; ".join(actions))

    def _file_recovered(self, folder: str, report: dict[str, Any]) -> None:
        """A database's vector files recovered when opened (at open or lazily)."""
        name = next((e.name for e in list(self._databases.values()) if e.folder == folder),
                    f"folder {folder}")
        parts = []
        if report.get("fallback"):
            parts.append(report["fallback"])
        if report.get("recovered"):
            parts.append(
                f"replayed {report['replayed']} writes and {report['replayed_deletes']} "
                f"deletes after commit generation {report['generation']}")
            if report.get("dropped"):
                what = ", ".join(f"{n} {kind}" for kind, n in report["dropped"].items())
                parts.append(f"left out slot records that were torn or damaged ({what})")
            if report.get("filled_id_records"):
                parts.append(f"rewrote {report['filled_id_records']} torn id records as "
                             f"fillers")
            if report.get("repaired_slot_records"):
                parts.append(f"rewrote {report['repaired_slot_records']} slot records "
                             f"from the index")
        if parts:
            self._add_recovery([f"database {name!r}: " + "; ".join(parts)], [name],
                               float(report.get("seconds", 0.0)))

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
        if self._failed is not None:
            raise StoreFailedError(errno.EIO, f"{self._failed}; the store refuses writes until "
                                   f"it is reopened", str(self.path))

    def _entry(self, name: str) -> CatalogEntry | None:
        """The live database named ``name`` (ignoring case); a reader asks the catalog anew."""
        if self._read_only:
            self._databases = {e.name.lower(): e for e, s in self._catalog.entries()
                               if s == LIVE}
        return self._databases.get(name.lower())

    def _handle(self, entry: CatalogEntry) -> PersistentDatabase:
        handle = self._handles.get(entry.folder)
        if handle is None:
            handle = self._handles[entry.folder] = PersistentDatabase(self, entry)
        return handle

    def create_database(self, name: str, dimension: int, metric: str) -> DatabaseBackend:
        with self._catalog_lock:
            self._check_writable()
            if name.lower() in self._databases:
                taken = self._databases[name.lower()].name
                raise DatabaseExistsError(f"a database named {taken!r} already exists")
            self._finish_failed_create(name)
            entry = CatalogEntry(name, int(dimension), metric, new_folder_id())
            self._catalog.begin_create(entry)
            crash_point("catalog:begun")
            try:
                self._vectors.create_vector_file(entry.folder, entry.dimension)
                crash_point("catalog:files")
                self._catalog.commit_create(entry)
            except BaseException:
                self._undo_create(entry)
                raise
            crash_point("catalog:committed")
            self._databases[name.lower()] = entry
            return self._handle(entry)

    def _undo_create(self, entry: CatalogEntry) -> None:
        """Take back a creation that failed: no files, no catalog row."""
        try:
            remove_folder(self, entry.folder)
            self._catalog.abort_create(entry)
        except Exception:  # the row stays 'creating'; the next create or open finishes it
            log.exception("could not undo the failed creation of database %r", entry.name)

    def _finish_failed_create(self, name: str) -> None:
        """Roll back a creation of ``name`` that failed and could not be undone then."""
        for entry, state in self._catalog.entries():
            if state == CREATING and entry.name.lower() == name.lower():
                remove_folder(self, entry.folder)
                self._catalog.abort_create(entry)

    def open_database(self, name: str) -> DatabaseBackend:
        with self._catalog_lock:
            self._check_open()
            entry = self._entry(name)
            if entry is None:
                raise DatabaseNotFoundError(f"no database named {name!r} in {str(self.path)!r}")
            return self._handle(entry)

    def list_databases(self) -> list[DatabaseInfo]:
        with self._catalog_lock:
            self._check_open()
            self._entry("")  # a reader refreshes its list
            return [DatabaseInfo(e.name, e.dimension, e.metric) for e in self._databases.values()]

    def has_database(self, name: str) -> bool:
        with self._catalog_lock:
            self._check_open()
            return self._entry(name) is not None

    def delete_database(self, name: str) -> None:
        with self._catalog_lock:
            self._check_writable()
            entry = self._databases.get(name.lower())
            if entry is None:
                raise DatabaseNotFoundError(f"no database named {name!r} in {str(self.path)!r}")
            self._catalog.begin_delete(entry)  # durable: from here the database is gone
            del self._databases[name.lower()]
            self._handles.pop(entry.folder, None)
        crash_point("delete:begun")
        # Outside the catalog lock: waiting for in-flight users of this
        # database must not block every other database's lookups.
        try:
            self._vectors.delete_database_vectors(
                entry.folder,
                f"database {entry.name!r} was deleted; this handle is no longer valid")
            self._catalog.drop(entry.folder)
            crash_point("delete:files")
            self._catalog.finish_delete(entry)
        except OSError as exc:
            # The deletion is committed; what is left (files, records, the
            # intent) is what a crash here leaves, and the next open removes it.
            log.warning("database %r is deleted, but removing its files failed (%s); the next "
                        "open of %s removes them", entry.name, exc, str(self.path))

    # -- backup ------------------------------------------------------------------

    def backup(self, dest: Path) -> None:
        """Copy every database, one at a time, each at one commit, into ``dest``.

        For each database live when the call starts: with its write lock held
        (its writers wait; other databases go on) and its file set pinned (no
        eviction or close rewrites a header under the copy), a checkpoint
        commits everything acknowledged, the four data files are copied and
        fsynced (an idle checkpoint writes nothing, so the files hold exactly
        that commit), and its metadata records are read. Outside the locks the
        copy is opened once and closed, which turns its commit into a clean
        one, and the records go into a catalog written afresh in ``dest``
        (``commit_create`` then ``rewrite``, the catalog's own crash-safe
        paths), marked clean. A database deleted during the backup is left
        out; one created after it began is not copied.
        """
        if self._read_only:
            raise UnsupportedError(
                f"backup() needs the store opened for writing (its checkpoints make "
                f"each database's files one commit); {str(self.path)!r} is read-only")
        self._check_open()
        with self._catalog_lock:
            self._check_open()
            handles = [(entry, self._handle(entry)) for entry in self._databases.values()]
        vectors_dir = dest / VECTORS_DIR
        vectors_dir.mkdir()
        copied: list[tuple[CatalogEntry, dict[str, Record]]] = []
        for entry, handle in handles:
            folder = vectors_dir / entry.folder
            try:
                with handle._write_lock:
                    records = self._vectors.call(
                        entry.folder,
                        lambda vf, entry=entry, folder=folder: self._copy_files(vf, entry,
                                                                                folder))
            except DatabaseNotFoundError:
                if folder.exists():
                    shutil.rmtree(folder)
                continue  # deleted since the backup began
            VectorFile.open(os.fspath(folder)).close()  # recovers nothing, commits clean
            copied.append((entry, records))
        fsync_dir(vectors_dir)
        catalog = self._open_catalog(dest, False)
        try:
            for entry, records in copied:
                catalog.begin_create(entry)
                catalog.commit_create(entry)
                if records:
                    catalog.rewrite(entry.folder, records)
            catalog.set_clean(True)
            catalog.sync()
        finally:
            catalog.close()
        fsync_dir(dest)

    def _copy_files(self, vf: VectorFile, entry: CatalogEntry,
                    folder: Path) -> dict[str, Record]:
        """Commit ``vf`` and copy its data files into ``folder`` (write lock and pin held)."""
        vf.checkpoint()
        folder.mkdir()
        for name in FILE_NAMES:
            if name == READERS_FILE:
                continue  # who reads the source; the copy's first open makes its own
            try:
                with open(os.path.join(vf.path, name), "rb") as src, \
                        open(folder / name, "xb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
                    out.flush()
                    os.fsync(out.fileno())
            except OSError as exc:
                if exc.filename is not None:
                    raise
                # write() and fsync() name no file: say which copy failed.
                raise OSError(exc.errno, f"copying {name} failed: {exc.strerror}",
                              str(folder / name)) from exc
            crash_point("backup:copying")  # a crash with the copy half made
        fsync_dir(folder)
        return self._catalog.all(entry.folder)

    # -- lifecycle ---------------------------------------------------------------

    def _checkpoint(self) -> None:
        """Catalog and metadata durable first, then the vectors.

        A failed sync leaves the store failed: writes raise ``StoreFailedError``
        until it is reopened. After a failed fsync the kernel may have dropped
        the pages it could not write and a retried fsync reports success over
        them, so going on would acknowledge writes that a power loss can take.
        """
        if self._failed is not None:
            raise StoreFailedError(errno.EIO, f"{self._failed}; reopen the store",
                                   str(self.path))
        try:
            self._catalog.sync()
            self._vectors.sync()
        except OSError as exc:
            self._failed = f"a sync failed ({exc})"
            raise

    def _background_checkpoint(self) -> None:
        if self._failed is None:  # a failed store was told once; it does nothing more
            self._checkpoint()

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
            self._entry("")
            entries = list(self._databases.values())
        vectors = records = 0
        for entry in entries:
            try:
                count, problems, n_records = self._vectors.call(
                    entry.folder, lambda vf, entry=entry: self._verify_one(vf, entry))
            except (DatabaseNotFoundError, StoreClosedError):
                raise
            except Exception as exc:  # a damaged file set is reported, not raised
                report.problems.append(f"database {entry.name!r}: cannot open: {exc}")
                continue
            vectors += count
            records += n_records
            report.problems.extend(f"database {entry.name!r}: {p}" for p in problems)
        report.checked.update(databases=len(entries), vectors=vectors, metadata_records=records)
        return report

    def _verify_one(self, vf: Any, entry: CatalogEntry) -> tuple[int, list[str], int]:
        problems = list(vf.verify())
        stored = self._catalog.all(entry.folder)
        ids = list(stored)
        found, hit = vf.get_batch(ids)
        for vid, vec, ok in zip(ids, found, hit.tolist(), strict=True):
            if not ok:
                continue  # a deleted vector's record: reads ignore it, the next open removes it
            # A record is fine if the pairing rule resolves it: one ahead of
            # its vector (a write cut short) is settled by the next recovery.
            if resolve(stored[vid], fingerprints(vec.reshape(1, -1))[0]) is UNKNOWN:
                problems.append(f"metadata of {vid!r} is not paired with its vector")
        return len(vf), problems, len(stored)

    def close(self) -> None:
        with self._catalog_lock:
            if self._closed:
                return
            self._closed = True
        errors: list[BaseException] = []
        try:
            if self._checkpointer is not None:
                self._checkpointer.stop()
            # Waits for calls in flight (their metadata included), makes the
            # catalog durable, then checkpoints and closes every file set.
            self._vectors.close(before_files=None if self._read_only else self._catalog.sync)
        except BaseException as exc:  # close the rest, then raise
            errors.append(exc)
        try:
            if not self._read_only and not errors and self._failed is None:
                self._catalog.set_clean(True)
        except BaseException as exc:
            errors.append(exc)
        finally:
            self._catalog.close()
            if self._lock is not None:
                self._lock.release()
        if errors:
            raise errors[0]

    def open_file_count(self) -> int:
        """How many databases have their vector files open now (lazy loading, for tests)."""
        return len(self._vectors.open_keys())

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("read-only" if self._read_only else "open")
        return f"<{type(self).__name__} {str(self.path)!r} {state}>"

