"""The public face of jadevec: :func:`open`, :class:`Store` and :class:`Database`.

This layer owns the policy that is the same for every backend:

* every argument is validated and coerced once (:mod:`jadevec._validate`)
  before a backend is called, so a rejected call changes nothing;
* a closed store refuses every call with ``StoreClosedError`` (``in``
  included), while ``db.name``, ``db.dimension`` and ``db.metric`` stay
  readable; a second ``close()`` does nothing;
* a read-only store refuses writes with ``ReadOnlyError`` before the backend
  is asked, and its ``flush()`` / ``sync()`` do nothing;
* metadata on a backend without ``supports_metadata`` raises
  ``UnsupportedError`` before any other metadata check.

Thread rule: ``Store`` and ``Database`` hold no locks of their own; they are
as thread-safe as the backend (which the contract requires to be). The closed
flag is a plain attribute: a call racing with ``close()`` gets either its
result or a typed error from the backend.

Lifetime: a store that its user drops without ``close()`` is closed when it
is collected, and stores still open at interpreter exit are closed then
(``weakref.finalize``, which also runs at exit). In the child of
``os.fork()`` every store inherited from the parent refuses every call and
its ``close()`` does nothing to the files: the parent still uses them, and
the child opens its own (as SQLite and LMDB require of their handles).
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import re
import secrets
import shutil
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from jadevec import _validate as v
from jadevec._core.crashpoints import crash_point
from jadevec.backends._catalog import fsync_dir
from jadevec.backends.base import Backend, DatabaseBackend, RecoveryReport, VerifyReport
from jadevec.backends.registry import load_backend
from jadevec.errors import (
    DatabaseNotFoundError,
    InvalidInputError,
    JadevecError,
    ReadOnlyError,
    StorageFullError,
    StoreClosedError,
    StoreNotFoundError,
    UnsupportedError,
)

__all__ = ["open", "Store", "Database", "DEFAULT_BACKEND", "simd_info"]

log = logging.getLogger("jadevec")

#: The backend ``jadevec.open`` uses when none is named.
DEFAULT_BACKEND = "hybrid"

# k is clamped to this before it reaches a backend: no database holds more
# vectors, and a huge k must not size an output array.
_MAX_K = 1 << 40
_MAX_ID_BYTES = v.MAX_ID_BYTES


def open(
    path: str | os.PathLike[str] | None = None,
    backend: str | type[Backend] = DEFAULT_BACKEND,
    **options: Any,
) -> Store:
    """Open (or create) a store of vector databases.

    Parameters
    ----------
    path : str or os.PathLike, optional
        The store's folder, created if missing (unless ``read_only``). ``None``
        is allowed only for a non-persistent backend (``"memory"``); such a
        backend ignores a path if one is given.
    backend : str or Backend subclass
        An entry-point name from :func:`jadevec.available_backends`
        (default ``"hybrid"``), or a :class:`~jadevec.backends.base.Backend`
        subclass (handy to test a plugin before it is installed).
    **options
        ``read_only=False``, ``flush_interval=5.0`` (seconds; 0 turns the
        background checkpoint off), ``max_open_files=100``, and any option the
        backend declares in ``extra_options``.

    Returns
    -------
    Store
        Also a context manager that closes the store on exit.

    Raises
    ------
    UnknownOptionError
        An option the backend does not accept (a ``TypeError``); nothing is created.
    InvalidInputError
        A bad option value, a missing path for a persistent backend, or
        ``read_only=True`` with a non-persistent backend.
    StoreNotFoundError
        ``read_only=True`` and ``path`` does not exist.
    BackendNotFoundError, BackendLoadError
        The backend is unknown or failed to import.
    StoreLockedError
        Another process holds the store's writer lock.
    """
    if isinstance(backend, type) and issubclass(backend, Backend):
        cls = backend
        backend_name = cls.__name__
    elif isinstance(backend, str):
        cls = load_backend(backend)
        backend_name = backend
    else:
        raise InvalidInputError(
            f"backend must be a backend name (str) or a Backend subclass, "
            f"got {type(backend).__name__} {backend!r}"
        )
    store_options = v.check_options(options, cls.extra_options)
    if path is None:
        if cls.persistent:
            raise InvalidInputError(
                f"path must be a folder for the persistent backend {backend_name!r}, got None "
                f"(only a non-persistent backend such as 'memory' runs without a path)"
            )
        folder = None
    elif isinstance(path, (str, os.PathLike)) and not isinstance(path, bytes):
        fspath = os.fspath(path)
        if not isinstance(fspath, str) or not fspath:
            raise InvalidInputError(f"path must be a non-empty str or path-like, got {path!r}")
        # Resolved once, as open() and sqlite3.connect effectively do: a later
        # os.chdir() must not move the store.
        folder = Path(os.path.abspath(fspath))
    else:
        raise InvalidInputError(
            f"path must be a str, an os.PathLike or None, got {type(path).__name__} {path!r}"
        )
    if store_options.read_only:
        if not cls.persistent:
            raise InvalidInputError(
                f"read_only=True needs a persistent backend; {backend_name!r} keeps nothing "
                f"to read (got read_only=True)"
            )
        if folder is not None and not folder.exists():
            raise StoreNotFoundError(
                f"read_only=True needs an existing store, but {str(folder)!r} does not exist"
            )
    instance = cls(folder, store_options)
    return Store(instance, backend_name, folder, store_options.read_only)


class Store:
    """A folder of named vector databases, opened by :func:`jadevec.open`.

    A store is a context manager: ``with jadevec.open(path) as store: ...``
    closes it on exit. Every method raises ``StoreClosedError`` after
    :meth:`close`. Database names are unique ignoring case and keep the case
    they were created with.
    """

    __slots__ = ("_backend", "_backend_name", "_path", "_read_only", "_closed",
                 "_supports_metadata", "_life", "_finalizer", "_inherited", "__weakref__")

    def __init__(self, backend: Backend, backend_name: str, path: Path | None,
                 read_only: bool) -> None:
        # Built by jadevec.open(); not meant to be called directly.
        self._backend = backend
        self._backend_name = backend_name
        self._path = path
        self._read_only = read_only
        self._closed = False
        self._inherited = False
        self._supports_metadata = type(backend).supports_metadata
        self._life = _Lifetime(backend)
        self._finalizer = weakref.finalize(self, _finalize, self._life)
        _open_stores.add(self)

    # ------------------------------------------------------------------ state

    @property
    def path(self) -> Path | None:
        """The store's folder (``None`` for a store opened without a path)."""
        return self._path

    @property
    def backend(self) -> str:
        """The name of the backend serving this store."""
        return self._backend_name

    @property
    def read_only(self) -> bool:
        """Whether the store was opened with ``read_only=True``."""
        return self._read_only

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def recovery_report(self) -> RecoveryReport | None:
        """``None`` after a clean open, else what recovery did (readable after close).

        Also lists recovery done later, when a database's vector files were
        first opened after an unclean shutdown.
        """
        return self._backend.recovery_report

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(self._closed_message())

    def _closed_message(self) -> str:
        if self._inherited:
            return (f"the store {self._label()} was opened by the parent of this forked "
                    f"process; open it again in the child")
        return f"the store {self._label()} is closed"

    def _check_writable(self, what: str) -> None:
        if self._closed:
            raise StoreClosedError(self._closed_message())
        if self._read_only:
            raise ReadOnlyError(
                f"{what} is a write, but the store {self._label()} was opened with read_only=True"
            )

    def _label(self) -> str:
        return repr(str(self._path)) if self._path is not None else f"<{self._backend_name}>"

    # -------------------------------------------------------------- databases

    def create_database(self, name: str, dimension: int, metric: str = "cosine") -> Database:
        """Create an empty database and return it.

        Parameters
        ----------
        name : str
            Matches ``[A-Za-z0-9][A-Za-z0-9._-]{0,127}``; unique ignoring case.
        dimension : int
            Length of every vector, 1 to 65,536.
        metric : {"cosine", "dot", "l2"}
            Cosine similarity and dot product rank higher first; l2
            (Euclidean distance) ranks lower first.

        Raises
        ------
        InvalidNameError, InvalidInputError
            A bad name, dimension or metric.
        DatabaseExistsError
            The name is taken (ignoring case); nothing changes.
        ReadOnlyError
            The store is read-only.
        """
        self._check_writable("create_database")
        name = v.check_name(name)
        dimension = v.check_dimension(dimension)
        metric = v.check_metric(metric)
        return Database(self, self._backend.create_database(name, dimension, metric))

    def get_database(self, name: str) -> Database:
        """Return the database called ``name`` (ignoring case).

        Raises
        ------
        DatabaseNotFoundError
            No such database (also for a name that no database could have).
        InvalidInputError
            ``name`` is not a ``str``.
        """
        self._check_open()
        self._check_lookup_name(name)
        return Database(self, self._backend.open_database(name))

    def _check_lookup_name(self, name: Any) -> None:
        if not isinstance(name, str):
            raise InvalidInputError(
                f"name must be a str, got {type(name).__name__} {v._shown(name)}"
            )
        if not v.is_valid_name(name):
            raise DatabaseNotFoundError(
                f"no database named {name!r} (not a valid database name, so none can exist)"
            )

    def list_databases(self) -> list[str]:
        """Return every database name, in creation case, sorted ignoring case."""
        self._check_open()
        names = [info.name for info in self._backend.list_databases()]
        return sorted(names, key=lambda n: (n.lower(), n))

    def delete_database(self, name: str) -> None:
        """Delete the database called ``name`` and all its files.

        Handles to it then raise ``DatabaseNotFoundError``.

        Raises
        ------
        DatabaseNotFoundError
            No such database.
        ReadOnlyError
            The store is read-only.
        """
        self._check_writable("delete_database")
        self._check_lookup_name(name)
        self._backend.delete_database(name)

    def __contains__(self, name: object) -> bool:
        """Whether a database called ``name`` exists (ignoring case); ``False`` for non-names."""
        self._check_open()
        if not v.is_valid_name(name):
            return False
        return self._backend.has_database(name)  # type: ignore[arg-type]

    # -------------------------------------------------------------- lifecycle

    def flush(self) -> None:
        """Push acknowledged writes towards disk without waiting for it (no-op when read-only)."""
        self._check_open()
        if not self._read_only:
            self._backend.flush()

    def sync(self) -> None:
        """Return once everything acknowledged so far survives a power loss.

        A no-op on a read-only store and on a non-persistent backend's data,
        which never reaches disk.
        """
        self._check_open()
        if not self._read_only:
            self._backend.sync()

    def verify(self) -> VerifyReport:
        """Check every checksum and invariant; returns a report (``.ok``, ``.problems``)."""
        self._check_open()
        return self._backend.verify()

    def backup(self, dest: str | os.PathLike[str]) -> None:
        """Write a consistent copy of the whole store to the new folder ``dest``.

        Writers may go on meanwhile (each database's writers wait only while
        its own files are copied). Every database in the copy is one committed
        state holding every write acknowledged before ``backup()`` began, its
        metadata paired with its vectors; a database created after the call
        began may be missing. The copy is written to a work folder beside
        ``dest``, ``.<name of dest>.backup-<12 hex digits>``, and renamed into
        place once complete and synced, so a crash never leaves half a backup
        at ``dest``. Open it with ``jadevec.open(dest, backend=...)`` like any
        store.

        A backup holds an ``flock`` on its work folder while it runs. A crash
        (``kill -9``, a power loss) leaves the folder behind; the next backup
        to the same ``dest`` removes such folders, those no live backup holds,
        before it begins. While another backup to the same ``dest`` is under
        way (in any process), a second one is refused rather than wait for it:
        only one of them could end at ``dest``.

        Parameters
        ----------
        dest : str or os.PathLike
            A path that does not exist yet; missing parent folders are made.

        Raises
        ------
        InvalidInputError
            ``dest`` is not a path, or it exists, or another backup to ``dest``
            is under way.
        UnsupportedError
            The backend cannot make backups (``memory`` keeps nothing on disk),
            or the store was opened with ``read_only=True``.
        """
        self._check_open()
        if not type(self._backend).supports_backup:
            raise UnsupportedError(
                f"the {self._backend_name!r} backend does not support backup()")
        if not isinstance(dest, (str, os.PathLike)) or isinstance(dest, bytes):
            raise InvalidInputError(
                f"dest must be a str or os.PathLike, got {type(dest).__name__} {dest!r}")
        fspath = os.fspath(dest)
        if not isinstance(fspath, str) or not fspath:
            raise InvalidInputError(f"dest must be a non-empty str or path-like, got {dest!r}")
        target = Path(os.path.abspath(fspath))
        if os.path.lexists(target):
            raise InvalidInputError(f"dest must not exist, but {str(target)!r} does")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            _remove_abandoned_backups(target)
            work, held = _claim_backup_folder(target)
            try:
                self._backend.backup(work)
                crash_point("backup:written")
                if os.path.lexists(target):
                    raise InvalidInputError(
                        f"dest must not exist, but {str(target)!r} appeared during the backup")
                os.rename(work, target)
            except BaseException:
                shutil.rmtree(work, ignore_errors=True)
                raise
            finally:
                os.close(held)  # the flock goes with it
            try:
                fsync_dir(target.parent)  # the rename is durable
            except OSError:
                # The copy is whole but its name may not survive a power loss:
                # a backup that raises leaves no copy behind.
                shutil.rmtree(target, ignore_errors=True)
                raise
        except OSError as exc:
            raise _backup_error(exc, target) from exc

    def close(self) -> None:
        """Checkpoint and release every file, lock and thread. A second call does nothing.

        In a forked child, a store inherited from the parent is left as it is.
        """
        if self._closed:
            return
        self._closed = True
        self._life.closed = True
        self._finalizer.detach()
        self._backend.close()

    def __enter__(self) -> Store:
        self._check_open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " closed" if self._closed else (" read_only" if self._read_only else "")
        where = str(self._path) if self._path is not None else None
        return f"<jadevec.Store path={where!r} backend={self._backend_name!r}{state}>"


