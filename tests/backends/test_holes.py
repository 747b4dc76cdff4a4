"""Paths of mmap and hybrid that a review found wrong, each pinned by a test that
failed before its fix (the ones that apply to every backend are in
jadevec.testing's LifecycleTests)."""

import logging
import os
import threading
import time

import numpy as np
import pytest

import jadevec
from jadevec.backends.base import StoreOptions
from jadevec.backends.hybrid import HybridBackend
from jadevec.backends.mmap import MmapBackend
from jadevec.testing._lifecycle_tests import in_child

BACKENDS = ["mmap", "hybrid"]


def die_after(body, limit=None):
    """Run ``body()`` in a forked child (under a file-size limit) that then ends with
    ``os._exit``: no close, no finaliser, as after kill -9. What ``body`` returns
    (its store) is kept alive until then: a dropped store would be closed."""
    in_child(body, limit)


def test_an_append_cut_by_a_full_disk_leaves_no_torn_line_behind(tmp_path):
    """mmap: a metadata append that fails is cut back, so the log still reads after
    the next unclean shutdown (a torn line in the middle used to stop the open)."""
    with jadevec.open(tmp_path, backend="mmap", flush_interval=0) as store:
        store.create_database("m", 2, metric="l2").store("keep", [1, 1], metadata={"k": 1})

    def fill_then_die():
        store = jadevec.open(tmp_path, backend="mmap", flush_interval=0)
        db = store.get_database("m")
        for i in range(10_000):
            try:
                db.store(f"v{i}", [i, i], metadata={"t": "x" * 3000})
            except jadevec.StorageFullError:
                db.store("after", [2, 2], metadata={"a": 1})  # small: still fits
                return store  # and die: an unclean shutdown, with the cut-back log
        raise AssertionError("the disk never filled")

    die_after(fill_then_die, limit=1 << 20)
    with jadevec.open(tmp_path, backend="mmap", flush_interval=0) as store:
        db = store.get_database("m")
        assert db.get_metadata("keep") == {"k": 1} and db.get_metadata("after") == {"a": 1}
        assert store.verify().ok


def test_a_failed_log_fsync_keeps_the_log_pending(tmp_path, monkeypatch):
    """mmap: sync() forgets a log only once its fsync succeeded."""
    store = MmapBackend(tmp_path, StoreOptions(flush_interval=0))
    db = store.create_database("m", 2, "l2")
    db.store(["a"], np.ones((1, 2), np.float32), ['{"a": 1}'])
    real = os.fsync
    calls = {"n": 0}

    def failing(fd):
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(5, "injected")
        return real(fd)

    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(OSError, match="injected"):
        store._catalog.sync()
    assert store._catalog._unsynced  # still to be synced
    store._catalog.sync()
    assert not store._catalog._unsynced
    monkeypatch.setattr(os, "fsync", real)
    store.close()


