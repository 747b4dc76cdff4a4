"""``Store.backup`` of the mmap and hybrid stores beyond the conformance suite: the
unhappy paths (a failure half way, a read-only store, bad destinations) and
the shape of the copy."""

import fcntl
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import jadevec
from jadevec.backends._persistent import PersistentBackend

BACKENDS = ["mmap", "hybrid"]


def _fill(store: jadevec.Store) -> None:
    for d in range(3):
        db = store.create_database(f"db{d}", 4, "l2")
        db.batch_store([f"v{i}" for i in range(10)], np.ones((10, 4), np.float32) * d,
                       [{"i": i} for i in range(10)])


@pytest.mark.parametrize("backend", BACKENDS)
def test_failure_half_way_leaves_nothing(tmp_path, backend, monkeypatch):
    real = PersistentBackend._copy_files
    calls = []

    def failing(self, vf, entry, folder):
        calls.append(entry.name)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(self, vf, entry, folder)

    monkeypatch.setattr(PersistentBackend, "_copy_files", failing)
    with jadevec.open(tmp_path / "src", backend=backend) as store:
        _fill(store)
        with pytest.raises(OSError, match="No space"):
            store.backup(tmp_path / "copy")
        # Neither the destination nor the work folder beside it remains.
        assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]
        monkeypatch.setattr(PersistentBackend, "_copy_files", real)
        store.backup(tmp_path / "copy")
    with jadevec.open(tmp_path / "copy", backend=backend) as copy:
        assert copy.recovery_report is None
        assert copy.list_databases() == ["db0", "db1", "db2"]
        assert copy.get_database("db2").get_metadata("v3") == {"i": 3}


@pytest.mark.parametrize("backend", BACKENDS)
def test_copy_holds_no_lock_or_journal(tmp_path, backend):
    with jadevec.open(tmp_path / "src", backend=backend) as store:
        _fill(store)
        store.backup(tmp_path / "copy")
    names = {p.relative_to(tmp_path / "copy").as_posix()
             for p in (tmp_path / "copy").rglob("*") if p.is_file()}
    assert ".lock" not in names
    assert not any(n.endswith(("-wal", "-shm")) for n in names)
    assert len([n for n in names if n.endswith("vectors.jvdb")]) == 3


def test_read_only_store_is_refused(tmp_path):
    with jadevec.open(tmp_path / "src") as store:
        _fill(store)
    with jadevec.open(tmp_path / "src", read_only=True) as reader:
        with pytest.raises(jadevec.UnsupportedError, match="read-only"):
            reader.backup(tmp_path / "copy")
    assert not (tmp_path / "copy").exists()


def test_bad_destinations(tmp_path):
    with jadevec.open(tmp_path / "src") as store:
        for bad in (None, b"x", "", 3):
            with pytest.raises(jadevec.InvalidInputError):
                store.backup(bad)
        with pytest.raises(jadevec.InvalidInputError, match="must not exist"):
            store.backup(tmp_path / "src")
    with pytest.raises(jadevec.StoreClosedError):
        store.backup(tmp_path / "copy")


# -- a backup killed half way -------------------------------------------------

CRASHING_BACKUP = textwrap.dedent("""
    import os, sys
    import jadevec
    src, dest, backend, point = sys.argv[1:5]
    store = jadevec.open(src, backend=backend, flush_interval=0)
    os.environ["JADEVEC_CRASH_AT"] = point
    store.backup(dest)
    print("the crash point was not reached", flush=True)
""")


def _work_folders(parent):
    return sorted(p.name for p in parent.iterdir() if ".backup-" in p.name)


def _same_as_source(copy: jadevec.Store) -> None:
    assert copy.list_databases() == ["db0", "db1", "db2"]
    assert copy.get_database("db2").retrieve("v3").tolist() == [2, 2, 2, 2]
    assert copy.get_database("db1").get_metadata("v9") == {"i": 9}
    assert copy.verify().ok


