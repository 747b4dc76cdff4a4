"""jadevec: an embedded, persistent vector store with a Cython core and SIMD exact search.

>>> import jadevec
>>> with jadevec.open("vectors", backend="hybrid") as store:          # doctest: +SKIP
...     db = store.create_database("docs", dimension=384)
...     db.store("a", embedding, metadata={"title": "A"})
...     db.search(query, k=5)

This package only re-exports the public names: :func:`open`, :class:`Store`,
:class:`Database`, :func:`available_backends`, :func:`simd_info`,
:func:`install_signal_handlers` and every error class. Importing it loads no
backend (each is imported on first use) and installs no signal handler.
"""

from jadevec._api import Database, Store, open, simd_info
from jadevec._shutdown import install_signal_handlers
from jadevec.backends.registry import available_backends
from jadevec.errors import (
    BackendLoadError,
    BackendNotFoundError,
    CorruptionError,
    DatabaseExistsError,
    DatabaseNotFoundError,
    DimensionMismatchError,
    InvalidInputError,
    InvalidNameError,
    JadevecError,
    ReadOnlyError,
    SimdUnavailableError,
    StorageFullError,
    StoreClosedError,
    StoreFailedError,
    StoreLockedError,
    StoreNotFoundError,
    UnknownOptionError,
    UnsupportedError,
    UnsupportedVersionError,
    VectorNotFoundError,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "open",
    "Store",
    "Database",
    "available_backends",
    "simd_info",
    "install_signal_handlers",
    "JadevecError",
    "InvalidInputError",
    "InvalidNameError",
    "DimensionMismatchError",
    "DatabaseExistsError",
    "DatabaseNotFoundError",
    "VectorNotFoundError",
    "StoreClosedError",
    "StoreNotFoundError",
    "StoreLockedError",
    "ReadOnlyError",
    "CorruptionError",
    "UnsupportedVersionError",
    "StorageFullError",
    "StoreFailedError",
    "UnsupportedError",
    "UnknownOptionError",
    "BackendNotFoundError",
    "BackendLoadError",
    "SimdUnavailableError",
]
