"""``compact()`` gives the file's free pages back, crash-safely, and every handle follows.

LMDB never shrinks its file; compaction replaces it with LMDB's compacting
copy (see ``SharedEnvironment.compact`` for the steps). Checked here by file
size; by ``/proc/<pid>/maps`` that no process still maps the old file once it
has used the store again; by a child killed after each step of the swap; and
by a reader in another process that holds the old environment open across it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jadevec
import numpy as np
import pytest

from jadevec_lmdb import _environment

CHILD_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
DIM = 64
_kept: list[jadevec.Store] = []


def fill(path: Path, n: int, keep_every: int, seed: int = 0) -> dict[str, np.ndarray]:
    """``n`` vectors stored, all but every ``keep_every``-th deleted; returns the kept ones."""
    vectors = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    ids = [f"v{i}" for i in range(n)]
    with jadevec.open(path, backend="lmdb", flush_interval=0, lmdb_sync=False) as store:
        db = store.create_database("big", DIM, metric="l2")
        for start in range(0, n, 5000):
            db.batch_store(ids[start:start + 5000], vectors[start:start + 5000],
                           metadatas=[{"i": i} for i in range(start, min(n, start + 5000))])
        for i in range(n):
            if i % keep_every:
                db.delete(ids[i])
        store.create_database("small", 3, metric="dot").store("s", [1.0, 2.0, 3.0])
    return {ids[i]: vectors[i] for i in range(0, n, keep_every)}


def check_kept(db: jadevec.Database, kept: dict[str, np.ndarray]) -> None:
    assert len(db) == len(kept)
    got = db.batch_retrieve(list(kept))
    for (vid, want), vector in zip(kept.items(), got, strict=True):
        assert vector is not None and vector.tobytes() == want.tobytes(), vid
        assert db.get_metadata(vid) == {"i": int(vid[1:])}


def mapped_inodes(pid: int | str = "self") -> set[int]:
    """Inodes of the files a process maps (Linux)."""
    inodes = set()
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and parts[4] != "0":
                inodes.add(int(parts[4]))
    return inodes


def test_compact_shrinks_the_file_and_every_handle_of_the_process_follows(tmp_path):
    path = tmp_path / "store"
    kept = fill(path, 20_000, keep_every=100)
    data = path / "data.mdb"
    writer = jadevec.open(path, backend="lmdb", flush_interval=0)
    reader = jadevec.open(path, backend="lmdb", read_only=True)  # shares the environment
    db, seen = writer.get_database("big"), reader.get_database("big")
    small = writer.get_database("small")
    seen.search(np.ones(DIM), k=3)  # loads the reader's search matrix
    before, old_inode = data.stat().st_size, data.stat().st_ino
    db.compact()
    after, new_inode = data.stat().st_size, data.stat().st_ino
    print(f"\n20,000 vectors of dimension {DIM}, 99% deleted: {before} -> {after} bytes")
    assert after <= before // 20, (before, after)
    assert new_inode != old_inode
    if os.path.exists("/proc/self/maps"):
        assert old_inode not in mapped_inodes() and new_inode in mapped_inodes()
    # Every handle of the process reads and writes the new file.
    check_kept(db, kept)
    check_kept(seen, kept)
    db.store("after", np.full(DIM, 3.0), metadata={"i": -1})
    assert seen.retrieve("after").tolist() == [3.0] * DIM
    assert seen.search(np.full(DIM, 3.0), k=1)[0][0] == "after"
    assert small.retrieve("s").tolist() == [1.0, 2.0, 3.0]
    assert not list(path.glob(".compact-*"))
    reader.close()
    writer.close()
    done = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import sys, jadevec
        with jadevec.open(sys.argv[1], backend="lmdb", read_only=True) as store:
            print(len(store.get_database("big")), store.verify().ok)
    """), str(path)], capture_output=True, text=True, env=CHILD_ENV, check=True)
    assert done.stdout.split() == [str(len(kept) + 1), "True"]


def test_compact_leaves_a_file_with_little_free_space_alone(tmp_path):
    path = tmp_path / "store"
    kept = fill(path, 5_000, keep_every=1)  # nothing deleted
    with jadevec.open(path, backend="lmdb") as store:
        db = store.get_database("big")
        for i in range(1, 40):
            db.delete(f"v{i}")
            kept.pop(f"v{i}")
        inode, size = (path / "data.mdb").stat().st_ino, (path / "data.mdb").stat().st_size
        db.compact()
        assert (path / "data.mdb").stat().st_ino == inode  # not rewritten
        assert (path / "data.mdb").stat().st_size == size
        check_kept(db, kept)


