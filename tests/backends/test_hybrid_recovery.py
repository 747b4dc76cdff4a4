"""A crash between the SQLite write and the vector write is repaired on open.

Each scenario runs in a child process that opens a hybrid store, makes some
acknowledged writes, then has one step of the write order replaced by
``os._exit`` -- the process dies there like under ``kill -9``: no ``finally``,
no close, no undo. The parent reopens the store and checks what a user sees,
the raw SQLite rows, the files on disk and ``recovery_report``.
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from jadevec.backends.base import StoreOptions
from jadevec.backends.hybrid import HybridBackend

PRELUDE = textwrap.dedent("""
    import os, sys
    import numpy as np
    from pathlib import Path
    from jadevec.backends.base import StoreOptions
    from jadevec.backends import hybrid
    from jadevec.backends._vector_store import MemoryMappedVectorStore

    def die(*args, **kwargs):
        os._exit(17)

    # intercept("put", f): every VectorFile.put the backend makes becomes
    # f(vf, *args) -- through a proxy, since the compiled class cannot be patched.
    hooks = {}

    class Proxy:
        def __init__(self, vf):
            self._vf = vf

        def __getattr__(self, name):
            if name in hooks:
                return lambda *a, **k: hooks[name](self._vf, *a, **k)
            return getattr(self._vf, name)

    real_call = MemoryMappedVectorStore.call
    MemoryMappedVectorStore.call = lambda self, key, op: real_call(self, key,
                                                                   lambda vf: op(Proxy(vf)))

    def intercept(name, replacement):
        hooks[name] = replacement

    store = hybrid.HybridBackend(Path(sys.argv[1]), StoreOptions(flush_interval=0))
    if "docs" in [d.name for d in store.list_databases()]:
        db = store.open_database("docs")
    else:
        db = store.create_database("docs", 4, "l2")
    one = np.ones((1, 4), np.float32)
""")


def crash(tmp_path, body):
    """Run PRELUDE + body in a child that must die in ``die()`` (exit code 17)."""
    child = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(body), str(tmp_path)],
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == 17, child.stderr


def rows(tmp_path):
    """Raw metadata rows, read behind the backend's back."""
    with sqlite3.connect(tmp_path / "catalog.sqlite3") as con:
        return {vid: (meta, fp) for vid, meta, fp in
                con.execute("SELECT id, meta, fp FROM vector_meta")}


def catalog_rows(tmp_path):
    with sqlite3.connect(tmp_path / "catalog.sqlite3") as con:
        return dict(con.execute("SELECT name, state FROM databases"))


def vector_folders(tmp_path):
    return sorted(p.name for p in (tmp_path / "vectors").iterdir() if p.is_dir())


def reopen(tmp_path):
    store = HybridBackend(tmp_path, StoreOptions(flush_interval=0))
    assert store.recovery_report is not None, "an unclean shutdown must be reported"
    return store


def test_insert_killed_before_its_vector_leaves_nothing(tmp_path):
    crash(tmp_path, """
        db.store(["kept"], one, ['{"v": 1}'])
        intercept("put", die)
        intercept("put_batch", die)
        db.store(["lost"], 2 * one, ['{"v": 2}'])
    """)
    assert set(rows(tmp_path)) == {"kept", "lost"}  # the row was written first
    store = reopen(tmp_path)
    db = store.open_database("docs")
    assert db.list_ids() == ["kept"]
    assert db.get_metadata("lost") is None
    assert db.get_metadata("kept") == '{"v": 1}'
    assert set(rows(tmp_path)) == {"kept"}  # the unpaired row was removed
    assert any("removed 1 metadata" in a for a in store.recovery_report.actions)
    assert store.verify().ok
    store.close()
    assert HybridBackend(tmp_path, StoreOptions(flush_interval=0)).recovery_report is None


def test_update_killed_before_its_vector_keeps_the_old_pair(tmp_path):
    crash(tmp_path, """
        db.store(["a"], one, ['{"v": 1}'])
        intercept("update", die)
        db.update("a", 5 * one[0], '{"v": 2}', True)
    """)
    assert rows(tmp_path)["a"][0] == '{"v": 2}'  # the row ran ahead of the vector
    store = reopen(tmp_path)
    db = store.open_database("docs")
    assert np.array_equal(db.retrieve("a"), np.ones(4, np.float32))
    assert db.get_metadata("a") == '{"v": 1}'
    assert rows(tmp_path)["a"][0] == '{"v": 1}'  # rolled back on disk too
    assert any("rolled 1 metadata" in a for a in store.recovery_report.actions)
    assert store.verify().ok
    store.close()


