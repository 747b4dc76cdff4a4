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
  body may run more than once, so it must not change Python state, and it
  looks its sub-database handles up in ``dbs`` inside the transaction: a
  compaction replaces them (in place, under the gate) between transactions.
* LMDB trusts its data file; a damaged one would crash the process. So the
  file is checked before LMDB first maps it (:mod:`._datafile`), and a new
  store's file is built in a temporary folder and renamed into place whole,
  so that ``data.mdb`` is never half-made.
* Compaction (:meth:`SharedEnvironment.compact`) writes LMDB's compacting copy
  into a temporary folder, fsyncs it, gives it the old file's transaction ids
  and renames it over ``data.mdb``; a crash at any step leaves one complete
  file under that name. This process reopens the environment on the new file
  under the gate. Another process that has the old file open keeps reading it
  (its pages never change again) until a writer commits to the new one: LMDB
  then hands its read transactions an id its old file has never reached, which
  is how :meth:`SharedEnvironment.read` notices and reopens.
* The registry finds a directory's environment by ``lock.mdb`` (which a
  compaction keeps) or by ``data.mdb`` (which it replaces). A forked child
  starts with an empty registry and opens its own environments.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
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
    StoreNotFoundError,
    UnsupportedVersionError,
)

from jadevec_lmdb import _datafile

