"""T4 of jadevec's torture harness on the LMDB backend: a failed file-system
call at sampled sites of every operation (ENOSPC, EIO or EFBIG, once or from
then on) is a typed error naming a path or a call that returned, the store
holds the state before or after the call, no signal, no hang."""

from __future__ import annotations

from pathlib import Path

import pytest
from jadevec.testing import report_counts, run_fault_injection, torture_scale


def _sites() -> int | None:
    """Sites tried per script: the first and the last in the short run, 2 per unit of
    JADEVEC_TORTURE_SCALE above it, every site at 10 and more (the long run)."""
    scale = torture_scale()
    return None if scale >= 10 else 2 * scale


_FAILURES = ("untyped_errors", "wrong_type", "no_path", "signals", "hangs", "crashes",
             "lost", "partial", "applied_despite_error", "reopen_failures", "verify_failures")


@pytest.mark.torture
def test_a_failed_call_anywhere_is_typed_and_all_or_nothing(tmp_path: Path) -> None:
    try:
        result = run_fault_injection("lmdb", tmp_path, seed=1, max_sites=_sites())
    except RuntimeError as exc:
        if "compiler" in str(exc):
            pytest.skip(f"the fault shim cannot be built here: {exc}")
        raise
    report_counts("fault_injection[lmdb]", {k: v for k, v in result.items()
                  if not k.startswith("problems")})
    assert all(n > 0 for n in result["sites"].values()), result["sites"]
    assert result["runs"] == 6 * sum(result["sites"].values())
    failures = {key: result[key] for key in _FAILURES if result[key]}
    assert not failures, {key: result["problems_by_kind"][key] for key in failures}
