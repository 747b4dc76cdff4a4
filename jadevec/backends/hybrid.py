"""The ``hybrid`` backend, the default: SQLite for catalog and metadata, mapped vector files.

Layout of a store directory::

    .lock                 writer lock (the holder's pid)
    catalog.sqlite3       SQLite in WAL mode: databases, per-vector metadata, the clean flag
    vectors/<folder>/     one MemoryMappedVectorStore file set per database

The order of writes across SQLite and the vector files (research/reliability.md,
rule 8; :mod:`jadevec.backends._pairing` has the pairing rule):

* **store / update**: the metadata row is committed first, stamped with the
  fingerprint of the vector it belongs to and carrying the version it
  replaces; then the vector is written, and that write is the commit point.
  A crash in between leaves a row ahead of its vector, which every read (and
  recovery) resolves to the version paired with the live vector.
* **delete**: the vector is deleted first (the commit point), then the row.
  A crash in between leaves a row with no live vector: recovery removes it.
* **create a database**: a catalog row in state ``creating`` is committed,
  then the folder and files are made and the vectors folder is fsynced, then
  the row becomes ``live``. Recovery rolls back a ``creating`` row (the call
  never returned) and removes its files.
* **delete a database**: the row becomes ``deleting`` (the database is gone
  for every caller from here), in-flight users are waited for, the files and
  folder are removed and the vectors folder fsynced, then the row and the
  database's metadata are dropped. Recovery finishes a ``deleting`` row.
* **checkpoint** (``sync()`` and the background thread): SQLite durable
  first (a WAL checkpoint, which syncs the WAL), then the vector files. At
  every synced point both sides agree.
* **clean flag**: set to 0 with ``synchronous=FULL`` before a writer accepts
  its first write, back to 1 after the final checkpoint of ``close()``. Open
  with the flag at 0 pairs every metadata row with its vector and reports
  what it changed in ``recovery_report``.

Folders not named by any catalog row (a crash between ``mkdir`` and the
intent's commit cannot make one, but a copied-in or hand-edited directory
can) are removed at writer open and reported.

Metadata rows exist only for ids that have (or had) metadata, so a database
that never stores metadata costs SQLite nothing on its write path.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from jadevec.backends._pairing import Record, check_entry_fields, check_record, is_folder_id
from jadevec.backends._persistent import (
    CREATING,
    DELETING,
    LIVE,
    CatalogEntry,
    PersistentBackend,
)
from jadevec.errors import (
    CorruptionError,
    JadevecError,
    StorageFullError,
    StoreLockedError,
    UnsupportedVersionError,
)

__all__ = ["HybridBackend", "SqliteCatalog"]

#: Version of the SQLite schema this code writes and reads.
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS store_state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS databases (
    folder     TEXT PRIMARY KEY,   -- the on-disk folder under vectors/
    name       TEXT NOT NULL,      -- creation case
    name_lower TEXT NOT NULL,      -- lookups ignore case
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
    PRIMARY KEY (folder, id)
) WITHOUT ROWID;
"""

# SQLite's default limit on host parameters is 32,766 (999 before 3.32).
_CHUNK = 900

F = TypeVar("F", bound=Callable[..., Any])


