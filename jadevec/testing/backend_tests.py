"""The conformance suite every jadevec backend passes: :class:`BackendTests`.

It exercises a backend only through the public API (``jadevec.open``,
``Store``, ``Database``), so it checks the whole contract of docs/api_documentation.md as a
user sees it: database lifecycle and name rules, CRUD, batches, the
edge-case table, metadata, exact search against a numpy reference for every
metric, listing and counting, closed and read-only stores, thread safety
against a model, and, for persistent backends, that everything survives a
close and a reopen *in a new process*.

How to use it
-------------
Subclass it in a test module of your backend package (pytest collects the
subclass; the name must start with ``Test``)::

    from jadevec.testing import BackendTests

    class TestMyBackend(BackendTests):
        backend = "mybackend"   # entry-point name, or the Backend subclass itself
        persistent = True       # run the restart tests (close, reopen in a new process)
        supports_metadata = True

Hooks you may override:

``make_store(self, tmp_path, **options) -> jadevec.Store``
    Open the store under test. The default is
    ``jadevec.open(self.store_path(tmp_path), backend=self.backend, **options)``.
    Every test that needs a second handle on the same data calls it again
    with the same ``tmp_path``.
``store_path(self, tmp_path) -> Path | None``
    The folder; default ``tmp_path / "store"`` when ``persistent``, else ``None``.
``open_read_only(self, tmp_path) -> jadevec.Store``
    Open the store read-only, as a reader beside a writer does. The default
    is ``make_store(tmp_path, read_only=True)``.
``reopen_source(self, tmp_path) -> str``
    A Python expression, evaluated in a new process after ``import jadevec``,
    that reopens the store read-write. Override it together with
    ``make_store`` if your store needs more than a path and a backend name.
``raw_vector(self, store, database, vector_id) -> np.ndarray | None``
    Read a stored vector *behind* the backend's own read path (its files,
    its tables, its private buffers), so that writes are checked against raw
    state and not only against the backend's ``retrieve``. The default raises
    ``NotImplementedError`` and the tests that use it are skipped.
``bulk_options`` (a class attribute, default ``{}``)
    Extra ``make_store`` options for the tests that make thousands of
    single-vector calls; a backend that syncs every call may turn that off
    there (the LMDB plugin sets ``{"lmdb_sync": False}``).

Fixtures it defines (available to extra tests in your subclass): ``store``
(from ``make_store``, closed afterwards), ``db`` (a cosine database of
dimension 8 in it) and ``gen`` (a seeded ``numpy.random.Generator``).

The tests live in parts, one module each, combined here: catalog
(lifecycle, names, options, closed and read-only stores), vectors (CRUD,
batches, metadata), search (numpy reference, listing, compaction, verify),
durability (threads, restart in a new process), lifecycle (the unhappy
paths: a full disk, fork, chdir, permissions, a dropped store), damage
(persistent backends: every file of a closed store truncated to half, to
nothing and with its middle bytes flipped must give a jadevec error or an
``OSError`` in a forked child, never a signal, a hang or a leaked builtin
error; a writer killed with ``os._exit`` is reported by the next open's
``recovery_report`` and loses nothing it acknowledged; deleting 90% of 20,000
vectors and compacting leaves at most 40% of the folder's bytes on disk, the
rest bit-exact), backup (persistent backends: ``Store.backup`` while a writer
thread goes on gives a copy that opens without recovery, passes ``verify()``
and holds every vector acknowledged before the call bit-exact; an existing
destination is refused; a backend that is not persistent raises
``UnsupportedError``); and, under the ``slow`` and ``torture`` markers
(register them in your pytest configuration): stress (read-only processes
beside a writer; a writer killed during create, delete, compact and close;
``JADEVEC_STRESS_CYCLES`` cycles, default 200), kills during mixed
multi-threaded work checked against every acknowledgement, scale (dimensions
1 to 65,536, 10,000 vectors across a restart, 1M vectors in 10 databases,
16 threads), and disk faults (persistent backends on Linux: simulated power
losses, and ENOSPC, EIO and EFBIG injected at file-system calls of every
operation). The suite uses only ``pytest``, ``numpy`` and jadevec's public
API.
"""

from __future__ import annotations

from jadevec.testing._backup_tests import BackupTests
from jadevec.testing._catalog_tests import CatalogTests
from jadevec.testing._damage_tests import DamageTests
from jadevec.testing._disk_fault_tests import DiskFaultTests
from jadevec.testing._durability_tests import DurabilityTests
from jadevec.testing._lifecycle_tests import LifecycleTests
from jadevec.testing._scale_tests import ScaleTests
from jadevec.testing._search_tests import SearchTests
from jadevec.testing._stress_tests import StressTests
from jadevec.testing._torture_tests import KillTortureTests
from jadevec.testing._vector_tests import VectorTests

__all__ = ["BackendTests"]


class BackendTests(CatalogTests, VectorTests, SearchTests, DurabilityTests, LifecycleTests,
                   DamageTests, StressTests, KillTortureTests, DiskFaultTests, BackupTests,
                   ScaleTests):
    """Conformance tests for one backend; subclass it and set the class attributes.

    Attributes
    ----------
    backend : str or type[Backend]
        The backend under test: an entry-point name or a Backend subclass
        (default ``"memory"``).
    persistent : bool
        Whether data must survive ``close()`` and a new process (default False).
    supports_metadata : bool
        Whether the backend stores per-vector metadata (default True).
    durable_on_return : bool
        Whether every write is durable when its call returns (default False);
        then the power-loss run asserts that no state lacks any.
    """
