"""One LMDB environment per store directory, shared inside a process.

Invariants and thread rules:

* LMDB forbids opening one environment twice in a process (its fcntl locks
  belong to the process, and closing a second handle would drop them; py-lmdb
  refuses the second open). Every :class:`LmdbBackend` of this process on the
  same directory therefore shares one :class:`SharedEnvironment`, counted by
  references and closed with the last one.
* Because a read-only store and a writer may share it, the environment is
  opened writable whenever the directory is writable; read-only stores are
  refused writes by the plugin before any transaction begins. On a directory
  the process cannot write, the environment is opened with LMDB's readonly
  flag.
* The map size is a limit on address space, not a preallocation. When a write
  transaction hits ``MDB_MAP_FULL`` it is aborted, the map is doubled and the
  transaction re-run from the start. ``mdb_env_set_mapsize`` requires that no
  transaction of this process is live, so every transaction holds the
  :class:`_Gate` shared and a resize holds it alone. ``MDB_MAP_RESIZED`` (a
  writer elsewhere grew the map) is handled the same way with size 0, which
  adopts the size recorded in the file.
* Write transactions are serialised by ``write_lock`` (re-entrant, so a caller
  can keep it across the commit and the update of its caches). A transaction
  body may run more than once, so it must not change Python state.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import lmdb
from jadevec.errors import (
    CorruptionError,
    JadevecError,
    ReadOnlyError,
    StorageFullError,
    StoreClosedError,
    StoreFailedError,
    UnsupportedVersionError,
)

__all__ = [
    "DATA_FILE",
    "FORMAT",
    "LmdbBackendError",
    "SharedEnvironment",
    "acquire",
    "release",
    "translate",
]

if TYPE_CHECKING:
    from lmdb import _Database

    #: A transaction whose reads return bytes (py-lmdb's default, ``buffers=False``).
    Txn = lmdb.Transaction[bytes]

T = TypeVar("T")

#: LMDB's data file inside a store directory.
DATA_FILE = "data.mdb"
#: Value of the ``format`` key in the ``meta`` sub-database.
FORMAT = b"jadevec-lmdb/1"

# The named sub-databases of a store (their keys and values: _database.py, README.md).
SUBDATABASES = (b"meta", b"catalog", b"stats", b"vectors", b"metadata", b"long_ids")


class LmdbBackendError(JadevecError, OSError):
    """LMDB reported a failure that no more specific jadevec error describes."""


class _Gate:
    """Transactions share it; a map resize (or closing the environment) takes it alone."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active = 0
        self._exclusive = False

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._exclusive:
                self._cond.wait()
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                if not self._active:
                    self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            while self._exclusive:
                self._cond.wait()
            # Claim first so new transactions wait: a stream of readers must
            # not starve a resize.
            self._exclusive = True
            while self._active:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


class SharedEnvironment:
    """An open LMDB environment, its sub-databases and the locks around it.

    Build it with :func:`acquire`; never directly.
    """

    def __init__(self, directory: Path, key: tuple[int, int], map_size: int, sync: bool) -> None:
        self.directory = directory
        self.data_path = directory / DATA_FILE
        self.key = key
        self.refs = 0
        self.write_lock = threading.RLock()
        self.gate = _Gate()
        self.closed = False
        writable = os.access(directory, os.W_OK)
        self.sync_on_commit = sync
        try:
            self.env = lmdb.open(
                str(directory),
                map_size=map_size,
                subdir=True,
                readonly=not writable,
                sync=sync,
                metasync=sync,
                max_dbs=len(SUBDATABASES),
                create=writable,
            )
        except lmdb.Error as exc:
            raise translate(exc, self.data_path) from exc
        try:
            self.dbs = self._open_subdatabases(writable)
        except BaseException:
            self.env.close()
            raise
        #: Largest id key (prefix included) LMDB accepts; longer ids are hashed.
        self.max_key_size = self.env.max_key_size()

    def _open_subdatabases(self, writable: bool) -> dict[bytes, _Database]:
        try:
            with self.env.begin() as txn:
                # Named sub-databases are keys of LMDB's main database.
                empty = txn.stat()["entries"] == 0
                laid_out = txn.get(b"meta") is not None
            if not laid_out:
                if writable and empty:
                    return self._create_subdatabases()
                raise CorruptionError(f"{str(self.data_path)!r}: not a jadevec-lmdb store "
                                      "(no sub-database 'meta')")
            # Without a txn argument py-lmdb opens the handles in a transaction
            # it commits; handles opened in a read transaction die with it.
            dbs = {name: self.env.open_db(name, create=False) for name in SUBDATABASES}
            with self.env.begin() as txn:
                fmt = txn.get(b"format", db=dbs[b"meta"])
        except lmdb.NotFoundError as exc:
            raise CorruptionError(
                f"{str(self.data_path)!r}: a sub-database of the jadevec-lmdb layout is missing"
            ) from exc
        except lmdb.Error as exc:
            raise translate(exc, self.data_path) from exc
        if fmt != FORMAT:
            raise UnsupportedVersionError(
                f"{str(self.data_path)!r}: field 'format' is {fmt!r}; "
                f"this jadevec-lmdb reads {FORMAT!r}"
            )
        return dbs

    def _create_subdatabases(self) -> dict[bytes, _Database]:
        with self.env.begin(write=True) as txn:
            dbs = {name: self.env.open_db(name, txn=txn, create=True) for name in SUBDATABASES}
            txn.put(b"format", FORMAT, db=dbs[b"meta"])
            txn.put(b"next_id", (1).to_bytes(8, "big"), db=dbs[b"meta"])
        return dbs

    # -- transactions -----------------------------------------------------------------------

    def read(self, body: Callable[[Txn], T]) -> T:
        """Run ``body(txn)`` in a read transaction and return its result."""
        while True:
            try:
                with self.gate.shared():
                    self._check_open()
                    with self.env.begin() as txn:
                        return body(txn)
            except lmdb.MapResizedError:
                self._resize(0)
            except lmdb.Error as exc:
                raise translate(exc, self.data_path) from exc

    def write(self, body: Callable[[Txn], T]) -> T:
        """Run ``body(txn)`` in a write transaction, commit it and return its result.

        The commit is synced to disk unless the store was opened with
        ``lmdb_sync=False``. If ``body`` raises, nothing it wrote is kept.
        """
        with self.write_lock:
            while True:
                try:
                    with self.gate.shared():
                        self._check_open()
                        txn = self.env.begin(write=True)
                        try:
                            result = body(txn)
                        except BaseException:
                            txn.abort()
                            raise
                        txn.commit()
                    return result
                except lmdb.MapFullError:
                    self._resize(self.env.info()["map_size"] * 2)
                except lmdb.MapResizedError:
                    self._resize(0)
                except lmdb.Error as exc:
                    raise translate(exc, self.data_path) from exc

    def _resize(self, size: int) -> None:
        with self.gate.exclusive():
            self._check_open()
            self.env.set_mapsize(size)

    def _check_open(self) -> None:
        if self.closed:
            raise StoreClosedError("the store is closed")

    def sync(self) -> None:
        """Force every committed transaction to disk (fsync)."""
        with self.gate.shared():
            self._check_open()
            try:
                self.env.sync(True)
            except lmdb.Error as exc:
                raise translate(exc, self.data_path) from exc


