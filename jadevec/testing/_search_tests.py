"""Conformance tests (part of ``BackendTests``): exact search against a numpy
reference, listing, counting, compaction, verify and raw state."""

from __future__ import annotations

import numpy as np
import pytest

from jadevec.errors import (
    DimensionMismatchError,
    InvalidInputError,
)
from jadevec.testing._base import (
    DIM,
    METRICS,
    SuiteBase,
    all_retrievable,
    assert_same_ranking,
    reference_scores,
    reference_topk,
)

__all__ = ["SearchTests"]


class SearchTests(SuiteBase):
    """Exact search against numpy, listing, counting, compaction, verify and raw state."""

    # ---------------------------------------------------------------- search

    @pytest.mark.parametrize("metric", METRICS)
    def test_search_matches_numpy(self, store, gen, metric):
        db = store.create_database("s", 16, metric=metric)
        ids = [f"v{i}" for i in range(300)]
        matrix = self.vectors(gen, 300, 16)
        db.batch_store(ids, matrix)
        for gone in ids[:30]:
            db.delete(gone)
        live_ids, live = ids[30:], matrix[30:]
        queries = self.vectors(gen, 4, 16)
        batched = db.search(queries, k=10)
        assert isinstance(batched, list) and len(batched) == 4
        for query, got_many in zip(queries, batched, strict=True):
            all_scores = dict(zip(live_ids, reference_scores(live, query, metric), strict=True))
            want = reference_topk(live_ids, live, query, metric, 10)
            got = db.search(query, k=10)
            assert_same_ranking(got, want, metric, all_scores)
            assert_same_ranking(got_many, want, metric, all_scores)

    @pytest.mark.parametrize("metric", METRICS)
    def test_search_finds_the_stored_vector(self, store, gen, metric):
        db = store.create_database("s", DIM, metric=metric)
        vs = self.vectors(gen, 20)
        db.batch_store([str(i) for i in range(20)], vs)
        best_id, best_score = db.search(vs[7], k=1)[0]
        assert best_id == "7"
        if metric == "l2":
            assert best_score == pytest.approx(0.0, abs=1e-3)
        elif metric == "cosine":
            assert best_score == pytest.approx(1.0, abs=1e-5)

    def test_search_k_larger_than_len_and_empty(self, db, gen):
        assert db.search(self.vectors(gen, 1)[0], k=5) == []
        assert db.search(self.vectors(gen, 3), k=5) == [[], [], []]
        db.batch_store(["a", "b", "c"], self.vectors(gen, 3))
        assert len(db.search(self.vectors(gen, 1)[0], k=100)) == 3
        assert len(db.search(self.vectors(gen, 1)[0])) == 3  # default k=10
        db.delete("a")
        hits = db.search(self.vectors(gen, 1)[0], k=3)
        assert sorted(i for i, _ in hits) == ["b", "c"]

    def test_search_sees_updates(self, store):
        db = store.create_database("u", 2, metric="l2")
        db.batch_store(["a", "b"], [[0.0, 0.0], [10.0, 10.0]])
        assert db.search([9.0, 9.0], k=1)[0][0] == "b"
        db.update("a", [9.0, 9.0])
        assert db.search([9.0, 9.0], k=1)[0] == ("a", 0.0)
        db.store("c", [9.0, 9.1])
        db.delete("a")
        assert db.search([9.0, 9.0], k=1)[0][0] == "c"

    @pytest.mark.parametrize("k", [0, -1, True, False, 1.0, "3", None, np.float64(2)])
    def test_search_invalid_k(self, db, gen, k):
        db.store("a", self.vectors(gen, 1)[0])
        with pytest.raises(InvalidInputError):
            db.search(self.vectors(gen, 1)[0], k=k)

    def test_search_numpy_integer_k(self, db, gen):
        db.batch_store(["a", "b", "c"], self.vectors(gen, 3))
        assert len(db.search(self.vectors(gen, 1)[0], k=np.int64(2))) == 2
        assert len(db.search(self.vectors(gen, 1)[0], k=np.uint8(1))) == 1

    def test_search_invalid_queries(self, db, gen):
        db.store("a", self.vectors(gen, 1)[0])
        with pytest.raises(DimensionMismatchError):
            db.search(np.ones(DIM + 1))
        with pytest.raises(DimensionMismatchError):
            db.search(np.ones((2, DIM - 1)))
        with pytest.raises(InvalidInputError):
            db.search(np.ones((1, 1, DIM)))
        with pytest.raises(InvalidInputError):
            db.search([np.nan] * DIM)
        with pytest.raises(InvalidInputError):
            db.search(["a"] * DIM)
        with pytest.raises(InvalidInputError):  # zero query under cosine
            db.search(np.zeros(DIM))
        assert db.search(np.empty((0, DIM)), k=3) == []

    # ---------------------------------------------------------- list, count, compact

    def test_listing_and_counting(self, db, gen):
        ids = [f"k{i}" for i in range(40)]
        db.batch_store(ids, self.vectors(gen, 40))
        for gone in ids[::3]:
            db.delete(gone)
        live = [i for i in ids if i not in ids[::3]]
        assert sorted(db.list_vectors()) == sorted(live) and len(db) == len(live)
        listed = db.list_vectors()
        listed.append("not stored")  # the returned list is the caller's
        assert len(db.list_vectors()) == len(live)

    def test_compact_keeps_live_data(self, db, gen):
        ids = [f"c{i}" for i in range(100)]
        vs = self.vectors(gen, 100)
        db.batch_store(ids, vs, metadatas=[self.meta(i=i) for i in range(100)])
        for gone in ids[:80]:
            db.delete(gone)
        db.compact()
        assert sorted(db.list_vectors()) == sorted(ids[80:]) and len(db) == 20
        for i in range(80, 100):
            assert np.array_equal(db.retrieve(ids[i]), vs[i])
            assert db.get_metadata(ids[i]) == self.meta(i=i)
        assert db.search(vs[90], k=1)[0][0] == "c90"
        db.store("after", vs[0])
        assert len(db) == 21
        assert all_retrievable(db)

    def test_verify_reports_ok(self, store, gen):
        report = store.verify()
        assert report.ok and report.problems == []
        db = store.create_database("v", DIM)
        db.batch_store(["a", "b", "c"], self.vectors(gen, 3), metadatas=[self.meta(a=1)] * 3)
        db.delete("b")
        report = store.verify()
        assert report.ok, report.problems
        assert isinstance(report.problems, list)

    def test_recovery_report_after_clean_open(self, store):
        assert store.recovery_report is None

    def test_raw_state_matches_writes(self, store, gen):
        db = store.create_database("raw", DIM)
        vs = self.vectors(gen, 3)
        db.batch_store(["a", "b", "c"], vs)
        db.update("b", vs[0])
        db.delete("c")
        try:
            raw = [self.raw_vector(store, "raw", i) for i in ("a", "b", "c")]
        except NotImplementedError:
            pytest.skip("raw_vector hook not provided")
        assert np.array_equal(raw[0], vs[0]) and np.array_equal(raw[1], vs[0])
        assert raw[2] is None