def test_hybrid_sync_makes_the_catalog_durable_and_an_idle_one_does_nothing(tmp_path):
    store = HybridBackend(tmp_path, StoreOptions(flush_interval=0))
    db = store.create_database("h", 2, "l2")
    db.store(["a"], np.ones((1, 2), np.float32), ['{"a": 1}'])
    statements = []
    store._catalog.db.set_trace_callback(statements.append)
    store.sync()
    # One commit with synchronous=FULL: it syncs the whole write-ahead log,
    # every earlier commit included, whatever readers hold.
    assert "PRAGMA synchronous=FULL" in statements and "COMMIT" in statements
    statements.clear()
    store.sync()
    assert "COMMIT" not in statements  # nothing new: nothing written
    store._catalog.db.set_trace_callback(None)
    store.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_recovery_found_at_first_use_reaches_the_store_report_and_the_log(tmp_path, backend,
                                                                          caplog):
    def write_then_die():
        store = jadevec.open(tmp_path, backend=backend, flush_interval=0)
        store.create_database("quiet", 2, metric="l2").store("q", [1, 1])
        store.sync()
        db = store.create_database("docs", 2, metric="l2")
        db.batch_store([f"v{i}" for i in range(10)], np.ones((10, 2)))
        return store  # and die: no close, the vector files need recovery

    die_after(write_then_die)
    with caplog.at_level(logging.WARNING, logger="jadevec"):
        store = jadevec.open(tmp_path, backend=backend, flush_interval=0, max_open_files=1)
        before = list(store.recovery_report.actions)
        assert not any("'docs'" in a and "replayed" in a for a in before)
        assert len(store.get_database("docs")) == 10  # opens the files: recovers them now
    actions = store.recovery_report.actions
    assert any(a.startswith("database 'docs': replayed 10 writes") for a in actions), actions
    assert "docs" in store.recovery_report.databases
    assert any("database 'docs'" in r.getMessage() for r in caplog.records)
    store.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_compacting_one_database_does_not_stall_the_others(tmp_path, backend):
    store = jadevec.open(tmp_path, backend=backend, flush_interval=0)
    big = store.create_database("big", 64, metric="l2")
    n = 200_000
    big.batch_store([f"v{i}" for i in range(n)], np.ones((n, 64), np.float32))
    for i in range(0, n, 2):
        big.delete(f"v{i}")
    small = store.create_database("small", 2, metric="l2")
    small.store("s", [1, 2])
    reads, done = [], threading.Event()

    def reader():
        while not done.is_set():
            assert small.retrieve("s").tolist() == [1, 2]
            reads.append(time.perf_counter())

    t = threading.Thread(target=reader)
    started = time.perf_counter()
    t.start()
    big.compact()
    finished = time.perf_counter()
    done.set()
    t.join()
    during = [r for r in reads if started < r < finished]
    assert finished - started > 0.05  # long enough to tell
    # Reads of the other database went on throughout, with no long gap.
    gaps = np.diff([started, *during, finished])
    assert len(during) > 10 and gaps.max() < (finished - started) / 2
    assert len(big) == n // 2
    store.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_create_refused_by_the_file_system_leaves_nothing_and_can_be_retried(
        tmp_path, backend, monkeypatch):
    from jadevec.backends._vector_store import MemoryMappedVectorStore

    real = MemoryMappedVectorStore.create_vector_file
    calls = {"n": 0}

    def refused_once(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise PermissionError(13, "Permission denied", str(self.root))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(MemoryMappedVectorStore, "create_vector_file", refused_once)
    with jadevec.open(tmp_path, backend=backend, flush_interval=0) as store:
        with pytest.raises(PermissionError):
            store.create_database("big", 8)
        assert "big" not in store and store.list_databases() == []
        store.create_database("big", 8).store("a", np.ones(8))
    with jadevec.open(tmp_path, backend=backend, read_only=True) as store:
        assert store.list_databases() == ["big"] and store.verify().ok


@pytest.mark.parametrize("backend", BACKENDS)
def test_metadata_at_the_nesting_limit_survives_a_restart(tmp_path, backend):
    deep: dict = {"leaf": 1}
    for _ in range(63):  # 64 levels with the top one
        deep = {"d": deep}
    with jadevec.open(tmp_path, backend=backend, flush_interval=0) as store:
        store.create_database("m", 2).store("a", [1, 2], metadata=deep)
    with jadevec.open(tmp_path, backend=backend) as store:
        db = store.get_database("m")
        assert db.get_metadata("a") == deep
        db.update("a", [2, 3])  # keeps (reads back) the deep metadata
        assert db.get_metadata("a") == deep and store.verify().ok


@pytest.mark.parametrize("change", ["create", "delete"])
def test_a_journal_snapshot_taken_on_a_create_or_delete_line_holds_that_change(
        tmp_path, change):
    """mmap: when the journal's line for a create (or delete) is the one that makes
    the journal long enough to be folded into catalog.json, the snapshot must hold
    that change, though the store then dies without a clean close."""
    journal = tmp_path / "catalog.log"

    def churn_then_die():
        store = jadevec.open(tmp_path, backend="mmap", flush_interval=0)
        for _ in range(1000):
            store.create_database("d", 2, metric="l2").store("v", [1, 2])
            if change == "create" and journal.stat().st_size == 0:
                return store  # the create's line was folded into the snapshot
            store.delete_database("d")
            if change == "delete" and journal.stat().st_size < 80:
                return store  # folded on the delete (the forget line may follow)
        raise AssertionError("the journal was never folded into the snapshot")

    die_after(churn_then_die)
    with jadevec.open(tmp_path, backend="mmap", flush_interval=0) as store:
        if change == "create":
            assert store.list_databases() == ["d"]
            assert store.get_database("d").retrieve("v").tolist() == [1, 2]
        else:
            assert store.list_databases() == []
        assert store.verify().ok


DELETER = """
import sys, time
import numpy as np
import jadevec
path, backend, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
rounds = 0
with jadevec.open(path, backend=backend, flush_interval=0) as store:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        db = store.create_database("d", 4, metric="l2")
        db.batch_store([f"k{i}" for i in range(20)], np.ones((20, 4)))
        store.sync()
        store.delete_database("d")
        rounds += 1
print(rounds)
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_reader_beside_deletions_sees_a_database_whole_or_not_found(tmp_path, backend):
    """Deletion renames the folder aside before it marks and removes it: a reader
    opening the files meanwhile gets the vectors or DatabaseNotFoundError, never
    a missing-file CorruptionError or a folder left behind not empty. The churn
    also folds mmap's journal into its snapshot again and again under readers
    of the catalog."""
    import subprocess
    import sys

    from jadevec.errors import DatabaseNotFoundError

    with jadevec.open(tmp_path, backend=backend, flush_interval=0):
        pass
    writer = subprocess.Popen([sys.executable, "-c", DELETER, str(tmp_path), backend, "4"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = missing = 0
    errors = []
    kept = jadevec.open(tmp_path, backend=backend, read_only=True)  # reads the catalog again
    try:
        while writer.poll() is None:
            try:
                assert kept.list_databases() in ([], ["d"])
                with jadevec.open(tmp_path, backend=backend, read_only=True) as reader:
                    got = reader.get_database("d").retrieve("k3")
                    assert got is None or got.tolist() == [1.0] * 4, got
                    seen += got is not None
            except DatabaseNotFoundError:
                missing += 1
            except Exception as exc:  # noqa: BLE001 - collected: the assertion names it
                errors.append(repr(exc))
    finally:
        out, err = writer.communicate(timeout=60)
        kept.close()
    assert writer.returncode == 0, err
    assert not errors, (len(errors), errors[:3], seen, missing, out)
    assert seen > 0 and missing > 0, (seen, missing, out)
    leftovers = [p for p in os.listdir(tmp_path / "vectors") if p.startswith(".")]
    assert not leftovers, leftovers
