"""The ``hybrid`` backend, the default: SQLite for catalog and metadata, mapped vector files.

Layout of a store directory::

    .lock                 writer lock (the holder's pid)
    catalog.sqlite3       SQLite (WAL while a writer runs): databases, metadata, the clean flag
    vectors/<folder>/     one vector file set per database

The database lifecycle through the catalog (the vector store's side is in
:mod:`jadevec.backends._vector_store`):

* **create**: a row in state ``creating`` is committed (a ``UNIQUE`` index on
  the lower-case name makes the name taken from here on, by construction),
  then the file set is created (crash-atomically), then the row becomes
  ``live``. A creation that fails is undone at once (files and row); one that
  a crash interrupted is rolled back by the next writer open.
* **delete**: the row becomes ``deleting`` with ``synchronous=FULL`` (durable
  before any file goes), in-flight users are waited for, the files are
  removed, then the row and the database's metadata are dropped. The next
  writer open finishes an interrupted deletion.
* **checkpoint** (``sync()`` and the background thread): every row committed
  so far is made durable by one commit with ``synchronous=FULL`` (in WAL mode
  that syncs the whole log, earlier commits included), then the vector
  files. At every synced point both sides agree.
* **clean flag**: 0 (durably) before a writer accepts its first write, back to
  1 after the final checkpoint of ``close()``.

Errors: what SQLite reports is told apart as SQLite tells it apart: a full
disk is ``StorageFullError``, a read-only file or folder a ``PermissionError``,
a busy file ``StoreLockedError``, an I/O error an ``OSError``, a closed
connection ``StoreClosedError``; only damage (a malformed file, a missing
table, values of the wrong type) is ``CorruptionError``.

Metadata rows exist only for ids that have (or had) metadata, so a database
that never stores metadata costs SQLite nothing on its write path.
"""

from __future__ import annotations

import errno
import functools
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from jadevec.backends._catalog import CREATING, DELETING, LIVE, VECTORS_DIR, CatalogEntry
from jadevec.backends._pairing import Record, check_entry_fields, check_record, is_folder_id
from jadevec.backends._persistent import PersistentBackend
from jadevec.errors import (
    CorruptionError,
    DatabaseExistsError,
    JadevecError,
    StorageFullError,
    StoreClosedError,
    StoreLockedError,
    UnsupportedVersionError,
)

__all__ = ["HybridBackend", "SqliteCatalog"]

