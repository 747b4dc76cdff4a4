"""The contract every jadevec backend implements.

A backend stores float32 vectors under string ids in named databases. It is
two small abstract classes:

* :class:`Backend` is the catalog of one store: it creates, opens, lists and
  deletes databases, and flushes, syncs, verifies and closes the store.
* :class:`DatabaseBackend` is one database: vector CRUD, batches, listing,
  metadata and exact search.

The public API (``jadevec.open``, ``Store``, ``Database``) validates every
argument *before* it calls a backend, so a backend receives only:

* database names that match ``[A-Za-z0-9][A-Za-z0-9._-]{0,127}``; lookups
  ignore case (compare ``name.lower()``), listings keep the creation case;
* ids that are ``str`` of 1 to 1,024 UTF-8 bytes, never duplicated in a batch;
* vectors as C-contiguous float32 numpy arrays of the database's dimension,
  all finite (a zero vector is never passed to a cosine database);
* metadata already serialised as JSON text (``str``), or ``None``;
* ``k`` an ``int`` >= 1; queries a C-contiguous float32 array of shape (m, d).

A backend must be safe to call from many threads at once, must raise the
typed errors of :mod:`jadevec.errors` (``DatabaseNotFoundError`` for a
database deleted under a live handle, ``VectorNotFoundError``,
``CorruptionError``...), and must return copies, never views into its storage.

Capabilities are class attributes, not caught ``NotImplementedError``s:
``persistent`` (data survives ``close`` and a new process),
``supports_metadata`` and ``supports_backup``. Backend-specific store options
are declared in ``extra_options`` (name -> default); the public API rejects
any other keyword by name before the backend is built.

A persistent backend that keeps one writer process per store takes
:class:`WriterLock` (an ``flock`` on ``<store>/``:data:`LOCK_FILE`, the lock
the built-in backends take) rather than a copy of its own, and calls
:func:`refuse_foreign_folder` before it writes anything into a folder, so that
it never makes a store beside another backend's store or a user's files.

Backends are found through the entry-point group ``jadevec.backends``; see
``docs/plugins.md`` and :mod:`jadevec.testing` for the conformance suite.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from jadevec.backends._store_lock import LOCK_FILE, WriterLock
from jadevec.errors import StoreNotFoundError, UnsupportedError

__all__ = [
    "LOCK_FILE",
    "METRICS",
    "Backend",
    "DatabaseBackend",
    "DatabaseInfo",
    "RecoveryReport",
    "SearchResult",
    "StoreOptions",
    "VerifyReport",
    "WriterLock",
    "exact_search",
    "refuse_foreign_folder",
]

#: Similarity metrics a database may use. Cosine and dot: higher is better;
#: l2 (Euclidean distance): lower is better.
METRICS = ("cosine", "dot", "l2")

#: One ranked hit list: ``(id, score)`` pairs, best first.
SearchResult = list[tuple[str, float]]


@dataclass(frozen=True)
class StoreOptions:
    """The options every backend receives, already validated.

    Attributes
    ----------
    read_only : bool
        Open without the writer lock; any write raises ``ReadOnlyError``.
    flush_interval : float
        Seconds between background checkpoints; ``0`` turns them off.
    max_open_files : int
        Most databases whose files stay open at once (least recently used
        are flushed and closed first).
    extra : Mapping[str, Any]
        Backend-specific options named in ``Backend.extra_options``.
    """

    read_only: bool = False
    flush_interval: float = 5.0
    max_open_files: int = 100
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DatabaseInfo:
    """A database's fixed properties: its name (creation case), dimension and metric."""

    name: str
    dimension: int
    metric: str


@dataclass
class VerifyReport:
    """What ``Store.verify()`` found. ``ok`` is true when ``problems`` is empty."""

    problems: list[str] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def __bool__(self) -> bool:
        return self.ok


@dataclass
class RecoveryReport:
    """What recovery did when a store was opened after an unclean shutdown."""

    actions: list[str] = field(default_factory=list)
    databases: list[str] = field(default_factory=list)
    seconds: float = 0.0


