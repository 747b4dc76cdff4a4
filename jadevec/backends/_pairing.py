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

import json
import re
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np

from jadevec.errors import CorruptionError

__all__ = ["DROP", "Record", "check_entry_fields", "check_record", "fingerprints",
           "is_folder_id", "resolve"]


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


# -- checks of what a catalog read from disk (the bytes are untrusted) ---------------

_I64 = (-(1 << 63), (1 << 63) - 1)
_FOLDER_ID = re.compile(r"db-[0-9a-f]{12}")
_METRICS = ("cosine", "dot", "l2")
_STATES = ("creating", "live", "deleting")


def is_folder_id(name: Any) -> bool:
    """Whether ``name`` is a database folder id (``db-`` and 12 hex digits).

    Anything a catalog names that is not one is never used as a path: recovery
    removes the folders of orphaned ids, and ``..`` must never be one.
    """
    return isinstance(name, str) and _FOLDER_ID.fullmatch(name) is not None


def _is_int(x: Any) -> bool:
    return type(x) is int and _I64[0] <= x <= _I64[1]


def _meta_ok(meta: Any) -> bool:
    if meta is None:
        return True
    if not isinstance(meta, str):
        return False
    try:
        return isinstance(json.loads(meta), dict)
    except (ValueError, RecursionError):
        return False


def check_record(source: str, vector_id: Any, meta: Any, fp: Any, prev_meta: Any,
                 prev_fp: Any) -> Record:
    """A metadata record read from ``source``, checked; ``CorruptionError`` if damaged.

    ``meta`` and ``prev_meta`` must be ``None`` or the JSON text of an object,
    ``fp`` a 64-bit int and ``prev_fp`` ``None`` or one.
    """
    if not isinstance(vector_id, str):
        raise CorruptionError(f"{source}: a metadata record has id {vector_id!r}, not a str")
    bad = ("fp" if not _is_int(fp)
           else "prev_fp" if prev_fp is not None and not _is_int(prev_fp)
           else "meta" if not _meta_ok(meta)
           else "prev_meta" if not _meta_ok(prev_meta) else None)
    if bad is not None:
        raise CorruptionError(f"{source}: metadata record of id {vector_id!r}: field {bad!r} "
                              f"is damaged")
    return Record(meta, fp, prev_meta, prev_fp)


def check_entry_fields(source: str, name: Any, dimension: Any, metric: Any, folder: Any,
                       state: Any = "live") -> None:
    """Check one database entry of a catalog; ``CorruptionError`` names the field.

    A damaged entry must stop the open: skipping it would make its folder look
    orphaned, and recovery removes orphaned folders.
    """
    field = ("name" if not isinstance(name, str) or not 0 < len(name) <= 128
             else "dimension" if type(dimension) is not int or not 1 <= dimension <= 65536
             else "metric" if metric not in _METRICS
             else "folder" if not is_folder_id(folder)
             else "state" if state not in _STATES else None)
    if field is not None:
        value = {"name": name, "dimension": dimension, "metric": metric, "folder": folder,
                 "state": state}[field]
        raise CorruptionError(f"{source}: database entry {name!r}: field {field!r} is "
                              f"{value!r}"[:300])
