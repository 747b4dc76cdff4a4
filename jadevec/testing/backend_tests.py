"""The conformance suite every jadevec backend passes: :class:`BackendTests`.

It exercises a backend only through the public API (``jadevec.open``,
``Store``, ``Database``), so it checks the whole contract of DESIGN.md as a
user sees it: database lifecycle and name rules, CRUD, batches, the
edge-case table, metadata, exact search against a numpy reference for every
metric, listing and counting, closed and read-only stores, thread safety
against a model, and, for persistent backends, that everything survives a
close and a reopen *in a new process*.

How to use it
-------------
Subclass it in a test module of your backend package (pytest collects the
subclass; the name must start with ``Test``)::

    from jadevec.testing import BackendTests

    class TestMyBackend(BackendTests):
        backend = "mybackend"   # entry-point name, or the Backend subclass itself
        persistent = True       # run the restart tests (close, reopen in a new process)
        supports_metadata = True

Hooks you may override:

``make_store(self, tmp_path, **options) -> jadevec.Store``
    Open the store under test. The default is
    ``jadevec.open(self.store_path(tmp_path), backend=self.backend, **options)``.
    Every test that needs a second handle on the same data calls it again
    with the same ``tmp_path``.
``store_path(self, tmp_path) -> Path | None``
    The folder; default ``tmp_path / "store"`` when ``persistent``, else ``None``.
``reopen_source(self, tmp_path) -> str``
    A Python expression, evaluated in a new process after ``import jadevec``,
    that reopens the store read-write. Override it together with
    ``make_store`` if your store needs more than a path and a backend name.
``raw_vector(self, store, database, vector_id) -> np.ndarray | None``
    Read a stored vector *behind* the backend's own read path (its files,
    its tables, its private buffers), so that writes are checked against raw
    state and not only against the backend's ``retrieve``. The default raises
    ``NotImplementedError`` and the tests that use it are skipped.

The suite uses only ``pytest``, ``numpy`` and jadevec's public API.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

import jadevec
from jadevec.backends.base import Backend
from jadevec.errors import (
    DatabaseExistsError,
    DatabaseNotFoundError,
    DimensionMismatchError,
    InvalidInputError,
    InvalidNameError,
    JadevecError,
    ReadOnlyError,
    StoreClosedError,
    StoreNotFoundError,
    UnknownOptionError,
    UnsupportedError,
    VectorNotFoundError,
)

__all__ = ["BackendTests"]

DIM = 8
METRICS = ("cosine", "dot", "l2")

BAD_NAMES = ["", "-a", ".a", "_a", "a/b", "a\\b", "..", "a\x00", "a" * 129, "é", " a", "a b",
             "a:b", "a\n"]
GOOD_NAMES = ["a", "Z", "0", "A" * 128, "a.b-c_d", "x.", "my-db.v2"]


def reference_scores(matrix: np.ndarray, query: np.ndarray, metric: str) -> np.ndarray:
    """Scores of every row against ``query`` in float64, as DESIGN.md defines them."""
    m = matrix.astype(np.float64)
    q = query.astype(np.float64)
    if metric == "dot":
        return m @ q
    if metric == "cosine":
        return (m @ q) / (np.linalg.norm(m, axis=1) * np.linalg.norm(q))
    return np.sqrt(((m - q) ** 2).sum(axis=1))


def reference_topk(ids: list[str], matrix: np.ndarray, query: np.ndarray, metric: str,
                   k: int) -> list[tuple[str, float]]:
    scores = reference_scores(matrix, query, metric)
    order = np.argsort(scores if metric == "l2" else -scores, kind="stable")[:k]
    return [(ids[i], float(scores[i])) for i in order]


def assert_same_ranking(got: list[tuple[str, float]], want: list[tuple[str, float]],
                        metric: str, all_scores: dict[str, float]) -> None:
    """Equal up to float32 rounding: same length, same scores rank by rank, each
    returned id really has the score it claims, best first."""
    assert len(got) == len(want), (got, want)
    for (gid, gscore), (_, wscore) in zip(got, want, strict=True):
        assert isinstance(gid, str) and isinstance(gscore, float)
        assert math.isclose(gscore, wscore, rel_tol=1e-4, abs_tol=1e-4), (got, want)
        assert math.isclose(gscore, all_scores[gid], rel_tol=1e-4, abs_tol=1e-4)
    scores = [s for _, s in got]
    ordered = sorted(scores) if metric == "l2" else sorted(scores, reverse=True)
    assert np.allclose(scores, ordered, rtol=1e-5, atol=1e-6)


class BackendTests:
    """Conformance tests for one backend; subclass and set the class attributes."""

    #: The backend under test: an entry-point name or a Backend subclass.
    backend: ClassVar[str | type[Backend]] = "memory"
    #: Whether data must survive close() and a new process.
    persistent: ClassVar[bool] = False
    #: Whether the backend stores per-vector metadata.
    supports_metadata: ClassVar[bool] = True

    # ----------------------------------------------------------------- hooks

    def store_path(self, tmp_path: Path) -> Path | None:
        """The store's folder under ``tmp_path`` (``None`` for a non-persistent backend)."""
        return tmp_path / "store" if self.persistent else None

    def make_store(self, tmp_path: Path, **options: Any) -> jadevec.Store:
        """Open the store under test; called again with the same ``tmp_path`` to reopen."""
        return jadevec.open(self.store_path(tmp_path), backend=self.backend, **options)

    def reopen_source(self, tmp_path: Path) -> str:
        """A Python expression reopening the store in a new process (after ``import jadevec``)."""
        if not isinstance(self.backend, str):
            pytest.skip("reopening in a new process needs a registered backend name")
        return f"jadevec.open({str(self.store_path(tmp_path))!r}, backend={self.backend!r})"

    def raw_vector(self, store: jadevec.Store, database: str, vector_id: str) -> np.ndarray | None:
        """Read a vector behind the backend's read path; override to enable raw-state checks."""
        raise NotImplementedError

    # -------------------------------------------------------------- fixtures

    @pytest.fixture
    def store(self, tmp_path: Path):
        store = self.make_store(tmp_path)
        yield store
        store.close()

    @pytest.fixture
    def db(self, store: jadevec.Store):
        return store.create_database("vectors", DIM)

    @pytest.fixture
    def gen(self) -> np.random.Generator:
        return np.random.default_rng(20260521)

    def vectors(self, gen: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
        return gen.standard_normal((n, dim)).astype(np.float32)

    def meta(self, **values: Any) -> dict[str, Any] | None:
        """``values`` as metadata where supported, else ``None`` (so data tests run everywhere)."""
        return dict(values) if self.supports_metadata else None

    # ------------------------------------------------------ database lifecycle

    def test_create_database_defaults(self, store):
        db = store.create_database("docs", 4)
        assert (db.name, db.dimension, db.metric) == ("docs", 4, "cosine")
        assert len(db) == 0 and db.list_vectors() == []
        assert "docs" in store and store.list_databases() == ["docs"]

    @pytest.mark.parametrize("metric", METRICS)
    def test_create_database_metrics(self, store, metric):
        db = store.create_database("m", 3, metric=metric)
        assert store.get_database("m").metric == metric == db.metric

    def test_names_ignore_case_and_keep_creation_case(self, store):
        store.create_database("MyDocs", 4)
        for name in ("MyDocs", "mydocs", "MYDOCS"):
            assert name in store
            assert store.get_database(name).name == "MyDocs"
        assert store.list_databases() == ["MyDocs"]

    def test_duplicate_name_ignoring_case_changes_nothing(self, store):
        store.create_database("Docs", 4, metric="dot")
        with pytest.raises(DatabaseExistsError) as info:
            store.create_database("docs", 5)
        assert isinstance(info.value, ValueError)
        db = store.get_database("DOCS")
        assert (db.name, db.dimension, db.metric) == ("Docs", 4, "dot")
        assert store.list_databases() == ["Docs"]

    @pytest.mark.parametrize("name", BAD_NAMES + [5, None, b"abc"])
    def test_invalid_names(self, store, name):
        with pytest.raises(InvalidNameError) as info:
            store.create_database(name, 4)
        assert isinstance(info.value, ValueError)
        assert name not in store
        if isinstance(name, str):
            with pytest.raises(DatabaseNotFoundError):
                store.get_database(name)
            with pytest.raises(DatabaseNotFoundError):
                store.delete_database(name)
        assert store.list_databases() == []

    @pytest.mark.parametrize("name", GOOD_NAMES)
    def test_valid_names(self, store, name):
        db = store.create_database(name, 2, metric="l2")
        db.store("x", [1.0, 2.0])
        assert store.list_databases() == [name]
        assert store.get_database(name.upper()).retrieve("x").tolist() == [1.0, 2.0]

    def test_list_databases_sorted_ignoring_case(self, store):
        for name in ("b", "C", "a"):
            store.create_database(name, 2)
        assert store.list_databases() == ["a", "b", "C"]

    @pytest.mark.parametrize("dimension", [0, -1, 65_537, 1.5, 2.0, True, "8", None])
    def test_invalid_dimension(self, store, dimension):
        with pytest.raises(InvalidInputError):
            store.create_database("d", dimension)
        assert "d" not in store

    def test_dimension_limits(self, store):
        assert store.create_database("one", 1).dimension == 1
        assert store.create_database("big", np.int64(65_536)).dimension == 65_536

    @pytest.mark.parametrize("metric", ["euclidean", "COSINE", "", None, 1])
    def test_invalid_metric(self, store, metric):
        with pytest.raises(InvalidInputError):
            store.create_database("d", 4, metric=metric)
        assert "d" not in store

    def test_get_and_delete_missing(self, store):
        with pytest.raises(DatabaseNotFoundError) as info:
            store.get_database("nope")
        assert isinstance(info.value, KeyError)
        with pytest.raises(DatabaseNotFoundError):
            store.delete_database("nope")

    def test_delete_database(self, store, gen):
        db = store.create_database("Gone", DIM)
        db.batch_store(["a", "b"], self.vectors(gen, 2))
        store.create_database("kept", DIM).store("k", self.vectors(gen, 1)[0])
        store.delete_database("gone")
        assert "Gone" not in store and store.list_databases() == ["kept"]
        with pytest.raises(DatabaseNotFoundError):
            store.get_database("Gone")
        with pytest.raises(DatabaseNotFoundError):
            db.retrieve("a")  # a handle to a deleted database
        with pytest.raises(DatabaseNotFoundError):
            db.store("c", self.vectors(gen, 1)[0])
        again = store.create_database("gone", 3)
        assert len(again) == 0 and again.dimension == 3
        assert len(store.get_database("kept")) == 1

    def test_databases_are_independent(self, store, gen):
        a = store.create_database("a", DIM)
        b = store.create_database("b", DIM, metric="l2")
        va, vb = self.vectors(gen, 2)
        a.store("x", va)
        b.store("x", vb)
        assert np.array_equal(a.retrieve("x"), va) and np.array_equal(b.retrieve("x"), vb)
        a.delete("x")
        assert "x" not in a and "x" in b

    def test_database_repr(self, store):
        text = repr(store.create_database("docs", 4))
        assert "docs" in text and "4" in text and "cosine" in text
        assert repr(store)

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
        assert store_ok(db)

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

    # ---------------------------------------------------------- closed store

    def test_closed_store(self, tmp_path, gen):
        store = self.make_store(tmp_path)
        db = store.create_database("Docs", DIM, metric="dot")
        v = self.vectors(gen, 1)[0]
        db.store("a", v)
        store.close()
        store.close()  # a second close does nothing
        assert store.closed
        assert (db.name, db.dimension, db.metric) == ("Docs", DIM, "dot")
        assert "Docs" in repr(db)
        calls = {
            "create_database": lambda: store.create_database("x", 2),
            "get_database": lambda: store.get_database("Docs"),
            "list_databases": store.list_databases,
            "delete_database": lambda: store.delete_database("Docs"),
            "contains": lambda: "Docs" in store,
            "contains-invalid": lambda: "not a name!" in store,
            "flush": store.flush,
            "sync": store.sync,
            "verify": store.verify,
            "enter": lambda: store.__enter__(),
            "len": lambda: len(db),
            "in": lambda: "a" in db,
            "in-non-str": lambda: 5 in db,
            "store": lambda: db.store("b", v),
            "retrieve": lambda: db.retrieve("a"),
            "update": lambda: db.update("a", v),
            "delete": lambda: db.delete("a"),
            "batch_store": lambda: db.batch_store(["b"], v[None, :]),
            "batch_retrieve": lambda: db.batch_retrieve(["a"]),
            "list_vectors": db.list_vectors,
            "get_metadata": lambda: db.get_metadata("a"),
            "search": lambda: db.search(v, k=1),
            "compact": db.compact,
        }
        for what, call in calls.items():
            with pytest.raises(StoreClosedError) as info:
                call()
            assert isinstance(info.value, ValueError), what
        assert repr(store)

    def test_context_manager_closes(self, tmp_path):
        with self.make_store(tmp_path) as store:
            store.create_database("a", 2)
        assert store.closed
        with pytest.raises(StoreClosedError):
            store.list_databases()

    # ---------------------------------------------------------- store options

    def test_unknown_option(self, tmp_path):
        with pytest.raises(UnknownOptionError) as info:
            self.make_store(tmp_path, no_such_option=1)
        assert isinstance(info.value, TypeError) and isinstance(info.value, JadevecError)
        assert "no_such_option" in str(info.value)
        path = self.store_path(tmp_path)
        assert path is None or not path.exists()  # nothing created

    @pytest.mark.parametrize(
        "option",
        [{"read_only": "yes"}, {"read_only": 1}, {"flush_interval": -1},
         {"flush_interval": "5"}, {"flush_interval": math.nan}, {"flush_interval": True},
         {"max_open_files": 0}, {"max_open_files": 2.5}, {"max_open_files": True}],
    )
    def test_bad_option_values(self, tmp_path, option):
        with pytest.raises(InvalidInputError):
            self.make_store(tmp_path, **option)

    def test_valid_options(self, tmp_path):
        with self.make_store(tmp_path, flush_interval=0, max_open_files=1) as store:
            store.create_database("a", 2).store("x", [1.0, 2.0])
            store.flush()
            store.sync()

    def test_read_only(self, tmp_path, gen):
        if not self.persistent:
            with pytest.raises(InvalidInputError):
                self.make_store(tmp_path, read_only=True)
            return
        v = self.vectors(gen, 2)
        with self.make_store(tmp_path) as store:
            db = store.create_database("ro", DIM)
            db.store("a", v[0], metadata=self.meta(a=1))
        with self.make_store(tmp_path, read_only=True) as store:
            assert store.read_only
            db = store.get_database("ro")
            assert np.array_equal(db.retrieve("a"), v[0]) and len(db) == 1
            assert db.get_metadata("a") == self.meta(a=1)
            assert db.search(v[0], k=1)[0][0] == "a"
            store.flush()  # no-ops on a read-only store
            store.sync()
            writes = [
                lambda: store.create_database("new", 2),
                lambda: store.delete_database("ro"),
                lambda: db.store("b", v[1]),
                lambda: db.update("a", v[1]),
                lambda: db.delete("a"),
                lambda: db.batch_store(["b"], v[1:]),
                lambda: db.batch_store([], []),
                db.compact,
            ]
            for write in writes:
                with pytest.raises(ReadOnlyError) as info:
                    write()
                assert isinstance(info.value, PermissionError)
            assert store.verify().ok
        with self.make_store(tmp_path) as store:
            db = store.get_database("ro")
            assert db.list_vectors() == ["a"] and np.array_equal(db.retrieve("a"), v[0])

    def test_read_only_missing_folder(self, tmp_path):
        if not self.persistent:
            pytest.skip("only a persistent backend opens read-only")
        with pytest.raises(StoreNotFoundError) as info:
            self.make_store(tmp_path, read_only=True)
        assert isinstance(info.value, FileNotFoundError)
        path = self.store_path(tmp_path)
        assert path is not None and not path.exists()

    # ----------------------------------------------------------------- threads

    def test_threads_against_a_model(self, store):
        db = store.create_database("threads", DIM, metric="l2")
        models: list[dict[str, np.ndarray]] = [{} for _ in range(6)]
        errors: list[BaseException] = []
        start = threading.Barrier(len(models) + 1)

        def writer(t: int) -> None:
            gen = np.random.default_rng(t)
            model = models[t]
            try:
                start.wait()
                for step in range(300):
                    key = f"t{t}-{int(gen.integers(40))}"
                    action = int(gen.integers(6))
                    v = gen.standard_normal(DIM).astype(np.float32)
                    if action <= 1:
                        db.store(key, v)
                        model[key] = v
                    elif action == 2:
                        if key in model:
                            db.update(key, v)
                            model[key] = v
                        else:
                            with pytest.raises(VectorNotFoundError):
                                db.update(key, v)
                    elif action == 3:
                        assert db.delete(key) is (model.pop(key, None) is not None)
                    elif action == 4:
                        got = db.retrieve(key)
                        want = model.get(key)
                        assert got is None if want is None else np.array_equal(got, want)
                    else:
                        keys = [f"t{t}-b{step}-{j}" for j in range(3)]
                        vs = gen.standard_normal((3, DIM)).astype(np.float32)
                        db.batch_store(keys, vs)
                        model.update(zip(keys, vs, strict=True))
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        def reader() -> None:
            gen = np.random.default_rng(99)
            try:
                start.wait()
                for _ in range(100):
                    hits = db.search(gen.standard_normal(DIM).astype(np.float32), k=5)
                    assert len(hits) <= 5
                    len(db)
                    db.list_vectors()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(t,)) for t in range(len(models))]
        threads.append(threading.Thread(target=reader))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors[0]
        expected = {k: v for model in models for k, v in model.items()}
        assert sorted(db.list_vectors()) == sorted(expected) and len(db) == len(expected)
        for key, v in expected.items():
            assert np.array_equal(db.retrieve(key), v)
        assert store.verify().ok

    def test_threads_creating_databases(self, store):
        errors: list[BaseException] = []

        def work(t: int) -> None:
            try:
                for i in range(10):
                    db = store.create_database(f"t{t}-{i}", 2, metric="l2")
                    db.store("x", [float(t), float(i)])
                    if i % 2:
                        store.delete_database(f"T{t}-{i}")
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors[0]
        names = store.list_databases()
        assert sorted(names) == sorted(f"t{t}-{i}" for t in range(4) for i in range(0, 10, 2))
        assert store.get_database("t3-4").retrieve("x").tolist() == [3.0, 4.0]

    # ------------------------------------------------------- restart persistence

    def _populate(self, store: jadevec.Store, gen: np.random.Generator) -> None:
        docs = store.create_database("Docs", DIM)
        ids = [f"doc-{i}" for i in range(200)] + ["ünï\x00code", "é" * 512]
        vs = self.vectors(gen, len(ids))
        docs.batch_store(ids, vs, metadatas=[self.meta(i=i, tag="t") for i in range(len(ids))])
        for i in range(0, 200, 7):
            docs.delete(f"doc-{i}")
        docs.update("doc-1", self.vectors(gen, 1)[0], metadata=self.meta(updated=True))
        docs.store("doc-2", self.vectors(gen, 1)[0])  # clears its metadata
        l2 = store.create_database("points.L2", 3, metric="l2")
        l2.batch_store(["p", "q"], [[0, 0, 0], [1, 2, 3]])
        store.create_database("empty", 5, metric="dot")
        store.create_database("dropped", 2).store("x", [1.0, 1.0])
        store.delete_database("dropped")

    def test_restart_in_new_process(self, tmp_path, gen):
        if not self.persistent:
            pytest.skip("backend is not persistent")
        query = self.vectors(gen, 1)[0]
        store = self.make_store(tmp_path)
        self._populate(store, gen)
        expected = _snapshot(store, query)
        store.close()
        got = self._snapshot_in_new_process(tmp_path, query)
        assert got.keys() == expected.keys()
        for name, want in expected.items():
            have = got[name]
            assert have["info"] == want["info"], name
            assert have["vectors"] == want["vectors"], name
            assert have["metadata"] == want["metadata"], name
            assert [i for i, _ in have["search"]] == [i for i, _ in want["search"]], name
            assert np.allclose([s for _, s in have["search"]], [s for _, s in want["search"]],
                               rtol=1e-5, atol=1e-6)

    def test_reopen_and_keep_writing(self, tmp_path, gen):
        if not self.persistent:
            pytest.skip("backend is not persistent")
        vs = self.vectors(gen, 3)
        with self.make_store(tmp_path) as store:
            store.create_database("a", DIM).batch_store(["x", "y"], vs[:2])
        with self.make_store(tmp_path) as store:
            db = store.get_database("A")
            db.delete("x")
            db.store("z", vs[2])
            store.sync()
        with self.make_store(tmp_path) as store:
            db = store.get_database("a")
            assert sorted(db.list_vectors()) == ["y", "z"]
            assert np.array_equal(db.retrieve("z"), vs[2])
            assert store.verify().ok and store.recovery_report is None

    def _snapshot_in_new_process(self, tmp_path: Path, query: np.ndarray) -> dict[str, Any]:
        script = (
            "import json, sys\n"
            "import numpy as np\n"
            "import jadevec\n"
            "from jadevec.testing.backend_tests import _snapshot\n"
            f"store = {self.reopen_source(tmp_path)}\n"
            "query = np.array(json.loads(sys.argv[1]), dtype=np.float32)\n"
            "print(json.dumps(_snapshot(store, query)))\n"
            "store.close()\n"
        )
        # The child imports the very jadevec (and plugin) this process uses.
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        done = subprocess.run(
            [sys.executable, "-c", script, json.dumps(query.tolist())],
            capture_output=True, text=True, env=env, timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


def store_ok(db: jadevec.Database) -> bool:
    """Whether every live id of ``db`` retrieves a vector (a cheap consistency probe)."""
    return all(db.retrieve(i) is not None for i in db.list_vectors())


def _snapshot(store: jadevec.Store, query: np.ndarray) -> dict[str, Any]:
    """Everything a store holds, as JSON-ready data (vectors as exact float32 bytes)."""
    out: dict[str, Any] = {}
    for name in store.list_databases():
        db = store.get_database(name)
        ids = sorted(db.list_vectors())
        out[name] = {
            "info": [db.name, db.dimension, db.metric, len(db)],
            "vectors": {i: db.retrieve(i).tobytes().hex() for i in ids},
            "metadata": {i: db.get_metadata(i) for i in ids},
            "search": db.search(query[: db.dimension] if db.dimension <= len(query)
                                else np.resize(query, db.dimension), k=5),
        }
    return out
