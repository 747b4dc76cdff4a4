"""The one table of open file sets (jadevec/backends/_vector_store.py), through mmap and hybrid.

What it promises: a store opens no vector file until a database is used; at
most ``max_open_files`` stay open, least recently used closed first (with a
second chance for pin-free reads); a pinned file set is never closed; opening
and closing run outside the table lock, so a slow open or close of one
database never stalls the others; the pin-free ``retrieve`` never reads a
closed file; a deleted database's handles raise ``DatabaseNotFoundError`` and
a closed store's ``StoreClosedError``, never anything else.
"""

import threading
import time

import numpy as np
import pytest

import jadevec
from jadevec.backends.base import StoreOptions
from jadevec.backends.hybrid import HybridBackend
from jadevec.backends.mmap import MmapBackend
from jadevec.errors import DatabaseNotFoundError, StoreClosedError

BACKENDS = [HybridBackend, MmapBackend]
DIM = 8


def vec(i):
    return np.full(DIM, i, dtype=np.float32) + np.arange(DIM, dtype=np.float32)


def make(tmp_path, backend, n_db, n_vec=20, **options):
    store = backend(tmp_path, StoreOptions(flush_interval=0, **options))
    dbs = []
    for d in range(n_db):
        db = store.create_database(f"db{d}", DIM, "l2")
        db.store([f"v{i}" for i in range(n_vec)],
                 np.stack([vec(d * 1000 + i) for i in range(n_vec)]), None)
        dbs.append(db)
    return store, dbs


def folder(store, name):
    return store._databases[name.lower()].folder


