"""MemoryMappedVectorStore: its operations over per-database file sets."""

import os
import shutil
import threading
import time

import numpy as np
import pytest

from jadevec.backends._vector_store import MemoryMappedVectorStore
from jadevec.errors import (
    DatabaseExistsError,
    DatabaseNotFoundError,
    DimensionMismatchError,
    InvalidInputError,
    StoreClosedError,
    VectorNotFoundError,
)


@pytest.fixture
def store(tmp_path):
    with MemoryMappedVectorStore(tmp_path / "root") as s:
        yield s


def test_seed_operations(store, tmp_path):
    store.create_vector_file("db", 4, initial_capacity=2)
    assert sorted(os.listdir(tmp_path / "root" / "db")) == [
        "ids.jvid", "index.jvix", "readers.jvrd", "slots.jvsl", "vectors.jvdb"]
    with pytest.raises(DatabaseExistsError):
        store.create_vector_file("db", 4)
    store.store_vector("db", "a", np.ones(4, np.float32))
    store.store_vector("db", "a", [2, 2, 2, 2])
    np.testing.assert_array_equal(store.retrieve_vector("db", "a"), [2, 2, 2, 2])
    assert store.retrieve_vector("db", "zz") is None
    store.update_vector("db", "a", [3, 3, 3, 3])
    with pytest.raises(VectorNotFoundError):
        store.update_vector("db", "zz", [3, 3, 3, 3])
    with pytest.raises(DimensionMismatchError):
        store.update_vector("db", "a", [3, 3, 3])
    ids = [f"b{i}" for i in range(100)]
    store.batch_store("db", ids, np.arange(400, dtype=np.float32).reshape(100, 4))
    got = store.batch_retrieve("db", ["b5", "nope", "a"])
    assert got[1] is None and got[0].tolist() == [20, 21, 22, 23]
    assert store.count("db") == 101
    assert store.delete_vector("db", "b5") and not store.delete_vector("db", "b5")
    assert sorted(store.list_vectors("db")) == sorted(["a"] + [i for i in ids if i != "b5"])
    store.flush("db")
    store.flush()
    store.sync()
    store.close_vector_file("db")
    store.close_vector_file("db")
    assert store.count("db") == 100  # reopened lazily
    assert store.verify("db") == []


def test_lazy_open_and_missing(store, tmp_path):
    store.create_vector_file("db", 2)
    store.store_vector("db", "x", [1, 2])
    store.close()
    with MemoryMappedVectorStore(tmp_path / "root") as again:
        assert repr(again).endswith("open=[]>")
        assert again.retrieve_vector("db", "x").tolist() == [1, 2]
        with pytest.raises(DatabaseNotFoundError):
            again.count("other")
        for bad in ["", ".hidden", "a/b", "..", None]:
            with pytest.raises(InvalidInputError):
                again.open_vector_file(bad)
    with pytest.raises(StoreClosedError):
        store.count("db")
    store.close()


def test_compact_reclaims_space_and_keeps_vectors(store, tmp_path):
    store.create_vector_file("db", 64)
    data = np.random.default_rng(0).standard_normal((2000, 64)).astype(np.float32)
    store.batch_store("db", [f"k{i}" for i in range(2000)], data)
    for i in range(1900):
        store.delete_vector("db", f"k{i}")
    folder = tmp_path / "root" / "db"
    before = sum(f.stat().st_size for f in folder.iterdir())
    store.compact("db")
    after = sum(f.stat().st_size for f in folder.iterdir())
    assert after < before / 5
    assert sorted(os.listdir(tmp_path / "root")) == ["db"]
    assert store.count("db") == 100
    for i in range(1900, 2000):
        np.testing.assert_array_equal(store.retrieve_vector("db", f"k{i}"), data[i])
    store.store_vector("db", "new", data[0])
    assert store.verify("db") == []


def test_interrupted_compaction_is_finished_or_undone(store, tmp_path):
    root = tmp_path / "root"
    store.create_vector_file("db", 3)
    store.store_vector("db", "a", [1, 2, 3])
    store.close_vector_file("db")
    # A swap by two renames stopped between them: the complete new set is used.
    shutil.copytree(root / "db", root / ".db.compact")
    os.rename(root / "db", root / ".db.old")
    assert store.retrieve_vector("db", "a").tolist() == [1, 2, 3]
    assert sorted(os.listdir(root)) == ["db"]
    store.close_vector_file("db")
    # Stopped before the swap (a half-written new set) or after an exchange (the
    # old set at .compact): the folder is complete either way; the other goes.
    os.makedirs(root / ".db.compact")
    assert store.count("db") == 1 and sorted(os.listdir(root)) == ["db"]
    store.close_vector_file("db")
    # A creation that never finished is cleared.
    os.makedirs(root / ".db.creating")
    assert store.count("db") == 1 and sorted(os.listdir(root)) == ["db"]


def test_delete_database_vectors(store, tmp_path):
    store.create_vector_file("db", 3)
    store.store_vector("db", "a", [1, 2, 3])
    store.delete_database_vectors("db")
    assert not (tmp_path / "root" / "db").exists()
    with pytest.raises(DatabaseNotFoundError):
        store.count("db")
    store.delete_database_vectors("db")  # nothing left: nothing to do


def test_search(store):
    store.create_vector_file("db", 3)
    store.batch_store("db", ["x", "y", "z"],
                      np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0]], np.float32))
    store.delete_vector("db", "y")
    hits = store.search("db", np.array([[1, 0.9, 0]], np.float32), 5, "dot")
    assert [h[0] for h in hits[0]] == ["z", "x"]
    assert hits[0][0][1] == pytest.approx(1.9)
    store.create_vector_file("empty", 3)
    assert store.search("empty", np.ones((2, 3), np.float32), 3, "l2") == [[], []]


