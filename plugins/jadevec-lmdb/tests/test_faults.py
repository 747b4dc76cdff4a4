"""T4 of jadevec's torture harness on the LMDB backend: a failed file-system
call at sampled sites of every operation (ENOSPC, EIO or EFBIG, once or from
then on) is a typed error naming a path or a call that returned, the store
holds the state before or after the call, no signal, no hang."""

from __future__ import annotations

from pathlib import Path

import pytest
from jadevec.testing._faults import run_fault_injection

_FAILURES = ("untyped_errors", "wrong_type", "no_path", "signals", "hangs", "crashes",
             "lost", "partial", "reopen_failures")


@pytest.mark.torture
def test_a_failed_call_anywhere_is_typed_and_all_or_nothing(tmp_path: Path) -> None:
    try:
        result = run_fault_injection("lmdb", tmp_path, seed=1, max_sites=2)
    except RuntimeError as exc:
        if "compiler" in str(exc):
            pytest.skip(f"the fault shim cannot be built here: {exc}")
        raise
    assert all(n > 0 for n in result["sites"].values()), result["sites"]
    assert result["runs"] == 6 * sum(result["sites"].values())
    failures = {key: result[key] for key in _FAILURES if result[key]}
    assert not failures, {key: result["problems_by_kind"][key] for key in failures}
