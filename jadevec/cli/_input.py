"""Reading vector files for ``insert`` and ``batch-insert``.

Three formats, told apart by content rather than by name:

* a JSON array of ``{"id": ..., "values": [...], "metadata": {...}}`` objects
  (the first non-blank byte is ``[``); it is parsed whole, so it must fit in
  memory;
* JSON lines, one such object per line (the first non-blank byte is ``{``);
  read line by line;
* a ``.npy`` array of shape ``(rows, dimension)`` (the file starts with numpy's
  magic bytes), mapped with ``mmap_mode="r"`` and read in slices; ids come
  from an ids file (one per line) or are the row numbers ``0, 1, ...``.

A file is read twice. The first pass checks every row and keeps only an
8-byte hash per id, so a file of any length is checked in bounded memory; if
two hashes agree, a further pass over the file names the duplicate id with
both of its line numbers (or tells a hash collision from a real duplicate).
Only when the whole file is valid does the second pass store it, batch by
batch. With ``skip_invalid`` a bad row is counted and left out instead, and
of a duplicated id the first row wins.

Positions in messages are what an editor shows: line numbers from 1 for JSON
lines, item numbers from 1 for a JSON array (and the line and column of a
syntax error), row numbers from 0 for ``.npy`` (as numpy indexes them).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jadevec import _validate as v
from jadevec.errors import InvalidInputError

__all__ = ["Batch", "FileError", "FileReport", "VectorFile", "open_vector_file"]

_NPY_MAGIC = b"\x93NUMPY"
# Rows parsed per numpy conversion in the checking pass.
_CHECK_CHUNK = 4096
_NPY_CHECK_CHUNK = 65536
# The end of every message about a rejected row.
_NOTHING_STORED = "; nothing was stored: fix the file, or pass --skip-invalid to store the rest"


class FileError(InvalidInputError):
    """A vector file (or its ids file) cannot be used; the message names the place."""


@dataclass
class Row:
    """One JSON row as parsed; ``problem`` is set for an invalid row."""

    where: str
    id: str | None = None
    values: Any = None
    metadata: Any = None
    problem: str | None = None


@dataclass
class Block:
    """Consecutive rows: ``vectors[i]`` is row ``i`` as float32 (zeros where it is invalid)."""

    ids: list[str | None]
    vectors: np.ndarray
    metadatas: list[Any] | None
    problems: dict[int, str]
    where: Callable[[int], str]


@dataclass
class Batch:
    """Rows ready for ``Database.batch_store``."""

    ids: list[str]
    vectors: np.ndarray
    metadatas: list[Any] | None


@dataclass
class FileReport:
    """What the checking pass found."""

    rows: int = 0
    valid: int = 0
    skipped: list[str] = field(default_factory=list)  # one message per skipped row
    duplicates: set[int] = field(default_factory=set)  # id hashes seen more than once


def _sniff(path: str) -> str:
    with open(path, "rb") as handle:
        head = handle.read(4096)
    if head.startswith(_NPY_MAGIC):
        return "npy"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not text:
        raise FileError(f"{path}: the file is empty; give a JSON array, JSON lines or a .npy file")
    if text[:1] == b"[":
        return "json"
    if text[:1] == b"{":
        return "jsonl"
    raise FileError(
        f"{path}: not a JSON array, JSON lines or .npy file (it starts with {text[:20]!r}); "
        f"write one object per line or an array of objects with \"id\" and \"values\""
    )


def _check_id(value: Any) -> str:
    if not isinstance(value, str):
        if value is None:
            raise ValueError('the "id" is missing')
        raise ValueError(f'the "id" must be a string, got {type(value).__name__} {value!r:.40}')
    try:
        return v.check_id(value)  # the library's own rule, so pass two cannot fail on it
    except InvalidInputError as exc:
        raise ValueError(f'the "id" is not valid: {exc}') from None


class VectorFile:
    """One input file: :meth:`check` it, then store what :meth:`batches` yields."""

    def __init__(self, path: str, kind: str, dimension: int, metric: str,
                 ids_path: str | None) -> None:
        self.path = path
        self.kind = kind
        self.dimension = dimension
        self.metric = metric
        self.ids_path = ids_path
        self.total: int | None = None  # rows, when known before reading
        if kind == "npy":
            try:
                self._array = np.load(path, mmap_mode="r", allow_pickle=False)
            except (ValueError, OSError) as exc:
                raise FileError(f"{path}: not a readable .npy file ({exc})") from None
            shape = self._array.shape
            if self._array.ndim != 2 or self._array.dtype.kind not in "fiu":
                raise FileError(
                    f"{path}: a .npy file must hold a 2-D array of numbers (rows, {dimension}); "
                    f"this one holds {self._array.dtype} of shape {shape}"
                )
            if shape[1] != dimension:
                raise FileError(
                    f"{path}: the rows have {shape[1]} values but the database's dimension is "
                    f"{dimension}; give a file of shape (rows, {dimension})"
                )
            self.total = shape[0]
        elif ids_path is not None:
            raise FileError(
                f"--ids is only for .npy files; {path} is JSON, whose rows carry their own \"id\""
            )

    # -------------------------------------------------------------- passes

    def check(self, skip_invalid: bool, stopped: Callable[[], None],
              progress: Callable[[int], None]) -> FileReport:
        """First pass: every row checked, ids hashed; raises FileError unless ``skip_invalid``."""
        report = FileReport()
        hashes: list[np.ndarray] = []
        # Row numbers as ids never repeat, so they are neither made nor hashed here.
        hashed = self.kind != "npy" or self.ids_path is not None
        size = _CHECK_CHUNK if self.kind != "npy" else _NPY_CHECK_CHUNK
        for block in self._blocks(size, with_ids=hashed):
            stopped()
            count = len(block.ids)
            report.rows += count
            for index in sorted(block.problems):
                message = f"{self.path}, {block.where(index)}: {block.problems[index]}"
                if not skip_invalid:
                    raise FileError(message + _NOTHING_STORED)
                report.skipped.append(message)
            report.valid += count - len(block.problems)
            if hashed:
                good = [block.ids[i] for i in range(count) if i not in block.problems] \
                    if block.problems else block.ids
                hashes.append(np.fromiter(map(hash, good), dtype=np.int64, count=len(good)))
            progress(count)
        if hashes:
            every = np.sort(np.concatenate(hashes))
            repeated = every[1:][every[1:] == every[:-1]]
            report.duplicates = set(np.unique(repeated).tolist())
        if report.duplicates and not skip_invalid:
            self._name_duplicate(report.duplicates)
        return report

    def _name_duplicate(self, duplicates: set[int]) -> None:
        """Raise for the first real duplicate id (a hash collision alone is not one)."""
        first_seen: dict[str, str] = {}
        for block in self._blocks(_CHECK_CHUNK):
            for index, vector_id in enumerate(block.ids):
                if index in block.problems or hash(vector_id) not in duplicates:
                    continue
                assert vector_id is not None
                if vector_id in first_seen:
                    raise FileError(
                        f"{self.path}: the id {vector_id!r} appears twice ({first_seen[vector_id]} "
                        f"and {block.where(index)}); ids must be unique within a file"
                        + _NOTHING_STORED
                    )
                first_seen[vector_id] = block.where(index)

    def batches(self, batch_size: int, report: FileReport,
                on_skip: Callable[[str], None]) -> Iterator[Batch]:
        """Second pass: the valid rows in batches of ``batch_size`` (the last may be shorter)."""
        seen: dict[str, str] = {}
        duplicates = report.duplicates
        for block in self._blocks(batch_size):
            keep = [i for i in range(len(block.ids)) if i not in block.problems] \
                if block.problems else None
            if duplicates:
                kept = []
                for index in keep if keep is not None else range(len(block.ids)):
                    vector_id = block.ids[index]
                    assert vector_id is not None
                    if hash(vector_id) in duplicates:
                        if vector_id in seen:
                            on_skip(f"{self.path}, {block.where(index)}: the id {vector_id!r} "
                                    f"already appeared on {seen[vector_id]}")
                            continue
                        seen[vector_id] = block.where(index)
                    kept.append(index)
                keep = kept
            if keep is None:
                yield Batch(block.ids, block.vectors, block.metadatas)  # type: ignore[arg-type]
                continue
            if not keep:
                continue
            metadatas = None
            if block.metadatas is not None:
                metadatas = [block.metadatas[i] for i in keep]
                if all(m is None for m in metadatas):
                    metadatas = None
            yield Batch([block.ids[i] for i in keep], block.vectors[keep],  # type: ignore[misc]
                        metadatas)

    # -------------------------------------------------------------- blocks

    def _blocks(self, size: int, with_ids: bool = True) -> Iterator[Block]:
        if self.kind == "npy":
            yield from self._npy_blocks(size, with_ids)
            return
        chunk: list[Row] = []
        for row in self._json_rows():
            chunk.append(row)
            if len(chunk) == size:
                yield self._json_block(chunk)
                chunk = []
        if chunk:
            yield self._json_block(chunk)

    def _json_rows(self) -> Iterator[Row]:
        if self.kind == "jsonl":
            with open(self.path, encoding="utf-8-sig") as handle:
                for number, line in enumerate(handle, 1):
                    if not line.strip():
                        continue
                    where = f"line {number}"
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError as exc:
                        yield Row(where, problem=f"malformed JSON ({exc.msg} at column "
                                                 f"{exc.colno})")
                        continue
                    yield _row_from_object(where, obj)
            return
        with open(self.path, encoding="utf-8-sig") as handle:
            text = handle.read()
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            yield Row(f"line {exc.lineno}", problem=f"malformed JSON ({exc.msg} at column "
                                                    f"{exc.colno})")
            return
        if not isinstance(items, list):
            yield Row("line 1", problem="the file is not a JSON array of objects")
            return
        self.total = len(items)
        for number, obj in enumerate(items, 1):
            yield _row_from_object(f"item {number}", obj)

    def _json_block(self, chunk: list[Row]) -> Block:
        """Turn every row's values into float32 and flag the bad rows."""
        dimension = self.dimension
        matrix = None
        if all(row.problem is None for row in chunk):
            try:
                candidate = np.array([row.values for row in chunk])
                if candidate.ndim == 2 and candidate.dtype.kind in "fiu" and \
                        candidate.shape[1] == dimension:
                    with np.errstate(over="ignore", invalid="ignore"):
                        matrix = candidate.astype(np.float32)
            except (ValueError, TypeError):
                matrix = None
        problems: dict[int, str] = {}
        if matrix is None:  # something is wrong in this chunk: find it row by row
            matrix = np.zeros((len(chunk), dimension), dtype=np.float32)
            for index, row in enumerate(chunk):
                if row.problem is None:
                    row.problem = self._one_row(row.values, matrix[index])
                if row.problem is not None:
                    problems[index] = row.problem
        for index, problem in self._row_problems(matrix).items():
            problems.setdefault(index, problem)
        metadatas = [row.metadata for row in chunk]
        return Block([row.id for row in chunk], matrix,
                      metadatas if any(m is not None for m in metadatas) else None,
                      problems, lambda i: chunk[i].where)

    def _one_row(self, values: Any, out: np.ndarray) -> str | None:
        """Copy one row's values into ``out``; the problem, or None if they are numbers."""
        if not isinstance(values, list):
            return (f'"values" must be a list of {self.dimension} numbers, got '
                    f"{type(values).__name__}")
        if len(values) != self.dimension:
            return (f'"values" has {len(values)} numbers but the database\'s dimension is '
                    f"{self.dimension}")
        for position, item in enumerate(values):
            if isinstance(item, bool) or not isinstance(item, (int, float)):
                return f'"values"[{position}] is not a number: {item!r:.40}'
        with np.errstate(over="ignore", invalid="ignore"):
            out[:] = np.array(values, dtype=np.float64)
        return None

    def _row_problems(self, matrix: np.ndarray) -> dict[int, str]:
        """The rows the library would refuse, by index: the same rules as ``batch_store``."""
        with np.errstate(over="ignore", invalid="ignore"):
            squares = np.einsum("ij,ij->i", matrix, matrix)
        # Positive squared norms below the library's fast bound prove a row finite,
        # within range and not all zeros; anything else is looked at closely.
        suspects = np.flatnonzero(~((squares > 0.0) & (squares < v._FAST_NORM2)))
        problems: dict[int, str] = {}
        for index in suspects.tolist():
            vector = matrix[index]
            finite = np.isfinite(vector)
            if not finite.all():
                position = int(np.flatnonzero(~finite)[0])
                problems[index] = (f'"values"[{position}] is {vector[position]} (NaN, infinite, '
                                   f"or too large for float32); every value must be finite")
                continue
            wide = vector.astype(np.float64)
            norm2 = float(wide @ wide)
            if norm2 > v._NORM2_MAX:
                problems[index] = (f"the squared norm of the values is {norm2:.6g}, beyond "
                                   f"float32's largest value {v._NORM2_MAX:.6g}; scale the "
                                   f"vector down")
            elif self.metric == "cosine" and not vector.any():
                problems[index] = ("every value is zero, which has no direction under the "
                                   "cosine metric")
        return problems

    def _npy_blocks(self, size: int, with_ids: bool) -> Iterator[Block]:
        array = self._array
        total = array.shape[0]
        handle = None if self.ids_path is None else open(self.ids_path, encoding="utf-8")
        try:
            for start in range(0, total, size):
                stop = min(start + size, total)
                with np.errstate(over="ignore", invalid="ignore"):
                    matrix = np.ascontiguousarray(array[start:stop], dtype=np.float32)
                problems: dict[int, str] = {}
                ids: list[str | None]
                if handle is None:
                    ids = list(map(str, range(start, stop))) if with_ids else \
                        [None] * (stop - start)
                else:
                    ids = []
                    for index in range(stop - start):
                        line = handle.readline()
                        if not line:
                            raise FileError(
                                f"{self.ids_path}: has {start + index} ids but {self.path} has "
                                f"{total} rows; give one id per line for every row"
                            )
                        try:
                            ids.append(_check_id(line.rstrip("\r\n")))
                        except ValueError as exc:
                            ids.append(None)
                            problems[index] = f"{exc} (line {start + index + 1} of {self.ids_path})"
                for index, problem in self._row_problems(matrix).items():
                    problems.setdefault(index, problem)
                yield Block(ids, matrix, None, problems, lambda i, s=start: f"row {s + i}")
            if handle is not None and handle.readline():
                raise FileError(
                    f"{self.ids_path}: has more ids than the {total} rows of {self.path}; "
                    f"give exactly one id per row"
                )
        finally:
            if handle is not None:
                handle.close()


