"""A float32 matrix of one database's vectors, kept for exact search.

LMDB stores each vector under its own key; ranking them one by one would be
far slower than jadevec's SIMD kernels over a matrix. So a database's first
search loads every vector into an aligned matrix, and later searches reuse it.

Invariants and thread rules:

* The cache is tagged with the database's *generation*, a counter every write
  transaction increments in the same commit as the data. A search reads the
  generation in its transaction and reloads when the tag differs, so writes
  from another process (or a database deleted and re-created) are never
  missed.
* A write of this process that committed generation ``g + 1`` over a cache
  tagged ``g`` applies its change in place (overwrite a row, append one, or
  mark one deleted) instead of dropping the cache.
* Every method runs under ``lock``, which the caller holds; searches of one
  database are therefore serialised with its writes' cache updates, and a
  write to a database waits for a search of it in flight before it returns
  (writes apply their changes in commit order, under the store's write lock).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
from jadevec.backends.base import SearchResult, exact_search

__all__ = ["SearchCache"]

# Rows start on 64-byte boundaries (one AVX-512 load, no split cache line).
_ALIGN_FLOATS = 16
# Rebuild the matrix once deleted rows outnumber live ones (and are many).
_MIN_DEAD_TO_REPACK = 1024


class SearchCache:
    """The vectors of one database as an aligned float32 matrix, tagged by generation.

    Parameters
    ----------
    dimension : int
        Length of every vector.
    """

    def __init__(self, dimension: int) -> None:
        self.lock = threading.Lock()
        self.dimension = dimension
        # Short rows are not padded: padding a 3-d row to 16 floats would
        # cost five times the memory for no faster load.
        padded = -(-dimension // _ALIGN_FLOATS) * _ALIGN_FLOATS
        self._stride = dimension if dimension < _ALIGN_FLOATS else padded
        self.clear()

    def clear(self) -> None:
        """Forget everything; the next search loads again."""
        self.generation: int | None = None
        self._matrix = _aligned_rows(0, self._stride, self.dimension)
        self._ids: list[str] = []
        self._row_of: dict[str, int] = {}
        self._skip = np.zeros(0, dtype=np.uint8)
        self._dead = 0

    def load(self, generation: int, ids: Sequence[str], rows: np.ndarray) -> None:
        """Replace the contents with ``rows`` (shape (n, d)) under ``ids``."""
        n = len(ids)
        self._matrix = _aligned_rows(max(n, 1), self._stride, self.dimension)
        self._matrix[:n] = rows
        self._ids = list(ids)
        self._row_of = {vector_id: row for row, vector_id in enumerate(self._ids)}
        self._skip = np.zeros(self._matrix.shape[0], dtype=np.uint8)
        self._dead = 0
        self.generation = generation

    def apply(
        self,
        before: int,
        after: int,
        stored: Sequence[str] = (),
        vectors: np.ndarray | None = None,
        deleted: Sequence[str] = (),
    ) -> None:
        """Follow a committed write that moved the generation from ``before`` to ``after``.

        A cache at another generation is dropped (it missed a write), unless a
        search already loaded ``after``.
        """
        if self.generation == after:
            return
        if self.generation != before:
            self.clear()
            return
        if vectors is not None:
            for vector_id, vector in zip(stored, vectors, strict=True):
                self._put(vector_id, vector)
        for vector_id in deleted:
            slot = self._row_of.pop(vector_id, None)
            if slot is not None:
                self._skip[slot] = 1
                self._dead += 1
        self.generation = after

    def _put(self, vector_id: str, vector: np.ndarray) -> None:
        slot = self._row_of.get(vector_id)
        if slot is None:
            slot = len(self._ids)
            if slot == self._matrix.shape[0]:
                self._grow(2 * slot)
            self._ids.append(vector_id)
            self._row_of[vector_id] = slot
        self._matrix[slot] = vector

    def _grow(self, capacity: int) -> None:
        used = len(self._ids)
        matrix = _aligned_rows(capacity, self._stride, self.dimension)
        matrix[:used] = self._matrix[:used]
        skip = np.zeros(capacity, dtype=np.uint8)
        skip[:used] = self._skip[:used]
        self._matrix, self._skip = matrix, skip

    def repack(self) -> None:
        """Drop deleted rows from the matrix (what ``compact`` gives back in memory)."""
        if not self._dead or self.generation is None:
            return
        live = np.flatnonzero(self._skip[: len(self._ids)] == 0)
        ids = [self._ids[row] for row in live]
        rows = self._matrix[live]
        self.load(self.generation, ids, rows)

    def search(self, queries: np.ndarray, k: int, metric: str) -> list[SearchResult]:
        """Exact top-``k`` over the cached rows with jadevec's kernels."""
        if self._dead > _MIN_DEAD_TO_REPACK and self._dead > len(self._row_of):
            self.repack()
        used = len(self._ids)
        ids = self._ids
        skip = self._skip[:used] if self._dead else None
        return exact_search(
            self._matrix[:used],
            queries,
            k,
            metric,
            lambda rows: [ids[row] for row in rows.tolist()],
            skip=skip,
        )


def _aligned_rows(rows: int, stride: int, dimension: int) -> np.ndarray:
    """A (rows, dimension) float32 view whose rows are ``stride`` floats apart, 64-byte aligned."""
    raw = np.zeros(rows * stride + _ALIGN_FLOATS, dtype=np.float32)
    offset = (-raw.ctypes.data % 64) // 4
    return raw[offset : offset + rows * stride].reshape(rows, stride)[:, :dimension]
