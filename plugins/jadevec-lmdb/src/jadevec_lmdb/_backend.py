"""The LMDB store: catalog, lifecycle, verification.

The catalog lives in the ``catalog`` sub-database, keyed by the lower-case
name (so lookups ignore case) with a JSON record that keeps the creation
case, the dimension, the metric and the database's number. ``meta`` holds the
layout's ``format``, ``next_id`` (the next database number; numbers are
never reused, so a database deleted and re-created under the same name is a
new database to every live handle) and ``clean``.

Unclean shutdown: LMDB needs no repair after a crash (a commit is atomic), but
the contract is that an unclean shutdown is detected and reported. A writer
commits ``clean = 0`` when it opens and ``clean = 1`` as the last step of
``close``; a writer that finds 0 knows its predecessor died, checks the store
(the data file was checked page by page before it was opened; the catalog is
verified against the data) and says what it checked in ``recovery_report``
and in a warning on the ``jadevec`` logger.

Thread rules: writes go through :meth:`SharedEnvironment.write` (one at a
time per environment); reads run in parallel LMDB read transactions. The
handle table is guarded by ``_handles_lock``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from jadevec.backends.base import (
    METRICS,
    Backend,
    DatabaseInfo,
    RecoveryReport,
    StoreOptions,
    VerifyReport,
    WriterLock,
    refuse_foreign_folder,
)
from jadevec.errors import (
    CorruptionError,
    DatabaseExistsError,
    DatabaseNotFoundError,
    InvalidInputError,
    JadevecError,
    ReadOnlyError,
    StoreClosedError,
    StoreNotFoundError,
)

from jadevec_lmdb import _environment
from jadevec_lmdb._database import LONG_ID_MARK, STATS, LmdbDatabase, prefix_of
from jadevec_lmdb._environment import DATA_FILE, LMDB_LOCK_FILE

__all__ = ["LmdbBackend"]

if TYPE_CHECKING:
    from lmdb import _Database

    from jadevec_lmdb._environment import Txn

logger = logging.getLogger("jadevec")

_MIN_MAP_SIZE = 1 << 20
# compact() rewrites the file only when at least this share of its pages is
# free: LMDB reuses free pages for later writes anyway, and the copy costs a
# read and a write of the whole file.
_COMPACT_SHARE = 1 / 8
_CLEAN, _UNCLEAN = b"\x01", b"\x00"
# What a store keeps at its top besides hidden names (the writer lock, the
# work folders of a creation or a compaction): a folder holding anything else
# and no data file is not made a store.
_OWN_NAMES = frozenset({DATA_FILE, LMDB_LOCK_FILE})


class LmdbBackend(Backend):
    """A jadevec store in one LMDB environment; every write is one ACID transaction.

    Opened through ``jadevec.open(path, backend="lmdb", **options)``.

    Parameters
    ----------
    path : Path
        The store directory; created (with parents) unless ``read_only``.
    options : StoreOptions
        Validated common options plus the extra ones below.

    Other Parameters
    ----------------
    map_size : int
        Initial LMDB map size in bytes (default 256 MiB). It is only an
        address-space limit: the file grows with the data, and the map doubles
        automatically when a transaction fills it.
    lmdb_sync : bool
        ``True`` (default): every commit is flushed to disk before the call
        returns, so an acknowledged write survives a power loss. ``False``:
        commits reach the page cache only (a killed process loses nothing);
        ``sync()`` and a background sync every ``flush_interval`` seconds
        bound what a power loss can take, and a file system that reorders
        writes may then damage the file, as LMDB documents for ``MDB_NOSYNC``.

    Notes
    -----
    ``max_open_files`` has no effect: the whole store is one data file.
    ``compact()`` on any database compacts the whole file (see :meth:`compact_file`).
    """

    persistent: ClassVar[bool] = True
    supports_metadata: ClassVar[bool] = True
    supports_backup: ClassVar[bool] = True
    extra_options: ClassVar[Mapping[str, Any]] = {"map_size": 256 << 20, "lmdb_sync": True}

    def __init__(self, path: Path | None, options: StoreOptions) -> None:
        if path is None:
            raise InvalidInputError("the lmdb backend needs a directory path, got None")
        map_size = options.extra.get("map_size", self.extra_options["map_size"])
        sync = options.extra.get("lmdb_sync", self.extra_options["lmdb_sync"])
        if isinstance(map_size, bool) or not isinstance(map_size, (int, np.integer)) or (
                map_size < _MIN_MAP_SIZE):
            raise InvalidInputError(
                f"map_size must be an int of at least {_MIN_MAP_SIZE} bytes, got {map_size!r}")
        if not isinstance(sync, bool):
            raise InvalidInputError(f"lmdb_sync must be a bool, got {sync!r}")
        self._closed = True  # until everything below succeeded
        self._read_only = options.read_only
        self._path = Path(path)
        self._handles: dict[str, LmdbDatabase] = {}
        self._handles_lock = threading.Lock()
        self._sync_thread: threading.Thread | None = None
        #: Background sync ticks run so far (for tests and reports).
        self._ticks = 0
        self._stop = threading.Event()
        self._lock: WriterLock | None = None
        self._recovery: RecoveryReport | None = None
        if options.read_only:
            if not (self._path / DATA_FILE).is_file():
                raise StoreNotFoundError(f"no lmdb store in {str(self._path)!r}")
        else:
            # Never a data file beside another backend's store or a user's files:
            refuse_foreign_folder(self._path, "lmdb", DATA_FILE, _OWN_NAMES)
            try:
                self._path.mkdir(parents=True, exist_ok=True)
                self._lock = WriterLock(self._path)
            except OSError as exc:
                raise _environment.os_error(exc, self._path) from exc
        try:
            self._shared = _environment.acquire(self._path, int(map_size), sync,
                                                writer=not options.read_only)
        except BaseException:
            if self._lock is not None:
                self._lock.release()
            raise
        if not options.read_only:
            self._shared.writers += 1
            try:
                self._mark_open()
            except BaseException:
                self._shared.writers -= 1
                _environment.release(self._shared)
                self._lock.release()
                raise
        self._closed = False
        if not options.read_only and not self._shared.sync_on_commit and options.flush_interval:
            self._sync_thread = threading.Thread(
                target=self._sync_loop, args=(options.flush_interval,),
                name=f"jadevec-lmdb-sync {self._path}", daemon=True)
            self._sync_thread.start()

    # -- clean shutdown ---------------------------------------------------------------------

    def _mark_open(self) -> None:
        """Commit ``clean = 0``; if it already was 0, report the unclean shutdown."""
        started = time.perf_counter()

        def body(txn: Txn) -> bytes | None:
            was = txn.get(b"clean", db=self._shared.dbs[b"meta"])
            txn.put(b"clean", _UNCLEAN, db=self._shared.dbs[b"meta"])
            return was

        was = self._shared.write(body)
        if not self._shared.sync_on_commit:
            self._shared.sync()  # the mark must outlive a power loss, as the writes after it
        actions = self._shared.take_repairs()
        names: list[str] = []
        if was == _UNCLEAN:
            actions.append("the last writer stopped without closing the store (field "
                           "'clean' of sub-database 'meta' was 0); LMDB needs no repair: "
                           "its last committed transaction is the store's state")
            checked = self._shared.checked
            if checked is not None:
                actions.append(f"checked {str(self._shared.data_path)!r} before opening it: "
                               f"{checked.describe()}")
            report = self._verify_report()
            try:
                names = [info.name for info in self._list_infos()]
            except CorruptionError:
                pass  # a damaged catalog record: verify() reported it
            if report.ok:
                actions.append(f"verified the catalog against the data: "
                               f"{report.checked.get('databases', 0)} databases, "
                               f"{report.checked.get('vectors', 0)} vectors, no problems")
            else:
                actions.append("verified the catalog against the data and found: "
                               + "; ".join(report.problems[:10]))
        if actions:
            self._recovery = RecoveryReport(actions, names, time.perf_counter() - started)
            logger.warning("lmdb store %s: %s", self._path, "; ".join(actions))

    def _mark_closed(self) -> None:
        self._shared.write(
            lambda txn: txn.put(b"clean", _CLEAN, db=self._shared.dbs[b"meta"]))

    @property
    def recovery_report(self) -> RecoveryReport | None:
        """``None`` after a clean open, else what this writer found and checked."""
        return self._recovery

    # -- catalog ----------------------------------------------------------------------------

    def _check(self, write: bool) -> None:
        if self._closed:
            raise StoreClosedError("the store is closed")
        if write and self._read_only:
            raise ReadOnlyError(f"store {str(self._path)!r} was opened read-only")

    def _record(self, record: bytes) -> tuple[DatabaseInfo, int]:
        """A catalog record's info and number; CorruptionError naming the file if damaged."""
        try:
            fields = json.loads(record)
            info = DatabaseInfo(fields["name"], fields["dimension"], fields["metric"])
            number = fields["number"]
            if not (isinstance(info.name, str) and info.metric in METRICS
                    and type(info.dimension) is int and info.dimension >= 1
                    and type(number) is int and 0 <= number < 1 << 64):
                raise ValueError("a field has the wrong type or value")
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptionError(f"{str(self._shared.data_path)!r}: a record of sub-database "
                                  f"'catalog' is damaged ({exc}): {record[:80]!r}") from None
        return info, number

    def _handle(self, record: bytes) -> LmdbDatabase:
        info, number = self._record(record)
        key = info.name.lower()
        with self._handles_lock:
            handle = self._handles.get(key)
            # A handle of an older database of the same name stays dead.
            if handle is None or handle._record != record:
                handle = LmdbDatabase(self, info, number, record)
                self._handles[key] = handle
            return handle

    def create_database(self, name: str, dimension: int, metric: str) -> LmdbDatabase:
        self._check(write=True)
        dbs = self._shared.dbs
        key = name.lower().encode()

        def body(txn: Txn) -> bytes:
            taken = txn.get(key, db=dbs[b"catalog"])
            if taken is not None:
                existing = json.loads(taken)["name"]
                raise DatabaseExistsError(
                    f"database {name!r} already exists (as {existing!r}; names ignore case)")
            next_id = txn.get(b"next_id", db=dbs[b"meta"])
            if next_id is None:
                raise CorruptionError(f"{str(self._shared.data_path)!r}: field 'next_id' "
                                      f"is missing from sub-database 'meta'")
            number = int.from_bytes(next_id, "big")
            if len(next_id) != 8 or number >= 1 << 63:
                raise CorruptionError(f"{str(self._shared.data_path)!r}: field 'next_id' of "
                                      f"sub-database 'meta' is damaged: {next_id!r}")
            record = json.dumps({"name": name, "dimension": dimension, "metric": metric,
                                 "number": number}).encode()
            txn.put(key, record, db=dbs[b"catalog"])
            txn.put(prefix_of(number), STATS.pack(0, 0), db=dbs[b"stats"])
            txn.put(b"next_id", (number + 1).to_bytes(8, "big"), db=dbs[b"meta"])
            return record

        return self._handle(self._shared.write(body))

    def open_database(self, name: str) -> LmdbDatabase:
        self._check(write=False)
        key = name.lower().encode()
        record = self._shared.read(lambda txn: txn.get(key, db=self._shared.dbs[b"catalog"]))
        if record is None:
            raise DatabaseNotFoundError(f"no database named {name!r}")
        return self._handle(record)

    def has_database(self, name: str) -> bool:
        self._check(write=False)
        key = name.lower().encode()
        return self._shared.read(
            lambda txn: txn.get(key, db=self._shared.dbs[b"catalog"]) is not None)

    def list_databases(self) -> list[DatabaseInfo]:
        self._check(write=False)
        return self._list_infos()

    def _list_infos(self) -> list[DatabaseInfo]:
        def body(txn: Txn) -> list[bytes]:
            return [record for _, record in txn.cursor(db=self._shared.dbs[b"catalog"])]

        return [self._record(record)[0] for record in self._shared.read(body)]

    def delete_database(self, name: str) -> None:
        self._check(write=True)
        dbs = self._shared.dbs
        key = name.lower().encode()

        def body(txn: Txn) -> None:
            record = txn.get(key, db=dbs[b"catalog"])
            if record is None:
                raise DatabaseNotFoundError(f"no database named {name!r}")
            prefix = prefix_of(self._record(record)[1])
            txn.delete(key, db=dbs[b"catalog"])
            txn.delete(prefix, db=dbs[b"stats"])
            for sub in (b"vectors", b"metadata", b"long_ids"):
                cursor = txn.cursor(db=dbs[sub])
                if cursor.set_range(prefix):
                    # delete() moves the cursor to the next key.
                    while cursor.key().startswith(prefix) and cursor.delete():
                        pass

        self._shared.write(body)
        with self._handles_lock:
            handle = self._handles.pop(name.lower(), None)
        if handle is not None:
            handle.drop_cache()

    # -- compaction -------------------------------------------------------------------------

    def compact_file(self) -> tuple[int, int] | None:
        """Give the free pages of the data file back to the file system.

        LMDB keeps the pages of deleted data on its free list and reuses them,
        but never shrinks the file. When at least an eighth of the pages are
        free, the file is replaced by LMDB's compacting copy (crash-safe: see
        ``SharedEnvironment.compact``) and every handle of this process moves
        to it. Returns the file's sizes before and after, or ``None`` when
        there was too little to gain.
        """
        self._check(write=True)
        pages, free = self._shared.reclaimable_pages()
        if free < pages * _COMPACT_SHARE:
            return None
        before, after = self._shared.compact()
        logger.info("compacted %s: %d -> %d bytes", self._shared.data_path, before, after)
        return before, after

    # -- backup -----------------------------------------------------------------------------

    def backup(self, dest: Path) -> None:
        """Copy the store's newest commit (LMDB's compacting copy) into ``dest``, marked clean.

        The whole store is one LMDB environment, so the copy is one commit of
        every database at once; writers go on meanwhile. See
        ``SharedEnvironment.backup``.
        """
        self._check(write=False)
        self._shared.backup(dest)

    # -- durability -------------------------------------------------------------------------

    def flush(self) -> None:
        """Do nothing: every acknowledged write is already in the page cache.

        LMDB writes a transaction's pages with ``write()`` when it commits, so
        a killed process loses nothing that ``flush`` could have saved.
        """
        self._check(write=False)

    def sync(self) -> None:
        """fsync the data file: everything committed survives a power loss."""
        self._check(write=False)
        if not self._read_only:
            self._shared.sync()

    def _sync_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                # Nothing committed since the last sync: no fsync, no I/O at all.
                self._shared.sync_if_changed()
                self._ticks += 1
            except StoreClosedError:
                return
            except JadevecError:
                # Reported to the caller by the next sync() or commit; the
                # thread must not die silently in between.
                logger.exception("background sync of %s failed", self._path)

    # -- verification -----------------------------------------------------------------------

    def verify(self) -> VerifyReport:
        """Check the catalog against the data: records, sizes, counts, orphans."""
        self._check(write=False)
        return self._verify_report()

    def _verify_report(self) -> VerifyReport:
        report = VerifyReport()
        try:
            self._shared.read(lambda txn: _verify(txn, self._shared.dbs, report))
        except JadevecError as exc:
            report.problems.append(f"reading {str(self._shared.data_path)!r} failed: {exc}")
        return report

    # -- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._sync_thread is not None:
            self._sync_thread.join()
        try:
            if not self._read_only:
                self._mark_closed()
                if not self._shared.sync_on_commit:
                    self._shared.sync()
        finally:
            with self._handles_lock:
                handles, self._handles = list(self._handles.values()), {}
            for handle in handles:
                handle.drop_cache()
            if not self._read_only:
                self._shared.writers -= 1
            _environment.release(self._shared)
            if self._lock is not None:
                self._lock.release()


