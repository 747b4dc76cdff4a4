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

__all__ = [
    "Backend",
    "DatabaseBackend",
    "DatabaseInfo",
    "RecoveryReport",
    "StoreOptions",
    "VerifyReport",
    "exact_search",
]