__all__ = [
    "COMPACTING",
    "CREATING",
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
#: LMDB's lock file (reader table and writer mutex) inside a store directory.
LMDB_LOCK_FILE = "lock.mdb"
#: Prefixes of the temporary folders of a creation and of a compaction.
CREATING, COMPACTING = ".create-", ".compact-"
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

    def __init__(self, directory: Path, map_size: int, sync: bool, writer: bool) -> None:
        self.directory = directory
        self.data_path = directory / DATA_FILE
        self.refs = 0
        #: Writers of this process using it; while one is, no one else swaps the file.
        self.writers = 0
        self.write_lock = threading.RLock()
        self.gate = _Gate()
        self.closed = False
        self.sync_on_commit = sync
        #: Write transactions committed, and how many of them the last sync() covered:
        #: the background tick skips its fsync while the two are equal (an idle store
        #: must cause no I/O, and an fsync of an unchanged file still flushes the disk).
        self.commits = 0
        self.synced_commits = 0
        #: fsyncs of the data file done by sync() (for tests and reports).
        self.syncs = 0
        self._map_size = map_size
        self._writable = os.access(directory, os.W_OK)
        self.dbs: dict[bytes, _Database] = {}
        if not self.data_path.exists():
            if not (writer and self._writable):
                raise StoreNotFoundError(f"no lmdb store in {str(directory)!r}")
            _create(directory, map_size)
        self.broken: str | None = None
        #: What the check of the data file found (and repaired) when it was opened.
        self.checked: _datafile.Summary | None = self._open(repair=writer)
        #: Largest id key (prefix included) LMDB accepts; longer ids are hashed.
        self.max_key_size = self.env.max_key_size()

    def _open(self, repair: bool, check: bool = True) -> _datafile.Summary | None:
        """Check the data file, then open LMDB on that very file (set ``env`` and ``dbs``)."""
        for _ in range(3):
            summary = _datafile.check(self.data_path, repair=repair) if check else None
            try:
                env = lmdb.open(
                    str(self.directory),
                    map_size=self._map_size,
                    subdir=True,
                    readonly=not self._writable,
                    sync=self.sync_on_commit,
                    metasync=self.sync_on_commit,
                    max_dbs=len(SUBDATABASES),
                    create=False,
                )
            except lmdb.Error as exc:
                raise translate(exc, self.data_path) from exc
            opened = _file_id(self.data_path)
            if summary is not None and opened != summary.identity:
                env.close()  # swapped between the check and the open: check the new one
                continue
            try:
                dbs = self._open_subdatabases(env)
            except BaseException:
                env.close()
                raise
            self.env = env
            self.dbs.clear()
            self.dbs.update(dbs)  # in place: database handles hold this dict
            self.data_id = opened
            self.lock_id = _file_id(self.directory / LMDB_LOCK_FILE)
            return summary
        raise CorruptionError(f"{str(self.data_path)!r}: the file kept changing while it "
                              f"was opened")

    def _open_subdatabases(self, env: lmdb.Environment) -> dict[bytes, _Database]:
        try:
            with env.begin() as txn:
                # Named sub-databases are keys of LMDB's main database.
                laid_out = txn.get(b"meta") is not None
            if not laid_out:
                # Never laid out afresh: a new store's file arrives laid out (see
                # _create), so an empty one here is damage or someone else's, and
                # writing a layout into it would hide that.
                raise CorruptionError(f"{str(self.data_path)!r}: not a jadevec-lmdb store "
                                      "(no sub-database 'meta')")
            # Without a txn argument py-lmdb opens the handles in a transaction
            # it commits; handles opened in a read transaction die with it.
            dbs = {name: env.open_db(name, create=False) for name in SUBDATABASES}
            with env.begin() as txn:
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

    def take_repairs(self) -> list[str]:
        """What the check repaired when the environment was opened, said once."""
        if self.checked is None:
            return []
        repairs, self.checked.repairs = self.checked.repairs, []
        return repairs

    # -- transactions -----------------------------------------------------------------------

    def read(self, body: Callable[[Txn], T]) -> T:
        """Run ``body(txn)`` in a read transaction and return its result."""
        reopened = 0
        while True:
            try:
                with self.gate.shared():
                    self._check_open()
                    seen = self.data_id
                    with self.env.begin() as txn:
                        if self._current(txn):
                            return body(txn)
                        ahead = txn.id()
                # The transaction read a file that is no longer the store's.
                reopened += 1
                if reopened > 2:
                    raise CorruptionError(
                        f"{str(self.directory / LMDB_LOCK_FILE)!r}: it says transaction "
                        f"{ahead} committed, but {str(self.data_path)!r} holds none that "
                        f"new; the lock file is damaged (close every process using the "
                        f"store, and LMDB rebuilds it)")
                self._follow_swap(seen)
            except lmdb.MapResizedError:
                self._resize(0)
            except lmdb.Error as exc:
                raise translate(exc, self.data_path) from exc
            except SystemError as exc:
                raise _translate_system_error(exc, self.data_path) from exc

    def _current(self, txn: Txn) -> bool:
        """Whether the file this process maps is still the store's (see the module notes)."""
        if self.writers:
            return True  # only a writer swaps the file, and it is in this process
        return txn.id() <= self.env.info()["last_txnid"]

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
                        self.commits += 1  # under write_lock
                    return result
                except lmdb.MapFullError:
                    self._resize(self.env.info()["map_size"] * 2)
                except lmdb.MapResizedError:
                    self._resize(0)
                except lmdb.Error as exc:
                    raise translate(exc, self.data_path) from exc
                except SystemError as exc:
                    raise _translate_system_error(exc, self.data_path) from exc

    def _resize(self, size: int) -> None:
        with self.gate.exclusive():
            self._check_open()
            self.env.set_mapsize(size)

    def _check_open(self) -> None:
        if self.broken is not None:
            raise StoreFailedError(errno.EIO, self.broken, str(self.data_path))
        if self.closed:
            raise StoreClosedError("the store is closed")

    def sync(self) -> None:
        """Force every committed transaction to disk (fsync)."""
        with self.gate.shared():
            self._check_open()
            # Read before the fsync: a commit racing with it counts as unsynced.
            commits = self.commits
            try:
                self.env.sync(True)
            except lmdb.Error as exc:
                raise translate(exc, self.data_path) from exc
            self.syncs += 1
            self.synced_commits = max(self.synced_commits, commits)

    def sync_if_changed(self) -> bool:
        """``sync()`` if a transaction committed since the last one; whether it did."""
        if self.commits == self.synced_commits:
            return False
        self.sync()
        return True

    # -- compaction -------------------------------------------------------------------------

    def reclaimable_pages(self) -> tuple[int, int]:
        """``(pages in the file, pages a compacting copy would leave out)``."""

        def body(txn: Txn) -> int:
            stats = [self.env.stat()] + [txn.stat(self.dbs[name]) for name in SUBDATABASES]
            return sum(s["branch_pages"] + s["leaf_pages"] + s["overflow_pages"] for s in stats)

        used = self.read(body)
        pages = self.env.info()["last_pgno"] + 1
        return pages, max(pages - 2 - used, 0)

    def compact(self) -> tuple[int, int]:
        """Replace the data file with LMDB's compacting copy; return its sizes before and after.

        The steps, and what a crash after each leaves (every step names itself
        to :func:`_step` for the tests that kill a child there):

        1. ``copied``: the copy, fsynced, in ``<store>/.compact-*/``; ``data.mdb``
           is untouched, and the next writer removes the folder.
        2. ``adopted``: the copy carries the old file's transaction ids (see
           :func:`._datafile.adopt_txnid`), fsynced, and has been checked.
        3. ``renamed``: ``rename`` put it in place atomically; either file
           under the name is complete, and the copy is what a reader of
           ``lock.mdb``'s cached transaction id expects.
        4. ``synced``: the directory is fsynced, so the rename survives a
           power loss.
        5. This process's environment is reopened on the new file.
        """
        with self.write_lock:
            self._check_open()
            before = os.path.getsize(self.data_path)
            try:
                folder = Path(tempfile.mkdtemp(prefix=COMPACTING, dir=self.directory))
            except OSError as exc:
                raise os_error(exc, self.directory) from exc
            try:
                copy = folder / DATA_FILE
                fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
                try:
                    with self.gate.shared():
                        self._check_open()
                        txnid = self.env.info()["last_txnid"]
                        self.env.copyfd(fd, compact=True)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                _step("copied")
                _datafile.adopt_txnid(copy, txnid)
                _datafile.check(copy)  # never put an unsound file in place
                _step("adopted")
                with _registry_lock, self.gate.exclusive():
                    self._check_open()
                    self.env.close()
                    try:
                        os.rename(copy, self.data_path)
                        _step("renamed")
                        _fsync_dir(self.directory)
                        _step("synced")
                    finally:
                        self._reopen_locked(check=False)
            except lmdb.Error as exc:
                raise translate(exc, self.data_path) from exc
            except OSError as exc:
                raise os_error(exc, folder) from exc
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            return before, os.path.getsize(self.data_path)

    def backup(self, folder: Path) -> None:
        """Write the newest commit of the store into the empty ``folder``, marked clean.

        LMDB's compacting copy (``mdb_env_copy2``) reads one snapshot in one
        read transaction, so the copy is one commit of the whole store while
        writers go on. The copy's ``clean`` field is then set to 1 in its own
        transaction (the source's writer holds it at 0 while it runs), so the
        copy opens without reporting an unclean shutdown. Everything is
        fsynced before this returns.
        """
        copy = folder / DATA_FILE
        try:
            fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            try:
                with self.gate.shared():
                    self._check_open()
                    self.env.copyfd(fd, compact=True)
                os.fsync(fd)
            finally:
                os.close(fd)
            # No lock file: nothing else knows the folder yet.
            env = lmdb.open(str(folder), map_size=max(self._map_size, os.path.getsize(copy)),
                            subdir=True, max_dbs=len(SUBDATABASES), lock=False, create=False)
            try:
                with env.begin(write=True) as txn:
                    meta = env.open_db(b"meta", txn=txn, create=False)
                    txn.put(b"clean", b"\x01", db=meta)
                env.sync(True)
            finally:
                env.close()
        except lmdb.Error as exc:
            raise translate(exc, copy) from exc
        _fsync_dir(folder)

    def _reopen_locked(self, check: bool) -> None:
        """Open LMDB again on whatever ``data.mdb`` is now (registry lock and gate held)."""
        try:
            self._open(repair=False, check=check)
        except BaseException as exc:
            # No environment: every later call must fail, not touch a closed handle.
            self.broken = f"reopening the store's data file failed ({exc}); open it again"
            self.closed = True
            raise

    def _follow_swap(self, seen: tuple[int, int] | None) -> None:
        """A writer elsewhere replaced the data file: reopen on the new one.

        ``seen`` is the file the caller read; another thread may have reopened since.
        """
        with _registry_lock:
            if self.data_id == seen:
                self._follow_swap_locked()

    def _follow_swap_locked(self) -> None:
        with self.gate.exclusive():
            self._check_open()
            self.env.close()
            self._reopen_locked(check=True)


_registry: list[SharedEnvironment] = []
_registry_lock = threading.Lock()
#: Set by tests only: called with each step of a compaction's name, to kill a child there.
_step_hook: Callable[[str], None] | None = None


# In a forked child: the parent's environments, kept referenced forever. LMDB
# forbids using an environment across fork, and closing one here would clear
# the parent's reader slots (LMDB clears the slots of the pid that opened it).
_inherited: list[SharedEnvironment] = []


def _forget_after_fork() -> None:
    global _registry_lock
    _inherited.extend(_registry)
    _registry.clear()
    _registry_lock = threading.Lock()  # another thread may have held it at the fork


os.register_at_fork(after_in_child=_forget_after_fork)


def _step(name: str) -> None:
    if _step_hook is not None:
        _step_hook(name)


def acquire(directory: Path, map_size: int, sync: bool, writer: bool = False) -> SharedEnvironment:
    """Return this process's environment of ``directory``, opening it on first use.

    ``map_size`` and ``sync`` apply only when this call opens it; a later
    opener shares the existing one (a read-only store never commits, so only
    the first writer's choice matters, and two writers cannot coexist). A
    ``writer`` (holding the store's writer lock) creates a missing store and
    may repair a damaged meta page.
    """
    with _registry_lock:
        shared = _find(directory)
        if shared is not None and shared.data_id != _file_id(directory / DATA_FILE):
            shared._follow_swap_locked()  # a writer elsewhere compacted it
        if shared is None:
            if writer:
                _remove_leftovers(directory)
            shared = SharedEnvironment(directory, map_size, sync, writer)
            _registry.append(shared)
        shared.refs += 1
        return shared


def _find(directory: Path) -> SharedEnvironment | None:
    # A store deleted and re-created at the same path is a different
    # environment, so it is found by its files, not by the path.
    data_id = _file_id(directory / DATA_FILE)
    if data_id is None:
        return None  # nothing to share: an open environment of a deleted file is not it
    lock_id = _file_id(directory / LMDB_LOCK_FILE)
    for shared in _registry:
        # The lock file outlives a compaction, which replaces the data file.
        if shared.data_id == data_id or (lock_id is not None and shared.lock_id == lock_id):
            return shared
    return None


def release(shared: SharedEnvironment) -> None:
    """Drop one reference; the last one closes the environment."""
    # Close under the registry lock: py-lmdb refuses to open the environment
    # again until the old handle is closed, so no acquire may slip in between.
    with _registry_lock:
        shared.refs -= 1
        if shared.refs:
            return
        _registry.remove(shared)
        with shared.gate.exclusive():
            if not shared.closed:
                shared.closed = True
                shared.env.close()


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_subdatabases(env: lmdb.Environment) -> dict[bytes, _Database]:
    with env.begin(write=True) as txn:
        dbs = {name: env.open_db(name, txn=txn, create=True) for name in SUBDATABASES}
        txn.put(b"format", FORMAT, db=dbs[b"meta"])
        txn.put(b"next_id", (1).to_bytes(8, "big"), db=dbs[b"meta"])
    return dbs


def _create(directory: Path, map_size: int) -> None:
    """Make a new store's data file in a temporary folder and rename it into place whole.

    So a ``data.mdb`` that exists always holds the layout, and an empty or
    short one is damage, not a creation that died half-way.
    """
    folder = Path(tempfile.mkdtemp(prefix=CREATING, dir=directory))
    try:
        try:
            env = lmdb.open(str(folder), map_size=map_size, subdir=True,
                            max_dbs=len(SUBDATABASES))
            try:
                _create_subdatabases(env)
                env.sync(True)
            finally:
                env.close()
        except lmdb.Error as exc:
            raise translate(exc, directory / DATA_FILE) from exc
        os.rename(folder / DATA_FILE, directory / DATA_FILE)
        _fsync_dir(directory)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _remove_leftovers(directory: Path) -> None:
    """Remove the temporary folders of creations and compactions a crash left behind.

    Only the writer-lock holder makes them, and it calls this before it makes
    any, so every one found is dead.
    """
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if name.startswith((CREATING, COMPACTING)):
            shutil.rmtree(directory / name, ignore_errors=True)


def _translate_system_error(exc: SystemError, path: Path) -> Exception:
    # py-lmdb can wrap an LMDB error raised inside a cursor call in a
    # SystemError; the LMDB error is its cause.
    inner = exc.__cause__ or exc.__context__
    if isinstance(inner, lmdb.Error):
        return translate(inner, path)
    return LmdbBackendError(f"{str(path)!r}: {exc}")


def translate(exc: lmdb.Error, path: Path) -> Exception:
    """The jadevec error for an LMDB error raised while using the file at ``path``."""
    where = str(path)
    if isinstance(exc, lmdb.ReadonlyError):
        return ReadOnlyError(f"{where!r} is read-only: {exc}")
    if isinstance(
        exc,
        # The compacting copy reports a tree whose pages do not add up as
        # MDB_INCOMPATIBLE ("page leak or corrupt DB"); the plugin never opens
        # a database with other flags, which is the error's other meaning.
        (lmdb.CorruptedError, lmdb.PageNotFoundError, lmdb.InvalidError, lmdb.PanicError,
         lmdb.IncompatibleError),
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


def os_error(exc: OSError, path: Path) -> OSError:
    """The typed error for a failed file call of the plugin's own (not LMDB's):
    a full disk is ``StorageFullError``, and every error names a path."""
    if isinstance(exc, JadevecError) or exc.errno is None:
        return exc
    where = exc.filename if exc.filename is not None else str(path)
    if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return StorageFullError(exc.errno, f"no space left for the store: {exc.strerror}", where)
    if exc.filename is not None:
        return exc
    return OSError(exc.errno, exc.strerror, where)


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
