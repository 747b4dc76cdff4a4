"""Finding backends by name through the entry-point group ``jadevec.backends``.

Every backend, built-in or plugin, is declared as an entry point::

    [project.entry-points."jadevec.backends"]
    lmdb = "jadevec_lmdb:LmdbBackend"

The group is read once, on the first call that needs it, and only as names:
no backend module is imported until :func:`load_backend` asks for it, so a
broken plugin costs nothing (and breaks nothing) unless it is used. A plugin
that fails to import raises :class:`~jadevec.errors.BackendLoadError` naming
it and the cause; the other backends keep working.

Shadowing rule: the built-in names ``memory``, ``mmap`` and ``hybrid`` belong
to jadevec. An entry point from another distribution that claims one of them
is ignored with a ``RuntimeWarning`` (and a log record), so installing a
package can never silently replace a built-in. Two plugins claiming the same
new name: the first in distribution-name order wins, with a warning.

When jadevec runs from a source tree that was never installed, its own entry
points are missing from the metadata; the built-in table below then stands in
for them (logged at debug level), so the built-ins are always found.

Thread rule: discovery and loading take one module lock; both are cheap after
the first call.
"""

from __future__ import annotations

import importlib.metadata
import logging
import threading
import warnings
from typing import Any

from jadevec.backends.base import Backend
from jadevec.errors import BackendLoadError, BackendNotFoundError

__all__ = ["ENTRY_POINT_GROUP", "BUILTIN_BACKENDS", "available_backends", "load_backend"]

log = logging.getLogger("jadevec")

#: The entry-point group backends register in.
ENTRY_POINT_GROUP = "jadevec.backends"

#: The built-in backends, as declared in jadevec's own pyproject.toml.
BUILTIN_BACKENDS = {
    "memory": "jadevec.backends.memory:MemoryBackend",
    "mmap": "jadevec.backends.mmap:MmapBackend",
    "hybrid": "jadevec.backends.hybrid:HybridBackend",
}

_lock = threading.Lock()
# name -> entry point (or, for a built-in missing from the metadata, a
# synthetic one built from BUILTIN_BACKENDS); None until first discovery.
_entry_points: dict[str, importlib.metadata.EntryPoint] | None = None
# name -> backend class, filled on first successful load.
_loaded: dict[str, type[Backend]] = {}


def _dist_name(ep: importlib.metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.name if dist is not None else "<unknown distribution>"


def _discover() -> dict[str, importlib.metadata.EntryPoint]:
    """Read the entry-point group once (names only, nothing imported)."""
    global _entry_points
    if _entry_points is not None:
        return _entry_points
    found: dict[str, importlib.metadata.EntryPoint] = {}
    eps = sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP),
                 key=lambda ep: (ep.name, _dist_name(ep)))
    for ep in eps:
        if ep.name in BUILTIN_BACKENDS and ep.value != BUILTIN_BACKENDS[ep.name]:
            message = (
                f"ignoring backend entry point {ep.name!r} = {ep.value!r} from "
                f"{_dist_name(ep)}: {ep.name!r} is a built-in jadevec backend and "
                f"cannot be replaced; register the plugin under another name"
            )
            log.warning(message)
            warnings.warn(message, RuntimeWarning, stacklevel=3)
            continue
        previous = found.get(ep.name)
        if previous is not None and previous.value != ep.value:
            message = (
                f"backend {ep.name!r} is registered twice: {previous.value!r} from "
                f"{_dist_name(previous)} (used) and {ep.value!r} from {_dist_name(ep)} (ignored)"
            )
            log.warning(message)
            warnings.warn(message, RuntimeWarning, stacklevel=3)
            continue
        found[ep.name] = ep
    for name, value in BUILTIN_BACKENDS.items():
        if name not in found:
            log.debug("built-in backend %r not in the installed metadata; using %s", name, value)
            found[name] = importlib.metadata.EntryPoint(name, value, ENTRY_POINT_GROUP)
    _entry_points = found
    return found


def available_backends() -> list[str]:
    """Return the names of every registered backend, sorted.

    Names are read from the entry points without importing any backend, so
    a plugin that would fail to import is still listed (loading it raises
    :class:`~jadevec.errors.BackendLoadError`).

    Returns
    -------
    list[str]
        For example ``['hybrid', 'lmdb', 'memory', 'mmap']``.
    """
    with _lock:
        return sorted(_discover())


def load_backend(name: str) -> type[Backend]:
    """Return the backend class registered under ``name``, importing it on first use.

    Parameters
    ----------
    name : str
        An entry-point name of the group ``jadevec.backends``.

    Returns
    -------
    type[Backend]
        The class; it is cached, so later calls import nothing.

    Raises
    ------
    BackendNotFoundError
        No backend has this name; the message lists the available ones.
    BackendLoadError
        The backend is registered but its module failed to import, or the
        object it names is not a :class:`~jadevec.backends.base.Backend`
        subclass; the message names the backend, its target and the cause.
    """
    with _lock:
        cls = _loaded.get(name)
        if cls is not None:
            return cls
        eps = _discover()
        ep = eps.get(name) if isinstance(name, str) else None
        if ep is None:
            raise BackendNotFoundError(
                f"no jadevec backend named {name!r}; available: {', '.join(sorted(eps))} "
                f"(backends register in the entry-point group {ENTRY_POINT_GROUP!r})"
            )
        try:
            obj: Any = ep.load()
        except Exception as exc:  # any import-time failure of a plugin, reported by name
            raise BackendLoadError(
                f"backend {name!r} ({ep.value} from {_dist_name(ep)}) failed to load: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if not (isinstance(obj, type) and issubclass(obj, Backend)):
            raise BackendLoadError(
                f"backend {name!r} ({ep.value} from {_dist_name(ep)}) is not a subclass of "
                f"jadevec.backends.base.Backend, got {obj!r}"
            )
        _loaded[name] = obj
        log.debug("loaded backend %r from %s", name, ep.value)
        return obj


def _reset() -> None:
    """Forget discovered entry points and loaded classes (tests that fake plugins use it)."""
    global _entry_points
    with _lock:
        _entry_points = None
        _loaded.clear()