def test_writes_racing_a_compaction_are_not_lost(store):
    """Single stores, updates and deletes take no pin: one that meets the file set
    closed by compaction runs again on the new set, none is lost or applied twice."""
    store.create_vector_file("db", 4)
    errors = []
    deleted = []

    def writer(t):
        try:
            for i in range(300):
                store.store_vector("db", f"t{t}-{i}", np.full(4, i, np.float32))
                if i % 3 == 0:
                    store.update_vector("db", f"t{t}-{i}", np.full(4, -i, np.float32))
                if i % 5 == 0:
                    deleted.append(store.delete_vector("db", f"t{t}-{i}"))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    compactions = 0
    while any(th.is_alive() for th in threads) or compactions < 5:
        store.compact("db")
        compactions += 1
        time.sleep(0.002)  # back to back, compactions would starve the writers
    for th in threads:
        th.join()
    assert not errors, errors
    assert deleted == [True] * 240  # each delete ran once, on a live vector
    assert store.count("db") == 1200 - 240
    assert store.retrieve_vector("db", "t3-299").tolist() == [299] * 4
    assert store.retrieve_vector("db", "t2-3").tolist() == [-3] * 4
    assert store.retrieve_vector("db", "t1-5") is None


def test_a_delete_whose_rename_fails_keeps_the_files_and_says_why(store, tmp_path,
                                                                  monkeypatch):
    from jadevec.errors import StorageFullError

    store.create_vector_file("db", 2)
    store.store_vector("db", "x", [1, 2])
    store.sync()
    folder = tmp_path / "root" / "db"
    for code, error in ((28, StorageFullError), (5, OSError)):
        def rename_fails(src, dst, code=code):
            raise OSError(code, os.strerror(code), src)

        monkeypatch.setattr(os, "rename", rename_fails)
        with pytest.raises(error, match=f"renaming {str(folder)!r} failed") as caught:
            store.delete_database_vectors("db")
        monkeypatch.undo()
        assert type(caught.value) is error and caught.value.errno == code
        assert caught.value.filename == str(folder)
        assert (folder / "vectors.jvdb").exists()
    with MemoryMappedVectorStore(tmp_path / "root") as again:
        assert again.retrieve_vector("db", "x").tolist() == [1, 2]


def test_a_delete_cut_short_before_is_finished_by_the_next(store, tmp_path):
    store.create_vector_file("db", 2)
    leftover = tmp_path / "root" / ".db.deleting"
    leftover.mkdir()
    (leftover / "vectors.jvdb").write_bytes(b"from an earlier deletion")
    store.delete_database_vectors("db")
    assert os.listdir(tmp_path / "root") == []


def test_flush_and_sync_of_one_set_leave_the_others(store):
    store.create_vector_file("one", 2)
    store.create_vector_file("two", 2)
    store.store_vector("one", "x", [1, 2])
    store.store_vector("two", "y", [3, 4])
    store.flush("one")
    store.sync("two")
    assert store.retrieve_vector("one", "x").tolist() == [1, 2]
    assert "pins=0" in repr(store._slots["one"]) and "gone=None" in repr(store._slots["one"])


def test_a_closed_vector_store_refuses_work_and_a_failing_close_step_still_closes(tmp_path):
    store = MemoryMappedVectorStore(tmp_path / "root")
    store.create_vector_file("db", 2)
    store.store_vector("db", "x", [1, 2])

    def catalog_sync_fails():
        raise OSError(5, "Input/output error")

    with pytest.raises(OSError, match="Input/output error"):
        store.close(before_files=catalog_sync_fails)
    with pytest.raises(StoreClosedError):
        store.sync()
    with pytest.raises(StoreClosedError):
        store.create_vector_file("other", 2)
    with MemoryMappedVectorStore(tmp_path / "root") as again:  # the files were closed whole
        assert again.retrieve_vector("db", "x").tolist() == [1, 2]
        assert again.verify("db") == []


def test_creating_over_a_stray_folder_is_refused(store, tmp_path):
    (tmp_path / "root").mkdir(exist_ok=True)
    (tmp_path / "root" / "db").mkdir()
    with pytest.raises(DatabaseExistsError, match="a vector file set already exists"):
        store.create_vector_file("db", 2)
    assert os.listdir(tmp_path / "root" / "db") == []
    store.create_vector_file("other", 2)  # the failed create left no slot behind


def test_a_compaction_that_fails_before_its_swap_keeps_the_old_set(store, tmp_path,
                                                                   monkeypatch):
    from jadevec.backends import _vector_store

    store.create_vector_file("db", 2)
    store.batch_store("db", ["a", "b", "c"], np.arange(6, dtype=np.float32).reshape(3, 2))
    store.delete_vector("db", "b")
    stale = tmp_path / "root" / ".db.compact"
    stale.mkdir()  # left by an earlier compaction cut short
    (stale / "junk").write_bytes(b"x")
    real_fsync_dir = _vector_store.fsync_dir

    def fails_once(path):
        monkeypatch.setattr(_vector_store, "fsync_dir", real_fsync_dir)
        raise OSError(5, "Input/output error", str(path))

    monkeypatch.setattr(_vector_store, "fsync_dir", fails_once)
    with pytest.raises(OSError, match="Input/output error"):
        store.compact("db")
    assert sorted(os.listdir(tmp_path / "root")) == ["db"]  # no half-written set remains
    assert sorted(store.list_vectors("db")) == ["a", "c"]
    assert store.retrieve_vector("db", "c").tolist() == [4, 5]
    store.store_vector("db", "d", [7, 8])  # and the set takes writes again
    store.compact("db")
    assert sorted(store.list_vectors("db")) == ["a", "c", "d"]