class Database:
    """One named database of float32 vectors under string ids.

    Obtained from :meth:`Store.create_database` or :meth:`Store.get_database`.
    ``len(db)`` counts vectors and ``vector_id in db`` tests an id. Vectors
    may be lists, tuples or numpy arrays of any real dtype; they are stored as
    float32. Returned arrays are copies.
    """

    __slots__ = ("_store", "_db", "_info")

    def __init__(self, store: Store, backend_db: DatabaseBackend) -> None:
        self._store = store
        self._db = backend_db
        self._info = backend_db.info

    @property
    def name(self) -> str:
        """The name in the case it was created with (readable after close)."""
        return self._info.name

    @property
    def dimension(self) -> int:
        """The length of every vector (readable after close)."""
        return self._info.dimension

    @property
    def metric(self) -> str:
        """``"cosine"``, ``"dot"`` or ``"l2"`` (readable after close)."""
        return self._info.metric

    def _check_open(self) -> None:
        if self._store._closed:
            self._store._check_open()

    def _metadata(self, metadata: Any, arg: str = "metadata") -> str | None:
        if metadata is None:
            return None
        if not self._store._supports_metadata:
            raise UnsupportedError(
                f"the {self._store._backend_name!r} backend does not store metadata; "
                f"pass {arg}=None"
            )
        return v.check_metadata(metadata, arg)

    # ---------------------------------------------------------------- writes

    def store(self, id: str, vector: Any, metadata: dict[str, Any] | None = None) -> None:
        """Insert a vector, or replace it and its metadata if ``id`` exists.

        Parameters
        ----------
        id : str
            1 to 1,024 UTF-8 bytes.
        vector : array-like
            ``dimension`` real numbers; NaN/Inf refused, all zeros refused under cosine.
        metadata : dict, optional
            JSON-serialisable with ``str`` keys; ``None`` clears existing metadata.

        Raises
        ------
        InvalidInputError, DimensionMismatchError
            Bad id, vector or metadata; nothing is written.
        UnsupportedError
            Metadata given to a backend that cannot store it.
        ReadOnlyError
            The store is read-only.
        """
        self._store._check_writable("store")
        info = self._info
        vector_id = v.check_id(id)
        array = v.as_vector(vector, info.dimension, info.metric)
        texts = None if metadata is None else [self._metadata(metadata)]
        self._db.store([vector_id], array[None], texts)

    def update(self, id: str, vector: Any, metadata: dict[str, Any] | None = None) -> None:
        """Replace the vector of an existing id.

        ``metadata=None`` keeps the stored metadata; a dict replaces it.

        Raises
        ------
        VectorNotFoundError
            ``id`` is not stored (a ``KeyError``).
        """
        self._store._check_writable("update")
        info = self._info
        vector_id = v.check_id(id)
        array = v.as_vector(vector, info.dimension, info.metric)
        text = self._metadata(metadata)
        self._db.update(vector_id, array, text, metadata is not None)

    def delete(self, id: str) -> bool:
        """Delete a vector and its metadata; return whether it existed."""
        self._store._check_writable("delete")
        return self._db.delete(v.check_id(id))

    def batch_store(self, ids: Any, vectors: Any, metadatas: Any = None) -> None:
        """Insert or replace many vectors at once; all are validated before any is written.

        Parameters
        ----------
        ids : iterable of str
            No id may appear twice.
        vectors : array-like of shape (len(ids), dimension)
            An empty batch may be ``[]`` or shape ``(0, dimension)``.
        metadatas : list of (dict or None), optional
            One per id. ``None`` (the whole argument) clears the metadata of
            existing ids, as :meth:`store` does.
        """
        self._store._check_writable("batch_store")
        info = self._info
        id_list = v.check_ids(ids)
        matrix = v.as_batch(vectors, len(id_list), info.dimension, info.metric)
        texts = None
        if metadatas is not None:
            if isinstance(metadatas, (list, tuple, str, bytes, dict)) or \
                    not v._is_iterable(metadatas):
                given = metadatas  # a str or dict is refused whole, not item by item
            else:
                given = list(metadatas)  # a generator is read once, here
            if not self._store._supports_metadata and (
                not isinstance(given, list | tuple) or any(m is not None for m in given)
            ):
                raise UnsupportedError(
                    f"the {self._store._backend_name!r} backend does not store metadata; "
                    f"pass metadatas=None"
                )
            texts = v.check_metadatas(given, len(id_list))
        if not id_list:
            return
        self._db.store(id_list, matrix, texts)

    def compact(self) -> None:
        """Give the space of deleted vectors back. A write: refused on a read-only store."""
        self._store._check_writable("compact")
        self._db.compact()

    # ----------------------------------------------------------------- reads

    def retrieve(self, id: str) -> np.ndarray | None:
        """Return a float32 copy of the vector, or ``None`` if ``id`` is not stored."""
        # The hot read, so the checks are written out: the closed flag, then
        # v.check_id's own fast test (a plain ASCII str of 1 to 1,024
        # characters is valid as it is); anything else goes through check_id.
        if self._store._closed:
            self._check_open()
        if type(id) is not str or not id or len(id) > _MAX_ID_BYTES or not id.isascii():
            id = v.check_id(id)
        return self._db.retrieve(id)

    def batch_retrieve(self, ids: Any) -> list[np.ndarray | None]:
        """Return one float32 copy (or ``None``) per id, in order; ids may repeat."""
        self._check_open()
        id_list = v.check_ids(ids, unique=False)
        if not id_list:
            return []
        return self._db.retrieve_many(id_list)

    def get_metadata(self, id: str) -> dict[str, Any] | None:
        """Return the metadata dict, or ``None`` for an absent id or one without metadata."""
        self._check_open()
        text = self._db.get_metadata(v.check_id(id))
        if text is None:
            return None
        return json.loads(text)

    def list_vectors(self) -> list[str]:
        """Return every stored id (in no promised order)."""
        self._check_open()
        return self._db.list_ids()

    def search(self, query: Any, k: int = 10) -> Any:
        """Exact nearest neighbours of ``query``.

        Parameters
        ----------
        query : array-like
            One query of shape ``(dimension,)``, or several of shape ``(m, dimension)``.
        k : int
            Results per query, >= 1; fewer when the database holds fewer vectors.

        Returns
        -------
        list[tuple[str, float]] or list[list[tuple[str, float]]]
            ``(id, score)`` pairs best first: highest cosine similarity or dot
            product, lowest Euclidean distance for l2. One list for a 1-D
            query, one list per row for a 2-D query.
        """
        self._check_open()
        info = self._info
        queries, single = v.as_queries(query, info.dimension, info.metric)
        k = min(v.check_k(k), _MAX_K)
        if queries.shape[0] == 0:
            return []
        results = self._db.search(queries, k)
        return results[0] if single else results

    def __len__(self) -> int:
        self._check_open()
        return self._db.count()

    def __contains__(self, vector_id: object) -> bool:
        self._check_open()
        if not v.is_valid_id(vector_id):
            return False
        return self._db.contains(vector_id)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        info = self._info
        return (
            f"<jadevec.Database name={info.name!r} dimension={info.dimension} "
            f"metric={info.metric!r}>"
        )


