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
from collections.abc import Mapping
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
#: What a database name must match (fully).
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
#: The store options every backend accepts, with their defaults.
STORE_OPTIONS = {"read_only": False, "flush_interval": 5.0, "max_open_files": 100}

_F32 = np.dtype(np.float32)
# Dtype kinds accepted as vector input: signed, unsigned, float. Bool ('b') is
# refused: True/False are not coordinates, and accepting them hides mistakes.
_REAL_KINDS = frozenset("iuf")


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


_scan_ids: Any = None


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
    if array.dtype != _F32:
        # Overflow to inf is expected here and reported by the finiteness check.
        with np.errstate(over="ignore", invalid="ignore"):
            array = array.astype(_F32)
    return np.ascontiguousarray(array)


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
    float32, so float64 values beyond float32's range are refused too; a zero
    vector is refused for a cosine database.

    Raises
    ------
    InvalidInputError
        Non-numeric input, wrong number of dimensions, NaN/Inf, zero under cosine.
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
    # Fast path: one dot product. If it is finite and positive, every element
    # is finite (a NaN or inf would make the sum of squares NaN or inf) and the
    # vector is not all zeros. Otherwise (including float32 overflow of the
    # squares, or underflow of tiny values) the exact checks below decide.
    square = array.dot(array)
    if not (square > 0.0 and square < math.inf):
        if not np.isfinite(array).all():
            raise InvalidInputError(
                f"{arg} must be finite, got NaN or infinity after conversion to float32"
            )
        if metric == "cosine" and not array.any():
            raise InvalidInputError(
                f"{arg} must not be all zeros for a cosine database (its direction is undefined)"
            )
    return array


def as_batch(
    vectors: Any, count: int, dimension: int, metric: str, arg: str = "vectors"
) -> np.ndarray:
    """Return ``vectors`` as a C-contiguous float32 array of shape ``(count, dimension)``.

    ``count`` is the number of ids the batch goes with. An empty batch may be
    ``[]`` or an array of shape ``(0, dimension)``.
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
    the input was one 1-D query (so the caller unwraps the one result list)."""
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
    _check_rows(array, metric, arg)
    return array, single


def _check_rows(array: np.ndarray, metric: str, arg: str) -> None:
    """Refuse NaN/Inf anywhere and all-zero rows under cosine, naming the first bad row."""
    if array.size == 0:
        return
    # One pass for the common case, as in as_vector: finite positive squared
    # norms prove every row finite and non-zero; anything else is rechecked exactly.
    if metric == "cosine":
        squares = np.einsum("ij,ij->i", array, array)
        if squares.min() > 0.0 and squares.max() < math.inf:
            return
    else:
        # Only finiteness matters: a finite sum of squares proves every value
        # finite (NaN and Inf propagate), and BLAS computes it at twice einsum's speed.
        flat = array.reshape(-1)
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is rechecked below
            total = np.dot(flat, flat)
        if math.isfinite(total):
            return
    finite = np.isfinite(array).all(axis=1)
    if not finite.all():
        bad = int(np.flatnonzero(~finite)[0])
        raise InvalidInputError(
            f"{arg} must be finite, got NaN or infinity in row {bad} after conversion to float32"
        )
    if metric == "cosine":
        zero = ~array.any(axis=1)
        if zero.any():
            bad = int(np.flatnonzero(zero)[0])
            raise InvalidInputError(
                f"{arg} must not have an all-zero row for a cosine database "
                f"(its direction is undefined), got one in row {bad}"
            )


# ------------------------------------------------------------------------ metadata


def check_metadata(metadata: Any, arg: str = "metadata") -> str | None:
    """Return ``metadata`` serialised as JSON text, or ``None`` for ``None``.

    It must be a ``dict`` whose keys, at every level, are ``str`` and whose
    values ``json.dumps(..., allow_nan=False)`` accepts. Tuples are stored as
    JSON arrays and come back as lists, as with :mod:`json`.
    """
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise InvalidInputError(
            f"{arg} must be a dict or None, got {_type_name(metadata)} {_shown(metadata)}"
        )
    if not metadata:
        return "{}"
    try:
        # ensure_ascii (the default) keeps the text plain ASCII, so a backend
        # can encode it anywhere, even with lone surrogates inside strings.
        text = json.dumps(metadata, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidInputError(
            f"{arg} must be JSON-serialisable (no NaN/Inf, no cycles, only dict, list, "
            f"str, int, float, bool, None), got {_shown(metadata)}: {exc}"
        ) from None
    # json.dumps would silently turn int, float, bool and None keys into
    # strings, which would not round-trip; refuse them instead.
    bad = _non_str_keys(metadata)
    if bad:
        raise InvalidInputError(
            f"{arg} keys must be str, got {_type_name(bad[0])} key {_shown(bad[0])}"
        )
    return text


def _non_str_keys(value: Any) -> list[Any]:
    """The non-``str`` dict keys anywhere inside ``value`` (stops at the first found)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, sub in item.items():
                if not isinstance(key, str):
                    return [key]
                if isinstance(sub, (dict, list, tuple)):
                    stack.append(sub)
        else:
            stack.extend(sub for sub in item if isinstance(sub, (dict, list, tuple)))
    return []


def check_metadatas(metadatas: Any, count: int, arg: str = "metadatas") -> list[str | None] | None:
    """Return one JSON text (or ``None``) per id, or ``None`` when ``metadatas`` is ``None``."""
    if metadatas is None:
        return None
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