def test_batch_killed_midway_keeps_a_prefix_with_its_metadata(tmp_path):
    crash(tmp_path, """
        def half(vf, ids, vectors):
            vf.put_batch(ids[:3], vectors[:3])
            os._exit(17)
        intercept("put_batch", half)
        vecs = np.arange(32, dtype=np.float32).reshape(8, 4) + 1
        db.store([f"v{i}" for i in range(8)], vecs, [f'{{"i": {i}}}' for i in range(8)])
    """)
    store = reopen(tmp_path)
    db = store.open_database("docs")
    assert sorted(db.list_ids()) == ["v0", "v1", "v2"]
    for i in range(3):
        assert json.loads(db.get_metadata(f"v{i}")) == {"i": i}
    assert set(rows(tmp_path)) == {"v0", "v1", "v2"}
    store.close()


def test_delete_killed_after_its_vector_drops_the_row(tmp_path):
    crash(tmp_path, """
        db.store(["a", "b"], np.ones((2, 4), np.float32), ['{"a": 1}', '{"b": 1}'])
        hybrid.SqliteCatalog.remove = die
        db.delete("a")
    """)
    assert set(rows(tmp_path)) == {"a", "b"}
    store = reopen(tmp_path)
    db = store.open_database("docs")
    assert db.list_ids() == ["b"]
    assert set(rows(tmp_path)) == {"b"}
    store.close()


def test_create_killed_before_its_commit_is_rolled_back(tmp_path):
    crash(tmp_path, """
        hybrid.SqliteCatalog.commit_create = die
        store.create_database("half", 8, "cosine")
    """)
    assert catalog_rows(tmp_path) == {"docs": "live", "half": "creating"}
    assert len(vector_folders(tmp_path)) == 2
    store = reopen(tmp_path)
    assert [d.name for d in store.list_databases()] == ["docs"]
    assert catalog_rows(tmp_path) == {"docs": "live"}
    assert len(vector_folders(tmp_path)) == 1
    assert any("unfinished creation of database 'half'" in a
               for a in store.recovery_report.actions)
    store.create_database("half", 8, "cosine")  # the name is free again
    store.close()


def test_delete_killed_before_its_files_are_gone_is_finished(tmp_path):
    crash(tmp_path, """
        db.store(["a"], one, ['{"a": 1}'])
        gone = store.create_database("gone", 4, "dot")
        gone.store(["g"], one, ['{"g": 1}'])
        MemoryMappedVectorStore.retire = die
        store.delete_database("gone")
    """)
    assert catalog_rows(tmp_path)["gone"] == "deleting"
    store = reopen(tmp_path)
    assert [d.name for d in store.list_databases()] == ["docs"]
    assert catalog_rows(tmp_path) == {"docs": "live"}
    assert len(vector_folders(tmp_path)) == 1
    assert set(rows(tmp_path)) == {"a"}
    assert any("interrupted deletion of database 'gone'" in a
               for a in store.recovery_report.actions)
    store.close()


def test_an_orphan_folder_is_removed_and_reported(tmp_path):
    HybridBackend(tmp_path, StoreOptions(flush_interval=0)).close()
    (tmp_path / "vectors" / "db-0123456789ab").mkdir(parents=True)
    (tmp_path / "vectors" / "db-0123456789ab" / "junk").write_bytes(b"x")
    store = HybridBackend(tmp_path, StoreOptions(flush_interval=0))
    assert not (tmp_path / "vectors" / "db-0123456789ab").exists()
    assert any("db-0123456789ab" in a for a in store.recovery_report.actions)
    store.close()


WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from pathlib import Path
    from jadevec.backends.base import StoreOptions
    from jadevec.backends.hybrid import HybridBackend
    store = HybridBackend(Path(sys.argv[1]), StoreOptions(flush_interval=0.05))
    db = store.create_database("live", 16, "l2")
    rng = np.random.default_rng(int(sys.argv[2]))
    print("ready", flush=True)
    i = 0
    while True:
        ids = [f"v{(i + j) % 300}" for j in range(5)]
        vecs = rng.standard_normal((5, 16)).astype(np.float32)
        metas = [f'{{"sum": {float(v.sum())!r}}}' if j % 2 else None
                 for j, v in enumerate(vecs)]
        db.store(ids, vecs, metas)
        if i % 7 == 0:
            db.delete(f"v{(i * 3) % 300}")
        if i % 11 == 0:
            v = rng.standard_normal(16).astype(np.float32)
            try:
                db.update(f"v{i % 300}", v, f'{{"sum": {float(v.sum())!r}}}', True)
            except KeyError:
                pass
        i += 1
