"""The ``mmap`` backend: memory-mapped vector files, a JSON catalog, JSON-lines metadata.

Layout of a store directory::

    .lock                      writer lock (the holder's pid)
    catalog.json               snapshot of the catalog: databases, clean flag, sequence
    catalog.log                journal of catalog changes since the snapshot
    metadata/<folder>.jsonl    per-vector metadata, an append-only log per database
    vectors/<folder>/          one vector file set per database

The catalog maps each database's lower-case name to its name (creation case),
dimension, metric and folder (a generated id, never the raw name): a JSON
object keyed by the lower-case name, so a name is unique by construction,
and a journal that names a taken name or folder is damage. A change (create,
delete, the clean flag) is one line appended to ``catalog.log``, numbered
after the snapshot's ``sequence``: O(1) however many databases exist. When
the journal grows past the catalog's size, and at every clean close, the
snapshot is rewritten atomically (temporary file, fsync, rename, fsync of the
folder) and the journal emptied; lines the snapshot already holds are
skipped on replay, so a crash between the two steps loses nothing.

The database lifecycle: a create makes the files first (crash-atomically) and
then appends its line (the commit); a crash before that leaves an empty
folder no entry names, which the next writer open removes and reports. A
delete appends its line and syncs it (the database is gone from then on; its
folder is listed as *deleting*), removes the files, then appends a line that
forgets the folder; the next writer open finishes a deletion a crash
interrupted.

Metadata: each write appends one line per record to the database's log
before the vector is written (the pairing rule of
:mod:`jadevec.backends._pairing`; a delete appends a removal after the
vector's). A log is read once, at its database's first use (a reader reads
what was appended since, at each call). ``compact()`` rewrites it atomically
without superseded lines. An append that fails (a full disk) is cut back to
where it started, so a log never holds a torn line in its middle; a torn
tail (a power loss mid-append, never acknowledged: a cut line, or unwritten
blocks that read as NUL bytes) is ignored, and cut by the next writer; damage
elsewhere is a ``CorruptionError`` naming the file and line. Logs and journal
are fsynced by the checkpoint, before the vector files. Choose ``hybrid`` for
many metadata updates on large databases: its rows are updated in place.
"""

from __future__ import annotations

import errno
import json
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from jadevec.backends._catalog import DELETING, LIVE, VECTORS_DIR, CatalogEntry, fsync_dir
from jadevec.backends._pairing import Record, check_entry_fields, check_record, is_folder_id
from jadevec.backends._persistent import PersistentBackend
from jadevec.errors import CorruptionError, StorageFullError, UnsupportedVersionError

__all__ = ["JsonCatalog", "MmapBackend"]

#: Version of catalog.json, catalog.log and the metadata log lines.
FORMAT_VERSION = 2
_FORMAT = "jadevec-mmap"
METADATA_DIR = "metadata"
JOURNAL = "catalog.log"
#: A reader reads the catalog again at most this often when the writer keeps
#: replacing it under the read (each replacement is a fsynced rename, so this
#: is never reached in practice).
_LOAD_TRIES = 100


def _os_error(exc: OSError, path: Path, what: str) -> OSError:
    """The typed error for a failed write: a full disk is StorageFullError, naming the path."""
    if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return StorageFullError(exc.errno, f"{what} failed: the disk is full", str(path))
    return OSError(exc.errno, f"{what} failed: {exc.strerror}", str(path))


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: temp file, fsync, rename, fsync of the directory."""
    tmp = path.with_name(path.name + ".tmp")
    try:
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
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise _os_error(exc, path, "write") from None


def append_lines(path: Path, data: bytes, sync: bool = False) -> None:
    """Append ``data`` (whole lines) to ``path``, all or nothing.

    A failed or short write is cut back to the old end, so the file never
    keeps a torn line that later lines would follow.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise _os_error(exc, path, "open") from None
    try:
        start = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if sync:
                os.fdatasync(fd)
        except OSError as exc:
            try:
                os.ftruncate(fd, start)
            except OSError:
                pass  # a torn last line is ignored on read and cut by the next writer
            raise _os_error(exc, path, "append") from None
    finally:
        os.close(fd)


def _dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