@pytest.mark.parametrize("backend,point", [
    ("mmap", "backup:copying"), ("hybrid", "backup:copying"),  # killed half way through a copy
    ("mmap", "backup:written"), ("hybrid", "backup:written"),  # killed with the copy whole
    ("lmdb", "backup:written"),
])
def test_a_backup_killed_half_way_is_cleaned_by_the_next(tmp_path, backend, point):
    if backend not in jadevec.available_backends():
        pytest.skip(f"the {backend} backend is not installed")
    src, dest = tmp_path / "src", tmp_path / "backups" / "copy"
    with jadevec.open(src, backend=backend) as store:
        _fill(store)
    done = subprocess.run([sys.executable, "-c", CRASHING_BACKUP, str(src), str(dest), backend,
                           point], capture_output=True, text=True, timeout=120)
    assert done.returncode == 137, (done.stdout, done.stderr)  # died like kill -9
    assert not dest.exists()  # never half a backup at dest
    (left,) = _work_folders(dest.parent)
    assert re.fullmatch(r"\.copy\.backup-[0-9a-f]{12}", left)
    with jadevec.open(src, backend=backend) as store:
        store.backup(dest)
    assert _work_folders(dest.parent) == []  # the next backup removed the leftover
    with jadevec.open(dest, backend=backend) as copy:
        _same_as_source(copy)


def test_a_live_backups_work_folder_is_never_removed(tmp_path):
    """A backup under way holds an flock on its work folder: a second backup to the
    same dest is refused and leaves it alone; once it is released, it is a leftover."""
    dest = tmp_path / "copy"
    live = tmp_path / ".copy.backup-0123456789ab"
    live.mkdir()
    (live / "half").write_bytes(b"x")
    fd = os.open(live, os.O_RDONLY | os.O_DIRECTORY)
    with jadevec.open(tmp_path / "src", backend="hybrid") as store:
        _fill(store)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # as the live backup's
            with pytest.raises(jadevec.InvalidInputError, match="another backup to .* under way"):
                store.backup(dest)
            assert (live / "half").exists() and not dest.exists()
            assert _work_folders(tmp_path) == [live.name]
        finally:
            os.close(fd)
        store.backup(dest)
    assert not live.exists()
    with jadevec.open(dest, backend="hybrid") as copy:
        _same_as_source(copy)


def test_only_our_exact_work_folder_names_are_removed(tmp_path):
    dest = tmp_path / "copy"
    others = [".copy.backup-0123", ".copy.backup-0123456789AB", ".other.backup-0123456789ab",
              ".copy.backup-0123456789abc", "copy.backup-0123456789ab"]
    for name in others:
        (tmp_path / name).mkdir()
    (tmp_path / ".copy.backup-aaaaaaaaaaaa").write_text("a file, not our folder")
    (tmp_path / ".copy.backup-bbbbbbbbbbbb").symlink_to(tmp_path / others[0])
    with jadevec.open(tmp_path / "src", backend="mmap") as store:
        _fill(store)
        store.backup(dest)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [*others, ".copy.backup-aaaaaaaaaaaa", ".copy.backup-bbbbbbbbbbbb", "copy", "src"])


# -- races and failures met while copying ---------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_a_database_deleted_during_the_backup_is_left_out(tmp_path, backend, monkeypatch):
    real = PersistentBackend._copy_files

    def copy_then_delete(self, vf, entry, folder):
        if entry.name == "db0":
            store.delete_database("db1")  # another thread's drop, landing mid-backup
        return real(self, vf, entry, folder)

    monkeypatch.setattr(PersistentBackend, "_copy_files", copy_then_delete)
    with jadevec.open(tmp_path / "src", backend=backend) as store:
        _fill(store)
        store.backup(tmp_path / "copy")
    with jadevec.open(tmp_path / "copy", backend=backend) as copy:
        assert copy.list_databases() == ["db0", "db2"]
        assert copy.get_database("db2").get_metadata("v3") == {"i": 3}
        assert copy.verify().ok