def _verify(txn: Txn, dbs: Mapping[bytes, _Database], report: VerifyReport) -> None:
    """Fill ``report`` with every inconsistency between catalog and data."""
    known: dict[bytes, str] = {}
    vectors_seen = 0
    for key, record in txn.cursor(db=dbs[b"catalog"]):
        try:
            fields = json.loads(record)
            name, dimension = fields["name"], fields["dimension"]
            metric, number = fields["metric"], fields["number"]
        except (ValueError, KeyError, TypeError):
            report.problems.append(f"catalog entry {key!r}: record is not valid: {record[:80]!r}")
            continue
        if not isinstance(name, str) or type(number) is not int or not 0 <= number < 1 << 64:
            report.problems.append(f"catalog entry {key!r}: name or number is not valid: "
                                   f"{record[:80]!r}")
            continue
        if name.lower().encode() != key:
            report.problems.append(f"catalog entry {key!r}: name {name!r} does not match its key")
        if metric not in METRICS or not isinstance(dimension, int) or dimension < 1:
            report.problems.append(f"database {name!r}: bad metric {metric!r} "
                                   f"or dimension {dimension!r}")
            continue
        prefix = prefix_of(number)
        known[prefix] = name
        count = _verify_vectors(txn, dbs, prefix, name, dimension, report)
        vectors_seen += count
        stats = txn.get(prefix, db=dbs[b"stats"])
        if stats is None or len(stats) != STATS.size:
            report.problems.append(f"database {name!r}: field 'stats' is missing or malformed")
        elif STATS.unpack(stats)[0] != count:
            report.problems.append(f"database {name!r}: catalog count {STATS.unpack(stats)[0]} "
                                   f"but {count} vectors stored")
    for sub in (b"stats", b"vectors", b"metadata", b"long_ids"):
        orphans = sum(1 for key, _ in txn.cursor(db=dbs[sub]) if key[:8] not in known)
        if orphans:
            report.problems.append(f"sub-database {sub.decode()!r}: {orphans} entries belong "
                                   f"to no database in the catalog")
    report.checked.update(databases=len(known), vectors=vectors_seen)