class DatabaseBackend(ABC):
    """One database of a backend: vectors of a fixed dimension under string ids."""

    #: Name (creation case), dimension and metric; readable even after close.
    info: DatabaseInfo

    @abstractmethod
    def store(
        self, ids: Sequence[str], vectors: np.ndarray, metadatas: Sequence[str | None] | None
    ) -> None:
        """Insert or replace ``len(ids)`` vectors (``vectors`` has shape (n, d)).

        ``metadatas`` is ``None`` (clear the metadata of every id) or one JSON
        text or ``None`` per id. Each vector is all-or-nothing; a batch
        interrupted by a crash leaves a prefix of itself.
        """

    @abstractmethod
    def retrieve(self, vector_id: str) -> np.ndarray | None:
        """Return a float32 copy of the vector, or ``None`` if the id is absent."""

    def retrieve_many(self, ids: Sequence[str]) -> list[np.ndarray | None]:
        """Return one copy (or ``None``) per id; override for a faster batch path."""
        return [self.retrieve(i) for i in ids]

    @abstractmethod
    def update(self, vector_id: str, vector: np.ndarray, metadata: str | None,
               replace_metadata: bool) -> None:
        """Replace an existing vector; raise ``VectorNotFoundError`` if absent.

        With ``replace_metadata`` false the stored metadata is kept; with it
        true, ``metadata`` (JSON text or ``None``) replaces it.
        """

    @abstractmethod
    def delete(self, vector_id: str) -> bool:
        """Delete a vector; return whether it existed."""

    @abstractmethod
    def contains(self, vector_id: str) -> bool:
        """Whether the id is stored."""

    @abstractmethod
    def count(self) -> int:
        """The number of stored vectors."""

    @abstractmethod
    def list_ids(self) -> list[str]:
        """Every stored id, in no promised order."""

    @abstractmethod
    def get_metadata(self, vector_id: str) -> str | None:
        """The metadata JSON text of an id, or ``None`` (absent id or no metadata)."""

    @abstractmethod
    def search(self, queries: np.ndarray, k: int) -> list[SearchResult]:
        """Exact top-``k`` for each row of ``queries`` (shape (m, d)), best first.

        Use :func:`exact_search` so every backend ranks with the SIMD kernels
        and the same tie rule.
        """

    @abstractmethod
    def compact(self) -> None:
        """Give the space of deleted vectors back (crash-safe)."""


class Backend(ABC):
    """A store: the catalog of databases and the store-wide lifecycle.

    Subclasses are built as ``cls(path, options)``; ``path`` is ``None`` only
    for a non-persistent backend.
    """

    #: Whether data survives ``close()`` and a new process.
    persistent: ClassVar[bool] = True
    #: Whether per-vector metadata is stored (else the API raises UnsupportedError).
    supports_metadata: ClassVar[bool] = True
    #: Backend-specific options (name -> default) accepted by ``jadevec.open``.
    extra_options: ClassVar[Mapping[str, Any]] = {}
    #: Whether :meth:`backup` is implemented (``Store.backup`` raises
    #: ``UnsupportedError`` before calling it otherwise).
    supports_backup: ClassVar[bool] = False

    @abstractmethod
    def __init__(self, path: Path | None, options: StoreOptions) -> None:
        """Open (or create) the store at ``path`` with validated ``options``."""

    @abstractmethod
    def create_database(self, name: str, dimension: int, metric: str) -> DatabaseBackend:
        """Create a database; ``DatabaseExistsError`` if the name is taken ignoring case."""

    @abstractmethod
    def open_database(self, name: str) -> DatabaseBackend:
        """Return a handle to a database (found ignoring case); ``DatabaseNotFoundError``."""

    @abstractmethod
    def list_databases(self) -> list[DatabaseInfo]:
        """Every database, names in their creation case."""

    def has_database(self, name: str) -> bool:
        """Whether a database of this name exists (ignoring case); used by ``name in store``.

        The default scans :meth:`list_databases`; override it where a direct
        lookup is cheaper (it must not open the database's files).
        """
        key = name.lower()
        return any(info.name.lower() == key for info in self.list_databases())

    @abstractmethod
    def delete_database(self, name: str) -> None:
        """Delete a database and all its files.

        Live handles to it then raise ``DatabaseNotFoundError``.
        """

    @abstractmethod
    def flush(self) -> None:
        """Push acknowledged writes towards disk without waiting (cheap)."""

    @abstractmethod
    def sync(self) -> None:
        """Return only when everything acknowledged before survives a power loss."""

    @abstractmethod
    def verify(self) -> VerifyReport:
        """Check every checksum and invariant; never raises for damage, reports it."""

    @abstractmethod
    def close(self) -> None:
        """Checkpoint and release every file, lock and thread. Idempotent."""

    @property
    def recovery_report(self) -> RecoveryReport | None:
        """``None`` after a clean open, else what recovery did."""
        return None

    def backup(self, dest: Path) -> None:
        """Write a consistent copy of the whole store into the empty folder ``dest``.

        Only called when :attr:`supports_backup` is true. Writers may go on
        meanwhile: each database is copied at one committed state that holds
        every write acknowledged before the call began, its metadata paired
        with its vectors. The copy must open with this backend at ``dest``
        (after the public API renames it into place) and be durable when this
        returns (files and folders synced). ``Store.backup`` validates the
        destination, makes the empty folder, renames it into place and
        removes it if this raises.
        """
        raise UnsupportedError(f"the {type(self).__name__} backend does not support backup()")


