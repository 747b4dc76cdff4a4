"""How a metadata record is paired with the vector it belongs to. Private.

The vector files and the metadata (SQLite rows for hybrid, a JSON-lines log
for mmap) are two stores that no single write can change together. The rule
is: write the metadata record *first*, stamped so that it can be paired with
the vector it describes, then write the vector; the vector write is the
commit point.

The stamp is a 64-bit fingerprint of the vector's float32 bytes. A record
holds up to three versions of an id's metadata, each with the fingerprint of
its vector:

* ``(meta, fp)``: the version being written, or written last;
* ``(prev_meta, prev_fp)``: the version it replaced (``prev_fp`` is ``None``
  when the id had no record before, whose metadata was therefore ``None``);
  a crash between the record and its vector leaves that one live;
* ``(base_meta, base_fp)``: the version as of the vector file set's newest
  commit when the record was written (``gen``, its generation). A reader in
  another process sees the newest record but the vectors of the newest
  *commit*, which may be several writes behind; this is the version it needs.

Whoever reads a record resolves it against the live vector (:func:`resolve`):
no live vector: the record is debris (reads as absent); the live vector
matches one version's fingerprint: that version holds; no match: the
metadata is unknowable (:data:`UNKNOWN`), which can only follow a power loss
inside the checkpoint window (or a reader that raced two commits; it reads
again), and recovery reports it.

Every later write of an id that has a record writes a record too
(:func:`next_record`), so ``prev`` is always the true previous state. Writes
of one database are serialised by the backend, so records and vectors of one
id cannot interleave between two writers.

The fingerprint is not cryptographic: two different vectors collide with
probability about 2**-64, and a collision can only choose the wrong one of
two versions of the same id.
"""

from __future__ import annotations

import json
import json.scanner
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np

from jadevec.errors import CorruptionError

__all__ = ["DROP", "UNKNOWN", "Record", "check_entry_fields", "check_record", "fingerprints",
           "is_folder_id", "next_record", "resolve", "settled"]


class Record(NamedTuple):
    """One metadata record: the newest version, the one it replaced, the committed one."""

    meta: str | None
    fp: int
    prev_meta: str | None
    prev_fp: int | None
    base_meta: str | None
    base_fp: int | None
    gen: int


#: What :func:`resolve` returns for a record with no live vector.
DROP = object()
#: What :func:`resolve` returns when no version matches the live vector.
UNKNOWN = object()


def next_record(old: Record | None, meta: str | None, fp: int, generation: int) -> Record:
    """The record that writes ``(meta, fp)`` over ``old`` while the newest commit is ``generation``.

    ``old``'s newest version becomes the previous one; it is also the
    committed one if a commit came after ``old`` was written, else the
    committed one carries over.
    """
    if old is None:
        return Record(meta, fp, None, None, None, None, generation)
    base_meta: str | None
    base_fp: int | None
    if old.gen < generation:
        base_meta, base_fp = old.meta, old.fp
    else:
        base_meta, base_fp = old.base_meta, old.base_fp
    return Record(meta, fp, old.meta, old.fp, base_meta, base_fp, generation)


