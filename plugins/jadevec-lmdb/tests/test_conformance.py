"""jadevec's conformance suite, unchanged, on the LMDB backend."""

from __future__ import annotations

import json

import numpy as np
from jadevec.testing import BackendTests

from jadevec_lmdb import _environment
from jadevec_lmdb._database import prefix_of


class TestLmdbBackend(BackendTests):
    backend = "lmdb"
    persistent = True
    supports_metadata = True
    # lmdb_sync=True (the default) syncs every commit before the call returns.
    durable_on_return = True
    # A synced commit per call makes 18,000 single deletes take minutes; the
    # tests that make them do not need each to survive a power loss.
    bulk_options = {"lmdb_sync": False}

    def raw_vector(self, store, database, vector_id):
        # LMDB allows one environment per process, so read through the store's
        # own environment but with plain LMDB calls, not the backend's code.
        shared = _environment.acquire(store.path, map_size=1 << 20, sync=True)
        try:
            with shared.env.begin() as txn:
                record = txn.get(database.lower().encode(), db=shared.dbs[b"catalog"])
                key = prefix_of(json.loads(record)["number"]) + vector_id.encode()
                raw = txn.get(key, db=shared.dbs[b"vectors"])
        finally:
            _environment.release(shared)
        return None if raw is None else np.frombuffer(raw, dtype="<f4").copy()
