"""Public test helpers for jadevec backends.

:class:`BackendTests` is the conformance suite every backend passes, built-in
or plugin. A backend's test module subclasses it in a few lines::

    from jadevec.testing import BackendTests

    class TestLmdb(BackendTests):
        backend = "lmdb"        # the entry-point name (or the Backend subclass)
        persistent = True       # enables the restart-in-a-new-process tests

See :mod:`jadevec.testing.backend_tests` for every hook.
"""

from jadevec.testing.backend_tests import BackendTests

__all__ = ["BackendTests"]