def _whole_lines(data: bytes) -> int:
    """How many leading bytes of a log or journal are whole lines.

    A power loss can leave the part appended since the last sync torn: a last
    line cut short, or blocks whose size reached the disk but whose bytes did
    not, which read as NUL bytes, possibly with later lines after them. No
    line holds a NUL byte and the synced part has none, so everything from
    the line holding the first one is that unsynced tail.
    """
    nul = data.find(b"\0")
    return data.rfind(b"\n", 0, len(data) if nul < 0 else nul) + 1


def _cut_tail(path: Path, whole: int) -> None:
    """A writer cuts a torn tail off before it appends (a line appended after
    it would join it and read as damage)."""
    try:
        if os.path.getsize(path) > whole:
            os.truncate(path, whole)
    except FileNotFoundError:
        pass  # no log yet
    except OSError as exc:
        raise _os_error(exc, path, "truncate") from None


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class JsonCatalog:
    """The catalog (snapshot and journal) and the metadata logs of an mmap store."""

    def __init__(self, root: Path, read_only: bool) -> None:
        self.path = root / MmapBackend.catalog_file
        self._journal = root / JOURNAL
        self._meta_dir = root / METADATA_DIR
        self._read_only = read_only
        self._lock = threading.RLock()
        self._entries: dict[str, CatalogEntry] = {}  # name.lower() -> entry
        self._deleting: dict[str, CatalogEntry] = {}  # folder -> entry whose files may remain
        self._sequence = 0  # of the last change applied
        self._snapshot_sequence = 0
        self._journal_lines = 0
        self._seen: tuple[Any, Any] | None = None  # file signatures when last read
        # folder -> (records, bytes of the log read so far, log signature)
        self._logs: dict[str, tuple[dict[str, Record], int, Any]] = {}
        self._unsynced: set[str] = set()
        self._journal_unsynced = False
        self.was_clean = True
        if self.path.exists():
            self._load()
        elif not read_only:
            self._meta_dir.mkdir(exist_ok=True)
            self._write_snapshot(clean=True)

    # -- the catalog -----------------------------------------------------------------

    def _load(self) -> None:
        """Read the snapshot and replay the journal.

        A reader beside a writer may read a snapshot and then the journal of
        the next one (the writer folds the journal into a new snapshot, then
        empties it): the snapshot's signature is the same before and after
        the journal was read only if the two belong together, so otherwise
        (or on damage seen meanwhile) it reads both again.
        """
        for _ in range(_LOAD_TRIES):
            snapshot = _signature(self.path)
            try:
                self._load_once()
            except CorruptionError:
                if not self._read_only or _signature(self.path) == snapshot:
                    raise
                continue
            if not self._read_only or _signature(self.path) == snapshot:
                return
        raise CorruptionError(f"catalog {str(self.path)!r} changed under every one of "
                              f"{_LOAD_TRIES} reads")

    def _load_once(self) -> None:
        where = f"catalog {str(self.path)!r}"
        signatures = (_signature(self.path), _signature(self._journal))
        try:
            doc = json.loads(self.path.read_bytes())
        except (ValueError, RecursionError) as exc:
            raise CorruptionError(f"{where} is damaged: {exc!r}"[:300]) from exc
        if not isinstance(doc, dict):
            raise CorruptionError(f"{where} is damaged: not a JSON object")
        if doc.get("format") != _FORMAT:
            raise CorruptionError(f"{where}: field 'format' is {doc.get('format')!r}"[:300])
        version = doc.get("version")
        if type(version) is not int or version < 1:
            raise CorruptionError(f"{where}: field 'version' is {version!r}"[:300])
        if version != FORMAT_VERSION:
            raise UnsupportedVersionError(
                f"{str(self.path)!r} has version {version}; this jadevec reads version "
                f"{FORMAT_VERSION}: " + ("upgrade jadevec" if version > FORMAT_VERSION else
                                         "it was written by an older jadevec; export the "
                                         "data with it and import it here"))
        databases, clean, sequence = doc.get("databases"), doc.get("clean"), doc.get("sequence")
        if not isinstance(databases, dict):
            raise CorruptionError(f"{where}: field 'databases' is not an object")
        if not isinstance(clean, bool):
            raise CorruptionError(f"{where}: field 'clean' is {clean!r}"[:300])
        if type(sequence) is not int or sequence < 0:
            raise CorruptionError(f"{where}: field 'sequence' is {sequence!r}"[:300])
        deleting_doc = doc.get("deleting", {})
        if not isinstance(deleting_doc, dict):
            raise CorruptionError(f"{where}: field 'deleting' is not an object")
        deleting: dict[str, CatalogEntry] = {}
        for key, d in deleting_doc.items():
            entry = self._entry_from(where, d)
            if key != entry.folder:
                raise CorruptionError(f"{where}: a deleting entry is filed under {key!r}"[:300])
            deleting[key] = entry
        entries: dict[str, CatalogEntry] = {}
        folders: set[str] = set(deleting)
        for key, d in databases.items():
            entry = self._entry_from(where, d)
            if key != entry.name.lower() or entry.folder in folders:
                raise CorruptionError(f"{where}: two databases share the folder or name of "
                                      f"{entry.name!r}, or a key is not its lower-case name")
            entries[key] = entry
            folders.add(entry.folder)
        self._sequence = self._snapshot_sequence = sequence
        self.was_clean = clean
        self._journal_lines = self._replay(entries, deleting, folders)
        self._entries = entries
        self._deleting = deleting
        self._seen = signatures

    @staticmethod
    def _entry_from(where: str, d: Any) -> CatalogEntry:
        if not isinstance(d, dict):
            raise CorruptionError(f"{where}: a database entry is {d!r}"[:300])
        check_entry_fields(where, d.get("name"), d.get("dimension"), d.get("metric"),
                           d.get("folder"))
        return CatalogEntry(d["name"], d["dimension"], d["metric"], d["folder"])

    def _replay(self, entries: dict[str, CatalogEntry], deleting: dict[str, CatalogEntry],
                folders: set[str]) -> int:
        """Apply the journal's lines after the snapshot; return how many lines it has."""
        try:
            data = self._journal.read_bytes()
        except FileNotFoundError:
            return 0
        whole = _whole_lines(data)
        if whole < len(data) and not self._read_only:
            _cut_tail(self._journal, whole)
        # What follows the whole lines is an append torn by a power loss,
        # never acknowledged (or, for a reader, one still being written).
        lines = data[:whole].split(b"\n")
        for number, line in enumerate(lines[:-1], start=1):
            where = f"catalog journal {str(self._journal)!r}: line {number}"
            try:
                item = json.loads(line)
            except (ValueError, RecursionError) as exc:
                raise CorruptionError(f"{where} is damaged ({exc})"[:300]) from exc
            if not (isinstance(item, list) and len(item) == 3 and type(item[0]) is int
                    and item[1] in ("create", "delete", "forget", "clean")):
                raise CorruptionError(f"{where} is damaged (not [sequence, change, value])")
            seq, change, value = item
            if seq <= self._snapshot_sequence:
                continue  # already in the snapshot
            if seq != self._sequence + 1:
                raise CorruptionError(f"{where}: sequence {seq} after {self._sequence}")
            self._sequence = seq
            if change == "create":
                entry = self._entry_from(where, value)
                if entry.name.lower() in entries or entry.folder in folders:
                    raise CorruptionError(f"{where}: creates {entry.name!r}, whose name or "
                                          f"folder is taken")
                entries[entry.name.lower()] = entry
                folders.add(entry.folder)
            elif change == "delete":
                gone = [k for k, e in entries.items() if e.folder == value]
                if not gone:
                    raise CorruptionError(f"{where}: deletes {value!r}, which no database has"
                                          [:300])
                deleting[value] = entries.pop(gone[0])
            elif change == "forget":
                if deleting.pop(value, None) is None:
                    raise CorruptionError(f"{where}: forgets {value!r}, which is not being "
                                          f"deleted"[:300])
                folders.discard(value)
            else:
                if not isinstance(value, bool):
                    raise CorruptionError(f"{where}: clean flag {value!r}"[:300])
                self.was_clean = value
        return len(lines) - 1

    def _refresh(self) -> None:
        """A reader: read the catalog again if a writer changed it."""
        if self._read_only and (_signature(self.path), _signature(self._journal)) != self._seen:
            self._load()

    def _write_snapshot(self, clean: bool) -> None:
        doc = {
            "format": _FORMAT,
            "version": FORMAT_VERSION,
            "sequence": self._sequence,
            "clean": clean,
            "databases": {key: self._entry_doc(e) for key, e in self._entries.items()},
            "deleting": {folder: self._entry_doc(e) for folder, e in self._deleting.items()},
        }
        write_atomically(self.path, json.dumps(doc, indent=1).encode())
        self._snapshot_sequence = self._sequence
        self.was_clean = clean
        # Every line is in the snapshot now; emptying the journal is tidiness
        # (a line it still held would be skipped on replay).
        try:
            os.truncate(self._journal, 0)
        except FileNotFoundError:
            pass
        self._journal_lines = 0
        self._journal_unsynced = False

    @staticmethod
    def _entry_doc(e: CatalogEntry) -> dict[str, Any]:
        return {"name": e.name, "dimension": e.dimension, "metric": e.metric, "folder": e.folder}

    def _change(self, change: str, value: Any, apply: Callable[[], None],
                sync: bool = False) -> None:
        """Append one change to the journal, then ``apply`` it in memory (lock held).

        Only then may the journal be folded into the snapshot: the snapshot is
        written from memory, so it must already hold the change its sequence
        number says it holds.
        """
        line = _dumps([self._sequence + 1, change, value]) + "\n"
        created = not self._journal.exists()
        append_lines(self._journal, line.encode(), sync=sync)
        if created:
            # The new journal's name is durable only with its folder's fsync.
            fsync_dir(self._journal.parent)
        self._sequence += 1
        self._journal_lines += 1
        self._journal_unsynced = not sync  # a synced append syncs the earlier ones too
        apply()
        if self._journal_lines > max(256, 2 * len(self._entries)):
            self._write_snapshot(self.was_clean)

    def entries(self) -> list[tuple[CatalogEntry, str]]:
        with self._lock:
            self._refresh()
            return ([(e, LIVE) for e in self._entries.values()]
                    + [(e, DELETING) for e in self._deleting.values()])

    def begin_create(self, entry: CatalogEntry) -> None:
        """Nothing yet: the files come first; a folder no entry names is swept at open."""

    def commit_create(self, entry: CatalogEntry) -> None:
        def apply() -> None:
            self._entries[entry.name.lower()] = entry
            self._logs[entry.folder] = ({}, 0, None)

        with self._lock:
            self._change("create", self._entry_doc(entry), apply)

    def abort_create(self, entry: CatalogEntry) -> None:
        """Nothing to take back: no line was written."""

    def begin_delete(self, entry: CatalogEntry) -> None:
        def apply() -> None:
            self._entries.pop(entry.name.lower(), None)
            self._deleting[entry.folder] = entry

        with self._lock:
            # Synced before any file goes: a power loss must not bring back an
            # entry whose folder is gone.
            self._change("delete", entry.folder, apply, sync=True)

    def finish_delete(self, entry: CatalogEntry) -> None:
        """The files are gone (and ``drop`` removed the log): forget the folder."""
        with self._lock:
            if entry.folder in self._deleting:
                self._change("forget", entry.folder,
                             lambda: self._deleting.pop(entry.folder, None))

    def set_clean(self, clean: bool) -> None:
        with self._lock:
            if clean:
                self._write_snapshot(True)  # a clean close leaves one compact file
            else:
                self._change("clean", False, lambda: setattr(self, "was_clean", False),
                             sync=True)

    # -- metadata logs ---------------------------------------------------------------

    def _log_path(self, folder: str) -> Path:
        return self._meta_dir / f"{folder}.jsonl"

    def _records(self, folder: str) -> dict[str, Record]:
        """The records of a database (caller holds the lock).

        A writer reads its log once; a reader reads what was appended since its
        last look, or the whole log again if it was rewritten.
        """
        cached = self._logs.get(folder)
        if cached is not None and not self._read_only:
            return cached[0]
        path = self._log_path(folder)
        signature = _signature(path)
        if cached is not None and cached[2] == signature:
            return cached[0]
        records, offset = ({}, 0) if cached is None else (cached[0], cached[1])
        if cached is not None and (signature is None or cached[2] is None
                                   or signature[0] != cached[2][0]
                                   or signature[1] < offset):
            records, offset = {}, 0  # rewritten (compacted) or gone: read it whole
        offset = self._read_log(path, records, offset)
        if not self._read_only:
            _cut_tail(path, offset)
            signature = _signature(path)
        self._logs[folder] = (records, offset, signature)
        return records

    @staticmethod
    def _read_log(path: Path, records: dict[str, Record], offset: int) -> int:
        """Apply the complete lines of the log from ``offset``; return the offset read to."""
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            return 0
        end = _whole_lines(data)
        # What follows is an append still being written, or the tail a power
        # loss tore, never acknowledged (the writer cuts it: see _records).
        for line in data[:end].split(b"\n")[:-1]:
            where = f"metadata log {str(path)!r}: line at byte {offset}"
            try:
                item = json.loads(line)
            except (ValueError, RecursionError) as exc:
                raise CorruptionError(f"{where} is damaged ({exc})"[:300]) from exc
            if not isinstance(item, list) or len(item) not in (1, 8) \
                    or not isinstance(item[0], str):
                raise CorruptionError(f"{where} is damaged (not [id] or an 8-item record)")
            if len(item) == 1:
                records.pop(item[0], None)
            else:
                records[item[0]] = check_record(where, *item)
            offset += len(line) + 1
        return offset

    def _append(self, folder: str, lines: list[Any]) -> None:
        data = "".join(_dumps(x) + "\n" for x in lines).encode()
        path = self._log_path(folder)
        append_lines(path, data)
        records, offset, _ = self._logs[folder]
        self._logs[folder] = (records, offset + len(data), _signature(path))
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
            data = "".join(_dumps([vid, *rec]) + "\n" for vid, rec in records.items())
            path = self._log_path(folder)
            write_atomically(path, data.encode())
            self._logs[folder] = (dict(records), len(data.encode()), _signature(path))
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
            except OSError as exc:
                raise _os_error(exc, self._log_path(folder), "removing the metadata log") \
                    from exc

    def folders(self) -> set[str]:
        """Folders that own a metadata log (recovery drops those of no database)."""
        if not self._meta_dir.is_dir():
            return set()
        names = (p.name[: -len(".jsonl")] for p in self._meta_dir.glob("*.jsonl"))
        return {n for n in names if is_folder_id(n)}

    # -- lifecycle -------------------------------------------------------------------

    def sync(self) -> None:
        """fsync the journal and the logs appended to since the last sync.

        A log leaves the pending set only once its fsync succeeded.
        """
        with self._lock:
            synced_logs = bool(self._unsynced)
            for folder in list(self._unsynced):
                path = self._log_path(folder)
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    self._unsynced.discard(folder)
                    continue
                try:
                    os.fsync(fd)
                except OSError as exc:
                    raise _os_error(exc, path, "fsync") from None
                finally:
                    os.close(fd)
                self._unsynced.discard(folder)
            if self._journal_unsynced and self._journal.exists():
                fd = os.open(self._journal, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    os.fsync(fd)
                except OSError as exc:
                    raise _os_error(exc, self._journal, "fsync") from None
                finally:
                    os.close(fd)
                self._journal_unsynced = False
            if synced_logs and self._meta_dir.is_dir():
                fsync_dir(self._meta_dir)  # a log created since the last sync

    def close(self) -> None:
        with self._lock:
            self._logs.clear()


class MmapBackend(PersistentBackend):
    """Vectors in memory-mapped files, catalog in a JSON snapshot and journal.

    No dependency beyond the standard library and jadevec's core; every file
    is plain and inspectable. Opening reads the catalog and opens no vector
    file (see :mod:`jadevec.backends._vector_store`).
    """

    persistent: ClassVar[bool] = True
    supports_metadata: ClassVar[bool] = True
    backend_name: ClassVar[str] = "mmap"
    catalog_file: ClassVar[str] = "catalog.json"
    own_names: ClassVar[frozenset[str]] = frozenset(
        {catalog_file, JOURNAL, METADATA_DIR, VECTORS_DIR})

    def _open_catalog(self, root: Path, read_only: bool) -> JsonCatalog:
        return JsonCatalog(root, read_only)