#: Version of the SQLite schema this code writes and reads.
SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS store_state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS databases (
    folder     TEXT PRIMARY KEY,   -- the on-disk folder under vectors/
    name       TEXT NOT NULL,      -- creation case
    name_lower TEXT NOT NULL UNIQUE,  -- lookups ignore case; one database per name
    dimension  INTEGER NOT NULL,
    metric     TEXT NOT NULL,
    state      TEXT NOT NULL       -- creating | live | deleting
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS vector_meta (
    folder    TEXT NOT NULL,
    id        TEXT NOT NULL,
    meta      TEXT,                -- JSON text, NULL for none
    fp        INTEGER NOT NULL,    -- fingerprint of the vector this row belongs to
    prev_meta TEXT,                -- the version it replaces (see _pairing)
    prev_fp   INTEGER,
    base_meta TEXT,                -- the version as of the file set's commit `gen`
    base_fp   INTEGER,
    gen       INTEGER NOT NULL,
    PRIMARY KEY (folder, id)
) WITHOUT ROWID;
"""

# SQLite's default limit on host parameters is 32,766 (999 before 3.32).
_CHUNK = 900

F = TypeVar("F", bound=Callable[..., Any])

# SQLite's primary result codes (sqlite3.h), for Pythons that expose them.
_FULL, _READONLY, _PERM, _CANTOPEN, _BUSY, _LOCKED, _IOERR, _NOMEM = 13, 8, 3, 14, 5, 6, 10, 7


def _out_of_space(path: Path) -> bool:
    """Whether the catalog's files are at the file-size limit or the disk is (nearly) full.

    SQLite reports a write refused with EFBIG (the process's file-size limit)
    as a plain I/O error and keeps the errno to itself; this tells that case,
    and a disk that filled up, from a real I/O error.
    """
    import resource

    soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if soft != resource.RLIM_INFINITY:
        for name in (path.name, path.name + "-wal", path.name + "-journal"):
            try:
                if os.path.getsize(path.with_name(name)) + (1 << 16) >= soft:
                    return True
            except OSError:
                pass
    try:
        st = os.statvfs(path.parent)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < (1 << 20)


def _error_for(exc: BaseException, path: Path) -> BaseException:
    """The jadevec error for what SQLite (or the sqlite3 module) raised."""
    where = f"catalog {str(path)!r}"
    text = str(exc)
    low = text.lower()
    code = getattr(exc, "sqlite_errorcode", -1)
    primary = code & 0xFF if code >= 0 else -1
    if isinstance(exc, sqlite3.ProgrammingError) and "closed" in low:
        return StoreClosedError(f"{where}: the store is closed")
    if primary == _FULL or "database or disk is full" in low:
        return StorageFullError(errno.ENOSPC, f"the disk is full ({text})", str(path))
    if primary in (_READONLY, _PERM) or "readonly database" in low or "permission" in low:
        return PermissionError(errno.EACCES, f"cannot write the catalog ({text}); check the "
                               f"permissions of the store folder", str(path.parent))
    if primary in (_BUSY, _LOCKED) or "locked" in low or "busy" in low:
        return StoreLockedError(f"{where} is locked by another connection: {text}")
    if primary == _CANTOPEN or "unable to open" in low:
        return OSError(errno.EACCES, f"cannot open the catalog ({text})", str(path))
    if primary == _IOERR or "disk i/o error" in low:
        if _out_of_space(path):
            return StorageFullError(errno.ENOSPC, f"the disk or the file-size limit is "
                                    f"full ({text})", str(path))
        return OSError(errno.EIO, f"I/O error in the catalog ({text})", str(path))
    if primary == _NOMEM or isinstance(exc, MemoryError):
        return MemoryError(f"{where}: {text}")
    return CorruptionError(f"{where} is damaged ({type(exc).__name__}: {text}); restore it "
                           f"from a backup")


def _typed_errors(method: F) -> F:
    """Turn what SQLite raises into jadevec's errors, telling damage from the rest.

    A catalog page can be found damaged long after open (SQLite reads lazily),
    so every method that touches the file goes through this.
    """
    @functools.wraps(method)
    def wrapper(self: SqliteCatalog, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except JadevecError:
            raise
        except (sqlite3.Error, UnicodeDecodeError) as exc:
            raise _error_for(exc, self.path) from exc
    return wrapper  # type: ignore[return-value]


class SqliteCatalog:
    """The catalog, clean flag and metadata rows of a hybrid store, in one SQLite file.

    One connection is shared by every thread of the store and guarded by a
    lock: SQLite serialises writers anyway, and the statements are short.
    A read-only catalog reads the newest committed rows at every call (WAL
    lets it read beside the writer).
    """

    def __init__(self, path: Path, read_only: bool) -> None:
        self.path = path
        self._read_only = read_only
        self._lock = threading.Lock()
        self._has_rows: dict[str, bool] = {}
        self._unsynced = False  # rows committed since the last sync()
        self._wal_pending = not read_only  # write-ahead log frames maybe not copied back
        self._db: sqlite3.Connection | None = None
        try:
            if read_only:
                uri = path.resolve().as_uri() + "?mode=ro"
                self._db = sqlite3.connect(uri, uri=True, isolation_level=None,
                                           check_same_thread=False)
            else:
                self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
                self._db.execute("PRAGMA journal_mode=WAL")
                # Commits reach the page cache (kill -9 safe); sync() makes them durable.
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            if not read_only:
                self._db.executescript(_SCHEMA)
                self._db.execute("INSERT OR IGNORE INTO store_state VALUES ('format', ?)",
                                 (str(SCHEMA_VERSION),))
                self._db.execute("INSERT OR IGNORE INTO store_state VALUES ('clean', '1')")
            state = dict(self._db.execute("SELECT key, value FROM store_state"))
        except (sqlite3.Error, UnicodeDecodeError, ValueError, TypeError) as exc:
            if self._db is not None:
                self._db.close()
            error = _error_for(exc, path) if isinstance(exc, sqlite3.Error) else None
            if error is None or isinstance(error, CorruptionError):
                raise CorruptionError(f"catalog {str(path)!r} is not a readable SQLite "
                                      f"file: {exc}") from exc
            raise error from exc
        version = state.get("format", "")
        if not isinstance(version, str) or not version.isascii() or not version.isdigit():
            self._db.close()
            raise CorruptionError(f"catalog {str(path)!r}: field 'format' is {version!r}")
        if int(version) != SCHEMA_VERSION:
            self._db.close()
            newer = int(version) > SCHEMA_VERSION
            raise UnsupportedVersionError(
                f"catalog {str(path)!r} has schema version {version}; this jadevec reads "
                f"version {SCHEMA_VERSION}: "
                + ("upgrade jadevec" if newer else "it was written by an older jadevec; "
                   "export the data with it and import it here"))
        #: Whether the last writer closed the store cleanly.
        self.was_clean = state.get("clean") == "1"

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
        return self._db

    def _write(self, statements: Callable[[sqlite3.Connection], None],
               full: bool = False) -> None:
        """Run ``statements`` in one transaction; roll back on any error (lock held).

        ``full``: commit with ``synchronous=FULL``, durable when this returns.
        """
        db = self.db
        if full:
            db.execute("PRAGMA synchronous=FULL")
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                statements(db)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    try:
                        db.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass  # the error that brought us here is the one to report
                raise
        finally:
            if full:
                db.execute("PRAGMA synchronous=NORMAL")
        self._unsynced = not full  # a FULL commit synced every earlier one too
        self._wal_pending = True

    # -- databases -----------------------------------------------------------------

    @_typed_errors
    def entries(self) -> list[tuple[CatalogEntry, str]]:
        with self._lock:
            rows = self.db.execute(
                "SELECT name, dimension, metric, folder, state FROM databases").fetchall()
        where = f"catalog {str(self.path)!r}"
        out, seen = [], set()
        for n, d, m, f, s in rows:
            check_entry_fields(where, n, d, m, f, s)
            if f in seen or n.lower() in seen:
                raise CorruptionError(f"{where}: two databases share the folder or name of "
                                      f"{n!r}")
            seen.update((f, n.lower()))
            out.append((CatalogEntry(n, d, m, f), s))
        return out

    def _record(self, vid: Any, *fields: Any) -> Record:
        return check_record(f"catalog {str(self.path)!r}", vid, *fields)

    @_typed_errors
    def _set_state(self, entry: CatalogEntry, state: str, full: bool = False) -> None:
        with self._lock:
            self._write(lambda db: db.execute(
                "UPDATE databases SET state = ? WHERE folder = ?", (state, entry.folder)), full)

    @_typed_errors
    def begin_create(self, entry: CatalogEntry) -> None:
        row = (entry.folder, entry.name, entry.name.lower(), entry.dimension, entry.metric,
               CREATING)
        with self._lock:
            try:
                self._write(lambda db: db.execute(
                    "INSERT INTO databases VALUES (?, ?, ?, ?, ?, ?)", row))
            except sqlite3.IntegrityError:
                raise DatabaseExistsError(
                    f"a database named {entry.name!r} already exists (or is being created)"
                ) from None

    def commit_create(self, entry: CatalogEntry) -> None:
        self._set_state(entry, LIVE)
        self._has_rows[entry.folder] = False

    def abort_create(self, entry: CatalogEntry) -> None:
        self.finish_delete(entry)

    def begin_delete(self, entry: CatalogEntry) -> None:
        # Durable before any file goes: a power loss must not bring back a
        # live row whose folder is gone.
        self._set_state(entry, DELETING, full=True)

    @_typed_errors
    def finish_delete(self, entry: CatalogEntry) -> None:
        def drop(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM vector_meta WHERE folder = ?", (entry.folder,))
            db.execute("DELETE FROM databases WHERE folder = ?", (entry.folder,))

        with self._lock:
            self._write(drop)
            self._has_rows.pop(entry.folder, None)

    @_typed_errors
    def set_clean(self, clean: bool) -> None:
        """Record the clean flag durably (one commit with ``synchronous=FULL``)."""
        with self._lock:
            self._write(lambda db: db.execute(
                "UPDATE store_state SET value = ? WHERE key = 'clean'", ("1" if clean else "0",)),
                full=True)

    # -- metadata rows ---------------------------------------------------------------

    @_typed_errors
    def has_any(self, folder: str) -> bool:
        known = self._has_rows.get(folder)
        if known is None or self._read_only:
            with self._lock:
                row = self.db.execute(
                    "SELECT 1 FROM vector_meta WHERE folder = ? LIMIT 1", (folder,)).fetchone()
            known = row is not None
            if not self._read_only:
                self._has_rows[folder] = known
        return known

    _COLUMNS = "meta, fp, prev_meta, prev_fp, base_meta, base_fp, gen"

    @_typed_errors
    def get(self, folder: str, vector_id: str) -> Record | None:
        with self._lock:
            row = self.db.execute(
                f"SELECT {self._COLUMNS} FROM vector_meta WHERE folder = ? AND id = ?",
                (folder, vector_id)).fetchone()
        return None if row is None else self._record(vector_id, *row)

    @_typed_errors
    def get_many(self, folder: str, ids: Sequence[str]) -> dict[str, Record]:
        found: dict[str, Record] = {}
        with self._lock:
            for start in range(0, len(ids), _CHUNK):
                part = list(ids[start:start + _CHUNK])
                marks = ",".join("?" * len(part))
                for vid, *rest in self.db.execute(
                    f"SELECT id, {self._COLUMNS} FROM vector_meta "
                    f"WHERE folder = ? AND id IN ({marks})", [folder, *part]):
                    found[vid] = self._record(vid, *rest)
        return found

    @_typed_errors
    def put(self, folder: str, items: list[tuple[str, Record]]) -> None:
        if not items:
            return
        rows = [(folder, vid, *rec) for vid, rec in items]
        with self._lock:
            self._write(lambda db: db.executemany(
                "INSERT OR REPLACE INTO vector_meta VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows))
            self._has_rows[folder] = True

    @_typed_errors
    def remove(self, folder: str, ids: Sequence[str]) -> None:
        if not ids:
            return
        rows = [(folder, vid) for vid in ids]
        with self._lock:
            self._write(lambda db: db.executemany(
                "DELETE FROM vector_meta WHERE folder = ? AND id = ?", rows))

    @_typed_errors
    def all(self, folder: str) -> dict[str, Record]:
        with self._lock:
            rows = self.db.execute(
                f"SELECT id, {self._COLUMNS} FROM vector_meta WHERE folder = ?",
                (folder,)).fetchall()
        return {vid: self._record(vid, *rest) for vid, *rest in rows}

    @_typed_errors
    def rewrite(self, folder: str, records: dict[str, Record]) -> None:
        rows = [(folder, vid, *rec) for vid, rec in records.items()]

        def replace(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM vector_meta WHERE folder = ?", (folder,))
            db.executemany("INSERT INTO vector_meta VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

        with self._lock:
            self._write(replace)
            self._has_rows[folder] = bool(records)

    def compact(self, folder: str) -> None:
        """Nothing to do: SQLite reuses the pages of deleted rows."""

    @_typed_errors
    def drop(self, folder: str) -> None:
        with self._lock:
            self._write(lambda db: db.execute(
                "DELETE FROM vector_meta WHERE folder = ?", (folder,)))
            self._has_rows.pop(folder, None)

    @_typed_errors
    def folders(self) -> set[str]:
        """Folders that own metadata rows (recovery drops those of no live database)."""
        with self._lock:
            rows = self.db.execute("SELECT DISTINCT folder FROM vector_meta").fetchall()
        return {f for (f,) in rows if is_folder_id(f)}

    # -- lifecycle -------------------------------------------------------------------

    @_typed_errors
    def sync(self) -> None:
        """Make every committed row durable.

        One commit with ``synchronous=FULL`` syncs the whole write-ahead log,
        every earlier commit included, whatever readers do (a checkpoint
        alone may copy nothing while a reader holds an old snapshot). Then a
        passive checkpoint keeps the log short. An idle catalog does nothing
        at all: no commit, and no checkpoint once one has copied the whole log.
        """
        if self._read_only:
            return
        with self._lock:
            if self._unsynced:
                self._write(lambda db: db.execute(
                    "UPDATE store_state SET value = value WHERE key = 'clean'"), full=True)
                self._unsynced = False
            if self._wal_pending:
                busy, log_frames, copied = self.db.execute(
                    "PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                # A reader holding an old snapshot can keep frames from being
                # copied: try again at the next sync.
                self._wal_pending = bool(busy) or copied < log_frames

    def close(self) -> None:
        """Close the connection; a writer leaves the file in rollback-journal mode.

        WAL is needed only while a writer runs beside readers. Leaving a
        closed store in ``DELETE`` mode means a later read-only open creates
        no ``-wal``/``-shm`` files, so it truly writes nothing.
        """
        with self._lock:
            db, self._db = self._db, None
            if db is None:
                return
            if not self._read_only:
                try:
                    # Fail at once rather than wait for a reader to go away.
                    db.execute("PRAGMA busy_timeout=0")
                    db.execute("PRAGMA journal_mode=DELETE")
                except sqlite3.DatabaseError:  # a reader holds it (or it is damaged): stay
                    pass
            db.close()


class HybridBackend(PersistentBackend):
    """The default backend: SQLite catalog and metadata, memory-mapped vector files.

    Opening is cheap whatever the number of databases: it reads the catalog
    table and opens no vector file (see :mod:`jadevec.backends._vector_store`).
    """

    persistent: ClassVar[bool] = True
    supports_metadata: ClassVar[bool] = True
    backend_name: ClassVar[str] = "hybrid"
    catalog_file: ClassVar[str] = "catalog.sqlite3"
    own_names: ClassVar[frozenset[str]] = frozenset(
        {"catalog.sqlite3", "catalog.sqlite3-wal", "catalog.sqlite3-shm",
         "catalog.sqlite3-journal", VECTORS_DIR})

    def _open_catalog(self, root: Path, read_only: bool) -> SqliteCatalog:
        return SqliteCatalog(root / self.catalog_file, read_only)
