"""The writer lock and the checkpoint thread shared by the mmap and hybrid backends."""

import fcntl
import os
import subprocess
import sys
import textwrap
import threading

import pytest

from jadevec.backends._checkpoint import Checkpointer
from jadevec.backends._store_lock import LOCK_FILE, WriterLock
from jadevec.backends.base import StoreOptions
from jadevec.backends.hybrid import HybridBackend
from jadevec.backends.mmap import MmapBackend
from jadevec.errors import StoreLockedError

BACKENDS = [HybridBackend, MmapBackend]

HOLD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from jadevec.backends.base import StoreOptions
    from jadevec.backends.{module} import {cls}
    store = {cls}(Path(sys.argv[1]), StoreOptions(flush_interval=0))
    print("locked", flush=True)
    sys.stdin.readline()
    store.close()
""")


def hold_in_child(tmp_path, backend):
    """Start a process that opens the store for writing and waits for a line on stdin."""
    module = "hybrid" if backend is HybridBackend else "mmap"
    code = HOLD.format(module=module, cls=backend.__name__)
    child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "locked"
    return child


@pytest.mark.parametrize("backend", BACKENDS)
def test_second_writer_process_is_refused_naming_the_pid(tmp_path, backend):
    child = hold_in_child(tmp_path, backend)
    try:
        with pytest.raises(StoreLockedError, match=f"process {child.pid}") as info:
            backend(tmp_path, StoreOptions(flush_interval=0))
        assert isinstance(info.value, OSError)
        # A reader takes no lock and coexists with the writer.
        reader = backend(tmp_path, StoreOptions(read_only=True, flush_interval=0))
        reader.close()
    finally:
        child.communicate("\n", timeout=30)
    assert child.returncode == 0
    backend(tmp_path, StoreOptions(flush_interval=0)).close()  # free again


@pytest.mark.parametrize("backend", BACKENDS)
def test_killed_writer_leaves_no_stale_lock(tmp_path, backend):
    child = hold_in_child(tmp_path, backend)
    child.kill()
    child.wait(timeout=30)
    store = backend(tmp_path, StoreOptions(flush_interval=0))
    assert store.recovery_report is not None  # it was not closed cleanly
    store.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_second_writer_in_the_same_process_is_refused(tmp_path, backend):
    first = backend(tmp_path, StoreOptions(flush_interval=0))
    with pytest.raises(StoreLockedError, match=str(os.getpid())):
        backend(tmp_path, StoreOptions(flush_interval=0))
    first.close()
    backend(tmp_path, StoreOptions(flush_interval=0)).close()


def test_lock_file_holds_the_pid_and_is_close_on_exec(tmp_path):
    lock = WriterLock(tmp_path)
    try:
        assert (tmp_path / LOCK_FILE).read_text().strip() == str(os.getpid())
        assert fcntl.fcntl(lock._fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
    finally:
        lock.release()
    lock.release()  # idempotent
    assert not lock.held


def test_read_only_open_writes_nothing(tmp_path):
    HybridBackend(tmp_path, StoreOptions(flush_interval=0)).close()
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    reader = HybridBackend(tmp_path, StoreOptions(read_only=True, flush_interval=0))
    reader.close()
    after = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    assert after == before


def test_checkpointer_runs_every_interval_and_stops():
    ran = threading.Event()
    calls = []

    def checkpoint():
        calls.append(1)
        if len(calls) >= 3:
            ran.set()

    cp = Checkpointer(0.01, checkpoint, name="test-checkpoint")
    assert cp.running
    assert ran.wait(10)
    cp.stop()
    assert not cp.running
    settled = len(calls)
    cp.stop()  # idempotent
    assert len(calls) == settled


def test_checkpointer_logs_failures_and_keeps_going(caplog):
    ran = threading.Event()
    calls = []

    def checkpoint():
        calls.append(1)
        if len(calls) == 1:
            raise OSError("disk went away")
        ran.set()

    cp = Checkpointer(0.01, checkpoint, name="test-checkpoint")
    assert ran.wait(10)
    cp.stop()
    assert "background checkpoint failed" in caplog.text


def test_interval_zero_starts_no_thread():
    cp = Checkpointer(0, lambda: None, name="never")
    assert not cp.running
    cp.stop()


@pytest.mark.parametrize("backend", BACKENDS)
def test_store_checkpoint_thread_lives_until_close(tmp_path, backend):
    store = backend(tmp_path, StoreOptions(flush_interval=0.01))
    name = f"jadevec-checkpoint {tmp_path}"
    assert any(t.name == name for t in threading.enumerate())
    store.close()
    assert not any(t.name == name for t in threading.enumerate())
    quiet = backend(tmp_path, StoreOptions(flush_interval=0))
    assert not any(t.name.startswith(f"jadevec-checkpoint {tmp_path}")
                   for t in threading.enumerate())
    quiet.close()


def open_fds():
    return set(os.listdir("/proc/self/fd"))


def failing(error):
    def fail(*args, **kwargs):
        raise error
    return fail


def test_a_lock_file_that_cannot_be_written_is_not_kept_locked(tmp_path, monkeypatch):
    before = open_fds()
    monkeypatch.setattr(os, "ftruncate", failing(OSError(28, "No space left on device")))
    with pytest.raises(OSError, match="cannot write the lock file: No space left") as caught:
        WriterLock(tmp_path)
    assert caught.value.filename == str(tmp_path / LOCK_FILE)
    monkeypatch.undo()
    assert open_fds() == before
    WriterLock(tmp_path).release()  # nothing kept the lock


def test_an_unexpected_error_while_locking_closes_the_lock_file(tmp_path, monkeypatch):
    before = open_fds()
    monkeypatch.setattr(fcntl, "flock", failing(OSError(37, "No locks available")))
    with pytest.raises(OSError, match="No locks available"):
        WriterLock(tmp_path)
    monkeypatch.undo()
    assert open_fds() == before


def test_a_holder_whose_pid_cannot_be_read_is_another_process(tmp_path, monkeypatch):
    held = WriterLock(tmp_path)
    try:
        monkeypatch.setattr(os, "pread", failing(OSError(5, "Input/output error")))
        with pytest.raises(StoreLockedError, match="open for writing by another process"):
            WriterLock(tmp_path)
    finally:
        monkeypatch.undo()
        held.release()


def test_a_failed_folder_fsync_names_the_folder(tmp_path, monkeypatch):
    from jadevec.backends._catalog import fsync_dir
    from jadevec.errors import StorageFullError

    monkeypatch.setattr(os, "fsync", failing(OSError(28, "No space left on device")))
    with pytest.raises(StorageFullError, match="fsync of the folder failed") as caught:
        fsync_dir(tmp_path)
    assert caught.value.filename == str(tmp_path)
    monkeypatch.setattr(os, "fsync", failing(OSError(5, "Input/output error")))
    with pytest.raises(OSError, match="fsync of the folder failed: Input/output") as caught:
        fsync_dir(tmp_path)
    assert caught.value.errno == 5 and caught.value.filename == str(tmp_path)


def test_checkpointer_of_a_collected_owner_stops_by_itself():
    import gc

    class Owner:
        def checkpoint(self):
            pass

    owner = Owner()
    cp = Checkpointer(0.01, owner.checkpoint, name="test-checkpoint")
    assert cp.running
    del owner
    gc.collect()
    cp._thread.join(timeout=30)  # ends at its next tick, no stop() needed
    assert not cp.running
