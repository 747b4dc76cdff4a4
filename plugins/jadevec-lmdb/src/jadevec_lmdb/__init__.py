"""jadevec-lmdb: a jadevec backend on LMDB with full transactional durability.

Install it next to jadevec and open a store with it::

    import jadevec
    store = jadevec.open("vectors", backend="lmdb")

Every acknowledged write is one committed LMDB transaction, flushed to disk
before the call returns (``lmdb_sync=True``, the default). A batch is one
transaction: it is stored whole or not at all, which is stronger than the
core contract's "a prefix of the batch". See README.md for the guarantees.

The package registers :class:`LmdbBackend` under the entry point
``jadevec.backends: lmdb``; it uses only jadevec's public API,
:mod:`jadevec.backends.base` and :mod:`jadevec.errors`.
"""

from jadevec_lmdb._backend import LmdbBackend
from jadevec_lmdb._database import LmdbDatabase
from jadevec_lmdb._environment import LmdbBackendError

__all__ = ["LmdbBackend", "LmdbBackendError", "LmdbDatabase"]
__version__ = "0.1.0"
