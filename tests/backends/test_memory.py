"""The memory backend passes the public conformance suite unchanged."""

from pathlib import Path

import numpy as np
import pytest

from jadevec.backends.base import StoreOptions
from jadevec.backends.memory import MemoryBackend
from jadevec.errors import StoreClosedError
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


# ------------------------------------------------------------ the backend beneath the API

def memory_backend():
    return MemoryBackend(Path("unused"), StoreOptions())


def test_update_with_metadata_none_clears_it_only_when_asked():
    backend = memory_backend()
    db = backend.create_database("docs", 2, "l2")
    db.store(["a"], np.array([[1, 2]], np.float32), ['{"k": 1}'])
    db.update("a", np.array([3, 4], np.float32), None, False)
    assert db.get_metadata("a") == '{"k": 1}'
    db.update("a", np.array([5, 6], np.float32), None, True)
    assert db.get_metadata("a") is None
    assert db.retrieve("a").tolist() == [5, 6]


def test_a_closed_memory_backend_and_its_handles_refuse_work():
    backend = memory_backend()
    db = backend.create_database("docs", 2, "l2")
    backend.close()
    backend.close()  # a second close does nothing
    with pytest.raises(StoreClosedError, match="the memory store is closed"):
        backend.list_databases()
    with pytest.raises(StoreClosedError, match="the store of database 'docs' is closed"):
        db.count()


def test_verify_names_each_broken_invariant_of_the_buffers():
    backend = memory_backend()
    db = backend.create_database("docs", 2, "l2")
    db.store(["a", "b", "c"], np.array([[1, 2], [3, 4], [5, 6]], np.float32),
             ['{"k": 1}', None, None])
    db.delete("c")
    assert backend.verify().ok
    db._rows["ghost"] = 99                    # beyond the used rows
    db._ids[1] = "someone else"               # 'b' points at a row holding another id
    db._skip[0] = 1                           # 'a' is live but marked deleted
    db._free.append(db._free[0])              # a free row listed twice
    db._free.append(1)                        # and a live row listed as free
    db._matrix[0, 0] = np.nan
    db._metadata["gone"] = "{not json"
    problems = "\n".join(backend.verify().problems)
    for fragment in ("id 'ghost' points at row 99 beyond 3",
                     "row 1 holds 'someone else', expected 'b'",
                     "live row 0 ('a') is marked deleted",
                     "a free row is listed twice",
                     "a row is both free and live",
                     "live + 2 free rows != 3 used rows",
                     "free row 1 is not marked deleted",
                     "a stored vector is not finite",
                     "metadata kept for absent id 'gone'",
                     "metadata of 'gone' is not JSON"):
        assert fragment in problems, problems
