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

The torture loops, for any persistent backend by its registered name (Linux:
they load a small file-system shim, built on first use by :func:`build_shim`
with the C compiler, through ``LD_PRELOAD``): :func:`run_power_loss` kills a
writer, builds the disk states a power loss could leave from what its syncs
made durable, and checks each; :func:`run_fault_injection` fails every
file-system call of each operation in turn with ENOSPC, EIO or EFBIG. Both
return counts (zero is a pass) and the first problems found.
:func:`torture_scale` and :func:`stress_cycles` size the loops from the
environment, and :func:`report_counts` appends counts to the run's report.
:func:`file_states` fingerprints every file under a folder, to show that an
idle store wrote nothing.
"""

from jadevec.testing._base import file_states
from jadevec.testing._child import ChildOutcome, ForkedChild, run_in_child
from jadevec.testing._faultfs import build_shim
from jadevec.testing._faults import run_fault_injection
from jadevec.testing._powerloss import run_power_loss
from jadevec.testing._stress_tests import report_counts, stress_cycles, torture_scale
from jadevec.testing.backend_tests import BackendTests

__all__ = ["BackendTests", "ChildOutcome", "ForkedChild", "build_shim", "file_states",
           "report_counts", "run_fault_injection", "run_in_child", "run_power_loss",
           "stress_cycles", "torture_scale"]
