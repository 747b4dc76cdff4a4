"""A writer dies at each named step of creating, deleting and compacting a database.

Each case runs a child process that prepares a store, then sets
``JADEVEC_CRASH_AT`` to one named point (jadevec/_core/crashpoints.py) and
starts the operation: the child must die exactly there (exit status 137, as
after ``kill -9``). The parent reopens the store and checks what must hold
after a crash anywhere: the store opens, ``verify()`` is clean, the database
is either fully there or fully gone, its name is unique and usable again,
the other database is untouched, and no work folder is left behind.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import jadevec

CREATE = ["create:files", "create:synced", "create:renamed", "catalog:begun", "catalog:files",
          "catalog:committed"]
DELETE = ["delete:begun", "delete:renamed", "delete:marked", "delete:files"]
COMPACT = ["compact:written", "compact:swapped"]

CHILD = textwrap.dedent("""
    import os, sys
    import numpy as np
    import jadevec
    path, backend, point, op = sys.argv[1:5]
    store = jadevec.open(path, backend=backend, flush_interval=0)
    keep = store.create_database("keep", 4, metric="l2")
    keep.batch_store(["a", "b"], [[1, 2, 3, 4], [5, 6, 7, 8]], metadatas=[{"a": 1}, None])
    if op != "create":
        other = store.create_database("other", 4, metric="l2")
        other.batch_store([f"v{i}" for i in range(50)], np.arange(200.0).reshape(50, 4))
        for i in range(0, 50, 2):
            other.delete(f"v{i}")
    store.sync()
    os.environ["JADEVEC_CRASH_AT"] = point
    if op == "create":
        store.create_database("other", 4, metric="l2").store("x", [9, 9, 9, 9])
    elif op == "delete":
        store.delete_database("other")
    else:
        store.get_database("other").compact()
    print("the crash point was not reached", flush=True)
""")


def leftovers(path):
    vectors = path / "vectors"
    return sorted(p.name for p in vectors.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("backend", ["mmap", "hybrid"])
@pytest.mark.parametrize("op,point", [("create", p) for p in CREATE]
                         + [("delete", p) for p in DELETE]
                         + [("compact", p) for p in COMPACT])
def test_a_crash_at_each_point_leaves_a_store_that_opens(tmp_path, backend, op, point):
    path = tmp_path / "store"
    child = subprocess.run([sys.executable, "-c", CHILD, str(path), backend, point, op],
                           capture_output=True, text=True, timeout=120,
                           env={k: v for k, v in os.environ.items() if k != "JADEVEC_CRASH_AT"})
    assert child.returncode == 137, (child.stdout, child.stderr)
    with jadevec.open(path, backend=backend, flush_interval=0) as store:
        report = store.verify()
        assert report.ok, report.problems
        assert leftovers(path) == []
        names = store.list_databases()
        assert len({n.lower() for n in names}) == len(names)
        keep = store.get_database("keep")
        assert keep.retrieve("a").tolist() == [1, 2, 3, 4] and keep.get_metadata("a") == {"a": 1}
        if "other" in store:
            other = store.get_database("other")
            if op == "compact":  # a compaction changes nothing a user sees
                assert sorted(other.list_vectors()) == sorted(f"v{i}" for i in range(1, 50, 2))
                assert np.array_equal(other.retrieve("v7"), np.arange(28.0, 32.0))
            elif op == "create":  # created (the store of x may not have run)
                assert other.list_vectors() in ([], ["x"])
            other.store("after", [1, 1, 1, 1])  # fully usable
        else:
            assert op != "compact"
            store.create_database("other", 4, metric="l2").store("after", [1, 1, 1, 1])
        assert store.get_database("other").retrieve("after").tolist() == [1, 1, 1, 1]
    with jadevec.open(path, backend=backend, flush_interval=0) as store:
        assert store.recovery_report is None and store.verify().ok
