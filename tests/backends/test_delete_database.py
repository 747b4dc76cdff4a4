"""Deleting a database: no orphans, safe against concurrent use."""

import threading

import numpy as np
import pytest

from jadevec.backends.base import StoreOptions
from jadevec.backends.hybrid import HybridBackend
from jadevec.backends.mmap import MmapBackend
from jadevec.errors import DatabaseNotFoundError

BACKENDS = [HybridBackend, MmapBackend]


def listing(root):
    """Every path under the store, relative, except the catalog's own files."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if not p.name.startswith(("catalog", ".lock")))


@pytest.mark.parametrize("backend", BACKENDS)
def test_delete_removes_every_file_and_folder(tmp_path, backend):
    store = backend(tmp_path, StoreOptions(flush_interval=0))
    empty = listing(tmp_path)
    keep = store.create_database("keep", 3, "dot")
    keep.store(["k"], np.ones((1, 3), np.float32), ['{"a": 1}'])
    with_keep = listing(tmp_path)
    doomed = store.create_database("Doomed", 3, "cosine")
    doomed.store(["a", "b"], np.eye(3, dtype=np.float32)[:2], ['{"x": 1}', None])
    store.sync()
    assert listing(tmp_path) != with_keep
    store.delete_database("DOOMED")
    assert listing(tmp_path) == with_keep
    assert [d.name for d in store.list_databases()] == ["keep"]
    with pytest.raises(DatabaseNotFoundError, match="Doomed"):
        doomed.count()
    with pytest.raises(DatabaseNotFoundError):
        store.open_database("doomed")
    store.delete_database("keep")
    assert listing(tmp_path) == empty
    store.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_new_database_of_the_same_name_is_not_the_old_one(tmp_path, backend):
    store = backend(tmp_path, StoreOptions(flush_interval=0))
    old = store.create_database("x", 2, "l2")
    old.store(["a"], np.ones((1, 2), np.float32), None)
    store.delete_database("x")
    new = store.create_database("X", 2, "l2")
    assert new.count() == 0
    with pytest.raises(DatabaseNotFoundError):
        old.retrieve("a")
    store.close()
    store = backend(tmp_path, StoreOptions(flush_interval=0))
    assert [d.name for d in store.list_databases()] == ["X"]
    assert store.recovery_report is None
    store.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_delete_while_other_threads_use_the_database(tmp_path, backend):
    store = backend(tmp_path, StoreOptions(flush_interval=0, max_open_files=2))
    other = store.create_database("other", 4, "l2")
    db = store.create_database("busy", 4, "l2")
    started = threading.Barrier(5)
    unexpected = []
    refused = []

    def worker(t):
        rng = np.random.default_rng(t)
        started.wait()
        for r in range(2000):
            try:
                # "other" first, so every thread has written to it before "busy" can refuse
                other.store([f"{t}-{r}"], rng.standard_normal((1, 4)).astype(np.float32), None)
                db.store([f"{t}-{r}"], rng.standard_normal((1, 4)).astype(np.float32), None)
                db.retrieve(f"{t}-{r}")
            except DatabaseNotFoundError:
                refused.append(t)
                return
            except Exception as exc:
                unexpected.append(repr(exc))
                return

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    started.wait()
    store.delete_database("busy")
    for th in threads:
        th.join()
    assert not unexpected, unexpected
    folders = {p.split("/")[1] for p in listing(tmp_path) if p.startswith("vectors/")}
    assert len(folders) == 1  # only "other" is left
    assert other.count() > 0
    store.close()