def _backup_error(exc: OSError, target: Path) -> OSError:
    """The error ``backup()`` raises for ``exc``: typed and naming a path.

    Files copied with plain ``open``/``write`` report a full disk as a bare
    ``OSError``, often without a file name; here it becomes the
    ``StorageFullError`` every other write raises, and a nameless error names
    the destination.
    """
    if isinstance(exc, JadevecError):
        return exc
    where = exc.filename if exc.filename is not None else str(target)
    if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return StorageFullError(exc.errno, f"backup to {str(target)!r} failed: the disk is "
                                f"full ({exc.strerror})", where)
    if exc.filename is not None:
        return exc
    return type(exc)(exc.errno, f"backup to {str(target)!r} failed: {exc.strerror}", where)


def simd_info() -> dict[str, Any]:
    """Report the SIMD kernels in use and the CPU features they were chosen from.

    Returns
    -------
    dict
        At least the chosen kernel (for example ``"avx512"``, ``"avx2"`` or
        ``"scalar"``) and the detected CPU features; ``JADEVEC_SIMD`` forces a
        choice (see the kernels' documentation).
    """
    # Imported on first call so that `import jadevec` loads no compiled module.
    from jadevec._core import kernels

    return kernels.simd_info()


def _backup_work_pattern(target: Path) -> re.Pattern[str]:
    """The names of ``Store.backup``'s work folders for ``target``, and no other."""
    return re.compile(re.escape(f".{target.name}.backup-") + r"[0-9a-f]{12}")


