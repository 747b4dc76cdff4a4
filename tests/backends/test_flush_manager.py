"""The background checkpoint: a tick commits what changed, an idle store does no I/O.

* An idle store (nothing written since the last tick) leaves every file
  untouched across many ticks: no commit record rewritten, no catalog commit,
  no modification time moved.
* Data acknowledged before a tick is committed by it: a reader process (which
  sees only committed state) finds every vector bit-exact while the writer
  still runs, and after the writer is killed with SIGKILL a new writer finds
  them all.
"""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import jadevec
from jadevec.testing import file_states

BACKENDS = ["mmap", "hybrid"]
TICK = 0.05


def _wait_ticks(store: jadevec.Store, n: int) -> None:
    checkpointer = store._backend._checkpointer
    target = checkpointer.runs + n
    deadline = time.monotonic() + 30
    while checkpointer.runs < target:
        assert time.monotonic() < deadline, "the checkpoint thread stopped ticking"
        time.sleep(TICK / 5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_idle_store_writes_nothing(tmp_path, rng, backend):
    path = tmp_path / "store"
    with jadevec.open(path, backend=backend, flush_interval=TICK) as store:
        dbs = [store.create_database(f"db{i}", 8, "l2") for i in range(3)]
        for i, db in enumerate(dbs):
            db.batch_store([f"v{j}" for j in range(50)],
                           rng.standard_normal((50, 8)).astype(np.float32),
                           [{"i": i}] * 50)
        _wait_ticks(store, 2)  # the first commits the writes, the second finds nothing
        before = file_states(path)
        generations = [store._backend._vectors.call(e.folder, lambda vf: vf.generation)
                       for e in store._backend._databases.values()]
        time.sleep(0.02)  # past the file system's timestamp granularity
        _wait_ticks(store, 6)
        assert file_states(path) == before
        assert [store._backend._vectors.call(e.folder, lambda vf: vf.generation)
                for e in store._backend._databases.values()] == generations
        # A write wakes it again: the next tick commits a new generation.
        dbs[0].store("late", np.ones(8, np.float32))
        _wait_ticks(store, 2)
        folder = store._backend._databases["db0"].folder
        assert store._backend._vectors.call(folder, lambda vf: vf.generation) > generations[0]


WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np
    import jadevec

    path, backend = sys.argv[1], sys.argv[2]
    store = jadevec.open(path, backend=backend, flush_interval=%(tick)r)
    db = store.create_database("docs", 16, "l2")
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((300, 16)).astype(np.float32)
    db.batch_store([f"b{i}" for i in range(200)], vectors[:200])
    for i in range(200, 300):
        db.store(f"s{i}", vectors[i], metadata={"i": i})
    db.delete("b3")
    np.save(sys.argv[3], vectors)
    print("acked", flush=True)
    checkpointer = store._backend._checkpointer
    # Two completed ticks: the second started after every write above returned.
    target = checkpointer.runs + 2
    while checkpointer.runs < target:
        time.sleep(0.01)
    print("ticked", flush=True)
    time.sleep(600)
""")


def _expected(vectors: np.ndarray) -> dict[str, np.ndarray]:
    expected = {f"b{i}": vectors[i] for i in range(200) if i != 3}
    expected.update({f"s{i}": vectors[i] for i in range(200, 300)})
    return expected


@pytest.mark.parametrize("backend", BACKENDS)
def test_tick_commits_acknowledged_writes(tmp_path, backend):
    path = tmp_path / "store"
    saved = tmp_path / "vectors.npy"
    script = WRITER % {"tick": 0.1}
    proc = subprocess.Popen([sys.executable, "-c", script, str(path), backend, str(saved)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "acked"
        assert proc.stdout.readline().strip() == "ticked"
        expected = _expected(np.load(saved))
        # A reader sees only committed state: the tick committed every write.
        with jadevec.open(path, backend=backend, read_only=True) as reader:
            db = reader.get_database("docs")
            assert sorted(db.list_vectors()) == sorted(expected)
            for vid, vec in expected.items():
                assert np.array_equal(db.retrieve(vid), vec)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    with jadevec.open(path, backend=backend) as store:
        db = store.get_database("docs")
        assert len(db) == len(expected)
        for vid, vec in expected.items():
            assert np.array_equal(db.retrieve(vid), vec)
        assert db.get_metadata("s250") == {"i": 250}
        assert store.verify().ok


@pytest.mark.parametrize("backend", BACKENDS)
def test_sync_waits_for_a_compaction_in_flight(tmp_path, monkeypatch, backend):
    """A database being compacted is closed to other users until its new
    files are swapped in; its acknowledged writes are durable only then. A
    sync (or a background tick) that skipped it would return too early."""
    from jadevec.backends import _vector_store

    with jadevec.open(tmp_path / "store", backend=backend, flush_interval=0) as store:
        db = store.create_database("docs", 8, "l2")
        db.batch_store([f"v{i}" for i in range(200)],
                       np.random.default_rng(3).standard_normal((200, 8)).astype(np.float32))
        db.delete("v0")
        swap, swapping, order = _vector_store.swap_folders, threading.Event(), []

        def slow_swap(*args):
            swapping.set()
            time.sleep(0.3)  # the compaction holds its database closed meanwhile
            swap(*args)
            order.append("swapped")

        monkeypatch.setattr(_vector_store, "swap_folders", slow_swap)
        compaction = threading.Thread(target=db.compact)
        compaction.start()
        assert swapping.wait(30)
        store.sync()
        order.append("synced")
        compaction.join(30)
        assert order == ["swapped", "synced"]
        assert len(db) == 199
