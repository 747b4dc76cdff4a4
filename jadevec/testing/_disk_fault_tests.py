"""Power loss and failed file-system calls, for every persistent backend
(torture parts T3 and T4, short runs under the ``torture`` marker).

Both loops run the backend by its registered name in child processes with
the file-system shim preloaded (Linux, a C compiler), so a backend given as
a class, or a platform without them, skips. ``JADEVEC_TORTURE_SCALE`` sizes
them: 1 is the short run, 10 and more try every fault site and 100 crashes.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import ClassVar

import pytest

from jadevec.testing._base import SuiteBase
from jadevec.testing._faultfs import build_shim
from jadevec.testing._faults import run_fault_injection
from jadevec.testing._powerloss import run_power_loss
from jadevec.testing._stress_tests import report_counts, torture_scale

__all__ = ["DiskFaultTests"]

#: A power-loss state must never show any of these.
POWER_LOSS_FAILURES = ("lost_synced", "garbage", "older_than_synced", "phantom", "resurrected",
                       "metadata", "failed_recoveries", "verify_failures", "writer_failures")
# A failed call must never lead to any of these. Counted in the result and not
# asserted (each a judgement the checker cannot make alone): what the store
# does after a failed barrier (``not_failed_after_barrier_fault``: a write
# accepted after the last fsync of a compaction or a backup, which only made a
# cleanup durable; ``barrier_fault_returned_ok``: SQLite's own syncs at
# close), a backup that raised and could not remove its copy because every
# later call failed too (``backup_mismatch``), and an injected ENOSPC or EFBIG
# that SQLite reports as an I/O error (``sqlite_errno_hidden``).
FAULT_FAILURES = ("untyped_errors", "wrong_type", "no_path", "signals", "hangs", "crashes",
                  "lost", "partial", "applied_despite_error", "reopen_failures",
                  "verify_failures")


class DiskFaultTests(SuiteBase):
    """Simulated power losses and injected ENOSPC, EIO and EFBIG."""

    #: Whether every acknowledged write is durable when its call returns (as
    #: with a sync per commit); then no power-loss state may lack one.
    durable_on_return: ClassVar[bool] = False

    def _backend_name(self) -> str:
        if not self.persistent:
            pytest.skip("backend is not persistent")
        if not isinstance(self.backend, str):
            pytest.skip("the torture loops run the backend by its registered name")
        if not sys.platform.startswith("linux"):
            pytest.skip("the file-system shim is loaded with LD_PRELOAD (Linux)")
        try:
            build_shim()
        except RuntimeError as exc:
            pytest.skip(f"the file-system shim cannot be built here: {exc}")
        return self.backend

    @pytest.mark.torture
    def test_power_loss_short_run(self, tmp_path: Path) -> None:
        name = self._backend_name()
        scale = torture_scale()
        crashes, states = 10 * scale, (6 if scale == 1 else 16)
        result = run_power_loss(name, tmp_path, crashes=crashes, states_per_crash=states,
                                seed=20261201 + scale)
        report_counts(f"power_loss[{name}]",
                      {k: v for k, v in result.items() if k != "problems"})
        assert result["states"] == crashes * states
        assert result["ops"] > 0 and result["syncs"] > 0  # the run did write and sync
        failures = {k: result[k] for k in POWER_LOSS_FAILURES}
        assert failures == dict.fromkeys(POWER_LOSS_FAILURES, 0), result["problems"]
        assert result["problems"] == []
        if self.durable_on_return:
            assert result["max_loss_window_s"] == 0.0

    @pytest.mark.torture
    def test_a_failed_call_anywhere_is_typed_and_all_or_nothing(self, tmp_path: Path) -> None:
        name = self._backend_name()
        scale = torture_scale()
        # The first and the last site of each operation in the short run, two
        # more per unit of scale, every site at 10 and more.
        sites = None if scale >= 10 else 2 * scale
        result = run_fault_injection(name, tmp_path, seed=1, max_sites=sites)
        report_counts(f"fault_injection[{name}]", {k: v for k, v in result.items()
                      if not k.startswith("problems")})
        # Every script ran, at sites that exist.
        assert set(result["sites"]) == set(result["calls"]), result
        assert all(n > 0 for n in result["sites"].values()), result["sites"]
        assert result["runs"] == 6 * sum(result["sites"].values())
        failures = {key: result[key] for key in FAULT_FAILURES if result[key]}
        assert not failures, {key: result["problems_by_kind"][key] for key in failures}
        # Some faults were at barriers, and the store was asked to write after them.
        assert result["barrier_faults"] > 0