_registry: dict[tuple[int, int], SharedEnvironment] = {}
_registry_lock = threading.Lock()


def acquire(directory: Path, map_size: int, sync: bool) -> SharedEnvironment:
    """Return this process's environment of ``directory``, opening it on first use.

    ``map_size`` and ``sync`` apply only when this call opens it; a later
    opener shares the existing one (a read-only store never commits, so only
    the first writer's choice matters, and two writers cannot coexist).
    """
    with _registry_lock:
        key = _identity(directory)
        shared = _registry.get(key)
        if shared is None:
            shared = SharedEnvironment(directory, key, map_size, sync)
            # The files exist now; register under their final identity.
            shared.key = _identity(directory)
            _registry[shared.key] = shared
        shared.refs += 1
        return shared


def release(shared: SharedEnvironment) -> None:
    """Drop one reference; the last one closes the environment."""
    # Close under the registry lock: py-lmdb refuses to open the environment
    # again until the old handle is closed, so no acquire may slip in between.
    with _registry_lock:
        shared.refs -= 1
        if shared.refs:
            return
        del _registry[shared.key]
        with shared.gate.exclusive():
            shared.closed = True
            shared.env.close()


def _identity(directory: Path) -> tuple[int, int]:
    # A store deleted and re-created at the same path is a different
    # environment, so identify it by the data file, not by the path.
    try:
        st = os.stat(directory / DATA_FILE)
    except FileNotFoundError:
        st = os.stat(directory)
    return (st.st_dev, st.st_ino)


def translate(exc: lmdb.Error, path: Path) -> Exception:
    """The jadevec error for an LMDB error raised while using the file at ``path``."""
    where = str(path)
    if isinstance(exc, lmdb.ReadonlyError):
        return ReadOnlyError(f"{where!r} is read-only: {exc}")
    if isinstance(
        exc,
        (lmdb.CorruptedError, lmdb.PageNotFoundError, lmdb.InvalidError, lmdb.PanicError),
    ):
        return CorruptionError(f"{where!r}: {exc}")
    if isinstance(exc, lmdb.VersionMismatchError):
        return UnsupportedVersionError(f"{where!r}: {exc}")
    code = _errno_of(exc)
    if code in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT) or (
            code == errno.EIO and _out_of_space(path)):
        # LMDB turns a write cut short by the file-size limit into EIO.
        return StorageFullError(code if code != errno.EIO else errno.ENOSPC,
                                f"no space left for the store: {exc}", where)
    if isinstance(exc, lmdb.DiskError) or code == errno.EIO:
        return StoreFailedError(code or errno.EIO, f"I/O error: {exc}", where)
    return LmdbBackendError(f"{where!r}: {exc}")


def _out_of_space(path: Path) -> bool:
    """Whether the data file is at the process's file-size limit or the disk is full."""
    import resource

    soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    try:
        if soft != resource.RLIM_INFINITY and os.path.getsize(path) + (1 << 20) >= soft:
            return True
        st = os.statvfs(path.parent)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < (1 << 20)


def _errno_of(exc: lmdb.Error) -> int | None:
    for arg in exc.args:
        if isinstance(arg, int):
            return arg
    text = str(exc)
    for code in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EIO):
        if os.strerror(code) in text:
            return code
    return None