def test_a_dest_that_appears_during_the_backup_is_left_alone(tmp_path, monkeypatch):
    real = PersistentBackend.backup

    def backup_then_race(self, work):
        real(self, work)
        (tmp_path / "copy").mkdir()
        (tmp_path / "copy" / "theirs").write_text("not ours")

    monkeypatch.setattr(PersistentBackend, "backup", backup_then_race)
    with jadevec.open(tmp_path / "src") as store:
        _fill(store)
        with pytest.raises(jadevec.InvalidInputError, match="appeared during the backup"):
            store.backup(tmp_path / "copy")
        assert store.get_database("db1").get_metadata("v2") == {"i": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy", "src"]
    assert sorted(p.name for p in (tmp_path / "copy").iterdir()) == ["theirs"]


@pytest.mark.parametrize("code,error", [(5, OSError), (28, jadevec.StorageFullError)])
def test_a_failed_sync_of_a_copied_file_names_the_file(tmp_path, monkeypatch, code, error):
    with jadevec.open(tmp_path / "src") as store:
        _fill(store)

        def fsync_fails(fd):
            raise OSError(code, os.strerror(code))

        monkeypatch.setattr(os, "fsync", fsync_fails)
        with pytest.raises(error) as caught:
            store.backup(tmp_path / "copy")
        monkeypatch.undo()
        assert type(caught.value) is error and caught.value.errno == code
        assert re.search(r"\.copy\.backup-[0-9a-f]{12}/vectors/db-[0-9a-f]{12}/",
                         caught.value.filename)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]
        store.backup(tmp_path / "copy")  # the store is as good as before
    with jadevec.open(tmp_path / "copy") as copy:
        assert copy.list_databases() == ["db0", "db1", "db2"]


def test_an_unnamed_backup_error_names_the_dest(tmp_path):
    from jadevec._api import _backup_error

    error = _backup_error(OSError(5, "Input/output error"), tmp_path / "copy")
    assert type(error) is OSError and error.errno == 5
    assert error.filename == str(tmp_path / "copy")
    assert "backup to" in str(error) and "failed: Input/output error" in str(error)


def test_a_work_folder_whose_backup_just_ended_is_passed_over(tmp_path, monkeypatch):
    from jadevec import _api

    ended = tmp_path / ".copy.backup-0123456789ab"
    ended.mkdir()
    real = _api._lock_folder

    def lock_as_it_ends(path, wait):
        if path == ended:
            ended.rmdir()  # its backup removed it between our listing and our lock
            return None
        return real(path, wait)

    monkeypatch.setattr(_api, "_lock_folder", lock_as_it_ends)
    with jadevec.open(tmp_path / "src") as store:
        _fill(store)
        store.backup(tmp_path / "copy")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy", "src"]


def test_a_claimed_work_folder_lost_to_another_backup_is_replaced(tmp_path, monkeypatch):
    from jadevec import _api

    target = tmp_path / "copy"
    real_lock, real_stat = _api._lock_folder, os.stat
    lost = []

    def removed_before_our_lock(path, wait):
        if not lost:
            lost.append(path)
            path.rmdir()  # another backup's cleanup took it first
            return None
        return real_lock(path, wait)

    monkeypatch.setattr(_api, "_lock_folder", removed_before_our_lock)
    work, fd = _api._claim_backup_folder(target)
    os.close(fd)
    assert lost and work != lost[0] and work.is_dir()

    def removed_after_our_lock(path, *args, **kwargs):
        if len(lost) == 1 and ".copy.backup-" in str(path):
            lost.append(path)  # the first folder stat'ed: unlinked after we locked it
            raise FileNotFoundError(2, "No such file or directory", str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(_api, "_lock_folder", real_lock)
    monkeypatch.setattr(os, "stat", removed_after_our_lock)
    second, fd = _api._claim_backup_folder(target)
    monkeypatch.undo()
    os.close(fd)
    assert len(lost) == 2 and second not in (work, *lost) and second.is_dir()


def test_locking_a_work_folder_that_is_gone_or_cannot_be_locked(tmp_path, monkeypatch):
    from jadevec import _api

    assert _api._lock_folder(tmp_path / "gone", wait=True) is None
    before = set(os.listdir("/proc/self/fd"))

    def no_locks(fd, operation):
        raise OSError(37, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with pytest.raises(OSError, match="No locks available"):
        _api._lock_folder(tmp_path, wait=True)
    monkeypatch.undo()
    assert set(os.listdir("/proc/self/fd")) == before