@pytest.mark.parametrize("step", ["copied", "adopted", "renamed", "synced", "returned"])
def test_a_writer_killed_at_each_step_of_compaction_loses_nothing(tmp_path, forked, step):
    path = tmp_path / "store"
    kept = fill(path, 8_000, keep_every=50)
    before = (path / "data.mdb").stat().st_size

    def child() -> None:
        store = jadevec.open(path, backend="lmdb", flush_interval=0)
        _kept.append(store)  # no finaliser may close it: the process just dies

        def die(name: str) -> None:
            if name == step:
                os._exit(0)

        _environment._step_hook = die
        store.get_database("big").compact()
        os._exit(0)  # "returned": killed right after compact() came back

    status, _ = forked(child, 120)
    assert status == "died"  # os._exit before any report
    if step in ("copied", "adopted"):
        assert list(path.glob(".compact-*")), "the copy's folder should be left behind"
    swapped = step not in ("copied", "adopted")
    assert ((path / "data.mdb").stat().st_size < before // 10) == swapped
    with jadevec.open(path, backend="lmdb", flush_interval=0) as store:
        assert store.recovery_report is not None  # the writer died
        check_kept(store.get_database("big"), kept)
        assert store.get_database("small").retrieve("s").tolist() == [1.0, 2.0, 3.0]
        assert store.verify().ok
        assert not list(path.glob(".compact-*"))  # the next writer removed it


READER = textwrap.dedent("""
    import json, sys, jadevec
    store = jadevec.open(sys.argv[1], backend="lmdb", read_only=True)
    db = store.get_database("big")
    for line in sys.stdin:
        ids = json.loads(line)
        got = db.batch_retrieve(ids)
        print(json.dumps([None if v is None else v.tobytes().hex() for v in got]), flush=True)
""")


def start_reader(path: Path) -> subprocess.Popen:
    """A reader process of the store at ``path``: send it ids with :func:`ask`."""
    return subprocess.Popen([sys.executable, "-c", READER, str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=CHILD_ENV)


def ask(reader: subprocess.Popen, ids: list[str]) -> list[str | None]:
    reader.stdin.write(json.dumps(ids) + "\n")
    reader.stdin.flush()
    line = reader.stdout.readline()
    assert line, reader.stderr.read()
    return json.loads(line)


def test_a_reader_process_follows_a_compaction(tmp_path):
    path = tmp_path / "store"
    kept = fill(path, 10_000, keep_every=100)
    reader = start_reader(path)
    try:
        ids = list(kept)[:20]
        assert ask(reader, ids) == [kept[i].tobytes().hex() for i in ids]
        old_inode = (path / "data.mdb").stat().st_ino
        with jadevec.open(path, backend="lmdb", flush_interval=0) as store:
            db = store.get_database("big")
            db.compact()
            assert (path / "data.mdb").stat().st_ino != old_inode
            # Before any new commit the old file says the same as the new one.
            assert ask(reader, ids) == [kept[i].tobytes().hex() for i in ids]
            db.store("new", np.full(DIM, 5.0), metadata={"i": 0})
            got = ask(reader, ids + ["new"])
            assert got[:-1] == [kept[i].tobytes().hex() for i in ids]
            assert got[-1] == np.full(DIM, 5.0, np.float32).tobytes().hex()  # it followed
            if os.path.exists(f"/proc/{reader.pid}/maps"):
                assert old_inode not in mapped_inodes(reader.pid)
    finally:
        reader.kill()
        reader.wait()


def test_a_crash_after_the_rename_while_a_reader_holds_the_old_file(tmp_path, forked):
    """The copy must be readable through a ``lock.mdb`` that the old file's reader keeps.

    LMDB picks the meta page of a new transaction from the transaction id that
    ``lock.mdb`` caches while any process has the environment open. The
    compacting copy alone holds its tree in meta page 1 and an empty database
    in page 0, so with an even id cached the next opener would see no store.
    """
    path = tmp_path / "store"
    kept = fill(path, 8_000, keep_every=50)
    reader = start_reader(path)
    try:
        ids = list(kept)[:10]
        assert ask(reader, ids) == [kept[i].tobytes().hex() for i in ids]

        def child() -> None:
            store = jadevec.open(path, backend="lmdb", flush_interval=0)
            _kept.append(store)
            (shared,) = _environment._registry
            if shared.env.info()["last_txnid"] % 2:  # make the cached id even
                store.get_database("small").store("pad", [0.0, 0.0, 1.0])
            assert shared.env.info()["last_txnid"] % 2 == 0
            _environment._step_hook = lambda name: os._exit(0) if name == "renamed" else None
            store.get_database("big").compact()

        status, _ = forked(child, 120)
        assert status == "died"
        with jadevec.open(path, backend="lmdb", flush_interval=0) as store:
            assert store.recovery_report is not None
            check_kept(store.get_database("big"), kept)
            assert store.verify().ok
            store.get_database("big").store("later", np.full(DIM, 7.0), metadata={"i": 7})
            got = ask(reader, ids + ["later"])
            assert got[:-1] == [kept[i].tobytes().hex() for i in ids]
            assert got[-1] == np.full(DIM, 7.0, np.float32).tobytes().hex()
    finally:
        reader.kill()
        reader.wait()


@pytest.mark.slow
def test_a_66_mb_store_with_99_percent_deleted_shrinks(tmp_path):
    path = tmp_path / "store"
    vectors = np.random.default_rng(66).standard_normal((136_000, DIM)).astype(np.float32)
    ids = [f"v{i}" for i in range(len(vectors))]
    with jadevec.open(path, backend="lmdb", flush_interval=0, lmdb_sync=False) as store:
        db = store.create_database("big", DIM, metric="l2")
        for start in range(0, len(ids), 10_000):
            db.batch_store(ids[start:start + 10_000], vectors[start:start + 10_000])
        for i in range(len(ids)):
            if i % 100:
                db.delete(ids[i])
        store.sync()
        before = (path / "data.mdb").stat().st_size
        db.compact()
        after = (path / "data.mdb").stat().st_size
        print(f"\n{len(ids):,} vectors of dimension {DIM}, 99% deleted: data.mdb "
              f"{before:,} -> {after:,} bytes")
        assert before > 60_000_000
        # The copy leaves out free pages but does not refill the ones it keeps:
        # after 99% deletes a leaf page keeps a few vectors (LMDB merges pages
        # only below a quarter full), so not 1% but a few percent remain.
        assert after <= before // 20
        kept = range(0, len(ids), 100)
        got = db.batch_retrieve([ids[i] for i in kept])
        assert all(v.tobytes() == vectors[i].tobytes() for i, v in zip(kept, got, strict=True))