def _row_from_object(where: str, obj: Any) -> Row:
    if not isinstance(obj, dict):
        return Row(where, problem=f'expected an object with "id" and "values", got '
                                  f"{type(obj).__name__}")
    unknown = set(obj) - {"id", "values", "metadata"}
    if unknown:
        return Row(where, problem=f"unknown key {sorted(unknown)[0]!r}; a row has only \"id\", "
                                  f"\"values\" and \"metadata\"")
    try:
        vector_id = _check_id(obj.get("id"))
    except ValueError as exc:
        return Row(where, problem=str(exc))
    if "values" not in obj:
        return Row(where, id=vector_id, problem='the "values" are missing')
    metadata = obj.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        return Row(where, id=vector_id,
                   problem=f'"metadata" must be an object, got {type(metadata).__name__}')
    try:
        v.check_metadata(metadata, '"metadata"')
    except InvalidInputError as exc:
        return Row(where, id=vector_id, problem=str(exc))
    return Row(where, id=vector_id, values=obj["values"], metadata=metadata)


def open_vector_file(path: str, dimension: int, metric: str,
                     ids_path: str | None = None) -> VectorFile:
    """Open ``path`` for reading rows of ``dimension`` values.

    Raises
    ------
    FileError
        The file is empty, of an unknown kind, or a ``.npy`` of the wrong shape.
    OSError
        The file cannot be read.
    """
    if os.path.isdir(path):
        raise FileError(f"{path} is a folder; give a JSON, JSON lines or .npy file")
    return VectorFile(path, _sniff(path), dimension, metric, ids_path)
