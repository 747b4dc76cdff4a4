"""Public test helpers for jadevec backends.

:class:`BackendTests` is the conformance suite every backend passes, built-in
or plugin. A backend's test module subclasses it in a few lines::

    from jadevec.testing import BackendTests

    class TestLmdb(BackendTests):
        backend = "lmdb"        # the entry-point name (or the Backend subclass)
        persistent = True       # enables the restart-in-a-new-process tests

See :mod:`jadevec.testing.backend_tests` for every hook.

:func:`run_in_child` runs a function in a forked child process and says how
the child ended (returned, raised, killed by a signal, hung), for tests of
code that may crash or hang the process running it; :class:`ForkedChild` is
the same child as an object, for a test that works beside it and kills it.
"""

from jadevec.testing._child import ChildOutcome, ForkedChild, run_in_child
from jadevec.testing.backend_tests import BackendTests

__all__ = ["BackendTests", "ChildOutcome", "ForkedChild", "run_in_child"]
