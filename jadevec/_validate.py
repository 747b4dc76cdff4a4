"""Checks at the public API edge: every argument is validated and coerced once.

The public API (:mod:`jadevec._api`) calls these before it calls a backend, so
a backend only ever sees the shapes described in :mod:`jadevec.backends.base`:
plain ``str`` ids, C-contiguous finite float32 arrays of the right dimension,
metadata as JSON text and ``k`` as an ``int``. A rejected argument raises a
typed error from :mod:`jadevec.errors` whose message names the argument, what
was expected and what was given; nothing has been written at that point.

Speed matters here: a single ``store`` or ``retrieve`` should cost little more
than the backend call itself. So each check has a fast path for the common
case (a plain ASCII ``str`` id; an already float32, C-contiguous numpy array)
that allocates nothing, and only the slow path converts or builds messages.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import ItemsView, KeysView, Mapping, Set, ValuesView
from typing import Any

import numpy as np

from jadevec.backends.base import METRICS, StoreOptions
from jadevec.errors import (
    DimensionMismatchError,
    InvalidInputError,
    InvalidNameError,
    UnknownOptionError,
)

#: Longest id, in UTF-8 bytes.
MAX_ID_BYTES = 1024
#: Largest dimension a database may have.
MAX_DIMENSION = 65_536
#: Deepest metadata, in levels of dict and list (the top-level dict is level 1).
#: Every reader must parse back what was written, and json.loads recurses once
#: per level: 64 leaves it far from any recursion limit.
MAX_METADATA_DEPTH = 64
#: What a database name must match (fully).
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
#: The store options every backend accepts, with their defaults.
STORE_OPTIONS = {"read_only": False, "flush_interval": 5.0, "max_open_files": 100}

_F32 = np.dtype(np.float32)
# Dtype kinds accepted as vector input: signed, unsigned, float. Bool ('b') is
# refused: True/False are not coordinates, and accepting them hides mistakes.
_REAL_KINDS = frozenset("iuf")
# A vector is refused when its squared Euclidean norm, summed exactly (in
# float64), exceeds the largest float32: the kernels would score it as inf.
_NORM2_MAX = float(np.finfo(np.float32).max)
# The fast checks sum squares in float32 and accept a total below 2**127, half
# the float32 range. Float32 rounding cannot lose half of a row's squares (a
# row has at most MAX_DIMENSION of them), so a total under 2**127 proves every
# row within _NORM2_MAX; anything larger is rechecked exactly, row by row.
_FAST_NORM2 = 2.0**127
# Python bools and numpy bools, which numpy silently turns into 1 and 0 when
# they are mixed with numbers in a list.
_BOOL_TYPES = (bool, np.bool_)
# Exact types that need no closer look (type(True) is bool, not int).
_PLAIN_NUMBERS = frozenset({float, int})
_PLAIN_LISTS = frozenset({list, tuple})


def _shown(value: Any, limit: int = 60) -> str:
    """A short repr for error messages (a huge list must not flood the message)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_name(value: Any) -> str:
    return type(value).__name__


# ----------------------------------------------------------------------------- ids