""")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill_9_at_a_random_moment_leaves_every_pair_consistent(tmp_path, seed):
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(seed)],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    time.sleep(0.2 + 0.1 * seed)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    store = reopen(tmp_path)
    db = store.open_database("live")
    ids = db.list_ids()
    assert ids, "acknowledged writes survive kill -9"
    for vid in ids:
        meta = db.get_metadata(vid)
        if meta is not None:  # metadata, when present, belongs to this very vector
            assert json.loads(meta)["sum"] == pytest.approx(float(db.retrieve(vid).sum()),
                                                            rel=1e-5, abs=1e-4)
    assert set(rows(tmp_path)) <= set(ids)
    assert store.verify().ok, store.verify().problems
    store.close()


# ------------------------------------------------- a catalog edited behind the store's back


def closed_store_with(tmp_path, metadata):
    """A cleanly closed store whose 'docs' holds 'a' (and 'b') with ``metadata``."""
    store = HybridBackend(tmp_path, StoreOptions(flush_interval=0))
    db = store.create_database("docs", 4, "l2")
    db.store(["a", "b"], np.array([[1, 2, 3, 4], [4, 3, 2, 1]], np.float32),
             [metadata, metadata])
    store.close()


def edit_catalog(tmp_path, *statements):
    """Run SQL on the catalog, then mark the store as not closed cleanly."""
    with sqlite3.connect(tmp_path / "catalog.sqlite3") as con:
        for statement in statements:
            con.execute(statement)
        con.execute("UPDATE store_state SET value = '0' WHERE key = 'clean'")
    con.close()


def test_a_record_that_matches_no_version_of_its_vector_loses_only_its_metadata(tmp_path):
    closed_store_with(tmp_path, '{"k": 1}')
    edit_catalog(tmp_path, "UPDATE vector_meta SET fp = 11, prev_fp = 12, base_fp = 13, "
                           "prev_meta = '{}', base_meta = '{}' WHERE id = 'a'")
    store = reopen(tmp_path)
    assert any("'docs': 1 vectors lost their metadata" in a
               for a in store.recovery_report.actions)
    db = store.open_database("docs")
    assert db.get_metadata("a") is None and db.get_metadata("b") == '{"k": 1}'
    assert db.retrieve("a").tolist() == [1, 2, 3, 4]  # the vector itself is kept
    store.close()


def test_an_unclean_flag_alone_changes_no_metadata(tmp_path):
    closed_store_with(tmp_path, '{"k": 1}')
    before = rows(tmp_path)
    for _ in range(2):  # the second time, every record is already in its settled form
        edit_catalog(tmp_path)
        store = reopen(tmp_path)
        assert store.recovery_report.actions == [
            "the store was not closed cleanly; metadata paired with vectors"]
        assert rows(tmp_path) == before
        store.close()


def test_a_creating_entry_whose_folder_holds_vectors_is_kept(tmp_path):
    closed_store_with(tmp_path, None)
    edit_catalog(tmp_path, "UPDATE databases SET state = 'creating' WHERE name = 'docs'")
    store = reopen(tmp_path)
    assert any("kept database 'docs': it was marked as being created, but its folder holds "
               "2 vectors" in a for a in store.recovery_report.actions)
    assert catalog_rows(tmp_path) == {"docs": "live"}
    assert store.open_database("docs").count() == 2
    store.close()


def test_an_unnamed_folder_with_an_unreadable_file_set_is_kept_for_a_human(tmp_path):
    HybridBackend(tmp_path, StoreOptions(flush_interval=0)).close()
    stray = tmp_path / "vectors" / "db-0123456789ab"
    stray.mkdir(parents=True)
    (stray / "vectors.jvdb").write_bytes(b"not a vector file" * 64)
    store = HybridBackend(tmp_path, StoreOptions(flush_interval=0))
    assert any("kept folder 'db-0123456789ab'" in a and "an unreadable file set" in a
               for a in store.recovery_report.actions)
    assert (stray / "vectors.jvdb").read_bytes() == b"not a vector file" * 64
    store.close()