def _lock_folder(path: Path, wait: bool) -> int | None:
    """An open descriptor of the folder ``path`` holding an exclusive ``flock`` on it;
    ``None`` when another holds it and ``wait`` is false, or ``path`` is gone."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _remove_abandoned_backups(target: Path) -> None:
    """Remove the work folders that crashed backups to ``target`` left.

    Only folders named exactly as ``Store.backup`` names them for ``target``,
    and only those whose ``flock`` is free: a live backup holds its own, so a
    held one is refused (``InvalidInputError``), never removed.
    """
    pattern = _backup_work_pattern(target)
    for name in sorted(os.listdir(target.parent)):
        path = target.parent / name
        if not pattern.fullmatch(name) or path.is_symlink() or not path.is_dir():
            continue
        fd = _lock_folder(path, wait=False)
        if fd is None:
            if path.exists():
                raise InvalidInputError(
                    f"another backup to {str(target)!r} is under way (it holds its work "
                    f"folder {str(path)!r}); wait for it to end, or choose another dest")
            continue  # its backup just ended
        try:
            shutil.rmtree(path)
            log.warning("removed %s, left by a backup to %s that did not end", path, target)
        finally:
            os.close(fd)


def _claim_backup_folder(target: Path) -> tuple[Path, int]:
    """Make a new work folder beside ``target`` and lock it; ``(its path, the
    descriptor that holds the lock)``.

    Another backup's :func:`_remove_abandoned_backups` may lock and remove the
    folder between its ``mkdir`` and our ``flock``: ours then waits for that
    lock, finds the folder unlinked, and makes another.
    """
    while True:
        work = target.parent / f".{target.name}.backup-{secrets.token_hex(6)}"
        work.mkdir()
        fd = _lock_folder(work, wait=True)
        if fd is None:
            continue
        try:
            linked = os.stat(work, follow_symlinks=False)
        except FileNotFoundError:
            linked = None
        held = os.fstat(fd)
        if linked is not None and (linked.st_dev, linked.st_ino) == (held.st_dev, held.st_ino):
            return work, fd
        os.close(fd)


class _Lifetime:
    """What closing a store needs, held apart from the ``Store`` so that the
    finaliser does not keep the store alive."""

    __slots__ = ("backend", "closed", "inherited")

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.closed = False
        self.inherited = False


def _finalize(life: _Lifetime) -> None:
    """Close a store its user dropped without ``close()`` (or left open at exit)."""
    if life.closed or life.inherited:
        return
    life.closed = True
    try:
        life.backend.close()
    except Exception:
        log.exception("closing a store that was not closed failed")


# Stores open in this process, so that a forked child can disown them.
_open_stores: weakref.WeakSet[Store] = weakref.WeakSet()
# In a forked child: the parent's backends, kept alive so that nothing of
# theirs is ever finalised (closed) here.
_inherited: list[Backend] = []


def _after_fork_in_child() -> None:
    for store in list(_open_stores):
        if not store._closed:
            store._inherited = True
            store._closed = True
            store._life.inherited = True
            _inherited.append(store._backend)


os.register_at_fork(after_in_child=_after_fork_in_child)