def check_id(vector_id: Any, arg: str = "id") -> str:
    """Return ``vector_id`` as a plain ``str`` of 1 to 1,024 UTF-8 bytes.

    Raises
    ------
    InvalidInputError
        For a non-``str``, an empty or over-long id, or one with a lone
        surrogate (which has no UTF-8 encoding).
    """
    # Fast path: a plain ASCII str has as many bytes as characters, and
    # str.isascii() is O(1) on CPython (it reads the string's kind flag).
    if type(vector_id) is str and 0 < len(vector_id) <= MAX_ID_BYTES and vector_id.isascii():
        return vector_id
    if not isinstance(vector_id, str):
        raise InvalidInputError(
            f"{arg} must be a str, got {_type_name(vector_id)} {_shown(vector_id)}"
        )
    if not vector_id:
        raise InvalidInputError(
            f"{arg} must be a non-empty str of 1 to {MAX_ID_BYTES} UTF-8 bytes, got ''"
        )
    try:
        size = len(vector_id.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidInputError(
            f"{arg} must be encodable as UTF-8, got {_shown(vector_id)} "
            f"(lone surrogate at index {exc.start})"
        ) from None
    if size > MAX_ID_BYTES:
        raise InvalidInputError(
            f"{arg} must be at most {MAX_ID_BYTES} UTF-8 bytes, got {size} bytes "
            f"({_shown(vector_id)})"
        )
    return str(vector_id)  # a str subclass becomes a plain str for the backend


def is_valid_id(vector_id: Any) -> bool:
    """Whether ``vector_id`` could name a stored vector (used by ``x in db``)."""
    try:
        check_id(vector_id)
    except InvalidInputError:
        return False
    return True


def check_ids(ids: Any, arg: str = "ids", *, unique: bool = True) -> list[str]:
    """Return ``ids`` as a list of valid ids.

    Parameters
    ----------
    ids : iterable of str
        Any iterable except a ``str`` or ``bytes`` (which would iterate characters).
    unique : bool
        Refuse an id that appears twice (for writes; reads may repeat ids).
    """
    if isinstance(ids, (str, bytes)) or not _is_iterable(ids):
        raise InvalidInputError(
            f"{arg} must be a list or other iterable of str, got {_type_name(ids)} {_shown(ids)}"
        )
    if isinstance(ids, _UNORDERED):
        # Ids are paired with rows (and results) by position: an unordered
        # collection would pair them in hash order, which changes between runs.
        raise InvalidInputError(
            f"{arg} must be an ordered sequence of str (pass a list, for example "
            f"sorted(ids)), got unordered {_type_name(ids)} {_shown(ids)}"
        )
    out = list(ids)  # our own list: the caller may not mutate it under the backend
    # Fast path, one C pass (scan_ids): exact str, ASCII (so bytes == chars),
    # 1..MAX_ID_BYTES long, and no repeats. Anything else is checked the slow
    # way, which also finds the offending position for the message.
    bad, repeat = (_scan_ids or _load_scan_ids())(out, MAX_ID_BYTES)
    if bad >= 0 and repeat < 0:
        out = [check_id(v, f"{arg}[{i}]") for i, v in enumerate(out)]
        repeat = -1 if len(set(out)) == len(out) else 0
    if unique and repeat >= 0:
        seen: dict[str, int] = {}
        for i, v in enumerate(out):
            if v in seen:
                raise InvalidInputError(
                    f"{arg} must not repeat an id, got {_shown(v)} at positions {seen[v]} and {i}"
                )
            seen[v] = i
    return out


# Collections without an order of their own. dict keeps insertion order, but
# passing a mapping (or a view of one) as ids is almost always a mistake.
_UNORDERED = (Set, Mapping, KeysView, ValuesView, ItemsView)

_scan_ids: Any = None
_squared_norm: Any = None


def _load_squared_norm() -> Any:
    # Bound on first use: importing jadevec loads no compiled module.
    global _squared_norm
    from jadevec._core.kernels import squared_norm

    _squared_norm = squared_norm
    return squared_norm


def _load_scan_ids() -> Any:
    # Bound on first use: importing jadevec loads no compiled module.
    global _scan_ids
    from jadevec._core.id_index import scan_ids

    _scan_ids = scan_ids
    return scan_ids


def _is_iterable(value: Any) -> bool:
    try:
        iter(value)
    except TypeError:
        return False
    return True


# ---------------------------------------------------------------- names, dims, metrics


def check_name(name: Any, arg: str = "name") -> str:
    """Return ``name`` if it is a valid database name, else raise ``InvalidNameError``."""
    if isinstance(name, str) and NAME_PATTERN.fullmatch(name):
        return str(name)
    expected = (
        "a database name matching [A-Za-z0-9][A-Za-z0-9._-]{0,127} (a letter or digit, "
        "then up to 127 letters, digits, '.', '_' or '-')"
    )
    raise InvalidNameError(f"{arg} must be {expected}, got {_type_name(name)} {_shown(name)}")


def is_valid_name(name: Any) -> bool:
    """Whether ``name`` could name a database."""
    return isinstance(name, str) and NAME_PATTERN.fullmatch(name) is not None


def _as_int(value: Any) -> int | None:
    """``value`` as an int if it is a Python or numpy integer (never a bool), else None."""
    if type(value) is int:
        return value
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    return None


def check_dimension(dimension: Any, arg: str = "dimension") -> int:
    """Return ``dimension`` as an int in 1..65,536."""
    value = _as_int(dimension)
    if value is None or not 1 <= value <= MAX_DIMENSION:
        raise InvalidInputError(
            f"{arg} must be an int from 1 to {MAX_DIMENSION}, "
            f"got {_type_name(dimension)} {_shown(dimension)}"
        )
    return value


def check_metric(metric: Any, arg: str = "metric") -> str:
    """Return ``metric`` if it is one of ``"cosine"``, ``"dot"``, ``"l2"``."""
    if isinstance(metric, str) and metric in METRICS:
        return str(metric)
    raise InvalidInputError(
        f"{arg} must be one of {', '.join(map(repr, METRICS))}, "
        f"got {_type_name(metric)} {_shown(metric)}"
    )


def check_k(k: Any, arg: str = "k") -> int:
    """Return ``k`` as an int >= 1 (a Python or numpy integer; bool, float, str refused)."""
    value = _as_int(k)
    if value is None or value < 1:
        raise InvalidInputError(
            f"{arg} must be an int >= 1, got {_type_name(k)} {_shown(k)}"
        )
    return value


# ------------------------------------------------------------------------- vectors


def _to_float32(value: Any, arg: str) -> np.ndarray:
    """Convert array-like input to a C-contiguous float32 array (the slow path)."""
    if isinstance(value, (str, bytes)):
        raise InvalidInputError(f"{arg} must be numbers, got {_type_name(value)} {_shown(value)}")
    try:
        array = np.asarray(value)
    except (ValueError, TypeError, OverflowError) as exc:
        # Ragged lists ("inhomogeneous shape") and objects numpy cannot read.
        raise InvalidInputError(
            f"{arg} must be a rectangular array of real numbers, got {_type_name(value)} "
            f"({exc})"
        ) from None
    if array.dtype.kind not in _REAL_KINDS:
        raise InvalidInputError(
            f"{arg} must hold real numbers (int or float), got dtype {array.dtype} "
            f"from {_type_name(value)} {_shown(value)}"
        )
    if isinstance(value, (list, tuple)):
        # numpy turns [1, True, 0, False] into an int array, so bools mixed with
        # numbers are only visible in the list itself.
        found = _find_bool(value)
        if found is not None:
            where, what = found
            raise InvalidInputError(
                f"{arg} must hold real numbers (int or float), not bool: got {what} at "
                f"{arg}{where}"
            )
    if array.dtype != _F32:
        # Overflow to inf is expected here and reported by the finiteness check.
        with np.errstate(over="ignore", invalid="ignore"):
            array = array.astype(_F32)
    return np.ascontiguousarray(array)


def _has_bool(seq: list | tuple) -> bool:
    """Whether a bool (Python or numpy, or a bool array) is anywhere in nested lists."""
    stack = [seq]
    while stack:
        item = stack.pop()
        kinds = set(map(type, item))  # one C-level pass over the elements
        if kinds <= _PLAIN_NUMBERS:  # the common row: only float and int
            continue
        if kinds <= _PLAIN_LISTS:  # the common outer list: only rows
            stack.extend(item)
            continue
        if any(issubclass(kind, _BOOL_TYPES) for kind in kinds):
            return True
        if any(issubclass(kind, (list, tuple, np.ndarray)) for kind in kinds):
            for sub in item:
                if isinstance(sub, (list, tuple)):
                    stack.append(sub)
                elif isinstance(sub, np.ndarray) and sub.dtype.kind == "b":
                    return True
    return False


def _find_bool(seq: list | tuple) -> tuple[str, str] | None:
    """``(position, description)`` of the first bool in nested lists, or None."""
    if not _has_bool(seq):
        return None
    # Rare: walk again in order for the message, one iterator per open level.
    stack = [("", iter(enumerate(seq)))]
    while stack:
        path, items = stack[-1]
        for i, sub in items:
            if isinstance(sub, _BOOL_TYPES):
                return f"{path}[{i}]", repr(bool(sub))
            if isinstance(sub, np.ndarray) and sub.dtype.kind == "b":
                return f"{path}[{i}]", "an array of dtype bool"
            if isinstance(sub, (list, tuple)):
                stack.append((f"{path}[{i}]", iter(enumerate(sub))))
                break
        else:
            stack.pop()
    return None


def _fast(value: Any) -> bool:
    """Whether ``value`` is already what backends take: a C-contiguous float32 ndarray."""
    return (
        type(value) is np.ndarray
        and value.dtype is _F32
        and value.flags.c_contiguous
    )


def as_vector(vector: Any, dimension: int, metric: str, arg: str = "vector") -> np.ndarray:
    """Return ``vector`` as a C-contiguous float32 array of shape ``(dimension,)``.

    An input that already is one is returned as is, not copied (backends copy
    what they keep). NaN and infinity are refused after the conversion to
    float32, so float64 values beyond float32's range are refused too; so is
    a vector whose squared Euclidean norm exceeds the largest float32 (its
    scores would overflow), and a zero vector for a cosine database. Bools,
    alone or mixed with numbers, are refused.

    Raises
    ------
    InvalidInputError
        Non-numeric input, wrong number of dimensions, NaN/Inf, a squared norm
        beyond float32, zero under cosine.
    DimensionMismatchError
        A 1-D vector whose length is not ``dimension``.
    """
    array = vector if _fast(vector) else _to_float32(vector, arg)
    if array.ndim != 1:
        raise InvalidInputError(
            f"{arg} must be 1-D of length {dimension}, got an array of shape {array.shape}"
        )
    if array.shape[0] != dimension:
        raise DimensionMismatchError(
            f"{arg} must have length {dimension} (the database's dimension), "
            f"got length {array.shape[0]}"
        )
    # Fast path: one dot product. If it is positive and below _FAST_NORM2,
    # every element is finite (a NaN or inf would make the sum of squares NaN
    # or inf), the squared norm is within float32 and the vector is not all
    # zeros. Otherwise (float32 overflow of the squares, or underflow of tiny
    # values) the exact checks decide.
    square = (_squared_norm or _load_squared_norm())(array)  # float64: no overflow, no warning
    if not (square > 0.0 and square < _FAST_NORM2):
        _refuse_bad_rows(array.reshape(1, -1), metric, arg, None, rows=False)
    return array


def as_batch(
    vectors: Any, count: int, dimension: int, metric: str, arg: str = "vectors"
) -> np.ndarray:
    """Return ``vectors`` as a C-contiguous float32 array of shape ``(count, dimension)``.

    ``count`` is the number of ids the batch goes with. An empty batch may be
    ``[]`` or an array of shape ``(0, dimension)``. Each row is checked as
    :func:`as_vector` checks a vector; a message names the first bad row.
    """
    array = vectors if _fast(vectors) else _to_float32(vectors, arg)
    if array.ndim == 1 and array.shape[0] == 0 and count == 0:
        return np.empty((0, dimension), dtype=_F32)
    if array.ndim != 2:
        raise InvalidInputError(
            f"{arg} must be 2-D of shape ({count}, {dimension}), "
            f"got an array of shape {array.shape}"
        )
    if array.shape[0] != count:
        raise InvalidInputError(
            f"{arg} must have one row per id ({count}), got {array.shape[0]} rows"
        )
    if array.shape[1] != dimension:
        raise DimensionMismatchError(
            f"{arg} must have {dimension} columns (the database's dimension), "
            f"got shape {array.shape}"
        )
    _check_rows(array, metric, arg)
    return array


def as_queries(
    query: Any, dimension: int, metric: str, arg: str = "query"
) -> tuple[np.ndarray, bool]:
    """Return ``(queries, single)``: queries of shape ``(m, dimension)``, and whether
    the input was one 1-D query (so the caller unwraps the one result list).

    Each query is checked as :func:`as_vector` checks a vector."""
    array = query if _fast(query) else _to_float32(query, arg)
    if array.ndim == 1:
        if array.shape[0] != dimension:
            raise DimensionMismatchError(
                f"{arg} must have length {dimension} (the database's dimension), "
                f"got length {array.shape[0]}"
            )
        array = array.reshape(1, dimension)
        single = True
    elif array.ndim == 2:
        if array.shape[1] != dimension:
            raise DimensionMismatchError(
                f"{arg} must have {dimension} columns (the database's dimension), "
                f"got shape {array.shape}"
            )
        single = False
    else:
        raise InvalidInputError(
            f"{arg} must be 1-D (one query) or 2-D (one query per row), got shape {array.shape}"
        )
    _check_rows(array, metric, arg, rows=not single)
    return array, single


def _check_rows(array: np.ndarray, metric: str, arg: str, rows: bool = True) -> None:
    """Refuse NaN/Inf anywhere, squared norms beyond float32 and all-zero rows under
    cosine, naming the first bad row (when ``rows``)."""
    if array.size == 0:
        return
    # One pass for the common case, as in as_vector: positive squared norms
    # below _FAST_NORM2 prove every row finite, within range and non-zero;
    # anything else is rechecked exactly.
    squares = None
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is rechecked
        if metric == "cosine":
            squares = np.einsum("ij,ij->i", array, array)
            if squares.min() > 0.0 and squares.max() < _FAST_NORM2:
                return
        else:
            # Only finiteness and range matter: the total of all squares bounds
            # each row's (NaN and Inf propagate), and BLAS computes it at twice
            # einsum's speed.
            flat = array.reshape(-1)
            if np.dot(flat, flat) < _FAST_NORM2:
                return
    _refuse_bad_rows(array, metric, arg, squares, rows)


def _refuse_bad_rows(
    array: np.ndarray, metric: str, arg: str, squares: np.ndarray | None, rows: bool
) -> None:
    """The exact checks behind the fast ones: raise for the first bad row, if any.

    ``squares`` are the rows' float32 squared norms, if already computed.
    """
    where = " in row {}" if rows else ""
    finite = np.isfinite(array).all(axis=1)
    if not finite.all():
        bad = int(np.flatnonzero(~finite)[0])
        raise InvalidInputError(
            f"{arg} must be finite, got NaN or infinity{where.format(bad)} "
            f"after conversion to float32"
        )
    if squares is None:
        with np.errstate(over="ignore", invalid="ignore"):
            squares = np.einsum("ij,ij->i", array, array)
    # Rows whose float32 sum of squares is large or overflowed are summed again
    # in float64, where the squares of float32 values are exact and cannot
    # overflow; a few rows at a time, to bound the float64 copy.
    suspects = np.flatnonzero(~(squares < _FAST_NORM2))
    step = max(1, (1 << 20) // max(array.shape[1], 1))
    for start in range(0, suspects.size, step):
        part = suspects[start : start + step]
        wide = array[part].astype(np.float64)
        exact = np.einsum("ij,ij->i", wide, wide)
        over = np.flatnonzero(exact > _NORM2_MAX)
        if over.size:
            bad = int(part[over[0]])
            raise InvalidInputError(
                f"{arg} must have a squared norm (sum of squares) of at most {_NORM2_MAX:.6g} "
                f"(the largest float32; scores would overflow), got "
                f"{float(exact[over[0]]):.6g}{where.format(bad)}"
            )
    if metric == "cosine":
        zero = ~array.any(axis=1)
        if zero.any():
            bad = int(np.flatnonzero(zero)[0])
            if rows:
                raise InvalidInputError(
                    f"{arg} must not have an all-zero row for a cosine database "
                    f"(its direction is undefined), got one in row {bad}"
                )
            raise InvalidInputError(
                f"{arg} must not be all zeros for a cosine database (its direction is undefined)"
            )


# ------------------------------------------------------------------------ metadata


def check_metadata(metadata: Any, arg: str = "metadata") -> str | None:
    """Return ``metadata`` serialised as JSON text, or ``None`` for ``None``.

    It must be a ``dict`` whose keys, at every level, are ``str``, nested at
    most :data:`MAX_METADATA_DEPTH` levels deep (dicts and lists; the
    metadata dict itself is level 1), and whose values
    ``json.dumps(..., allow_nan=False)`` accepts. Tuples are stored as JSON
    arrays and come back as lists, as with :mod:`json`.
    """
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise InvalidInputError(
            f"{arg} must be a dict or None, got {_type_name(metadata)} {_shown(metadata)}"
        )
    if not metadata:
        return "{}"
    # Before json.dumps, which recurses once per level: checked here without
    # recursion, any depth (or a cycle) is refused with a clear message.
    problem = _shape_problem(metadata)
    if problem:
        raise InvalidInputError(f"{arg} {problem}")
    try:
        # ensure_ascii (the default) keeps the text plain ASCII, so a backend
        # can encode it anywhere, even with lone surrogates inside strings.
        text = json.dumps(metadata, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidInputError(
            f"{arg} must be JSON-serialisable (no NaN/Inf, no cycles, only dict, list, "
            f"str, int, float, bool, None), got {_shown(metadata)}: {exc}"
        ) from None
    return text


def _shape_problem(value: dict) -> str | None:
    """What makes ``value`` unstorable besides its leaf values, or None.

    A non-``str`` key at any level (json.dumps would silently turn int, float,
    bool and None keys into strings, which would not round-trip), nesting
    deeper than MAX_METADATA_DEPTH, or a container inside itself. An
    iterative depth-first walk, so no depth can exhaust the stack.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    path: list[int] = []  # ids of the containers above the item being looked at
    while stack:
        item, depth = stack.pop()
        del path[depth - 1 :]
        if depth > MAX_METADATA_DEPTH:
            if id(item) in path:
                return "must not contain itself (a dict or list inside itself has no JSON form)"
            return (
                f"must be nested at most {MAX_METADATA_DEPTH} levels deep (dicts and lists; "
                f"the metadata dict itself is level 1), got deeper"
            )
        path.append(id(item))
        if isinstance(item, dict):
            for key, sub in item.items():
                if not isinstance(key, str):
                    return f"keys must be str, got {_type_name(key)} key {_shown(key)}"
                if isinstance(sub, (dict, list, tuple)):
                    stack.append((sub, depth + 1))
        else:
            stack.extend((sub, depth + 1) for sub in item if isinstance(sub, (dict, list, tuple)))
    return None


def check_metadatas(metadatas: Any, count: int, arg: str = "metadatas") -> list[str | None]:
    """Return one JSON text (or ``None``) per id; the caller handles ``metadatas=None``."""
    if isinstance(metadatas, (str, bytes, dict)) or not _is_iterable(metadatas):
        raise InvalidInputError(
            f"{arg} must be a list of dict or None (one per id) or None, "
            f"got {_type_name(metadatas)} {_shown(metadatas)}"
        )
    texts = [check_metadata(m, f"{arg}[{i}]") for i, m in enumerate(metadatas)]
    if len(texts) != count:
        raise InvalidInputError(f"{arg} must have one entry per id ({count}), got {len(texts)}")
    return texts


# ------------------------------------------------------------------------- options


def check_options(options: Mapping[str, Any], extra_options: Mapping[str, Any]) -> StoreOptions:
    """Validate ``jadevec.open``'s keyword options into a :class:`StoreOptions`.

    Parameters
    ----------
    options : Mapping[str, Any]
        The keyword arguments given to ``jadevec.open`` besides path and backend.
    extra_options : Mapping[str, Any]
        The backend's own options (name -> default); their values are checked
        by the backend.

    Raises
    ------
    UnknownOptionError
        An option neither common nor the backend's (named in the message).
    InvalidInputError
        A bad value for a common option.
    """
    unknown = [name for name in options if name not in STORE_OPTIONS and name not in extra_options]
    if unknown:
        known = sorted([*STORE_OPTIONS, *extra_options])
        raise UnknownOptionError(
            f"unknown store option {unknown[0]!r}; this backend accepts {', '.join(known)}"
        )
    read_only = options.get("read_only", STORE_OPTIONS["read_only"])
    if not isinstance(read_only, bool):
        raise InvalidInputError(
            f"read_only must be a bool, got {_type_name(read_only)} {_shown(read_only)}"
        )
    interval = options.get("flush_interval", STORE_OPTIONS["flush_interval"])
    if (
        isinstance(interval, (bool, np.bool_))
        or not isinstance(interval, (int, float, np.integer, np.floating))
        or not math.isfinite(interval)
        or interval < 0
    ):
        raise InvalidInputError(
            f"flush_interval must be a finite number of seconds >= 0 (0 turns background "
            f"checkpoints off), got {_type_name(interval)} {_shown(interval)}"
        )
    max_open = _as_int(options.get("max_open_files", STORE_OPTIONS["max_open_files"]))
    if max_open is None or max_open < 1:
        given = options["max_open_files"]
        raise InvalidInputError(
            f"max_open_files must be an int >= 1, got {_type_name(given)} {_shown(given)}"
        )
    extra = {name: options.get(name, default) for name, default in extra_options.items()}
    return StoreOptions(
        read_only=read_only,
        flush_interval=float(interval),
        max_open_files=max_open,
        extra=extra,
    )
