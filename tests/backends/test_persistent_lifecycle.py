"""The life of a persistent store (mmap and hybrid alike): what open refuses,
what a closed or read-only store refuses, a failed sync that fences writes
until the store is reopened, and a creation whose undo failed too."""

import errno
import pathlib

import numpy as np
import pytest

from jadevec.backends._vector_store import MemoryMappedVectorStore
from jadevec.backends.base import StoreOptions
from jadevec.backends.hybrid import HybridBackend
from jadevec.backends.mmap import MmapBackend
from jadevec.errors import (
    InvalidInputError,
    ReadOnlyError,
    StorageFullError,
    StoreClosedError,
    StoreFailedError,
)

BACKENDS = [HybridBackend, MmapBackend]
ONE = np.ones((1, 4), np.float32)


def failing(error):
    def fail(*args, **kwargs):
        raise error
    return fail


def writer(backend, path):
    return backend(path, StoreOptions(flush_interval=0))


@pytest.mark.parametrize("backend", BACKENDS)
def test_open_refuses_no_path_a_full_disk_and_an_unwritable_folder(tmp_path, monkeypatch,
                                                                   backend):
    with pytest.raises(InvalidInputError, match="needs a directory path, got None"):
        backend(None, StoreOptions())
    monkeypatch.setattr(pathlib.Path, "mkdir", failing(OSError(errno.ENOSPC, "No space")))
    with pytest.raises(StorageFullError, match="cannot make the store's folder"):
        writer(backend, tmp_path / "new")
    monkeypatch.undo()
    (tmp_path / "locked").mkdir()
    monkeypatch.setattr("os.access", lambda path, mode: False)
    with pytest.raises(PermissionError, match="not writable by this process"):
        writer(backend, tmp_path / "locked")
    monkeypatch.undo()
    assert list((tmp_path / "locked").iterdir()) == []  # not even a lock file


@pytest.mark.parametrize("backend", BACKENDS)
def test_closed_and_read_only_stores_refuse_writes(tmp_path, backend):
    store = writer(backend, tmp_path)
    store.create_database("docs", 4, "l2").store(["a"], ONE, None)
    assert repr(store) == f"<{backend.__name__} {str(tmp_path)!r} open>"
    store.close()
    store.close()  # a second close does nothing
    assert repr(store) == f"<{backend.__name__} {str(tmp_path)!r} closed>"
    with pytest.raises(StoreClosedError, match="is closed"):
        store.create_database("more", 4, "l2")
    reader = backend(tmp_path, StoreOptions(read_only=True, flush_interval=0))
    assert repr(reader).endswith("read-only>")
    with pytest.raises(ReadOnlyError, match="was opened with read_only=True"):
        reader.create_database("more", 4, "l2")
    reader.flush()
    reader.sync()  # nothing to make durable: no error
    assert reader.open_database("docs").count() == 1
    reader.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_failed_sync_fences_writes_until_the_store_is_reopened(tmp_path, monkeypatch,
                                                                 backend):
    store = writer(backend, tmp_path)
    db = store.create_database("docs", 4, "l2")
    db.store(["a"], ONE, None)
    store.sync()
    monkeypatch.setattr(MemoryMappedVectorStore, "sync",
                        failing(OSError(errno.EIO, "Input/output error")))
    with pytest.raises(OSError, match="Input/output error"):
        store.sync()
    monkeypatch.undo()
    with pytest.raises(StoreFailedError, match="a sync failed .* refuses writes until it is "
                                               "reopened"):
        db.store(["b"], ONE * 2, None)
    with pytest.raises(StoreFailedError, match="reopen the store"):
        store.sync()
    store._background_checkpoint()  # told once: the background thread stays quiet
    assert db.retrieve("a").tolist() == [1, 1, 1, 1]  # reads go on
    store.close()
    again = writer(backend, tmp_path)
    assert again.recovery_report is not None  # not marked clean: recovered at open
    assert again.open_database("docs").list_ids() == ["a"]
    again.open_database("docs").store(["b"], ONE * 2, None)
    again.close()


def test_a_creation_whose_undo_failed_is_finished_by_the_next_create(tmp_path, monkeypatch,
                                                                     caplog):
    store = writer(HybridBackend, tmp_path)
    monkeypatch.setattr(MemoryMappedVectorStore, "create_vector_file",
                        failing(OSError(errno.EIO, "Input/output error")))
    monkeypatch.setattr(type(store._catalog), "abort_create",
                        failing(OSError(errno.EIO, "the catalog failed too")))
    with pytest.raises(OSError, match="Input/output error"):
        store.create_database("docs", 4, "l2")
    assert "could not undo the failed creation of database 'docs'" in caplog.text
    monkeypatch.undo()
    assert [state for _, state in store._catalog.entries()] == ["creating"]
    db = store.create_database("docs", 4, "l2")
    db.store(["a"], ONE, None)
    assert [state for _, state in store._catalog.entries()] == ["live"]
    store.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_close_that_cannot_mark_the_store_clean_still_closes_it(tmp_path, monkeypatch,
                                                                  backend):
    store = writer(backend, tmp_path)
    store.create_database("docs", 4, "l2").store(["a"], ONE, None)
    monkeypatch.setattr(type(store._catalog), "set_clean",
                        failing(OSError(errno.EIO, "Input/output error")))
    with pytest.raises(OSError, match="Input/output error"):
        store.close()
    monkeypatch.undo()
    again = writer(backend, tmp_path)  # the lock was released
    assert again.recovery_report is not None
    assert again.open_database("docs").list_ids() == ["a"]
    again.close()
