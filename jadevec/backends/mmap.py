"""The ``mmap`` backend: memory-mapped vector files, a JSON manifest, JSON-lines metadata.

Layout of a store directory::

    .lock                      writer lock (the holder's pid)
    catalog.json               the manifest: databases and the clean flag
    metadata/<folder>.jsonl    per-vector metadata, an append-only log per database
    vectors/<folder>/          one MemoryMappedVectorStore file set per database

The manifest maps each database name (creation case; looked up by
``lower()``) to its dimension, metric and folder, a generated id that is
never the raw name. Every change rewrites it atomically: write a temporary
file, fsync it, rename it over the old one, fsync the directory.

The database lifecycle needs no intent here: a create makes the files first
and then commits the manifest; a delete commits the manifest first and then
removes the files. A crash in between leaves only a folder (and maybe a log)
that no manifest entry names, and the next writer open removes it and says
so in ``recovery_report``.

Metadata is supported: each write appends one line per record to the
database's log before the vector is written (the pairing rule of
:mod:`jadevec.backends._pairing`; a delete appends a removal after the
vector's). A log is read once, when its database is first used, into a
dict; ``compact()`` rewrites it atomically without superseded lines. A torn
last line (a power loss mid-append) is ignored; damage elsewhere is a
``CorruptionError`` naming the file and line. Logs are fsynced by the
checkpoint, before the vector files. Choose ``hybrid`` for many metadata
updates on large databases: its rows are updated in place.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from jadevec.backends._pairing import Record, check_entry_fields, check_record, is_folder_id
from jadevec.backends._persistent import LIVE, CatalogEntry, PersistentBackend, fsync_dir
from jadevec.backends._vector_store import MemoryMappedVectorStore
from jadevec.errors import CorruptionError, UnsupportedVersionError

__all__ = ["MemoryMappedVectorStore", "MmapBackend"]

#: Version of catalog.json and of the metadata log lines.
FORMAT_VERSION = 1
_FORMAT = "jadevec-mmap"
METADATA_DIR = "metadata"


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: temp file, fsync, rename, fsync of the directory."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


class JsonCatalog:
    """The manifest and the metadata logs of an mmap store."""

    def __init__(self, root: Path, read_only: bool) -> None:
        self.path = root / MmapBackend.catalog_file
        self._meta_dir = root / METADATA_DIR
        self._read_only = read_only
        self._lock = threading.RLock()
        self._entries: dict[str, CatalogEntry] = {}  # folder -> entry
        self._logs: dict[str, dict[str, Record]] = {}  # folder -> id -> record (loaded lazily)
        self._unsynced: set[str] = set()
        self.was_clean = True
        if self.path.exists():
            self._load()
        elif not read_only:
            self._meta_dir.mkdir(exist_ok=True)
            self._write(clean=True)

    def _load(self) -> None:
        where = f"manifest {str(self.path)!r}"
        try:
            doc = json.loads(self.path.read_bytes())
        except (ValueError, RecursionError) as exc:
            raise CorruptionError(f"{where} is damaged: {exc!r}") from exc
        if not isinstance(doc, dict):
            raise CorruptionError(f"{where} is damaged: not a JSON object")
        if doc.get("format") != _FORMAT:
            raise CorruptionError(f"{where}: field 'format' is {doc.get('format')!r}"[:300])
        version = doc.get("version")
        if type(version) is not int or version < 1:
            raise CorruptionError(f"{where}: field 'version' is {version!r}"[:300])
        if version > FORMAT_VERSION:
            raise UnsupportedVersionError(
                f"{str(self.path)!r} has version {version}; this jadevec reads up to "
                f"{FORMAT_VERSION}: upgrade jadevec")
        databases, clean = doc.get("databases"), doc.get("clean")
        if not isinstance(databases, list):
            raise CorruptionError(f"{where}: field 'databases' is not a list")
        if not isinstance(clean, bool):
            raise CorruptionError(f"{where}: field 'clean' is {clean!r}"[:300])
        names: set[str] = set()
        for d in databases:
            if not isinstance(d, dict):
                raise CorruptionError(f"{where}: a database entry is {d!r}"[:300])
            check_entry_fields(where, d.get("name"), d.get("dimension"), d.get("metric"),
                               d.get("folder"))
            entry = CatalogEntry(d["name"], d["dimension"], d["metric"], d["folder"])
            if entry.folder in self._entries or entry.name.lower() in names:
                raise CorruptionError(f"{where}: two databases share the folder or name of "
                                      f"{entry.name!r}")
            names.add(entry.name.lower())
            self._entries[entry.folder] = entry
        self.was_clean = clean

    def _write(self, clean: bool) -> None:
        doc = {
            "format": _FORMAT,
            "version": FORMAT_VERSION,
            "clean": clean,
            "databases": [
                {"name": e.name, "dimension": e.dimension, "metric": e.metric, "folder": e.folder}
                for e in self._entries.values()
            ],
        }
        write_atomically(self.path, json.dumps(doc, indent=1).encode())
        self.was_clean = clean

    # -- databases -----------------------------------------------------------------

    def entries(self) -> list[tuple[CatalogEntry, str]]:
        with self._lock:
            return [(e, LIVE) for e in self._entries.values()]

    def begin_create(self, entry: CatalogEntry) -> None:
        """Nothing yet: the files come first, an orphan folder is swept at open."""

    def commit_create(self, entry: CatalogEntry) -> None:
        with self._lock:
            self._entries[entry.folder] = entry
            self._logs[entry.folder] = {}
            self._write(self.was_clean)

    def begin_delete(self, entry: CatalogEntry) -> None:
        with self._lock:
            del self._entries[entry.folder]
            self._write(self.was_clean)

    def finish_delete(self, entry: CatalogEntry) -> None:
        """Nothing left: ``drop`` removed the log with the files."""

    def set_clean(self, clean: bool) -> None:
        with self._lock:
            self._write(clean)

    # -- metadata logs ---------------------------------------------------------------

    def _log_path(self, folder: str) -> Path:
        return self._meta_dir / f"{folder}.jsonl"

    def _records(self, folder: str) -> dict[str, Record]:
        """The records of a database, reading its log on first use (caller holds the lock)."""
        records = self._logs.get(folder)
        if records is None:
            records = self._logs[folder] = self._read_log(self._log_path(folder))
        return records

    @staticmethod
    def _read_log(path: Path) -> dict[str, Record]:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return {}
        records: dict[str, Record] = {}
        lines = data.split(b"\n")
        # A complete log ends with a newline, so the last piece is empty; a
        # non-empty one is an append torn by a power loss and never acknowledged.
        for number, line in enumerate(lines[:-1], start=1):
            where = f"metadata log {str(path)!r}: line {number}"
            try:
                item = json.loads(line)
            except (ValueError, RecursionError) as exc:
                raise CorruptionError(f"{where} is damaged ({exc})") from exc
            if not isinstance(item, list) or len(item) not in (1, 5) \
                    or not isinstance(item[0], str):
                raise CorruptionError(f"{where} is damaged (not [id] or a 5-item record)")
            if len(item) == 1:
                records.pop(item[0], None)
            else:
                records[item[0]] = check_record(where, *item)
        return records

    def _append(self, folder: str, lines: list[Any]) -> None:
        data = "".join(json.dumps(x, allow_nan=False) + "\n" for x in lines).encode()
        fd = os.open(self._log_path(folder), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                     0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        self._unsynced.add(folder)

    def has_any(self, folder: str) -> bool:
        with self._lock:
            return bool(self._records(folder))

    def get(self, folder: str, vector_id: str) -> Record | None:
        with self._lock:
            return self._records(folder).get(vector_id)

    def get_many(self, folder: str, ids: Sequence[str]) -> dict[str, Record]:
        with self._lock:
            records = self._records(folder)
            return {vid: records[vid] for vid in ids if vid in records}

    def put(self, folder: str, items: list[tuple[str, Record]]) -> None:
        if not items:
            return
        with self._lock:
            records = self._records(folder)
            self._append(folder, [[vid, *rec] for vid, rec in items])
            records.update(items)

    def remove(self, folder: str, ids: Sequence[str]) -> None:
        with self._lock:
            records = self._records(folder)
            gone = [vid for vid in ids if vid in records]
            if gone:
                self._append(folder, [[vid] for vid in gone])
                for vid in gone:
                    del records[vid]

    def all(self, folder: str) -> dict[str, Record]:
        with self._lock:
            return dict(self._records(folder))

    def rewrite(self, folder: str, records: dict[str, Record]) -> None:
        with self._lock:
            data = "".join(json.dumps([vid, *rec]) + "\n" for vid, rec in records.items())
            write_atomically(self._log_path(folder), data.encode())
            self._logs[folder] = dict(records)
            self._unsynced.discard(folder)

    def compact(self, folder: str) -> None:
        """Rewrite the log with only the current records."""
        self.rewrite(folder, self.all(folder))

    def drop(self, folder: str) -> None:
        with self._lock:
            self._logs.pop(folder, None)
            self._unsynced.discard(folder)
            try:
                self._log_path(folder).unlink()
            except FileNotFoundError:
                pass

    def folders(self) -> set[str]:
        """Folders that own a metadata log (recovery drops those of no database)."""
        if not self._meta_dir.is_dir():
            return set()
        names = (p.name[: -len(".jsonl")] for p in self._meta_dir.glob("*.jsonl"))
        return {n for n in names if is_folder_id(n)}

    # -- lifecycle -------------------------------------------------------------------

    def sync(self) -> None:
        """fsync the logs appended to since the last sync."""
        with self._lock:
            pending, self._unsynced = self._unsynced, set()
            for folder in pending:
                try:
                    fd = os.open(self._log_path(folder), os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    continue
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            if pending:
                fsync_dir(self._meta_dir)

    def close(self) -> None:
        with self._lock:
            self._logs.clear()


class MmapBackend(PersistentBackend):
    """Vectors in memory-mapped files, catalog in an atomically written manifest.

    No dependency beyond the standard library and jadevec's core; every file
    is plain and inspectable. Opening reads the manifest and opens no vector
    file (see :mod:`jadevec.backends._open_files`).
    """

    persistent: ClassVar[bool] = True
    supports_metadata: ClassVar[bool] = True
    backend_name: ClassVar[str] = "mmap"
    catalog_file: ClassVar[str] = "catalog.json"

    def _open_catalog(self, root: Path, read_only: bool) -> JsonCatalog:
        return JsonCatalog(root, read_only)
