"""Injected file-system errors at chosen sites of the built-in backends.

The sampled run over every operation of every persistent backend is in the
conformance suite (``jadevec.testing``, ``torture`` marker): each run fails
one counted call (ENOSPC, EIO or EFBIG, once or from then on) of one
operation in a child process with the fault shim loaded and checks that the
call either returned or raised a typed error naming a path, that the store
holds exactly the state before or after the call, that it verifies, and that
no signal killed the child. The tests here pin single sites where a bug was.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from jadevec.testing import run_fault_injection


@pytest.mark.torture
def test_no_room_for_a_compaction_folder_is_storage_full(tmp_path: Path) -> None:
    # Compaction's first counted call makes the new file set's folder; a full
    # disk there used to escape as a bare OSError.
    try:
        result = run_fault_injection("mmap", tmp_path, scripts=["compact"],
                                     errnos=["ENOSPC", "EFBIG"], modes=["once"], max_sites=1)
    except RuntimeError as exc:
        if "compiler" in str(exc):
            pytest.skip(f"the fault shim cannot be built here: {exc}")
        raise
    assert result["calls"]["compact"][0] == "mkdir", result["calls"]
    assert result["runs"] == 2
    assert result["untyped_errors"] == 0 and result["wrong_type"] == 0, result["problems"]
    assert result["partial"] == result["lost"] == result["verify_failures"] == 0, result


@pytest.mark.torture
def test_a_full_disk_while_deleting_a_database_is_storage_full(tmp_path: Path) -> None:
    # Every call of delete_database failing with ENOSPC in turn: the rename, the
    # mark for readers, the removals and the folder syncs used to escape as bare
    # OSErrors, some naming only "vectors.jvdb" or nothing.
    try:
        result = run_fault_injection("mmap", tmp_path, scripts=["delete_database"],
                                     errnos=["ENOSPC"], modes=["once"])
    except RuntimeError as exc:
        if "compiler" in str(exc):
            pytest.skip(f"the fault shim cannot be built here: {exc}")
        raise
    assert result["sites"]["delete_database"] > 10, result["calls"]
    kinds = result["problems_by_kind"]
    assert result["untyped_errors"] == 0, kinds.get("untyped_errors")
    assert result["wrong_type"] == result["no_path"] == 0, kinds
    assert result["lost"] == result["partial"] == result["reopen_failures"] == 0, kinds


@pytest.mark.torture
@pytest.mark.parametrize("backend", ["mmap", "hybrid"])
def test_a_failed_sync_leaves_the_store_refusing_writes(backend: str, tmp_path: Path) -> None:
    # Each call of sync() failing with EIO in turn, then one more write with the
    # fault cleared: after a failed fsync or msync the kernel may have dropped
    # the pages, so the store must refuse writes (StoreFailedError) until it is
    # reopened, and the reopened store holds everything acknowledged.
    try:
        result = run_fault_injection(backend, tmp_path, scripts=["sync"], errnos=["EIO"],
                                     modes=["once"])
    except RuntimeError as exc:
        if "compiler" in str(exc):
            pytest.skip(f"the fault shim cannot be built here: {exc}")
        raise
    kinds = result["problems_by_kind"]
    assert result["barrier_faults"] > 0, result["calls"]
    assert result["not_failed_after_barrier_fault"] == 0, kinds
    assert result["barrier_fault_returned_ok"] == 0, kinds
    assert result["untyped_errors"] == result["lost"] == result["partial"] == 0, kinds
    assert result["reopen_failures"] == result["verify_failures"] == 0, kinds


@pytest.mark.torture
def test_a_full_disk_while_opening_is_storage_full(tmp_path: Path) -> None:
    # Every call of an open that recovers after a killed writer failing with
    # ENOSPC in turn: the store's folder and its lock file used to fail with
    # bare OSErrors, and a failed write of the lock file kept the lock.
    try:
        result = run_fault_injection("mmap", tmp_path, scripts=["open_recover"],
                                     errnos=["ENOSPC"], modes=["once"])
    except RuntimeError as exc:
        if "compiler" in str(exc):
            pytest.skip(f"the fault shim cannot be built here: {exc}")
        raise
    assert result["calls"]["open_recover"][:2] == ["mkdir", "open"], result["calls"]
    kinds = result["problems_by_kind"]
    assert result["untyped_errors"] == result["no_path"] == result["wrong_type"] == 0, kinds
    assert result["lost"] == result["partial"] == result["reopen_failures"] == 0, kinds
