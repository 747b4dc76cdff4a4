"""Persistence backends: the abstract contract and the registry that finds them.

Concrete backends (``memory``, ``mmap``, ``hybrid`` and plugins) are loaded by
name through the entry-point group ``jadevec.backends``; nothing concrete is
imported here.
"""

from jadevec.backends.base import (
    Backend,
    DatabaseBackend,
    DatabaseInfo,
    RecoveryReport,
    StoreOptions,
    VerifyReport,
    exact_search,
)
from jadevec.backends.registry import available_backends, load_backend

__all__ = [
    "Backend",
    "DatabaseBackend",
    "DatabaseInfo",
    "RecoveryReport",
    "StoreOptions",
    "VerifyReport",
    "available_backends",
    "exact_search",
    "load_backend",
]