def settled(meta: str | None, fp: int) -> Record:
    """A record whose one version is live and committed (what recovery writes)."""
    return Record(meta, fp, None, None, None, None, 0)

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

    Returns :data:`DROP` when there is no live vector (``live_fp is None``)
    and :data:`UNKNOWN` when no version matches it.
    """
    if live_fp is None:
        return DROP
    if live_fp == record.fp:
        return record.meta
    if record.prev_fp is None or live_fp == record.prev_fp:
        return record.prev_meta
    if record.base_fp is None or live_fp == record.base_fp:
        return record.base_meta
    return UNKNOWN


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
    except ValueError:
        return False
    except RecursionError:
        # Nested deeper than json.loads parses from here: that is a limit of
        # this reader, not damage. Damage is text that is not JSON at all.
        return _is_json_object(meta)


_JSON_SPACE = re.compile(r"[ \t\n\r]*")
_JSON_CONSTANTS = ("true", "false", "null", "NaN", "Infinity", "-Infinity")
# The json module's own string scanner (the C one where built): (text, index
# after the opening quote) -> (the string, index after the closing quote).
_scan_string: Callable[[str, int], tuple[str, int]] = \
    json.decoder.scanstring  # type: ignore[attr-defined]


def _after_space(text: str, pos: int) -> int:
    """The first position at or after ``pos`` that is not JSON white space."""
    match = _JSON_SPACE.match(text, pos)
    return match.end() if match is not None else pos


def _is_json_object(text: str) -> bool:
    """Whether ``text`` is one JSON object, as json.loads reads it, at any depth.

    A loop over the text with an explicit stack of open containers, so deep
    nesting costs memory, not recursion. Strings and numbers are read by the
    json module's own scanners.
    """
    n = len(text)
    pos = _after_space(text, 0)
    if not text.startswith("{", pos):
        return False
    closers: list[str] = []  # "}" or "]" for each open container
    state = "value"  # what comes next: "value", "key" or "after" (a value)
    try:
        while True:
            pos = _after_space(text, pos)
            if state == "after":
                if not closers:
                    return pos == n
                if text.startswith(",", pos):
                    pos += 1
                    state = "key" if closers[-1] == "}" else "value"
                elif text.startswith(closers[-1], pos):
                    closers.pop()
                    pos += 1
                else:
                    return False
            elif state == "key":
                if not text.startswith('"', pos):
                    return False
                pos = _after_space(text, _scan_string(text, pos + 1)[1])
                if not text.startswith(":", pos):
                    return False
                pos += 1
                state = "value"
            elif text.startswith(("{", "["), pos):
                closers.append("}" if text[pos] == "{" else "]")
                pos = _after_space(text, pos + 1)
                if text.startswith(closers[-1], pos):  # an empty container
                    closers.pop()
                    pos += 1
                    state = "after"
                else:
                    state = "key" if closers[-1] == "}" else "value"
            else:
                if text.startswith('"', pos):
                    pos = _scan_string(text, pos + 1)[1]
                else:
                    word = next((w for w in _JSON_CONSTANTS if text.startswith(w, pos)), None)
                    if word is not None:
                        pos += len(word)
                    else:
                        number = json.scanner.NUMBER_RE.match(text, pos)
                        if number is None:
                            return False
                        pos = number.end()
                state = "after"
    except ValueError:  # a bad string
        return False


def check_record(source: str, vector_id: Any, meta: Any, fp: Any, prev_meta: Any,
                 prev_fp: Any, base_meta: Any, base_fp: Any, gen: Any) -> Record:
    """A metadata record read from ``source``, checked; ``CorruptionError`` if damaged.

    Every ``*meta`` must be ``None`` or the JSON text of an object, ``fp`` and
    ``gen`` 64-bit ints, ``prev_fp`` and ``base_fp`` ``None`` or one.
    """
    if not isinstance(vector_id, str):
        raise CorruptionError(f"{source}: a metadata record has id {vector_id!r}, not a str")
    bad = ("fp" if not _is_int(fp)
           else "gen" if not _is_int(gen)
           else "prev_fp" if prev_fp is not None and not _is_int(prev_fp)
           else "base_fp" if base_fp is not None and not _is_int(base_fp)
           else "meta" if not _meta_ok(meta)
           else "prev_meta" if not _meta_ok(prev_meta)
           else "base_meta" if not _meta_ok(base_meta) else None)
    if bad is not None:
        raise CorruptionError(f"{source}: metadata record of id {vector_id!r}: field {bad!r} "
                              f"is damaged")
    return Record(meta, fp, prev_meta, prev_fp, base_meta, base_fp, gen)


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