def _verify_vectors(txn: Txn, dbs: Mapping[bytes, _Database], prefix: bytes,
                    name: str, dimension: int, report: VerifyReport) -> int:
    """Check one database's vectors, metadata and long ids; return how many vectors it has."""
    count = 0
    cursor = txn.cursor(db=dbs[b"vectors"])
    if cursor.set_range(prefix):
        for key, value in cursor:
            if not key.startswith(prefix):
                break
            count += 1
            if len(key) <= 8:
                report.problems.append(f"database {name!r}: a vector key has no id: {key!r}")
                continue
            if len(value) != 4 * dimension:
                report.problems.append(f"database {name!r}: vector key {key[8:]!r} has "
                                       f"{len(value)} bytes, expected {4 * dimension}")
            elif not np.isfinite(np.frombuffer(value, dtype="<f4")).all():
                report.problems.append(f"database {name!r}: vector key {key[8:]!r} is not finite")
            if key[8] == LONG_ID_MARK:
                full = txn.get(key, db=dbs[b"long_ids"])
                if full is None or hashlib.sha256(full).digest() != key[9:]:
                    report.problems.append(f"database {name!r}: hashed id {key[9:].hex()} has "
                                           f"no matching entry in 'long_ids'")
    cursor = txn.cursor(db=dbs[b"metadata"])
    if cursor.set_range(prefix):
        for key, value in cursor:
            if not key.startswith(prefix):
                break
            if txn.get(key, db=dbs[b"vectors"]) is None:
                report.problems.append(f"database {name!r}: metadata of {key[8:]!r} "
                                       f"has no vector")
            try:
                json.loads(value)
            except ValueError:
                report.problems.append(f"database {name!r}: metadata of {key[8:]!r} "
                                       f"is not JSON")
    return count
