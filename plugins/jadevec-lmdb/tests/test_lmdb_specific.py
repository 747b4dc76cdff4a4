"""What the LMDB backend promises beyond the conformance suite.

Transactions (a batch is all-or-nothing, a failed call leaves nothing), map
growth, the writer lock across processes, environment sharing inside one
process, key layout (long ids, prefixes removed on delete), verify() and the
search cache's coherence across processes. Raw state is read with ``lmdb``
directly, behind the backend, after the store is closed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from importlib.metadata import entry_points
from pathlib import Path

import jadevec
import lmdb
import numpy as np
import pytest
from jadevec.backends.base import StoreOptions
from jadevec.errors import (
    CorruptionError,
    DatabaseExistsError,
    DatabaseNotFoundError,
    InvalidInputError,
    ReadOnlyError,
    StoreClosedError,
    StoreLockedError,
    StoreNotFoundError,
    UnsupportedVersionError,
    VectorNotFoundError,
)

from jadevec_lmdb import LmdbBackend

SUBDATABASES = (b"meta", b"catalog", b"stats", b"vectors", b"metadata", b"long_ids")


def open_store(path: Path, read_only: bool = False, flush_interval: float = 5.0,
               **extra) -> LmdbBackend:
    return LmdbBackend(path, StoreOptions(read_only=read_only, flush_interval=flush_interval,
                                          extra=extra))


def vectors(n: int, d: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, d), dtype=np.float32) + np.float32(0.01)


def raw_entries(path: Path) -> dict[bytes, dict[bytes, bytes]]:
    """Every key and value of every sub-database, read with lmdb itself (store closed)."""
    env = lmdb.open(str(path), readonly=True, max_dbs=len(SUBDATABASES), lock=False)
    try:
        out = {}
        for name in SUBDATABASES:
            db = env.open_db(name, create=False)
            with env.begin(db=db) as txn:
                out[name] = dict(txn.cursor())
        return out
    finally:
        env.close()


def run_child(code: str, *args: str) -> subprocess.Popen:
    """Start a Python child running ``CHILD_PRELUDE`` and ``code``, with line-buffered pipes."""
    return subprocess.Popen(
        [sys.executable, "-c", CHILD_PRELUDE + textwrap.dedent(code), *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        bufsize=1, env=CHILD_ENV,
    )


# The child imports the very jadevec and plugin this process uses.
CHILD_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}


CHILD_PRELUDE = """
import sys, numpy as np
from pathlib import Path
from jadevec.backends.base import StoreOptions
from jadevec_lmdb import LmdbBackend
path = Path(sys.argv[1])
"""


@pytest.fixture
def store(tmp_path):
    backend = open_store(tmp_path / "store")
    yield backend
    backend.close()


def test_entry_point_names_the_backend():
    (point,) = [p for p in entry_points(group="jadevec.backends") if p.name == "lmdb"]
    assert point.value == "jadevec_lmdb:LmdbBackend"
    assert point.load() is LmdbBackend


# -- catalog ---------------------------------------------------------------------------------

def test_catalog_ignores_case_and_keeps_creation_case(store):
    store.create_database("MyDocs", 4, "l2")
    assert store.open_database("mydocs").info.name == "MyDocs"
    assert store.has_database("MYDOCS")
    assert [info.name for info in store.list_databases()] == ["MyDocs"]
    with pytest.raises(DatabaseExistsError):
        store.create_database("MYDOCS", 4, "l2")


def test_delete_database_removes_every_key_and_kills_handles(tmp_path):
    path = tmp_path / "store"
    store = open_store(path)
    keep = store.create_database("keep", 3, "dot")
    keep.store(["a"], vectors(1, 3), ['{"k": 1}'])
    gone = store.create_database("gone", 3, "dot")
    long_id = "é" * 512  # 1,024 UTF-8 bytes: longer than an LMDB key
    gone.store(["x", long_id], vectors(2, 3), ['{"m": 1}', None])
    store.delete_database("GONE")
    with pytest.raises(DatabaseNotFoundError):
        gone.count()
    again = store.create_database("gone", 3, "dot")
    assert again.count() == 0
    with pytest.raises(DatabaseNotFoundError):  # a new database of the same name is not it
        gone.retrieve("x")
    store.delete_database("gone")
    store.close()

    raw = raw_entries(path)
    assert list(raw[b"catalog"]) == [b"keep"]
    for sub in (b"stats", b"vectors", b"metadata"):
        assert len(raw[sub]) == 1, sub
    assert raw[b"long_ids"] == {}


# -- transactions ----------------------------------------------------------------------------

def test_update_of_missing_id_writes_nothing(store):
    db = store.create_database("d", 2, "l2")
    with pytest.raises(VectorNotFoundError):
        db.update("absent", vectors(1, 2)[0], None, replace_metadata=True)
    assert db.count() == 0
    assert not db.contains("absent")


def test_killed_batch_is_all_or_nothing(tmp_path):
    path = tmp_path / "store"
    child = run_child("""
        store = LmdbBackend(path, StoreOptions())
        db = store.create_database("d", 64, "l2")
        db.store([f"first{i}" for i in range(100)], np.ones((100, 64), np.float32), None)
        print("started", flush=True)
        n = 200_000
        db.store([f"big{i}" for i in range(n)], np.ones((n, 64), np.float32), None)
        print("committed", flush=True)
        sys.stdin.read()
    """, str(path))
    try:
        assert child.stdout.readline().strip() == "started", child.stderr.read()
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()

    store = open_store(path, read_only=True)
    try:
        db = store.open_database("d")
        assert db.count() in (100, 200_100)
        assert len(db.list_ids()) == db.count()
        assert store.verify().ok
    finally:
        store.close()
    # LMDB's writer mutex is robust: the killed writer's lock is recovered.
    store = open_store(path)
    try:
        store.open_database("d").store(["after"], np.ones((1, 64), np.float32), None)
        assert store.verify().ok
    finally:
        store.close()


def test_map_grows_when_full(tmp_path):
    path = tmp_path / "store"
    store = open_store(path, map_size=1 << 20)
    db = store.create_database("d", 64, "l2")
    data = vectors(20_000, 64)  # 5 MiB of floats into a 1 MiB map
    db.store([f"v{i}" for i in range(len(data))], data, None)
    assert db.count() == len(data)
    np.testing.assert_array_equal(db.retrieve("v19999"), data[-1])
    store.close()
    assert (path / "data.mdb").stat().st_size > 5 << 20


def test_map_growth_while_threads_read_and_write(tmp_path):
    store = open_store(tmp_path / "store", map_size=1 << 20)
    db = store.create_database("d", 32, "cosine")
    errors = []

    def writer(worker: int) -> None:
        try:
            for batch in range(20):
                data = vectors(100, 32, seed=worker * 100 + batch)
                db.store([f"w{worker}-{batch}-{i}" for i in range(100)], data, None)
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)

    def reader() -> None:
        try:
            for _ in range(50):
                db.search(vectors(2, 32, seed=7), 5)
                db.count()
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    threads += [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert db.count() == 4 * 20 * 100
    expected = vectors(100, 32, seed=3 * 100 + 19)
    np.testing.assert_array_equal(db.retrieve("w3-19-99"), expected[99])
    store.close()


# -- keys ------------------------------------------------------------------------------------

def test_long_ids_round_trip_through_hashed_keys(tmp_path):
    path = tmp_path / "store"
    store = open_store(path)
    db = store.create_database("d", 2, "l2")
    long_id = "\x00" + "é" * 511 + "z"  # 1,024 UTF-8 bytes with a NUL
    db.store([long_id, "short"], vectors(2, 2), ['{"long": true}', None])
    assert sorted(db.list_ids()) == sorted([long_id, "short"])
    assert db.get_metadata(long_id) == '{"long": true}'
    assert db.search(vectors(2, 2)[:1], 1)[0][0][0] == long_id
    store.close()
    assert list(raw_entries(path)[b"long_ids"].values()) == [long_id.encode()]


@pytest.mark.parametrize("dimension", [17, 20, 33])
def test_search_over_padded_rows_matches_numpy(store, dimension):
    # Rows of these dimensions are padded to a multiple of 16 floats in the matrix.
    db = store.create_database("d", dimension, "dot")
    data = vectors(300, dimension, seed=dimension)
    ids = [f"v{i}" for i in range(300)]
    db.store(ids, data, None)
    db.delete("v0")
    db.store(["late"], data[:1], None)
    query = vectors(1, dimension, seed=99)
    scores = data.astype(np.float64) @ query[0]
    # "late" holds v0's vector, so row 0's score is now its.
    want = sorted(zip(["late"] + ids[1:], scores, strict=True), key=lambda p: -p[1])
    (hits,) = db.search(query, 10)
    assert [i for i, _ in hits] == [i for i, _ in want[:10]]
    assert np.allclose([s for _, s in hits], [s for _, s in want[:10]], rtol=1e-5)


# -- processes and locking -------------------------------------------------------------------

def test_second_writer_process_is_refused_by_pid_and_readers_see_commits(tmp_path):
    path = tmp_path / "store"
    child = run_child("""
        import os
        store = LmdbBackend(path, StoreOptions())
        db = store.create_database("d", 3, "l2")
        db.store(["a"], np.ones((1, 3), np.float32), None)
        print(os.getpid(), flush=True)
        sys.stdin.readline()
        db.store(["b"], np.ones((1, 3), np.float32), None)
        print("stored", flush=True)
        sys.stdin.readline()
        store.close()
    """, str(path))
    try:
        pid = child.stdout.readline().strip()
        assert pid.isdigit(), child.stderr.read()
        with pytest.raises(StoreLockedError, match=pid) as caught:
            open_store(path)
        assert isinstance(caught.value, OSError)

        reader = open_store(path, read_only=True)
        db = reader.open_database("d")
        assert db.list_ids() == ["a"]
        assert db.search(np.ones((1, 3), np.float32), 5)[0][0][0] == "a"
        child.stdin.write("go\n")
        assert child.stdout.readline().strip() == "stored"
        assert sorted(db.list_ids()) == ["a", "b"]
        assert len(db.search(np.ones((1, 3), np.float32), 5)[0]) == 2  # cache reloaded
        reader.close()
        child.stdin.write("close\n")
        child.stdin.flush()
        assert child.wait(timeout=30) == 0, child.stderr.read()
    finally:
        child.kill()
        child.wait()
    open_store(path).close()  # the lock died with the writer


def test_second_writer_in_the_same_process_is_refused(store, tmp_path):
    with pytest.raises(StoreLockedError, match=str(os.getpid())):
        open_store(tmp_path / "store")


def test_reader_and_writer_in_one_process_share_the_environment(tmp_path):
    path = tmp_path / "store"
    writer = open_store(path)
    db = writer.create_database("d", 2, "dot")
    reader = open_store(path, read_only=True)
    seen = reader.open_database("d")
    db.store(["a"], vectors(1, 2), None)
    assert seen.contains("a")
    with pytest.raises(ReadOnlyError):
        seen.delete("a")
    with pytest.raises(ReadOnlyError):
        reader.create_database("e", 2, "dot")
    writer.close()
    assert seen.count() == 1  # the environment lives until its last user closes
    reader.close()
    with pytest.raises(StoreClosedError):
        seen.count()


def test_read_only_open_of_a_missing_store_creates_nothing(tmp_path):
    with pytest.raises(StoreNotFoundError):
        open_store(tmp_path / "absent", read_only=True)
    assert not (tmp_path / "absent").exists()


def test_persists_across_processes_with_lmdb_sync_off(tmp_path):
    path = tmp_path / "store"
    store = open_store(path, flush_interval=0.05, lmdb_sync=False)
    db = store.create_database("d", 4, "cosine")
    data = vectors(10, 4)
    db.store([f"v{i}" for i in range(10)], data, [json.dumps({"i": i}) for i in range(10)])
    store.sync()
    store.close()
    child = subprocess.run(
        [sys.executable, "-c", CHILD_PRELUDE + textwrap.dedent("""
            store = LmdbBackend(path, StoreOptions(read_only=True))
            db = store.open_database("D")
            import json
            print(json.dumps([db.count(), db.get_metadata("v7"), db.retrieve("v3").tolist()]))
            store.close()
        """), str(path)],
        capture_output=True, text=True, check=True, env=CHILD_ENV,
    )
    count, metadata, vector = json.loads(child.stdout)
    assert (count, json.loads(metadata)) == (10, {"i": 7})
    assert vector == data[3].tolist()


# -- options ---------------------------------------------------------------------------------

@pytest.mark.parametrize("extra", [{"map_size": 0}, {"map_size": True}, {"map_size": 1.5e9},
                                   {"lmdb_sync": "yes"}])
def test_bad_option_values_are_refused_before_anything_is_created(tmp_path, extra):
    with pytest.raises(InvalidInputError):
        open_store(tmp_path / "store", **extra)
    assert not (tmp_path / "store").exists()


def test_extra_options_pass_through_the_public_api(tmp_path):
    with jadevec.open(tmp_path / "s", backend="lmdb", map_size=1 << 20, lmdb_sync=False,
                      flush_interval=0) as store:
        db = store.create_database("d", 16, metric="dot")
        db.batch_store([f"v{i}" for i in range(20_000)], vectors(20_000, 16))
        store.sync()
    with pytest.raises(InvalidInputError):
        jadevec.open(tmp_path / "t", backend="lmdb", lmdb_sync=1)
    with jadevec.open(tmp_path / "s", backend="lmdb", read_only=True) as store:
        assert len(store.get_database("D")) == 20_000


def test_extra_options_are_declared():
    assert dict(LmdbBackend.extra_options) == {"map_size": 256 << 20, "lmdb_sync": True}


# -- damage ----------------------------------------------------------------------------------

def test_verify_reports_damage_behind_the_backend(tmp_path):
    path = tmp_path / "store"
    store = open_store(path)
    db = store.create_database("d", 4, "l2")
    db.store(["a", "b"], vectors(2, 4), None)
    store.close()
    env = lmdb.open(str(path), max_dbs=len(SUBDATABASES))
    with env.begin(write=True) as txn:
        vec = env.open_db(b"vectors", txn=txn, create=False)
        meta = env.open_db(b"metadata", txn=txn, create=False)
        prefix = next(iter(txn.cursor(db=vec)))[0][:8]
        txn.put(prefix + b"a", b"\x00" * 12, db=vec)  # 3 floats in a 4-d database
        txn.put(prefix + b"ghost", b"{}", db=meta)
        txn.put(b"\x00" * 7 + b"\x63" + b"orphan", b"\x00" * 16, db=vec)
    env.close()

    store = open_store(path)
    report = store.verify()
    assert not report.ok
    text = "\n".join(report.problems)
    assert "has 12 bytes, expected 16" in text
    assert "metadata of b'ghost' has no vector" in text
    assert "'vectors': 1 entries belong to no database" in text
    with pytest.raises(CorruptionError, match="has 12 bytes"):
        store.open_database("d").retrieve("a")
    with pytest.raises(CorruptionError):
        store.open_database("d").search(vectors(1, 4), 1)
    store.close()


def test_garbage_data_file_is_a_corruption_error(tmp_path):
    path = tmp_path / "store"
    path.mkdir()
    (path / "data.mdb").write_bytes(os.urandom(64 << 10))
    with pytest.raises(CorruptionError, match="data.mdb"):
        open_store(path)


def test_foreign_lmdb_environment_is_refused(tmp_path):
    path = tmp_path / "store"
    env = lmdb.open(str(path))
    with env.begin(write=True) as txn:
        txn.put(b"someone", b"else's")
    env.close()
    with pytest.raises(CorruptionError, match="not a jadevec-lmdb store"):
        open_store(path)


def test_newer_format_is_refused(tmp_path):
    path = tmp_path / "store"
    open_store(path).close()
    env = lmdb.open(str(path), max_dbs=len(SUBDATABASES))
    with env.begin(write=True) as txn:
        txn.put(b"format", b"jadevec-lmdb/99", db=env.open_db(b"meta", txn=txn))
    env.close()
    with pytest.raises(UnsupportedVersionError, match="format"):
        open_store(path)


# -- lifecycle -------------------------------------------------------------------------------

def test_handles_fail_cleanly_after_close(tmp_path):
    store = open_store(tmp_path / "store")
    db = store.create_database("d", 2, "l2")
    store.close()
    store.close()
    for call in (db.count, db.list_ids, lambda: db.retrieve("a"),
                 lambda: db.search(vectors(1, 2), 1), store.list_databases):
        with pytest.raises(StoreClosedError):
            call()
    assert (db.info.name, db.info.dimension, db.info.metric) == ("d", 2, "l2")
