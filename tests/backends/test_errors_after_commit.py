"""A call whose change is committed does not raise for what fails after it.

A delete is committed when the vector is gone, a database deletion when the
catalog marks it deleted, a backup when its folder is renamed into place. A
failure after that point (removing the metadata record, the folder, syncing
the backup's name) must not tell the caller the call failed: the change is
there, and what is left behind is what a crash at that moment leaves, which
reads ignore and the next open removes. A backup that cannot make its name
durable is the exception: it removes the copy and raises.
"""

import errno
import logging

import numpy as np
import pytest

import jadevec
import jadevec._api
from jadevec.backends.hybrid import SqliteCatalog
from jadevec.backends.mmap import JsonCatalog

BACKENDS = [("hybrid", SqliteCatalog), ("mmap", JsonCatalog)]


def _fail(*args, **kwargs):
    raise OSError(errno.EIO, "injected I/O error")


@pytest.mark.parametrize(("backend", "catalog"), BACKENDS)
def test_delete_returns_when_removing_the_record_fails(tmp_path, monkeypatch, caplog,
                                                       backend, catalog):
    with jadevec.open(tmp_path / "s", backend=backend, flush_interval=0) as store:
        db = store.create_database("docs", 3, "l2")
        db.store("a", np.ones(3, np.float32), metadata={"k": 1})
        db.store("b", np.zeros(3, np.float32), metadata={"k": 2})
        with monkeypatch.context() as patch, caplog.at_level(logging.WARNING, "jadevec"):
            patch.setattr(catalog, "remove", _fail)
            assert db.delete("a") is True
        assert "removing its metadata record failed" in caplog.text
        assert db.retrieve("a") is None and db.get_metadata("a") is None
        assert db.list_vectors() == ["b"]
        assert store.verify().ok  # the left record is not damage
        db.store("a", np.full(3, 2, np.float32), metadata={"k": 3})  # the id is free again
        assert db.get_metadata("a") == {"k": 3}
        db.delete("a")
    with jadevec.open(tmp_path / "s", backend=backend) as store:
        db = store.get_database("docs")
        assert db.list_vectors() == ["b"] and db.get_metadata("b") == {"k": 2}
        assert store.verify().ok


@pytest.mark.parametrize(("backend", "catalog"), BACKENDS)
def test_delete_database_returns_when_removing_its_files_fails(tmp_path, monkeypatch, caplog,
                                                                backend, catalog):
    path = tmp_path / "s"
    with jadevec.open(path, backend=backend, flush_interval=0) as store:
        store.create_database("keep", 3, "l2").store("k", np.ones(3, np.float32))
        doomed = store.create_database("doomed", 3, "l2")
        doomed.store("x", np.ones(3, np.float32), metadata={"k": 1})
        store.sync()
        with monkeypatch.context() as patch, caplog.at_level(logging.WARNING, "jadevec"):
            patch.setattr(catalog, "drop", _fail)
            store.delete_database("doomed")
        assert "removing its files failed" in caplog.text
        assert store.list_databases() == ["keep"]
        with pytest.raises(jadevec.DatabaseNotFoundError):
            len(doomed)
        assert store.verify().ok
    with jadevec.open(path, backend=backend) as store:
        assert store.list_databases() == ["keep"]
        assert store.verify().ok
        store.create_database("doomed", 3, "l2")  # the name is free
        assert store.get_database("doomed").list_vectors() == []


def test_backup_that_cannot_sync_its_name_leaves_no_copy(tmp_path, monkeypatch):
    with jadevec.open(tmp_path / "s", flush_interval=0) as store:
        store.create_database("docs", 3, "l2").store("a", np.ones(3, np.float32))
        dest = tmp_path / "copies" / "b1"
        with monkeypatch.context() as patch:
            patch.setattr(jadevec._api, "fsync_dir", _fail)
            with pytest.raises(OSError, match="injected"):
                store.backup(dest)
        assert not dest.exists()
        assert [p.name for p in dest.parent.iterdir()] == []  # no work folder either
        store.backup(dest)  # works once the disk does
    with jadevec.open(dest) as copy:
        assert copy.get_database("docs").list_vectors() == ["a"]
