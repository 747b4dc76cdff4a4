"""The pin-free read path of ``retrieve`` (mmap and hybrid) and the API's inline id check.

``PersistentDatabase.retrieve`` reads through the ``VectorFile`` its handle
cached, without pinning it in the open-files table, and falls back to the
pinned path when the file was closed under it (see
jadevec/backends/_open_files.py). These tests pin what that relies on and
what it must keep: the core's closed check, LRU eviction within
``max_open_files``, no read from a closed file, ``DatabaseNotFoundError``
after a delete, ``StoreClosedError`` after close, and correct results while
eviction, compaction, deletion and close race with readers.
"""

import re
import threading

import numpy as np
import pytest

import jadevec
from jadevec.backends._open_files import CLOSED, UNOPENED, OpenFiles
from jadevec.backends._vector_store import MemoryMappedVectorStore
from jadevec.backends.base import StoreOptions
from jadevec.backends.hybrid import HybridBackend
from jadevec.backends.mmap import MmapBackend
from jadevec.errors import DatabaseNotFoundError, InvalidInputError, StoreClosedError

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


class CountingFiles(OpenFiles):
    """Counts acquires: the fast path must take none."""

    acquires = 0

    def acquire(self, key):
        type(self).acquires += 1
        return super().acquire(key)


def test_a_closed_vector_file_refuses_reads(tmp_path):
    # The core behaviour the fast path relies on: a read of a closed file is a
    # StoreClosedError (checked under the file's lock), never a read of unmapped memory.
    raw = MemoryMappedVectorStore(tmp_path)
    raw.create_vector_file("d", DIM)
    raw.store_vector("d", "a", vec(1))
    vf = raw.open_vector_file("d")
    assert vf is raw.open_vector_file("d")  # the one every operation uses
    assert np.array_equal(vf.get("a"), vec(1))
    raw.close_vector_file("d")
    with pytest.raises(StoreClosedError):
        vf.get("a")
    reopened = raw.open_vector_file("d")
    assert reopened is not vf and np.array_equal(reopened.get("a"), vec(1))
    raw.close()
    with pytest.raises(StoreClosedError):
        CLOSED.get("a")


@pytest.mark.parametrize("backend", BACKENDS)
def test_retrieve_after_the_first_takes_no_pin(tmp_path, backend, monkeypatch):
    store, (db,) = make(tmp_path, backend, 1)
    counting = CountingFiles(store._vectors, 100)
    monkeypatch.setattr(store, "_files", counting)
    monkeypatch.setattr(db, "_files", counting)
    CountingFiles.acquires = 0
    assert db._entry is UNOPENED
    assert np.array_equal(db.retrieve("v3"), vec(3))  # opens through the pinned path
    assert CountingFiles.acquires == 1 and db._entry.vf is not CLOSED
    for i in range(20):
        assert np.array_equal(db.retrieve(f"v{i}"), vec(i))
    assert db.retrieve("missing") is None
    assert CountingFiles.acquires == 1
    store.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_pin_free_reads_count_as_uses_for_eviction(tmp_path, backend):
    store, (a, b, c) = make(tmp_path, backend, 3, max_open_files=2)
    store.close()
    store = backend(tmp_path, StoreOptions(flush_interval=0, max_open_files=2))
    a, b, c = (store.open_database(n) for n in ("db0", "db1", "db2"))
    a.retrieve("v0")
    b.count()  # b: used after a
    for _ in range(3):
        a.retrieve("v1")  # pin-free: a is now the more recent one
    c.count()  # opens c: evicts the least recently used, b
    assert store._files.open_keys() == [store._databases["db0"].folder,
                                        store._databases["db2"].folder]
    assert store._files.evictions == 1
    # An evicted handle's entry keeps no file alive, and the next read reopens it.
    b_entry = b._entry
    assert b_entry.vf is CLOSED
    assert np.array_equal(b.retrieve("v2"), vec(1002))
    assert b._entry is not b_entry and store.open_file_count() == 2
    store.close()