def _typed_errors(method: F) -> F:
    """Turn what SQLite raises on a damaged, full or locked file into jadevec's errors.

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
            text = str(exc)
            where = f"catalog {str(self.path)!r}"
            if "locked" in text or "busy" in text:
                raise StoreLockedError(f"{where} is locked by another connection: {text}") \
                    from exc
            if "full" in text:
                raise StorageFullError(f"{where}: {text}") from exc
            raise CorruptionError(f"{where} is damaged ({type(exc).__name__}: {text}); "
                                  f"restore it from a backup") from exc
    return wrapper  # type: ignore[return-value]


class SqliteCatalog:
    """The catalog, clean flag and metadata rows of a hybrid store, in one SQLite file.

    One connection is shared by every thread of the store and guarded by a
    lock: SQLite serialises writers anyway, and the statements are short.
    """

    def __init__(self, path: Path, read_only: bool) -> None:
        self.path = path
        self._read_only = read_only
        self._lock = threading.Lock()
        self._has_rows: dict[str, bool] = {}
        try:
            if read_only:
                uri = path.resolve().as_uri() + "?mode=ro"
                self._db = sqlite3.connect(uri, uri=True, isolation_level=None,
                                           check_same_thread=False)
            else:
                self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
                self._db.execute("PRAGMA journal_mode=WAL")
                # Commits reach the page cache (kill -9 safe); checkpoints sync.
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            if not read_only:
                self._db.executescript(_SCHEMA)
                self._db.execute("INSERT OR IGNORE INTO store_state VALUES ('format', ?)",
                                 (str(SCHEMA_VERSION),))
                self._db.execute("INSERT OR IGNORE INTO store_state VALUES ('clean', '1')")
            state = dict(self._db.execute("SELECT key, value FROM store_state"))
        except (sqlite3.DatabaseError, UnicodeDecodeError, ValueError, TypeError) as exc:
            if getattr(self, "_db", None) is not None:
                self._db.close()
            raise CorruptionError(f"catalog {str(path)!r} is not a readable SQLite file: {exc}") \
                from exc
        version = state.get("format", "")
        if not isinstance(version, str) or not version.isascii() or not version.isdigit():
            self._db.close()
            raise CorruptionError(f"catalog {str(path)!r}: field 'format' is {version!r}")
        if int(version) > SCHEMA_VERSION:
            self._db.close()
            raise UnsupportedVersionError(
                f"catalog {str(path)!r} has schema version {version}; this jadevec reads "
                f"up to {SCHEMA_VERSION}: upgrade jadevec")
        #: Whether the last writer closed the store cleanly.
        self.was_clean = state.get("clean") == "1"

    # -- databases -----------------------------------------------------------------

    @_typed_errors
    def entries(self) -> list[tuple[CatalogEntry, str]]:
        with self._lock:
            rows = self._db.execute(
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

    def _record(self, vid: Any, meta: Any, fp: Any, prev_meta: Any, prev_fp: Any) -> Record:
        return check_record(f"catalog {str(self.path)!r}", vid, meta, fp, prev_meta, prev_fp)

    @_typed_errors
    def _set_state(self, entry: CatalogEntry, state: str) -> None:
        with self._lock:
            self._db.execute("UPDATE databases SET state = ? WHERE folder = ?",
                             (state, entry.folder))

    @_typed_errors
    def begin_create(self, entry: CatalogEntry) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO databases VALUES (?, ?, ?, ?, ?, ?)",
                (entry.folder, entry.name, entry.name.lower(), entry.dimension, entry.metric,
                 CREATING))

    def commit_create(self, entry: CatalogEntry) -> None:
        self._set_state(entry, LIVE)
        self._has_rows[entry.folder] = False

    def begin_delete(self, entry: CatalogEntry) -> None:
        self._set_state(entry, DELETING)

    @_typed_errors
    def finish_delete(self, entry: CatalogEntry) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM vector_meta WHERE folder = ?", (entry.folder,))
            self._db.execute("DELETE FROM databases WHERE folder = ?", (entry.folder,))
            self._db.execute("COMMIT")
            self._has_rows.pop(entry.folder, None)

    @_typed_errors
    def set_clean(self, clean: bool) -> None:
        """Record the clean flag durably (``synchronous=FULL`` for this commit)."""
        with self._lock:
            self._db.execute("PRAGMA synchronous=FULL")
            try:
                self._db.execute("UPDATE store_state SET value = ? WHERE key = 'clean'",
                                 ("1" if clean else "0",))
            finally:
                self._db.execute("PRAGMA synchronous=NORMAL")

    # -- metadata rows ---------------------------------------------------------------

    @_typed_errors
    def has_any(self, folder: str) -> bool:
        known = self._has_rows.get(folder)
        if known is None:
            with self._lock:
                row = self._db.execute(
                    "SELECT 1 FROM vector_meta WHERE folder = ? LIMIT 1", (folder,)).fetchone()
            known = self._has_rows[folder] = row is not None
        return known

    @_typed_errors
    def get(self, folder: str, vector_id: str) -> Record | None:
        with self._lock:
            row = self._db.execute(
                "SELECT meta, fp, prev_meta, prev_fp FROM vector_meta WHERE folder = ? AND id = ?",
                (folder, vector_id)).fetchone()
        return None if row is None else self._record(vector_id, *row)

    @_typed_errors
    def get_many(self, folder: str, ids: Sequence[str]) -> dict[str, Record]:
        found: dict[str, Record] = {}
        with self._lock:
            for start in range(0, len(ids), _CHUNK):
                part = list(ids[start:start + _CHUNK])
                marks = ",".join("?" * len(part))
                for vid, *rest in self._db.execute(
                    "SELECT id, meta, fp, prev_meta, prev_fp FROM vector_meta "
                    f"WHERE folder = ? AND id IN ({marks})", [folder, *part]):
                    found[vid] = self._record(vid, *rest)
        return found

    @_typed_errors
    def put(self, folder: str, items: list[tuple[str, Record]]) -> None:
        if not items:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT OR REPLACE INTO vector_meta VALUES (?, ?, ?, ?, ?, ?)",
                    [(folder, vid, *rec) for vid, rec in items])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._has_rows[folder] = True

    @_typed_errors
    def remove(self, folder: str, ids: Sequence[str]) -> None:
        if not ids:
            return
        with self._lock:
            self._db.executemany("DELETE FROM vector_meta WHERE folder = ? AND id = ?",
                                 [(folder, vid) for vid in ids])

    @_typed_errors
    def all(self, folder: str) -> dict[str, Record]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, meta, fp, prev_meta, prev_fp FROM vector_meta WHERE folder = ?",
                (folder,)).fetchall()
        return {vid: self._record(vid, *rest) for vid, *rest in rows}

    @_typed_errors
    def rewrite(self, folder: str, records: dict[str, Record]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM vector_meta WHERE folder = ?", (folder,))
                self._db.executemany(
                    "INSERT INTO vector_meta VALUES (?, ?, ?, ?, ?, ?)",
                    [(folder, vid, *rec) for vid, rec in records.items()])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._has_rows[folder] = bool(records)

    def compact(self, folder: str) -> None:
        """Nothing to do: SQLite reuses the pages of deleted rows."""

    @_typed_errors
    def drop(self, folder: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM vector_meta WHERE folder = ?", (folder,))
            self._has_rows.pop(folder, None)

    @_typed_errors
    def folders(self) -> set[str]:
        """Folders that own metadata rows (recovery drops those of no live database)."""
        with self._lock:
            rows = self._db.execute("SELECT DISTINCT folder FROM vector_meta").fetchall()
        return {f for (f,) in rows if is_folder_id(f)}

    # -- lifecycle -------------------------------------------------------------------

    @_typed_errors
    def sync(self) -> None:
        """Make every committed row durable: a WAL checkpoint syncs the WAL first."""
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def close(self) -> None:
        """Close the connection; a writer leaves the file in rollback-journal mode.

        WAL is needed only while a writer runs beside readers. Leaving a
        closed store in ``DELETE`` mode means a later read-only open creates
        no ``-wal``/``-shm`` files, so it truly writes nothing.
        """
        with self._lock:
            if not self._read_only:
                try:
                    # Fail at once rather than wait for a reader to go away.
                    self._db.execute("PRAGMA busy_timeout=0")
                    self._db.execute("PRAGMA journal_mode=DELETE")
                except sqlite3.DatabaseError:  # a reader holds it (or it is damaged): stay
                    pass
            self._db.close()


class HybridBackend(PersistentBackend):
    """The default backend: SQLite catalog and metadata, memory-mapped vector files.

    Opening is cheap whatever the number of databases: it reads the catalog
    table and opens no vector file (see :mod:`jadevec.backends._open_files`).
    """

    persistent: ClassVar[bool] = True
    supports_metadata: ClassVar[bool] = True
    backend_name: ClassVar[str] = "hybrid"
    catalog_file: ClassVar[str] = "catalog.sqlite3"

    def _open_catalog(self, root: Path, read_only: bool) -> SqliteCatalog:
        return SqliteCatalog(root / self.catalog_file, read_only)