@pytest.mark.parametrize("backend", BACKENDS)
def test_opening_a_store_opens_no_vector_file(tmp_path, backend):
    store = backend(tmp_path, StoreOptions(flush_interval=0, max_open_files=100))
    for i in range(20):
        store.create_database(f"db{i}", 4, "l2")
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
def test_least_recently_used_goes_first_and_reads_get_a_second_chance(tmp_path, backend):
    store, (a, b, c) = make(tmp_path, backend, 3, max_open_files=3)
    store.close()
    store = backend(tmp_path, StoreOptions(flush_interval=0, max_open_files=2))
    a, b, c = (store.open_database(n) for n in ("db0", "db1", "db2"))
    a.count()
    b.count()  # b: used after a
    for _ in range(3):
        a.retrieve("v1")  # pin-free: marks a as read since the last eviction
    c.count()  # opens c: evicts the least recently used, b
    assert store._vectors.open_keys() == [folder(store, "db0"), folder(store, "db2")]
    assert store._vectors.evictions == 1
    assert np.array_equal(b.retrieve("v2"), vec(1002))  # reopened by the pinned path
    assert store.open_file_count() == 2
    store.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_pinned_file_set_is_never_closed(tmp_path, backend):
    store, (a, b) = make(tmp_path, backend, 2, max_open_files=1)
    vectors = store._vectors
    inside = threading.Event()
    release = threading.Event()

    def hold(vf):
        inside.set()
        release.wait(10)
        return vf.get("v1")

    got = []
    t = threading.Thread(target=lambda: got.append(vectors.call(folder(store, "db0"), hold)))
    t.start()
    inside.wait(10)
    for _ in range(3):  # each opens db1 past the limit; the idle one is evicted, not db0
        assert b.count() == 20
        assert vectors.is_open(folder(store, "db0"))
    release.set()
    t.join(10)
    assert np.array_equal(got[0], vec(1))
    assert store.open_file_count() == 1
    store.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_slow_open_of_one_database_does_not_stall_the_others(tmp_path, backend, monkeypatch):
    store, (slow, fast) = make(tmp_path, backend, 2, max_open_files=1)
    store.close()
    store = backend(tmp_path, StoreOptions(flush_interval=0, max_open_files=1))
    slow, fast = store.open_database("db0"), store.open_database("db1")
    vectors = store._vectors
    real_open = vectors._open
    opening = threading.Event()
    finish = threading.Event()

    def slow_open(key):
        if key == folder(store, "db0"):
            opening.set()
            finish.wait(10)  # a long recovery, say
        return real_open(key)

    monkeypatch.setattr(vectors, "_open", slow_open)
    t = threading.Thread(target=slow.count)
    t.start()
    opening.wait(10)
    started = time.perf_counter()
    for i in range(20):  # the other database opens, reads and is evicted meanwhile
        assert np.array_equal(fast.retrieve(f"v{i}"), vec(1000 + i))
    assert time.perf_counter() - started < 5
    finish.set()
    t.join(10)
    store.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_first_uses_open_one_file_set(tmp_path, backend):
    store, _ = make(tmp_path, backend, 1)
    store.close()
    store = backend(tmp_path, StoreOptions(flush_interval=0))
    db = store.open_database("db0")
    barrier = threading.Barrier(8)
    errors = []

    def use(t):
        barrier.wait()
        try:
            if t % 2:
                store.verify()
            else:
                db.count()
        except Exception as exc:  # noqa: BLE001 - any error fails the test
            errors.append(repr(exc))

    threads = [threading.Thread(target=use, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert not errors
    assert store._vectors.opens == 1  # one file set, one writer handle
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
                v = rng.standard_normal((1, dim)).astype(np.float32)
                dbs[i].store([vid], v, [f'{{"t": {t}}}'])
                got = dbs[i].retrieve(vid)
                if got is None or not np.array_equal(got, v[0]):
                    errors.append(f"{vid} in db{i}: {got} != {v[0]}")
                if dbs[i].get_metadata(vid) != f'{{"t": {t}}}':
                    errors.append(f"metadata of {vid}")
                hits = dbs[i].search(v, 1)[0]
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
    # The background checkpoint pins every open set while it runs, and a set
    # opened meanwhile cannot evict a pinned one: the cap holds again once the
    # checkpoint's release closes the excess.
    deadline = time.monotonic() + 10
    while store.open_file_count() > 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.open_file_count() <= 2
    assert store._vectors.evictions > 0
    assert sum(db.count() for db in dbs) == n_threads * rounds
    store.close()

    store = backend(tmp_path, StoreOptions(flush_interval=0, max_open_files=2))
    total = sum(store.open_database(f"db{i}").count() for i in range(n_db))
    assert total == n_threads * rounds
    assert store.recovery_report is None
    store.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_readers_race_eviction_compaction_and_writes(tmp_path, backend):
    n_db, n_vec = 4, 20
    store, dbs = make(tmp_path, backend, n_db, n_vec, max_open_files=1)
    stop = threading.Event()
    errors = []

    def reader(t):
        rng = np.random.default_rng(t)
        try:
            while not stop.is_set():
                d = int(rng.integers(n_db))
                i = int(rng.integers(n_vec))
                got = dbs[d].retrieve(f"v{i}")
                if got is None or not np.array_equal(got, vec(d * 1000 + i)):
                    errors.append(f"db{d}/v{i}: {got}")
        except Exception as exc:
            errors.append(repr(exc))

    def churner():
        rng = np.random.default_rng(99)
        try:
            for r in range(60):
                d = int(rng.integers(n_db))
                db = dbs[d]
                db.store([f"x{r}"], vec(r)[None], None)  # pinned: forces eviction of others
                db.delete(f"x{r}")
                if r % 10 == 0:
                    db.compact()  # closes the file set every pin-free reader uses
                db.count()
        except Exception as exc:
            errors.append(repr(exc))
        finally:
            stop.set()

    threads = [threading.Thread(target=reader, args=(t,)) for t in range(4)]
    threads.append(threading.Thread(target=churner))
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not errors, errors[:5]
    assert store.open_file_count() <= 1
    assert store._vectors.evictions > 0
    for d, db in enumerate(dbs):
        assert np.array_equal(db.retrieve("v5"), vec(d * 1000 + 5))
    store.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_readers_race_a_delete(tmp_path, backend):
    store, (doomed, keep) = make(tmp_path, backend, 2, max_open_files=1)
    deleted = threading.Event()
    errors = []
    counts = {"ok": 0, "gone": 0}

    def reader():
        while True:
            after = deleted.is_set()
            try:
                got = doomed.retrieve("v3")
            except DatabaseNotFoundError:
                counts["gone"] += 1
                if after:
                    return
                continue
            except Exception as exc:
                errors.append(repr(exc))
                return
            if after:
                errors.append(f"read {got} from a deleted database")
                return
            if not np.array_equal(got, vec(3)):
                errors.append(f"wrong vector {got}")
            counts["ok"] += 1

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for th in threads:
        th.start()
    while counts["ok"] < 100:
        keep.count()  # keep evicting the doomed one under the readers
    store.delete_database("db0")
    deleted.set()
    for th in threads:
        th.join(60)
    assert not errors, errors[:5]
    assert counts["gone"] >= 4
    with pytest.raises(DatabaseNotFoundError):
        doomed.retrieve("v3")
    assert np.array_equal(keep.retrieve("v3"), vec(1003))
    store.close()


@pytest.mark.parametrize("name", ["mmap", "hybrid"])
def test_readers_race_close(tmp_path, name):
    store = jadevec.open(tmp_path, backend=name, flush_interval=0, max_open_files=1)
    dbs = [store.create_database(f"db{d}", DIM, "l2") for d in range(2)]
    for d, db in enumerate(dbs):
        db.store("a", vec(d))
    closing = threading.Event()
    closed = threading.Event()
    errors = []

    def reader(t):
        db = dbs[t % 2]
        while True:
            after = closed.is_set()
            try:
                got = db.retrieve("a")
            except StoreClosedError:
                if closing.is_set():
                    return
                errors.append("closed before close()")
                return
            except Exception as exc:
                errors.append(repr(exc))
                return
            if after:
                errors.append("read after close() returned")
                return
            if not np.array_equal(got, vec(t % 2)):
                errors.append(f"wrong vector {got}")

    threads = [threading.Thread(target=reader, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for _ in range(50):
        dbs[0].search(vec(0), 1)
        dbs[1].search(vec(1), 1)  # evictions under the readers
    closing.set()
    store.close()
    closed.set()
    for th in threads:
        th.join(60)
    assert not errors, errors[:5]


@pytest.mark.parametrize("backend", BACKENDS)
def test_close_closes_every_file_set_even_if_one_fails(tmp_path, backend, monkeypatch):
    store, dbs = make(tmp_path, backend, 3)
    vectors = store._vectors
    files = [vectors._slots[folder(store, f"db{d}")].vf for d in range(3)]
    real_close = type(files[0]).close
    calls = []

    class Failing:
        def __init__(self, vf, fail):
            self.vf, self.fail = vf, fail

        def close(self):
            calls.append(self.fail)
            real_close(self.vf)
            if self.fail:
                raise OSError(5, "injected sync failure", "x")

    for d, vf in enumerate(files):
        vectors._slots[folder(store, f"db{d}")].vf = Failing(vf, d == 0)
    with pytest.raises(OSError, match="injected"):
        store.close()
    assert len(calls) == 3 and all(vf.closed for vf in files)
