"""Lazy opening and LRU eviction of vector files (T11.7.2), for mmap and hybrid."""

import threading

import numpy as np
import pytest

from jadevec.backends._open_files import OpenFiles
from jadevec.backends.base import StoreOptions
from jadevec.backends.hybrid import HybridBackend
from jadevec.backends.mmap import MmapBackend
from jadevec.errors import DatabaseNotFoundError, StoreClosedError

BACKENDS = [HybridBackend, MmapBackend]


class RecordingStore:
    """Stands in for MemoryMappedVectorStore and records what the table asks of it."""

    def __init__(self):
        self.calls = []
        self.open = set()

    def open_vector_file(self, key):
        assert key not in self.open, "opened twice"
        self.open.add(key)
        self.calls.append(("open", key))

    def flush(self, key):
        self.calls.append(("flush", key))

    def close_vector_file(self, key):
        self.open.remove(key)
        self.calls.append(("close", key))


def use(files, key):
    files.acquire(key)
    files.release(key)


def test_least_recently_used_is_flushed_then_closed_first():
    store = RecordingStore()
    files = OpenFiles(store, max_open=2)
    use(files, "a")
    use(files, "b")
    use(files, "a")  # b is now the least recently used
    use(files, "c")
    assert store.open == {"a", "c"}
    assert store.calls[-2:] == [("flush", "b"), ("close", "b")]
    assert files.open_keys() == ["a", "c"]
    assert files.evictions == 1


def test_a_pinned_file_is_never_closed():
    store = RecordingStore()
    files = OpenFiles(store, max_open=1)
    files.acquire("a")
    use(files, "b")  # a is pinned: b is the one that goes
    assert "a" in store.open
    files.acquire("c")
    assert store.open == {"a", "c"}  # over the limit while both are pinned
    files.release("a")  # the surplus idle one closes now
    assert store.open == {"c"}
    files.release("c")


def test_retire_waits_for_users_and_refuses_new_ones():
    store = RecordingStore()
    files = OpenFiles(store, max_open=4)
    files.acquire("a")
    done = threading.Event()
    retirer = threading.Thread(target=lambda: (files.retire("a"), done.set()), daemon=True)
    retirer.start()
    assert not done.wait(0.2)  # still pinned by us
    with pytest.raises(DatabaseNotFoundError):
        files.acquire("a")  # refused at once, while retire still waits for us
    files.release("a")
    assert done.wait(10)
    retirer.join()
    assert "a" not in store.open
    with pytest.raises(DatabaseNotFoundError):
        files.acquire("a")


def test_closed_table_refuses_acquire():
    files = OpenFiles(RecordingStore(), max_open=2)
    use(files, "a")
    files.close_all()
    with pytest.raises(StoreClosedError):
        files.acquire("a")


@pytest.mark.parametrize("backend", BACKENDS)
def test_opening_a_store_opens_no_vector_file(tmp_path, backend):
    store = backend(tmp_path, StoreOptions(flush_interval=0))
    for i in range(20):
        store.create_database(f"db{i}", 4, "l2")
    assert store.open_file_count() == 0  # creating leaves nothing open either
    store.close()
    store = backend(tmp_path, StoreOptions(flush_interval=0, max_open_files=3))
    assert store.open_file_count() == 0
    assert len(store.list_databases()) == 20
    db = store.open_database("DB7")  # a handle alone opens nothing
    assert store.open_file_count() == 0
    assert db.count() == 0
    assert store.open_file_count() == 1
    store.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_results_stay_correct_under_eviction_with_many_threads(tmp_path, backend):
    n_db, n_threads, rounds, dim = 12, 8, 60, 8
    store = backend(tmp_path, StoreOptions(flush_interval=0.01, max_open_files=2))
    dbs = [store.create_database(f"db{i}", dim, "l2") for i in range(n_db)]
    errors = []

    def worker(t):
        rng = np.random.default_rng(t)
        try:
            for r in range(rounds):
                i = int(rng.integers(n_db))
                vid = f"t{t}-r{r}"
                vec = rng.standard_normal((1, dim)).astype(np.float32)
                dbs[i].store([vid], vec, [f'{{"t": {t}}}'])
                got = dbs[i].retrieve(vid)
                if got is None or not np.array_equal(got, vec[0]):
                    errors.append(f"{vid} in db{i}: {got} != {vec[0]}")
                if dbs[i].get_metadata(vid) != f'{{"t": {t}}}':
                    errors.append(f"metadata of {vid}")
                hits = dbs[i].search(vec, 1)[0]
                if not hits or hits[0][0] != vid:
                    errors.append(f"search for {vid} in db{i} gave {hits}")
        except Exception as exc:  # any exception is a failure of the table
            errors.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors[:5]
    assert store.open_file_count() <= 2
    assert store._files.evictions > 0
    assert sum(db.count() for db in dbs) == n_threads * rounds
    store.close()

    store = backend(tmp_path, StoreOptions(flush_interval=0, max_open_files=2))
    total = sum(store.open_database(f"db{i}").count() for i in range(n_db))
    assert total == n_threads * rounds
    assert store.recovery_report is None
    store.close()
