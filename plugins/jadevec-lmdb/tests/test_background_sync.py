"""The background sync of ``lmdb_sync=False``: a tick syncs what changed, an idle store nothing.

With ``lmdb_sync=True`` (the default) every commit is synced and there is no
background thread. With ``lmdb_sync=False`` a thread syncs the data file
every ``flush_interval`` seconds:

* an idle store (no transaction committed since the last sync) is left
  alone across many ticks: no fsync (which would flush the disk's cache even
  for an unchanged file), no file's bytes, size or modification time moved;
* a write wakes it: the next tick syncs again.
"""

from __future__ import annotations

import time

import jadevec
import numpy as np
from jadevec.testing import file_states

TICK = 0.05


def _wait_ticks(store: jadevec.Store, n: int) -> None:
    backend = store._backend
    target = backend._ticks + n
    deadline = time.monotonic() + 30
    while backend._ticks < target:
        assert time.monotonic() < deadline, "the background sync thread stopped ticking"
        time.sleep(TICK / 5)


def test_idle_store_syncs_nothing(tmp_path):
    path = tmp_path / "store"
    with jadevec.open(path, backend="lmdb", flush_interval=TICK, lmdb_sync=False) as store:
        shared = store._backend._shared
        db = store.create_database("docs", 8, "l2")
        db.batch_store([f"v{i}" for i in range(50)],
                       np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32),
                       [{"i": i} for i in range(50)])
        _wait_ticks(store, 2)  # the first syncs the writes, the second finds nothing
        assert shared.synced_commits == shared.commits
        syncs = shared.syncs
        before = file_states(path)
        time.sleep(0.02)  # past the file system's timestamp granularity
        _wait_ticks(store, 6)
        assert shared.syncs == syncs
        assert file_states(path) == before
        # A write wakes it again: the next tick syncs it.
        db.store("late", np.ones(8, np.float32))
        _wait_ticks(store, 2)
        assert shared.syncs == syncs + 1
        assert shared.synced_commits == shared.commits
