"""The hybrid backend passes the public conformance suite unchanged."""

from jadevec.testing import BackendTests


class TestHybridBackend(BackendTests):
    backend = "hybrid"
    persistent = True
    supports_metadata = True

    def raw_vector(self, store, database, vector_id):
        # Below the backend: the vector store itself, by the folder the catalog chose.
        backend = store._backend
        entry = backend._databases[database.lower()]
        backend._files.acquire(entry.folder)
        try:
            return backend._vectors.retrieve_vector(entry.folder, vector_id)
        finally:
            backend._files.release(entry.folder)
