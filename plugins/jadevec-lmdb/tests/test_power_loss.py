"""T3, simulated power loss, on the LMDB backend: a short run.

jadevec.testing._powerloss kills a writer under the file-system shim (which
sees LMDB's pwrite, fdatasync and O_DSYNC meta-page writes), builds the disk
states a power loss could leave and checks each against every acknowledged
write. With ``lmdb_sync=True`` (the default) every write is durable when it
returns, so no state may lose any acknowledged write.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from jadevec.testing import build_shim, report_counts, run_power_loss, torture_scale

pytestmark = [
    pytest.mark.torture,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="LD_PRELOAD is Linux"),
]

COUNTS = ("lost_synced", "garbage", "older_than_synced", "phantom", "resurrected", "metadata",
          "failed_recoveries", "verify_failures", "writer_failures")


def test_power_loss_short_run(tmp_path: Path) -> None:
    try:
        build_shim()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    scale = torture_scale()
    crashes, states = 10 * scale, (6 if scale == 1 else 16)
    result = run_power_loss("lmdb", tmp_path, crashes=crashes, states_per_crash=states,
                            seed=20261201 + scale)
    report_counts("power_loss[lmdb]",
                  {k: v for k, v in result.items() if k != "problems"})
    assert result["states"] == crashes * states
    assert result["ops"] > 0 and result["syncs"] > 0
    assert {k: result[k] for k in COUNTS} == dict.fromkeys(COUNTS, 0), result["problems"]
    assert result["problems"] == []
    # Durable on return: a state never lacks a write acknowledged before the kill.
    assert result["max_loss_window_s"] == 0.0
