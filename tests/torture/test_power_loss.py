"""T3, simulated power loss: a short run per persistent built-in backend.

A writer under the file-system shim is killed at random moments; from what
its barriers made durable and the files the kill left, several disk states a
power loss could leave are built and each is opened, verified and checked
against every write the writer acknowledged (jadevec.testing._powerloss has
the model and the checks). The long run is ``python -m jadevec.testing.torture``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from jadevec.testing._faultfs import build_shim
from jadevec.testing._powerloss import run_power_loss

pytestmark = [
    pytest.mark.torture,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="LD_PRELOAD is Linux"),
]

COUNTS = ("lost_synced", "garbage", "older_than_synced", "phantom", "resurrected", "metadata",
          "failed_recoveries", "verify_failures", "writer_failures")


@pytest.mark.parametrize("backend", ["mmap", "hybrid"])
def test_power_loss_short_run(backend: str, tmp_path: Path) -> None:
    try:
        build_shim()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    result = run_power_loss(backend, tmp_path, crashes=10, states_per_crash=6, seed=20261202)
    assert result["states"] == 60
    assert result["ops"] > 0 and result["syncs"] > 0  # the run did write and sync
    assert {k: result[k] for k in COUNTS} == dict.fromkeys(COUNTS, 0), result["problems"]
    assert result["problems"] == []
