"""Conformance tests (part of ``BackendTests``): vector CRUD, input conversion and
refusal, batches and metadata."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jadevec.errors import (
    DimensionMismatchError,
    InvalidInputError,
    UnsupportedError,
    VectorNotFoundError,
)
from jadevec.testing._base import (
    DIM,
    SuiteBase,
)

__all__ = ["VectorTests"]


class VectorTests(SuiteBase):
    """Vector CRUD, input conversion and refusal, batches and metadata."""

    # ------------------------------------------------------------------ CRUD

    def test_store_and_retrieve_exact(self, db, gen):
        v = self.vectors(gen, 1)[0]
        db.store("a", v)
        got = db.retrieve("a")
        assert got.dtype == np.float32 and got.shape == (DIM,)
        assert np.array_equal(got, v)
        assert len(db) == 1 and "a" in db and db.list_vectors() == ["a"]

    def test_retrieve_returns_a_copy(self, db, gen):
        v = self.vectors(gen, 1)[0]
        db.store("a", v)
        v[:] = 1.0  # the caller's array is not kept by reference
        got = db.retrieve("a")
        got[:] = 2.0  # the returned array is not a view of storage
        assert not np.array_equal(db.retrieve("a"), v)
        assert not np.array_equal(db.retrieve("a"), got)

    def test_retrieve_missing_is_none(self, db):
        assert db.retrieve("missing") is None
        assert "missing" not in db

    def test_store_replaces_vector_and_metadata(self, db, gen):
        v1, v2, v3 = self.vectors(gen, 3)
        db.store("a", v1, metadata=self.meta(n=1))
        db.store("a", v2, metadata=self.meta(n=2))
        assert np.array_equal(db.retrieve("a"), v2) and len(db) == 1
        assert db.get_metadata("a") == self.meta(n=2)
        db.store("a", v3)  # metadata=None clears it
        assert np.array_equal(db.retrieve("a"), v3)
        assert db.get_metadata("a") is None

    def test_update(self, db, gen):
        v1, v2, v3 = self.vectors(gen, 3)
        db.store("a", v1, metadata=self.meta(keep=True))
        db.update("a", v2)  # None keeps the metadata
        assert np.array_equal(db.retrieve("a"), v2)
        assert db.get_metadata("a") == self.meta(keep=True)
        if self.supports_metadata:
            db.update("a", v3, metadata={"new": 1})
            assert db.get_metadata("a") == {"new": 1}
            db.update("a", v3, metadata={})
            assert db.get_metadata("a") == {}
        assert len(db) == 1

    def test_update_missing(self, db, gen):
        with pytest.raises(VectorNotFoundError) as info:
            db.update("missing", self.vectors(gen, 1)[0])
        assert isinstance(info.value, KeyError)
        assert len(db) == 0 and "missing" not in db

    def test_delete(self, db, gen):
        db.batch_store(["a", "b"], self.vectors(gen, 2), metadatas=[self.meta(x=1), None])
        assert db.delete("a") is True
        assert db.delete("a") is False
        assert db.delete("never") is False
        assert db.retrieve("a") is None and db.get_metadata("a") is None
        assert "a" not in db and len(db) == 1 and db.list_vectors() == ["b"]
        db.store("a", self.vectors(gen, 1)[0])  # an id can come back after delete
        assert db.get_metadata("a") is None and len(db) == 2

    @pytest.mark.parametrize(
        "given",
        [
            [1, 2, 3, 4, 5, 6, 7, 8],
            (1.5, 2, 3, 4, 5, 6, 7, 8),
            np.arange(1, 9, dtype=np.int64),
            np.arange(1, 9, dtype=np.uint8),
            np.arange(1, 9, dtype=np.float64),
            np.arange(1, 9, dtype=np.float16),
            np.arange(1, 9, dtype=">f4"),
            np.arange(1, 17, dtype=np.float32)[::2],
        ],
        ids=["list", "tuple", "int64", "uint8", "float64", "float16", "big-endian", "strided"],
    )
    def test_vector_inputs_converted_to_float32(self, db, given):
        db.store("a", given)
        expected = np.asarray(given, dtype=np.float64).astype(np.float32)
        assert np.array_equal(db.retrieve("a"), expected)

    @pytest.mark.parametrize(
        "given",
        [
            [np.nan] + [1.0] * (DIM - 1),
            [np.inf] + [1.0] * (DIM - 1),
            [-np.inf] + [1.0] * (DIM - 1),
            np.array([1e39] + [1.0] * (DIM - 1)),  # finite float64, inf as float32
        ],
        ids=["nan", "inf", "-inf", "float64-overflow"],
    )
    def test_non_finite_vectors_refused(self, db, given):
        with pytest.raises(InvalidInputError):
            db.store("a", given)
        assert len(db) == 0 and db.retrieve("a") is None

    @pytest.mark.parametrize(
        "given",
        [["1"] * DIM, [object()] * DIM, "12345678", b"12345678", [1j] * DIM, [True] * DIM,
         None, 3.0, [[1.0] * DIM, [1.0] * (DIM - 1)]],
        ids=["str-list", "objects", "str", "bytes", "complex", "bool", "none", "scalar", "ragged"],
    )
    def test_non_numeric_vectors_refused(self, db, given):
        with pytest.raises(InvalidInputError) as info:
            db.store("a", given)
        assert isinstance(info.value, ValueError)
        assert len(db) == 0

    @pytest.mark.parametrize("shape", [(DIM - 1,), (DIM + 1,), (0,)])
    def test_dimension_mismatch(self, db, shape):
        with pytest.raises(DimensionMismatchError):
            db.store("a", np.ones(shape, dtype=np.float32))
        assert len(db) == 0

    def test_two_dimensional_vector_refused(self, db):
        with pytest.raises(InvalidInputError):
            db.store("a", np.ones((1, DIM), dtype=np.float32))
        assert len(db) == 0

    def test_zero_vector(self, store):
        zero = np.zeros(DIM, dtype=np.float32)
        cos = store.create_database("cos", DIM)
        with pytest.raises(InvalidInputError):
            cos.store("z", zero)
        with pytest.raises(InvalidInputError):
            cos.batch_store(["a", "z"], np.stack([np.ones(DIM, np.float32), zero]))
        assert len(cos) == 0
        for metric in ("dot", "l2"):
            db = store.create_database(metric, DIM, metric=metric)
            db.store("z", zero)
            assert np.array_equal(db.retrieve("z"), zero)

    @pytest.mark.parametrize("bad", [1, 1.0, None, b"a", ("a",), ["a"], np.int64(1)])
    def test_non_str_ids(self, db, gen, bad):
        v = self.vectors(gen, 1)[0]
        db.store("present", v)
        calls = [
            lambda: db.store(bad, v),
            lambda: db.update(bad, v),
            lambda: db.retrieve(bad),
            lambda: db.delete(bad),
            lambda: db.get_metadata(bad),
            lambda: db.batch_store([bad], v[None, :]),
            lambda: db.batch_retrieve([bad]),
        ]
        for call in calls:
            with pytest.raises(InvalidInputError) as info:
                call()
            assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)
        assert (bad in db) is False
        assert db.list_vectors() == ["present"]

    def test_id_rules(self, db, gen):
        v = self.vectors(gen, 1)[0]
        longest = "é" * 512  # 1,024 UTF-8 bytes
        for good in ["x", "a\x00b", "\x00", longest, "a" * 1024, "日本語", "emoji 🙂", " ", "a/b"]:
            db.store(good, v)
            assert good in db and np.array_equal(db.retrieve(good), v)
        for bad in ["", longest + "a", "a" * 1025, "\ud800", "a\udfffb"]:
            with pytest.raises(InvalidInputError):
                db.store(bad, v)
            assert (bad in db) is False
            assert db.retrieve("x") is not None
        assert len(db) == 9

    # --------------------------------------------------------------- batches

    def test_batch_store_and_retrieve(self, db, gen):
        ids = [f"id{i}" for i in range(50)]
        vs = self.vectors(gen, 50)
        db.batch_store(ids, vs, metadatas=[self.meta(i=i) for i in range(50)])
        assert len(db) == 50 and sorted(db.list_vectors()) == sorted(ids)
        got = db.batch_retrieve(ids[::-1] + ["missing", "id0"])
        assert got[-2] is None and np.array_equal(got[-1], vs[0])
        for v, g in zip(vs[::-1], got[:50], strict=True):
            assert g.dtype == np.float32 and np.array_equal(g, v)
        assert db.get_metadata("id7") == self.meta(i=7)

    def test_batch_store_list_of_lists_and_generators(self, db):
        db.batch_store(iter(["a", "b"]), [[1] * DIM, [2.0] * DIM])
        assert db.retrieve("b").tolist() == [2.0] * DIM

    @pytest.mark.parametrize("empty", [[], np.empty((0, DIM), dtype=np.float32),
                                       np.empty((0, DIM), dtype=np.float64)])
    def test_empty_batch(self, db, empty):
        db.batch_store([], empty)
        assert len(db) == 0
        assert db.batch_retrieve([]) == []

    def test_batch_replaces_and_clears_metadata(self, db, gen):
        db.batch_store(["a", "b"], self.vectors(gen, 2), metadatas=[self.meta(a=1), self.meta(b=1)])
        new = self.vectors(gen, 2)
        db.batch_store(["a", "b"], new)  # metadatas=None clears, as store() does
        assert db.get_metadata("a") is None and db.get_metadata("b") is None
        assert np.array_equal(db.retrieve("b"), new[1]) and len(db) == 2

    def test_rejected_batch_stores_nothing(self, db, gen):
        old = self.vectors(gen, 1)[0]
        db.store("keep", old, metadata=self.meta(old=True))
        vs = self.vectors(gen, 4)
        with_nan = vs.copy()
        with_nan[3, 2] = np.nan
        bad_batches = [
            (["keep", "n1", "n2", "n3"], with_nan, None),
            (["keep", "n1", "n2", "n1"], vs, None),  # duplicate id
            (["keep", "n1", "n2", 3], vs, None),  # non-str id
            (["keep", "n1", "n2", ""], vs, None),  # empty id
            (["keep", "n1", "n2"], vs, None),  # row count differs
            (["keep", "n1", "n2", "n3"], vs[:, :-1], None),  # dimension
            (["keep", "n1", "n2", "n3"], vs, [None, None, None]),  # metadatas length
            ("keep", vs[:1], None),  # a str is not a list of ids
        ]
        if self.supports_metadata:
            bad_batches.append((["keep", "n1", "n2", "n3"], vs, [{}, {}, {}, {"x": math.nan}]))
            bad_batches.append((["keep", "n1", "n2", "n3"], vs, [{}, {}, {}, "text"]))
        else:
            bad_batches.append((["keep", "n1", "n2", "n3"], vs, [{}, None, None, None]))
        for ids, vectors, metadatas in bad_batches:
            with pytest.raises((InvalidInputError, UnsupportedError)):
                db.batch_store(ids, vectors, metadatas=metadatas)
            assert db.list_vectors() == ["keep"]
            assert np.array_equal(db.retrieve("keep"), old)
            assert db.get_metadata("keep") == self.meta(old=True)

    # -------------------------------------------------------------- metadata

    def test_metadata_round_trip(self, db, gen):
        if not self.supports_metadata:
            pytest.skip("backend stores no metadata")
        v = self.vectors(gen, 1)[0]
        value = {"title": "Ünïcode ✓", "n": 3, "x": 1.5, "ok": True, "none": None,
                 "list": [1, "two", {"three": 3}], "nested": {"a": {"b": []}}, "\x00k": "\ud800"}
        db.store("a", v, metadata=value)
        assert db.get_metadata("a") == value
        db.store("empty", v, metadata={})
        assert db.get_metadata("empty") == {}
        db.store("none", v)
        assert db.get_metadata("none") is None
        assert db.get_metadata("absent") is None
        db.store("tuple", v, metadata={"t": (1, 2)})
        assert db.get_metadata("tuple") == {"t": [1, 2]}  # JSON has no tuples

    def test_metadata_is_a_copy(self, db, gen):
        if not self.supports_metadata:
            pytest.skip("backend stores no metadata")
        value = {"list": [1]}
        db.store("a", self.vectors(gen, 1)[0], metadata=value)
        value["list"].append(2)
        got = db.get_metadata("a")
        got["list"].append(3)
        assert db.get_metadata("a") == {"list": [1]}

    @pytest.mark.parametrize(
        "bad",
        [[1, 2], "text", 3, {1: "int key"}, {"a": {2: "nested int key"}}, {"a": math.nan},
         {"a": math.inf}, {"a": object()}, {"a": {1, 2}}, {"a": b"bytes"}, {(1, 2): 3}],
    )
    def test_invalid_metadata(self, db, gen, bad):
        if not self.supports_metadata:
            pytest.skip("backend stores no metadata")
        v = self.vectors(gen, 1)[0]
        with pytest.raises(InvalidInputError):
            db.store("a", v, metadata=bad)
        assert len(db) == 0
        db.store("a", v, metadata={"ok": 1})
        with pytest.raises(InvalidInputError):
            db.update("a", v * 2, metadata=bad)
        assert np.array_equal(db.retrieve("a"), v) and db.get_metadata("a") == {"ok": 1}

    def test_metadata_unsupported(self, db, gen):
        if self.supports_metadata:
            pytest.skip("backend stores metadata")
        v = self.vectors(gen, 1)[0]
        for bad in ({"a": 1}, {}, "not even a dict"):  # UnsupportedError comes first
            with pytest.raises(UnsupportedError):
                db.store("a", v, metadata=bad)
        assert len(db) == 0
        db.store("a", v)
        assert db.get_metadata("a") is None
