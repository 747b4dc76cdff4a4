"""The memory backend passes the public conformance suite unchanged."""

import numpy as np

from jadevec.testing import BackendTests


class TestMemoryBackend(BackendTests):
    backend = "memory"
    persistent = False

    def raw_vector(self, store, database, vector_id):
        # Read the backend's private buffers, not its retrieve().
        db = store._backend._databases[database.lower()]
        row = db._rows.get(vector_id)
        if row is None:
            return None
        return np.array(db._matrix[row, : db.info.dimension])
