"""The search matrix cache against a dict model, under random writes and reopens.

The cache is updated in place by this process's writes and reloaded when the
generation moves under it; a second (read-only) store on the same directory
has its own cache, so its searches check the reload path after every write.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from jadevec.backends.base import StoreOptions

from jadevec_lmdb import LmdbBackend

DIM = 4
IDS = st.sampled_from([f"v{i}" for i in range(12)] + ["é" * 512])
VECTOR = st.lists(st.floats(-10, 10, width=32, allow_nan=False), min_size=DIM,
                  max_size=DIM).map(lambda xs: np.array(xs, dtype=np.float32))


class SearchCacheModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp())
        self.model: dict[str, np.ndarray] = {}
        self._open()
        self.db = self.writer.create_database("d", DIM, "l2")
        self.seen = self.reader.open_database("d")

    def _open(self) -> None:
        self.writer = LmdbBackend(self.root, StoreOptions())
        self.reader = LmdbBackend(self.root, StoreOptions(read_only=True))

    @rule(ids=st.lists(IDS, min_size=1, max_size=4, unique=True), data=st.data())
    def store(self, ids, data):
        rows = np.stack([data.draw(VECTOR) for _ in ids])
        self.db.store(ids, rows, None)
        self.model.update(zip(ids, rows, strict=True))

    @rule(vector_id=IDS, vector=VECTOR)
    def update(self, vector_id, vector):
        if vector_id in self.model:
            self.db.update(vector_id, vector, None, replace_metadata=False)
            self.model[vector_id] = vector

    @rule(vector_id=IDS)
    def delete(self, vector_id):
        assert self.db.delete(vector_id) is (self.model.pop(vector_id, None) is not None)

    @rule()
    def compact(self):
        self.db.compact()

    @precondition(lambda self: len(self.model) > 3)
    @rule()
    def reopen(self):
        self.reader.close()
        self.writer.close()
        self._open()
        self.db = self.writer.open_database("D")
        self.seen = self.reader.open_database("d")

    @rule(query=VECTOR, k=st.integers(1, 15), through_reader=st.booleans())
    def search(self, query, k, through_reader):
        db = self.seen if through_reader else self.db
        (hits,) = db.search(query[None, :], k)
        distances = {i: float(np.linalg.norm(v.astype(np.float64) - query)) for i, v in
                     self.model.items()}
        want = sorted(distances.values())[:k]
        assert len(hits) == len(want)
        for (vector_id, score), expected in zip(hits, want, strict=True):
            assert np.isclose(score, expected, rtol=1e-4, atol=1e-3)
            assert np.isclose(score, distances[vector_id], rtol=1e-4, atol=1e-3)

    @invariant()
    def counts_agree(self):
        assert self.db.count() == self.seen.count() == len(self.model)

    def teardown(self):
        self.reader.close()
        self.writer.close()
        shutil.rmtree(self.root, ignore_errors=True)


SearchCacheModel.TestCase.settings = settings(max_examples=40, stateful_step_count=30,
                                              deadline=None)
TestSearchCacheModel = SearchCacheModel.TestCase
