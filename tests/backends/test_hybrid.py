"""The hybrid backend passes the public conformance suite unchanged."""

import raw_store  # the tests folder is on the path (tests/conftest.py)

from jadevec.testing import BackendTests


class TestHybridBackend(BackendTests):
    backend = "hybrid"
    persistent = True
    supports_metadata = True

    def raw_vector(self, store, database, vector_id):
        # Below the backend: the catalog and the vector files as they are on disk.
        return raw_store.raw_vector(store, database, vector_id)
