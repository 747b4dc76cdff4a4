"""The ``memory`` backend: databases in aligned RAM buffers, nothing on disk.

Each database keeps:

* ``matrix``: a 64-byte aligned float32 buffer of ``capacity`` rows, each row
  padded to a multiple of 16 floats so every row starts on a cache line (the
  SIMD kernels then never split a load); it doubles when full, by copying;
* ``rows``: id -> row number; ``ids``: row number -> id (``None`` when free);
* ``free``: rows of deleted vectors, reused before new rows are taken;
* ``skip``: one uint8 per row, 1 for a free or never used row, so a search
  over ``matrix[:high]`` ignores them without compacting first;
* ``metadata``: id -> JSON text.

Invariants (checked by :meth:`MemoryBackend.verify`): ``rows`` and ``ids``
are inverse on live rows; every row below ``high`` is either live
(``skip == 0``) or in ``free`` (``skip == 1``) exactly once; metadata exists
only for live ids.

Thread rule: one lock per database serialises its operations (search
included, so a row cannot be reused under a running scan); the catalog has
its own lock. The kernels release the GIL while they scan, so searches on
different databases run in parallel.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jadevec._core.aligned import aligned_empty, aligned_zeros
from jadevec.backends.base import (
    Backend,
    DatabaseBackend,
    DatabaseInfo,
    SearchResult,
    StoreOptions,
    VerifyReport,
    exact_search,
)
from jadevec.errors import (
    DatabaseExistsError,
    DatabaseNotFoundError,
    StoreClosedError,
    VectorNotFoundError,
)

__all__ = ["MemoryBackend"]

_MIN_CAPACITY = 16
_ROW_FLOATS = 16  # 64 bytes: rows are padded to whole cache lines


class _MemoryDatabase(DatabaseBackend):
    """One in-memory database (see the module docstring for its layout)."""

    def __init__(self, info: DatabaseInfo) -> None:
        self.info = info
        self._lock = threading.Lock()
        self._width = -(-info.dimension // _ROW_FLOATS) * _ROW_FLOATS
        self._matrix = aligned_zeros((_MIN_CAPACITY, self._width), dtype=np.float32)
        self._skip = np.ones(_MIN_CAPACITY, dtype=np.uint8)
        self._ids: list[str | None] = [None] * _MIN_CAPACITY
        self._rows: dict[str, int] = {}
        self._free: list[int] = []
        self._high = 0  # rows at or above this were never used
        self._metadata: dict[str, str] = {}
        # Why the handle is dead: None while usable, else the error class to raise.
        self._gone: type[Exception] | None = None

    # ------------------------------------------------------------------ helpers

    def _check(self) -> None:
        if self._gone is not None:
            if self._gone is StoreClosedError:
                raise StoreClosedError(f"the store of database {self.info.name!r} is closed")
            raise DatabaseNotFoundError(f"database {self.info.name!r} was deleted")

    def _reserve(self, rows: int) -> None:
        """Make room for ``rows`` used rows, doubling the capacity (the only allocation)."""
        capacity = self._matrix.shape[0]
        if rows <= capacity:
            return
        while capacity < rows:
            capacity *= 2
        matrix = aligned_empty((capacity, self._width), dtype=np.float32)
        matrix[: self._high] = self._matrix[: self._high]
        skip = np.ones(capacity, dtype=np.uint8)
        skip[: self._high] = self._skip[: self._high]
        # Assigned last: a MemoryError above leaves the database unchanged.
        self._matrix, self._skip = matrix, skip
        self._ids.extend([None] * (capacity - len(self._ids)))

    def _release(self) -> None:
        """Drop the buffers of a deleted or closed database."""
        self._matrix = aligned_zeros((0, self._width), dtype=np.float32)
        self._skip = np.ones(0, dtype=np.uint8)
        self._ids, self._rows, self._free, self._metadata = [], {}, [], {}
        self._high = 0

    # ------------------------------------------------------------------- writes

    def store(
        self, ids: Sequence[str], vectors: np.ndarray, metadatas: Sequence[str | None] | None
    ) -> None:
        d = self.info.dimension
        with self._lock:
            self._check()
            rows_of = self._rows
            new = sum(1 for i in ids if i not in rows_of)
            self._reserve(self._high + max(0, new - len(self._free)))
            rows = []
            for vector_id in ids:
                row = rows_of.get(vector_id)
                if row is None:
                    if self._free:
                        row = self._free.pop()
                    else:
                        row = self._high
                        self._high += 1
                    rows_of[vector_id] = row
                    self._ids[row] = vector_id
                rows.append(row)
            if len(rows) == 1:
                self._matrix[rows[0], :d] = vectors[0]
                self._skip[rows[0]] = 0
            else:
                index = np.asarray(rows, dtype=np.intp)
                self._matrix[index, :d] = vectors
                self._skip[index] = 0
            meta = self._metadata
            if metadatas is None:
                for vector_id in ids:
                    meta.pop(vector_id, None)
            else:
                for vector_id, text in zip(ids, metadatas, strict=True):
                    if text is None:
                        meta.pop(vector_id, None)
                    else:
                        meta[vector_id] = text

    def update(self, vector_id: str, vector: np.ndarray, metadata: str | None,
               replace_metadata: bool) -> None:
        with self._lock:
            self._check()
            row = self._rows.get(vector_id)
            if row is None:
                raise VectorNotFoundError(
                    f"no vector with id {vector_id!r} in database {self.info.name!r}"
                )
            self._matrix[row, : self.info.dimension] = vector
            if replace_metadata:
                if metadata is None:
                    self._metadata.pop(vector_id, None)
                else:
                    self._metadata[vector_id] = metadata

    def delete(self, vector_id: str) -> bool:
        with self._lock:
            self._check()
            row = self._rows.pop(vector_id, None)
            if row is None:
                return False
            self._skip[row] = 1
            self._ids[row] = None
            self._free.append(row)
            self._metadata.pop(vector_id, None)
            return True

    def compact(self) -> None:
        """Pack live rows into a buffer sized for them (row order is not kept)."""
        with self._lock:
            self._check()
            count = len(self._rows)
            capacity = _MIN_CAPACITY
            while capacity < count:
                capacity *= 2
            old_rows = np.fromiter(self._rows.values(), dtype=np.intp, count=count)
            matrix = aligned_zeros((capacity, self._width), dtype=np.float32)
            matrix[:count] = self._matrix[old_rows]
            skip = np.ones(capacity, dtype=np.uint8)
            skip[:count] = 0
            ids: list[str | None] = [None] * capacity
            rows: dict[str, int] = {}
            for new_row, vector_id in enumerate(self._rows):
                ids[new_row] = vector_id
                rows[vector_id] = new_row
            self._matrix, self._skip, self._ids, self._rows = matrix, skip, ids, rows
            self._free = []
            self._high = count

    # -------------------------------------------------------------------- reads

    def retrieve(self, vector_id: str) -> np.ndarray | None:
        with self._lock:
            self._check()
            row = self._rows.get(vector_id)
            if row is None:
                return None
            return self._matrix[row, : self.info.dimension].copy()

    def retrieve_many(self, ids: Sequence[str]) -> list[np.ndarray | None]:
        d = self.info.dimension
        with self._lock:
            self._check()
            rows_of, matrix = self._rows, self._matrix
            out: list[np.ndarray | None] = []
            for vector_id in ids:
                row = rows_of.get(vector_id)
                out.append(None if row is None else matrix[row, :d].copy())
            return out

    def contains(self, vector_id: str) -> bool:
        with self._lock:
            self._check()
            return vector_id in self._rows

    def count(self) -> int:
        with self._lock:
            self._check()
            return len(self._rows)

    def list_ids(self) -> list[str]:
        with self._lock:
            self._check()
            return list(self._rows)

    def get_metadata(self, vector_id: str) -> str | None:
        with self._lock:
            self._check()
            return self._metadata.get(vector_id)

    def search(self, queries: np.ndarray, k: int) -> list[SearchResult]:
        with self._lock:
            self._check()
            live = len(self._rows)
            if live == 0:
                return [[] for _ in range(queries.shape[0])]
            high, ids = self._high, self._ids
            return exact_search(
                self._matrix[:high, : self.info.dimension],
                queries,
                min(k, live),  # never ask for more hits than live rows
                self.info.metric,
                lambda rows: [ids[r] for r in rows.tolist()],
                skip=self._skip[:high],
            )

    # ------------------------------------------------------------------- verify

    def _verify(self, problems: list[str]) -> int:
        """Append broken invariants to ``problems``; return the number of live vectors."""
        name = self.info.name
        with self._lock:
            high, skip = self._high, self._skip
            for vector_id, row in self._rows.items():
                if not 0 <= row < high:
                    problems.append(f"{name}: id {vector_id!r} points at row {row} beyond {high}")
                    continue
                if self._ids[row] != vector_id:
                    problems.append(
                        f"{name}: row {row} holds {self._ids[row]!r}, expected {vector_id!r}"
                    )
                if skip[row]:
                    problems.append(f"{name}: live row {row} ({vector_id!r}) is marked deleted")
            free = set(self._free)
            if len(free) != len(self._free):
                problems.append(f"{name}: a free row is listed twice")
            if free & set(self._rows.values()):
                problems.append(f"{name}: a row is both free and live")
            if len(free) + len(self._rows) != high:
                problems.append(
                    f"{name}: {len(self._rows)} live + {len(free)} free rows != {high} used rows"
                )
            for row in free:
                if not skip[row] or self._ids[row] is not None:
                    problems.append(f"{name}: free row {row} is not marked deleted")
            if not np.isfinite(self._matrix[:high, : self.info.dimension]).all():
                problems.append(f"{name}: a stored vector is not finite")
            for vector_id, text in self._metadata.items():
                if vector_id not in self._rows:
                    problems.append(f"{name}: metadata kept for absent id {vector_id!r}")
                try:
                    json.loads(text)
                except ValueError:
                    problems.append(f"{name}: metadata of {vector_id!r} is not JSON")
            return len(self._rows)


class MemoryBackend(Backend):
    """A store held in RAM: fast, thread-safe, and gone at ``close()``.

    ``path`` is ignored (nothing is written); ``read_only`` is refused by
    ``jadevec.open`` because there is nothing to read. ``flush()`` and
    ``sync()`` do nothing.
    """

    persistent = False
    supports_metadata = True

    def __init__(self, path: Path | None, options: StoreOptions) -> None:
        self._lock = threading.Lock()
        self._databases: dict[str, _MemoryDatabase] = {}  # key: name.lower()
        self._closed = False

    def _check(self) -> None:
        if self._closed:
            raise StoreClosedError("the memory store is closed")

    def create_database(self, name: str, dimension: int, metric: str) -> DatabaseBackend:
        with self._lock:
            self._check()
            key = name.lower()
            if key in self._databases:
                existing = self._databases[key].info.name
                raise DatabaseExistsError(
                    f"a database named {existing!r} already exists (names ignore case), "
                    f"cannot create {name!r}"
                )
            db = _MemoryDatabase(DatabaseInfo(name, dimension, metric))
            self._databases[key] = db
            return db

    def open_database(self, name: str) -> DatabaseBackend:
        with self._lock:
            self._check()
            db = self._databases.get(name.lower())
            if db is None:
                raise DatabaseNotFoundError(f"no database named {name!r}")
            return db

    def has_database(self, name: str) -> bool:
        with self._lock:
            self._check()
            return name.lower() in self._databases

    def list_databases(self) -> list[DatabaseInfo]:
        with self._lock:
            self._check()
            return [db.info for db in self._databases.values()]

    def delete_database(self, name: str) -> None:
        with self._lock:
            self._check()
            db = self._databases.pop(name.lower(), None)
            if db is None:
                raise DatabaseNotFoundError(f"no database named {name!r}")
        with db._lock:
            db._gone = DatabaseNotFoundError
            db._release()

    def flush(self) -> None:
        self._check()

    def sync(self) -> None:
        self._check()

    def verify(self) -> VerifyReport:
        with self._lock:
            self._check()
            databases = list(self._databases.values())
        problems: list[str] = []
        vectors = sum(db._verify(problems) for db in databases)
        return VerifyReport(problems, {"databases": len(databases), "vectors": vectors})

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            databases, self._databases = list(self._databases.values()), {}
        for db in databases:
            with db._lock:
                db._gone = StoreClosedError
                db._release()
