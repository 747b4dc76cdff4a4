"""``Store.backup`` of the mmap and hybrid stores beyond the conformance suite: the
unhappy paths (a failure half way, a read-only store, bad destinations) and
the shape of the copy."""

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