def refuse_foreign_folder(path: Path, backend_name: str, marker: str,
                          own_names: Collection[str]) -> None:
    """Refuse to make a store in a folder that holds something else.

    Call it before writing anything into ``path`` when opening for writing.
    A folder that has the file ``marker`` (the file that marks a store of
    this backend, say its catalog) is this backend's store; one that holds
    only names in ``own_names`` (what this backend makes at the top of a
    store) and hidden names (a lock file, work folders) is what an
    interrupted creation left, and may be finished. Anything else (another
    backend's store, a user's files) raises ``StoreNotFoundError`` naming what
    is there, so nothing is written beside it. A missing folder passes.

    Raises
    ------
    StoreNotFoundError
        ``path`` has no ``marker`` and holds other names.
    """
    if not os.path.isdir(path) or os.path.isfile(os.path.join(path, marker)):
        return
    foreign = sorted(name for name in os.listdir(path)
                     if not name.startswith(".") and name not in own_names)
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise StoreNotFoundError(
            f"no {backend_name} store at {str(path)!r} ({marker} is missing), and the "
            f"folder holds other files ({shown}), so no store is made there: if it is a "
            f"store of another backend, open it with that backend; to make a new store, "
            f"choose a new or empty folder")


def exact_search(
    matrix: np.ndarray,
    queries: np.ndarray,
    k: int,
    metric: str,
    ids_of: Callable[[np.ndarray], Sequence[str]],
    skip: np.ndarray | None = None,
) -> list[SearchResult]:
    """Rank the rows of ``matrix`` for each query with jadevec's SIMD kernels.

    Parameters
    ----------
    matrix : np.ndarray
        (n, d) float32 rows; the inner stride must be 4 bytes, rows may be padded.
    queries : np.ndarray
        (m, d) float32, C-contiguous.
    k : int
        Hits per query (fewer when fewer rows are live).
    metric : str
        One of :data:`METRICS`.
    ids_of : callable
        Maps an int64 array of row numbers to their ids.
    skip : np.ndarray, optional
        (n,) uint8; nonzero rows (deleted slots) are ignored.
    """
    from jadevec._core import kernels  # the compiled kernels stay out of the import of base

    if matrix.shape[0] == 0:
        return [[] for _ in range(queries.shape[0])]
    rows, scores = kernels.topk(matrix, queries, k, metric, skip=skip)
    results = []
    for row_ids, row_scores in zip(rows, scores, strict=True):
        names = ids_of(row_ids)
        results.append(list(zip(names, row_scores.tolist(), strict=True)))
    return results
