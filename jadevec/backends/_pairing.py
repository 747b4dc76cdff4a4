"""How a metadata record is paired with the vector it belongs to. Private.

The vector files and the metadata (SQLite rows for hybrid, a JSON-lines log
for mmap) are two stores that no single write can change together. The rule
(research/reliability.md, rule 8) is: write the metadata record *first*,
stamped so that it can be paired with the vector it describes, then write
the vector; the vector write is the commit point.

The stamp is a 64-bit fingerprint of the vector's float32 bytes. A record is
``(meta, fp, prev_meta, prev_fp)``: the metadata and fingerprint of the
vector being written, and those of the version it replaces (``prev_fp`` is
``None`` when the id had no record before, whose metadata was ``None``).
Whoever reads a record resolves it against the live vector:

* no live vector: the record is debris (an insert whose vector never landed,
  or a delete whose row removal never ran) and reads as absent;
* the live vector matches ``fp``: the write committed, ``meta`` holds;
* it matches ``prev_fp`` (or ``prev_fp`` is ``None``): the vector write never
  happened, ``prev_meta`` holds;
* neither: only possible after a power loss took a vector write but kept the
  row (or the reverse); the metadata is unknowable and reads as ``None``,
  and recovery reports it.

Every later write of an id that has a record writes a record too, so a
record's ``prev`` is always the true previous state. Writes of one database
are serialised by the backend, so records and vectors of one id cannot
interleave between two writers.

The fingerprint is not cryptographic: two different vectors collide with
probability about 2**-64, and a collision can only choose ``meta`` over
``prev_meta`` for a write interrupted by a crash.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np

__all__ = ["DROP", "Record", "fingerprints", "resolve"]


class Record(NamedTuple):
    """One metadata record: this version and the one it replaces."""

    meta: str | None
    fp: int
    prev_meta: str | None
    prev_fp: int | None


#: What :func:`resolve` returns for a record with no live vector.
DROP = object()

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, elementwise on a uint64 array (wraps mod 2**64)."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@lru_cache(maxsize=16)
def _column_keys(dimension: int) -> np.ndarray:
    """One fixed odd 64-bit key per column, so a permutation changes the sum."""
    with np.errstate(over="ignore"):
        keys = _mix(np.arange(1, dimension + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15))
    return keys | np.uint64(1)


def fingerprints(vectors: np.ndarray) -> list[int]:
    """64-bit fingerprints (as signed ints, SQLite's INTEGER) of each row of ``vectors``.

    Parameters
    ----------
    vectors : np.ndarray
        (n, d) float32.
    """
    rows = np.ascontiguousarray(vectors, dtype=np.float32)
    if rows.shape[0] == 0:
        return []
    words = rows.view(np.uint32).astype(np.uint64)
    with np.errstate(over="ignore"):
        words *= _column_keys(rows.shape[1])
        sums = words.sum(axis=1, dtype=np.uint64)
        return _mix(sums).view(np.int64).tolist()


def resolve(record: Record, live_fp: int | None) -> str | None | object:
    """The metadata a record stands for, given the live vector's fingerprint.

    Returns :data:`DROP` when there is no live vector (``live_fp is None``).
    """
    if live_fp is None:
        return DROP
    if live_fp == record.fp:
        return record.meta
    if record.prev_fp is None or live_fp == record.prev_fp:
        return record.prev_meta
    return None
