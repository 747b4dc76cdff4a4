"""``MemoryMappedVectorStore``: one vector file set per database under a root folder.

Each database is a folder ``<root>/<database_id>/`` holding a
:class:`jadevec._core.vector_file.VectorFile` (format:
docs/vector_file_format.md). Files open lazily on first use and stay open
until ``close_vector_file`` or ``close``. This class is policy over the core's
mechanism: lazy opening, the folder swap of ``compact``, and which files a
``flush`` or ``sync`` covers. It trusts its caller (the public API validates
input) except for what is cheap and protects the files: the dimension of
every vector and ids of 1 to 1,024 UTF-8 bytes are checked by the core.

Threads: every method may be called from any thread. The table of open files
is guarded by one lock, taken only to open, close, compact or delete; vector
operations use the file's own reader-writer lock. An operation that meets a
file closed under it by ``compact`` or ``close_vector_file`` reopens it and
retries, so no write is lost to a concurrent compaction.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from jadevec._core.vector_file import VectorFile
from jadevec.errors import (
    DatabaseExistsError,
    DatabaseNotFoundError,
    InvalidInputError,
    StoreClosedError,
)

__all__ = ["MemoryMappedVectorStore"]

T = TypeVar("T")

_COMPACT = ".{}.compact"
_OLD = ".{}.old"


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class MemoryMappedVectorStore:
    """Vector file sets of many databases under one root folder.

    Parameters
    ----------
    root : str or os.PathLike
        Folder holding one sub-folder per database; made if missing (unless
        ``read_only``).
    read_only : bool
        Open every file read-only; writes raise ``PermissionError``.
    check_reads : bool
        Check each vector's CRC32C when it is read.
    """

    def __init__(self, root: str | os.PathLike[str], *, read_only: bool = False,
                 check_reads: bool = True) -> None:
        self.root = os.fsdecode(os.fspath(root))
        self.read_only = read_only
        self._check_reads = check_reads
        self._files: dict[str, VectorFile] = {}
        self._lock = threading.RLock()
        self._closed = False
        if not read_only:
            os.makedirs(self.root, exist_ok=True)

    # -- lifecycle -------------------------------------------------------------

    def _folder(self, database_id: str) -> str:
        if (not isinstance(database_id, str) or not database_id or database_id.startswith(".")
                or "/" in database_id or "\\" in database_id or "\0" in database_id
                or len(database_id.encode("utf-8", "surrogatepass")) > 255):
            raise InvalidInputError(
                f"database_id must be a folder name (not empty, no '/', not starting "
                f"with '.'), got {database_id!r}")
        return os.path.join(self.root, database_id)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(f"the vector store at {self.root!r} is closed")

    def create_vector_file(self, database_id: str, dimension: int,
                           initial_capacity: int = 64) -> None:
        """Create the file set of a new database and leave it open.

        Raises
        ------
        DatabaseExistsError
            The database already has a file set.
        """
        with self._lock:
            self._check_open()
            folder = self._folder(database_id)
            if os.path.exists(os.path.join(folder, "vectors.jvdb")):
                raise DatabaseExistsError(f"{folder}: a vector file set already exists")
            self._files[database_id] = VectorFile.create(folder, dimension, initial_capacity)
            _fsync_dir(self.root)

    def open_vector_file(self, database_id: str) -> VectorFile:
        """Open the file set (recovering it if needed) and return it; nothing new if open.

        The returned ``VectorFile`` is the one every operation on this
        database uses until ``close_vector_file``, ``compact``,
        ``delete_database_vectors`` or ``close`` closes it; after that its
        operations raise ``StoreClosedError`` (never touch unmapped memory),
        and a caller that caches it must come back here.

        Raises
        ------
        DatabaseNotFoundError
            No file set for this database.
        """
        return self._files.get(database_id) or self._file(database_id)

    def _file(self, database_id: str) -> VectorFile:
        vf = self._files.get(database_id)
        if vf is not None:
            return vf
        with self._lock:
            self._check_open()
            vf = self._files.get(database_id)
            if vf is None:
                folder = self._folder(database_id)
                if not self.read_only:
                    self._finish_compaction(database_id)
                if not os.path.isdir(folder):
                    raise DatabaseNotFoundError(f"no vector file set for {database_id!r} "
                                                f"in {self.root!r}")
                vf = VectorFile.open(folder, read_only=self.read_only,
                                     check_reads=self._check_reads)
                self._files[database_id] = vf
            return vf

    def _finish_compaction(self, database_id: str) -> None:
        """Complete or undo a compaction a crash interrupted (see the format doc)."""
        folder = os.path.join(self.root, database_id)
        new = os.path.join(self.root, _COMPACT.format(database_id))
        old = os.path.join(self.root, _OLD.format(database_id))
        if os.path.isdir(new):
            if os.path.isdir(folder):
                shutil.rmtree(new)  # never swapped in: the source is intact
            else:
                os.rename(new, folder)  # complete and synced before the first rename
            _fsync_dir(self.root)
        if os.path.isdir(old):
            shutil.rmtree(old)

    def close_vector_file(self, database_id: str) -> None:
        """Checkpoint and close the file set; nothing if it is not open."""
        with self._lock:
            vf = self._files.pop(database_id, None)
            if vf is not None:
                vf.close()

    def delete_database_vectors(self, database_id: str) -> None:
        """Close the file set and remove its folder (nothing if there is none)."""
        with self._lock:
            self._check_open()
            folder = self._folder(database_id)
            vf = self._files.pop(database_id, None)
            if vf is not None:
                vf.close()
            for path in (folder, os.path.join(self.root, _COMPACT.format(database_id)),
                         os.path.join(self.root, _OLD.format(database_id))):
                if os.path.isdir(path):
                    shutil.rmtree(path)
            _fsync_dir(self.root)

    def compact(self, database_id: str) -> None:
        """Rewrite the file set with only its live vectors, crash-safely.

        The new set is written and synced beside the old one, then swapped in
        by renames and an fsync of the root; the old one is removed.
        """
        with self._lock:
            vf = self._file(database_id)
            folder = self._folder(database_id)
            new = os.path.join(self.root, _COMPACT.format(database_id))
            old = os.path.join(self.root, _OLD.format(database_id))
            if os.path.isdir(new):
                shutil.rmtree(new)
            vf.compact_into(new)  # closes vf
            del self._files[database_id]
            _fsync_dir(self.root)
            os.rename(folder, old)
            os.rename(new, folder)
            _fsync_dir(self.root)
            shutil.rmtree(old)

    def close(self) -> None:
        """Checkpoint and close every open file set. A second call does nothing."""
        with self._lock:
            errors = []
            for database_id in list(self._files):
                try:
                    self._files.pop(database_id).close()
                except OSError as exc:
                    errors.append(exc)
            self._closed = True
            if errors:
                raise errors[0]

    def __enter__(self) -> MemoryMappedVectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<MemoryMappedVectorStore {self.root!r} open={sorted(self._files)}>"

    # -- vector operations ------------------------------------------------------

    def _retry(self, database_id: str, stale: VectorFile, op: Callable[[VectorFile], T]) -> T:
        """Run ``op`` again after ``stale`` was closed under us by a lifecycle call."""
        # Under the lock: a compaction closes the file before it drops it from
        # the table, so without the lock ``stale`` may still be listed here.
        while True:
            with self._lock:
                if self._closed or self._files.get(database_id) is stale:
                    raise StoreClosedError(f"the vector file set of {database_id!r} is closed")
                vf = self._file(database_id)
            try:
                return op(vf)
            except StoreClosedError:
                stale = vf  # compacted again meanwhile: reopen again

    def store_vector(self, database_id: str, vector_id: str, values: Any) -> None:
        """Store ``values`` under ``vector_id``, replacing any vector it had."""
        vf = self._files.get(database_id) or self._file(database_id)
        try:
            vf.put(vector_id, values)
        except StoreClosedError:
            self._retry(database_id, vf, lambda f: f.put(vector_id, values))

    def retrieve_vector(self, database_id: str, vector_id: str) -> np.ndarray | None:
        """Return a copy of the vector (float32), or ``None`` if the id is absent."""
        vf = self._files.get(database_id) or self._file(database_id)
        try:
            return vf.get(vector_id)
        except StoreClosedError:
            return self._retry(database_id, vf, lambda f: f.get(vector_id))

    def update_vector(self, database_id: str, vector_id: str, values: Any) -> None:
        """Replace the vector of an existing id atomically.

        Raises
        ------
        VectorNotFoundError
            The id is absent; nothing changes.
        DimensionMismatchError
            ``values`` has the wrong length.
        """
        vf = self._files.get(database_id) or self._file(database_id)
        try:
            vf.update(vector_id, values)
        except StoreClosedError:
            self._retry(database_id, vf, lambda f: f.update(vector_id, values))

    def delete_vector(self, database_id: str, vector_id: str) -> bool:
        """Delete the vector; return whether it existed."""
        vf = self._files.get(database_id) or self._file(database_id)
        try:
            return vf.delete(vector_id)
        except StoreClosedError:
            return self._retry(database_id, vf, lambda f: f.delete(vector_id))

    def batch_store(self, database_id: str, ids: Sequence[str], vectors: Any) -> None:
        """Store an (n, dimension) array under ``ids`` with one growth and one C loop.

        A duplicate id in ``ids`` is stored in order: its last row wins (the
        public API refuses duplicates before this point).
        """
        vf = self._files.get(database_id) or self._file(database_id)
        try:
            vf.put_batch(ids, vectors)
        except StoreClosedError:
            self._retry(database_id, vf, lambda f: f.put_batch(ids, vectors))

    def batch_retrieve(self, database_id: str, ids: Sequence[str]) -> list[np.ndarray | None]:
        """Return one copy (or ``None``) per id, in order."""
        vf = self._files.get(database_id) or self._file(database_id)
        try:
            rows, found = vf.get_batch(ids)
        except StoreClosedError:
            rows, found = self._retry(database_id, vf, lambda f: f.get_batch(ids))
        return [row if hit else None for row, hit in zip(rows, found.tolist(), strict=True)]

    def list_vectors(self, database_id: str) -> list[str]:
        """Return every id of the database (in no particular order)."""
        vf = self._files.get(database_id) or self._file(database_id)
        try:
            return vf.ids()
        except StoreClosedError:
            return self._retry(database_id, vf, lambda f: f.ids())

    def count(self, database_id: str) -> int:
        """Return how many vectors the database holds."""
        vf = self._files.get(database_id) or self._file(database_id)
        return len(vf)

    def search(self, database_id: str, queries: Any, k: int,
               metric: str = "cosine") -> list[list[tuple[str, float]]]:
        """Exact top-``k`` for each row of ``queries`` (m, dimension), best first."""
        vf = self._files.get(database_id) or self._file(database_id)
        try:
            return vf.search(queries, k, metric)
        except StoreClosedError:
            return self._retry(database_id, vf, lambda f: f.search(queries, k, metric))

    def verify(self, database_id: str) -> list[str]:
        """Check every checksum of the file set; return the problems found."""
        return self._file(database_id).verify()

    def recovery_report(self, database_id: str) -> dict[str, Any] | None:
        """What opening the file set had to recover (``None`` after a clean open)."""
        return self._file(database_id).recovery_report

    def _open_files(self, database_id: str | None) -> list[VectorFile]:
        self._check_open()
        if database_id is None:
            with self._lock:
                return list(self._files.values())
        vf = self._files.get(database_id)
        return [] if vf is None else [vf]

    def flush(self, database_id: str | None = None) -> None:
        """``msync(MS_ASYNC)`` the open file sets (all, or one): a hint, not a barrier.

        Everything a returned call wrote is already in the page cache and
        survives a killed process; only :meth:`sync` survives a power loss.
        """
        for vf in self._open_files(database_id):
            try:
                vf.flush()
            except StoreClosedError:
                pass  # closed since listed (eviction, compaction): its close synced it

    def sync(self, database_id: str | None = None) -> None:
        """Checkpoint the open file sets (all, or one): durable when this returns."""
        for vf in self._open_files(database_id):
            try:
                vf.checkpoint()
            except StoreClosedError:
                pass  # closed since listed (eviction, compaction): its close synced it
