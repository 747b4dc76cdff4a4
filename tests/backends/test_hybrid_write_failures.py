"""A vector write that fails after its metadata records were written takes the
records back, so a failed store() or update() leaves the old pair readable; if
taking them back fails too, reads still pair each record with its vector."""

import errno
import sqlite3

import numpy as np
import pytest

from jadevec.backends._vector_store import MemoryMappedVectorStore
from jadevec.backends.base import StoreOptions
from jadevec.backends.hybrid import HybridBackend

ONE = np.ones((1, 4), np.float32)


class FailingWrites:
    """A vector file set whose put, put_batch and update raise EIO."""

    def __init__(self, vf):
        self._vf = vf

    def _fail(self, *args, **kwargs):
        raise OSError(errno.EIO, "Input/output error")

    put = put_batch = update = _fail

    def __getattr__(self, name):
        return getattr(self._vf, name)


@pytest.fixture
def store(tmp_path):
    store = HybridBackend(tmp_path, StoreOptions(flush_interval=0))
    yield store
    store.close()


def fail_vector_writes(monkeypatch):
    real_call = MemoryMappedVectorStore.call
    monkeypatch.setattr(MemoryMappedVectorStore, "call", lambda self, key, op: real_call(
        self, key, lambda vf: op(FailingWrites(vf))))


def test_a_store_of_nothing_writes_nothing(store):
    db = store.create_database("docs", 4, "l2")
    db.store([], np.zeros((0, 4), np.float32), None)
    assert db.count() == 0 and db.list_ids() == []


def test_a_failed_store_or_update_keeps_the_old_pair(store, monkeypatch):
    db = store.create_database("docs", 4, "l2")
    db.store(["a"], ONE, ['{"v": 1}'])
    fail_vector_writes(monkeypatch)
    with pytest.raises(OSError, match="Input/output error"):
        db.store(["a", "new"], ONE.repeat(2, axis=0) * 2, ['{"v": 2}', '{"v": 9}'])
    with pytest.raises(OSError, match="Input/output error"):
        db.update("a", ONE[0] * 3, '{"v": 3}', True)
    with pytest.raises(OSError, match="Input/output error"):
        db.store(["plain"], ONE, None)  # no records to take back
    monkeypatch.undo()
    assert db.list_ids() == ["a"]
    assert db.retrieve("a").tolist() == [1, 1, 1, 1]
    assert db.get_metadata("a") == '{"v": 1}'
    assert set(store._catalog.all(db._key)) == {"a"}  # the new id's record was taken back


def test_records_that_cannot_be_taken_back_still_pair_with_their_vectors(store, monkeypatch,
                                                                        caplog):
    db = store.create_database("docs", 4, "l2")
    db.store(["a"], ONE, ['{"v": 1}'])
    def remove_fails(self, folder, ids):
        raise sqlite3.OperationalError("disk I/O error")

    fail_vector_writes(monkeypatch)
    monkeypatch.setattr(type(store._catalog), "remove", remove_fails)
    with pytest.raises(OSError, match="Input/output error"):
        db.store(["a"], ONE * 2, ['{"v": 2}'])
    assert "could not restore the metadata records of 'docs'" in caplog.text
    monkeypatch.undo()
    assert db.get_metadata("a") == '{"v": 1}'  # the record ahead of its vector resolves back


def test_a_record_that_matches_no_version_of_its_vector_reads_as_no_metadata(store, tmp_path):
    db = store.create_database("docs", 4, "l2")
    db.store(["a"], ONE, ['{"v": 1}'])
    with sqlite3.connect(tmp_path / "catalog.sqlite3") as con:
        con.execute("UPDATE vector_meta SET fp = 1, prev_fp = 2, base_fp = 3")
    con.close()
    assert db.get_metadata("a") is None
    assert db.retrieve("a").tolist() == [1, 1, 1, 1]
