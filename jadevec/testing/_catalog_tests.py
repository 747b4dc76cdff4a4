"""Conformance tests (part of ``BackendTests``): database lifecycle and name rules,
closed stores, store options and read-only stores."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jadevec.errors import (
    DatabaseExistsError,
    DatabaseNotFoundError,
    InvalidInputError,
    InvalidNameError,
    JadevecError,
    ReadOnlyError,
    StoreClosedError,
    StoreNotFoundError,
    UnknownOptionError,
)
from jadevec.testing._base import (
    DIM,
    METRICS,
    SuiteBase,
)

__all__ = ["CatalogTests"]

BAD_NAMES = ["", "-a", ".a", "_a", "a/b", "a\\b", "..", "a\x00", "a" * 129, "é", " a", "a b",
             "a:b", "a\n"]
GOOD_NAMES = ["a", "Z", "0", "A" * 128, "a.b-c_d", "x.", "my-db.v2"]


class CatalogTests(SuiteBase):
    """Database lifecycle and name rules, closed stores, store options and read-only stores."""

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