def test_second_chance_order_in_the_table():
    class Store:
        def open_vector_file(self, key):
            pass

        def flush(self, key):
            pass

        def close_vector_file(self, key):
            pass

    files = OpenFiles(Store(), max_open=3)
    entries = {}
    for key in "abc":
        entries[key] = files.acquire(key)
        files.release(key)
    entries["a"].hot = True  # a pin-free read of a, after c's last use
    assert files.open_keys() == ["b", "c", "a"]
    files.acquire("d")
    files.release("d")  # evicts b; a's read is stamped after the eviction round
    assert files.open_keys() == ["c", "a", "d"]
    assert not entries["a"].hot and entries["b"].vf is CLOSED
    files.acquire("e")
    files.release("e")
    assert "c" not in files.open_keys()


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
                    db.compact()  # closes the file every reader of db caches
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
    assert store._files.evictions > 0
    for d, db in enumerate(dbs):  # every cached file is open or the placeholder
        assert db._entry.vf is CLOSED or not db._entry.vf.closed or db._entry is UNOPENED
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


@pytest.mark.parametrize("name", ["memory", "mmap", "hybrid"])
def test_api_retrieve_checks_ids_exactly_as_check_id(tmp_path, name):
    path = None if name == "memory" else tmp_path
    with jadevec.open(path, backend=name, flush_interval=0) as store:
        db = store.create_database("d", 2, "l2")

        class Sub(str):
            pass

        good = ["a", "\x00", "x" * 1024, "é" * 512, "\U0001f600" * 256, Sub("a")]
        db.batch_store([str(g) for g in good[:-1]], np.ones((len(good) - 1, 2)))
        for g in good:
            assert db.retrieve(g).tolist() == [1.0, 1.0], g
        for bad in [1, None, b"a", "", "x" * 1025, "é" * 513, "\ud800", ["a"]]:
            with pytest.raises(InvalidInputError) as info:
                db.retrieve(bad)
            with pytest.raises(InvalidInputError) as expected:
                jadevec._validate.check_id(bad)
            assert str(info.value) == str(expected.value)
            assert isinstance(info.value, ValueError)
        with pytest.raises(TypeError):
            db.retrieve(1)
    with pytest.raises(StoreClosedError):
        db.retrieve("a")


# -- the API edge's fast checks for batch store (jadevec._validate) ------------------------


def test_check_ids_fast_path_matches_the_slow_one():
    from jadevec import _validate as v

    class Sub(str):
        pass

    ids = [f"id{i}" for i in range(1000)]
    assert v.check_ids(ids) == ids and v.check_ids(tuple(ids)) == ids
    mixed = [*ids[:10], Sub("sub")]
    out = v.check_ids(mixed)
    assert out == mixed and all(type(i) is str for i in out)  # subclasses become str
    for bad, where in [([*ids, 1], "ids[1000]"), ([*ids, ""], "ids[1000]"),
                       (["x" * 1025, *ids], "ids[0]"), ([*ids[:5], "\ud800"], "ids[5]"),
                       ([*ids[:3], "é" * 513], "ids[3]"), ([b"a"], "ids[0]")]:
        with pytest.raises(InvalidInputError, match=re.escape(where)):
            v.check_ids(bad)
    assert v.check_ids(["x" * 1024, "é" * 512, "\x00"]) == ["x" * 1024, "é" * 512, "\x00"]
    with pytest.raises(InvalidInputError, match="repeat"):
        v.check_ids([*ids, "id7"])
    assert v.check_ids(["a", "a"], unique=False) == ["a", "a"]


@pytest.mark.parametrize("metric", ["l2", "dot", "cosine"])
def test_as_batch_refuses_every_non_finite_value(metric):
    from jadevec import _validate as v

    rows = np.ones((50, 4), np.float32)
    assert v.as_batch(rows, 50, 4, metric) is rows
    for bad in (np.nan, np.inf, -np.inf):
        for r, c in [(0, 0), (49, 3), (17, 2)]:
            x = rows.copy()
            x[r, c] = bad
            with pytest.raises(InvalidInputError, match=f"row {r}"):
                v.as_batch(x, 50, 4, metric)
    # Finite values whose squares overflow float32 are finite: accepted (exact recheck).
    huge = np.full((3, 4), 3e38, np.float32)
    assert v.as_batch(huge, 3, 4, metric) is huge
    zero = rows.copy()
    zero[5] = 0
    if metric == "cosine":
        with pytest.raises(InvalidInputError, match="row 5"):
            v.as_batch(zero, 50, 4, metric)
    else:
        assert v.as_batch(zero, 50, 4, metric) is zero
