"""The public API edge: every rejected argument gets a typed error whose message
names the argument, what was expected and what was given; the edge cases of
docs/api_documentation.md that are about the API itself (the backend-facing
ones run in jadevec.testing.BackendTests for every backend)."""

import math
import re

import numpy as np
import pytest

import jadevec
from jadevec import _validate as v
from jadevec.errors import (
    DatabaseNotFoundError,
    DimensionMismatchError,
    InvalidInputError,
    InvalidNameError,
    StoreClosedError,
    StoreNotFoundError,
    UnknownOptionError,
    UnsupportedError,
)


@pytest.fixture
def store():
    with jadevec.open(backend="memory") as store:
        yield store


@pytest.fixture
def db(store):
    return store.create_database("docs", 4)


# ------------------------------------------------------------------- messages


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda db: db.store(5, [1, 2, 3, 4]), ["id", "str", "int", "5"]),
        (lambda db: db.store("", [1, 2, 3, 4]), ["id", "non-empty", "''"]),
        (lambda db: db.store("a" * 1025, [1, 2, 3, 4]), ["id", "1024", "1025 bytes"]),
        (lambda db: db.store("\ud800", [1, 2, 3, 4]), ["id", "UTF-8", "surrogate"]),
        (lambda db: db.store("a", [1, 2, 3]), ["vector", "length 4", "got length 3"]),
        (lambda db: db.store("a", [[1, 2, 3, 4]]), ["vector", "1-D", "(1, 4)"]),
        (lambda db: db.store("a", ["x"] * 4), ["vector", "real numbers", "<U1"]),
        (lambda db: db.store("a", [math.nan, 1, 2, 3]), ["vector", "finite", "NaN"]),
        (lambda db: db.store("a", [1e39, 1, 2, 3]), ["vector", "finite", "float32"]),
        (lambda db: db.store("a", [0, 0, 0, 0]), ["vector", "zeros", "cosine"]),
        (lambda db: db.store("a", [1, 2, 3, 4], metadata=[1]), ["metadata", "dict", "list"]),
        (lambda db: db.store("a", [1, 2, 3, 4], metadata={1: 2}), ["metadata", "keys", "int"]),
        (lambda db: db.store("a", [1, 2, 3, 4], metadata={"x": math.nan}),
         ["metadata", "JSON", "nan"]),
        (lambda db: db.batch_store(["a", "a"], np.ones((2, 4))),
         ["ids", "repeat", "'a'", "0", "1"]),
        (lambda db: db.batch_store(["a", 7], np.ones((2, 4))), ["ids[1]", "str", "int"]),
        (lambda db: db.batch_store(["a"], np.ones((2, 4))),
         ["vectors", "one row per id", "2 rows"]),
        (lambda db: db.batch_store(["a"], np.ones((1, 3))), ["vectors", "4 columns", "(1, 3)"]),
        (lambda db: db.batch_store(["a", "b"], [[1, 1, 1, 1], [1, math.inf, 1, 1]]),
         ["vectors", "finite", "row 1"]),
        (lambda db: db.batch_store(["a", "b"], [[1, 1, 1, 1], [0, 0, 0, 0]]),
         ["vectors", "all-zero", "row 1"]),
        (lambda db: db.batch_store(["a"], np.ones((1, 4)), metadatas=[{}, {}]),
         ["metadatas", "one entry per id", "2"]),
        (lambda db: db.batch_store(["a"], np.ones((1, 4)), metadatas=[3]),
         ["metadatas[0]", "dict", "int"]),
        (lambda db: db.batch_store("ab", np.ones((2, 4))), ["ids", "iterable of str", "'ab'"]),
        (lambda db: db.search([1, 2, 3, 4], k=0), ["k", "int >= 1", "0"]),
        (lambda db: db.search([1, 2, 3, 4], k=True), ["k", "int >= 1", "bool"]),
        (lambda db: db.search([1, 2, 3, 4], k=2.0), ["k", "int >= 1", "float"]),
        (lambda db: db.search([1, 2, 3], k=1), ["query", "length 4", "3"]),
        (lambda db: db.search(np.ones((2, 2, 4)), k=1), ["query", "1-D", "2-D", "(2, 2, 4)"]),
    ],
)
def test_messages_name_argument_expectation_and_value(db, call, words):
    with pytest.raises(InvalidInputError) as info:
        call(db)
    message = str(info.value)
    for word in words:
        assert word in message, (word, message)
    assert len(db) == 0


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda s: s.create_database("a/b", 4), InvalidNameError, ["name", "[A-Za-z0-9]", "'a/b'"]),
        (lambda s: s.create_database("a", 0), InvalidInputError, ["dimension", "65536", "0"]),
        (lambda s: s.create_database("a", 4, metric="cos"), InvalidInputError,
         ["metric", "'cosine'", "'cos'"]),
        (lambda s: s.get_database("a/b"), DatabaseNotFoundError, ["'a/b'", "valid"]),
        (lambda s: s.get_database(3), InvalidInputError, ["name", "str", "int"]),
        (lambda s: s.get_database("missing"), DatabaseNotFoundError, ["'missing'"]),
    ],
)
def test_store_messages(store, call, error, words):
    with pytest.raises(error) as info:
        call(store)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


# ------------------------------------------------------------ open and options


def test_unknown_option_is_a_type_error_naming_it(tmp_path):
    with pytest.raises(UnknownOptionError) as info:
        jadevec.open(tmp_path / "s", backend="memory", flush_intervall=1)
    assert isinstance(info.value, TypeError)
    assert "flush_intervall" in str(info.value) and "flush_interval" in str(info.value)


@pytest.mark.parametrize(
    "options, words",
    [
        ({"read_only": "no"}, ["read_only", "bool", "'no'"]),
        ({"flush_interval": -1}, ["flush_interval", ">= 0", "-1"]),
        ({"flush_interval": math.inf}, ["flush_interval", "finite", "inf"]),
        ({"max_open_files": 0}, ["max_open_files", ">= 1", "0"]),
        ({"max_open_files": "9"}, ["max_open_files", "int", "'9'"]),
    ],
)
def test_bad_option_values(options, words):
    with pytest.raises(InvalidInputError) as info:
        jadevec.open(backend="memory", **options)
    for word in words:
        assert word in str(info.value)


def test_options_reach_the_backend_as_store_options():
    options = v.check_options({"flush_interval": 2, "max_open_files": np.int32(7)}, {"x": 1})
    assert options.read_only is False
    assert options.flush_interval == 2.0 and isinstance(options.flush_interval, float)
    assert options.max_open_files == 7 and type(options.max_open_files) is int
    assert dict(options.extra) == {"x": 1}
    assert dict(v.check_options({"x": 5}, {"x": 1}).extra) == {"x": 5}


def test_read_only_with_memory_is_refused():
    with pytest.raises(InvalidInputError, match="read_only"):
        jadevec.open(backend="memory", read_only=True)


def test_path_rules():
    with pytest.raises(InvalidInputError, match="path"):
        jadevec.open(b"bytes-path", backend="memory")
    with pytest.raises(InvalidInputError, match="path"):
        jadevec.open(5, backend="memory")
    with pytest.raises(InvalidInputError, match="backend"):
        jadevec.open(backend=3)


def test_persistent_backend_needs_a_path():
    class Persistent(jadevec.backends.base.Backend):
        persistent = True

    with pytest.raises(InvalidInputError, match="path"):
        jadevec.open(None, backend=Persistent)


def test_read_only_missing_folder(tmp_path):
    class Persistent(jadevec.backends.base.Backend):
        persistent = True

    with pytest.raises(StoreNotFoundError) as info:
        jadevec.open(tmp_path / "missing", backend=Persistent, read_only=True)
    assert isinstance(info.value, FileNotFoundError)
    assert not (tmp_path / "missing").exists()


def test_memory_ignores_a_path(tmp_path):
    with jadevec.open(tmp_path / "ignored", backend="memory") as store:
        store.create_database("a", 2)
    assert not (tmp_path / "ignored").exists()


# ------------------------------------------------------------------ unit checks


def test_fast_path_returns_the_same_array():
    a = np.ones(4, dtype=np.float32)
    assert v.as_vector(a, 4, "cosine") is a
    b = np.ones((3, 4), dtype=np.float32)
    assert v.as_batch(b, 3, 4, "l2") is b
    queries, single = v.as_queries(a, 4, "dot")
    assert single and queries.shape == (1, 4) and np.shares_memory(queries, a)


def test_conversion_is_contiguous_float32():
    strided = np.arange(16, dtype=np.float64)[::2]
    out = v.as_vector(strided, 8, "l2")
    assert out.dtype == np.float32 and out.flags.c_contiguous
    fortran = np.asfortranarray(np.ones((3, 4), dtype=np.float32))
    out = v.as_batch(fortran, 3, 4, "l2")
    assert out.flags.c_contiguous


def test_int64_extremes_convert():
    out = v.as_vector(np.array([2**62, -(2**62), 0, 1], dtype=np.int64), 4, "l2")
    assert np.isfinite(out).all()


def test_ids():
    assert v.check_id("x") == "x"
    assert v.check_id("\x00") == "\x00"
    assert v.check_id("é" * 512) == "é" * 512

    class Sub(str):
        pass

    assert type(v.check_id(Sub("abc"))) is str
    with pytest.raises(InvalidInputError):
        v.check_id("é" * 512 + "a")
    assert v.check_ids(["a", "a"], unique=False) == ["a", "a"]
    assert v.is_valid_id("a") and not v.is_valid_id(1) and not v.is_valid_id("")


def test_names():
    assert v.is_valid_name("a.b") and not v.is_valid_name("a\n") and not v.is_valid_name(1)
    with pytest.raises(InvalidNameError):
        v.check_name("a\n")  # fullmatch: no trailing newline sneaks past


def test_metadata_text():
    assert v.check_metadata(None) is None
    assert v.check_metadata({}) == "{}"
    text = v.check_metadata({"é": "\ud800", "n": [1, (2, 3)]})
    assert text.isascii()
    cyclic: dict = {}
    cyclic["self"] = cyclic
    with pytest.raises(InvalidInputError):
        v.check_metadata(cyclic)
    with pytest.raises(InvalidInputError, match="keys"):
        v.check_metadata({"a": [{"b": {None: 1}}]})


def test_k():
    assert v.check_k(np.int8(3)) == 3 and type(v.check_k(np.int8(3))) is int
    for bad in (0, -5, True, np.bool_(True), 1.0, "1", None):
        with pytest.raises(InvalidInputError):
            v.check_k(bad)


def test_dimension_mismatch_is_invalid_input(db):
    with pytest.raises(DimensionMismatchError) as info:
        db.store("a", [1, 2])
    assert isinstance(info.value, InvalidInputError) and isinstance(info.value, ValueError)


# ------------------------------------------------------------- edge-case table


def test_invalid_name_lookups(store):
    assert "a/b" not in store and 5 not in store and None not in store
    with pytest.raises(DatabaseNotFoundError):
        store.delete_database("..")


def test_id_containment_never_raises_for_bad_ids(db):
    for bad in (1, None, "", "\ud800", "a" * 2000, ["a"]):
        assert (bad in db) is False


def test_closed_store_everywhere():
    store = jadevec.open(backend="memory")
    db = store.create_database("A", 2, metric="l2")
    store.close()
    store.close()
    for call in (lambda: "A" in store, lambda: "x" in db, lambda: 5 in db,
                 store.list_databases, lambda: db.search([1, 2])):
        with pytest.raises(StoreClosedError):
            call()
    assert (db.name, db.dimension, db.metric) == ("A", 2, "l2")
    assert store.recovery_report is None
    assert "closed" in repr(store)


def test_metadata_unsupported_comes_first():
    from jadevec.backends.memory import MemoryBackend

    class NoMeta(MemoryBackend):
        supports_metadata = False

    with jadevec.open(backend=NoMeta) as store:
        db = store.create_database("a", 2)
        with pytest.raises(UnsupportedError) as info:
            db.store("x", [1, 2], metadata="not a dict")
        assert isinstance(info.value, NotImplementedError)
        with pytest.raises(UnsupportedError):
            db.update("x", [1, 2], metadata={})
        with pytest.raises(UnsupportedError):
            db.batch_store(["x"], [[1, 2]], metadatas=({"a": 1} for _ in range(1)))
        db.batch_store(["x"], [[1, 2]], metadatas=[None])
        assert len(db) == 1 and db.get_metadata("x") is None


def test_search_shapes(db, rng):
    db.batch_store(["a", "b", "c"], rng.standard_normal((3, 4)))
    one = db.search(rng.standard_normal(4), k=2)
    assert isinstance(one, list) and all(isinstance(hit, tuple) for hit in one)
    many = db.search(rng.standard_normal((2, 4)), k=2)
    assert len(many) == 2 and all(len(hits) == 2 for hits in many)
    assert db.search(np.empty((0, 4)), k=2) == []
    assert len(db.search(rng.standard_normal(4), k=10**30)) == 3  # huge k is clamped


# -- the hot paths' inline checks agree with the slow ones ---------------------------------


@pytest.mark.parametrize("name", ["memory", "mmap", "hybrid"])
def test_api_retrieve_checks_ids_exactly_as_check_id(tmp_path, name):
    path = None if name == "memory" else tmp_path
    with jadevec.open(path, backend=name, flush_interval=0) as store:
        db = store.create_database("d", 2, "l2")

        class Sub(str):
            pass

        good = ["a", "\x00", "x" * 1024, "é" * 512, "\U0001f600" * 256, Sub("a")]
        db.batch_store([str(g) for g in good[:-1]], np.ones((len(good) - 1, 2)))
        for g in good:
            assert db.retrieve(g).tolist() == [1.0, 1.0], g
        for bad in [1, None, b"a", "", "x" * 1025, "é" * 513, "\ud800", ["a"]]:
            with pytest.raises(InvalidInputError) as info:
                db.retrieve(bad)
            with pytest.raises(InvalidInputError) as expected:
                jadevec._validate.check_id(bad)
            assert str(info.value) == str(expected.value)
            assert isinstance(info.value, ValueError)
        with pytest.raises(TypeError):
            db.retrieve(1)
    with pytest.raises(StoreClosedError):
        db.retrieve("a")


# -- the API edge's fast checks for batch store (jadevec._validate) ------------------------


def test_check_ids_fast_path_matches_the_slow_one():
    from jadevec import _validate as v

    class Sub(str):
        pass

    ids = [f"id{i}" for i in range(1000)]
    assert v.check_ids(ids) == ids and v.check_ids(tuple(ids)) == ids
    mixed = [*ids[:10], Sub("sub")]
    out = v.check_ids(mixed)
    assert out == mixed and all(type(i) is str for i in out)  # subclasses become str
    for bad, where in [([*ids, 1], "ids[1000]"), ([*ids, ""], "ids[1000]"),
                       (["x" * 1025, *ids], "ids[0]"), ([*ids[:5], "\ud800"], "ids[5]"),
                       ([*ids[:3], "é" * 513], "ids[3]"), ([b"a"], "ids[0]")]:
        with pytest.raises(InvalidInputError, match=re.escape(where)):
            v.check_ids(bad)
    assert v.check_ids(["x" * 1024, "é" * 512, "\x00"]) == ["x" * 1024, "é" * 512, "\x00"]
    with pytest.raises(InvalidInputError, match="repeat"):
        v.check_ids([*ids, "id7"])
    assert v.check_ids(["a", "a"], unique=False) == ["a", "a"]


@pytest.mark.parametrize("metric", ["l2", "dot", "cosine"])
def test_as_batch_refuses_every_non_finite_value(metric):
    from jadevec import _validate as v

    rows = np.ones((50, 4), np.float32)
    assert v.as_batch(rows, 50, 4, metric) is rows
    for bad in (np.nan, np.inf, -np.inf):
        for r, c in [(0, 0), (49, 3), (17, 2)]:
            x = rows.copy()
            x[r, c] = bad
            with pytest.raises(InvalidInputError, match=f"row {r}"):
                v.as_batch(x, 50, 4, metric)
    zero = rows.copy()
    zero[5] = 0
    if metric == "cosine":
        with pytest.raises(InvalidInputError, match="row 5"):
            v.as_batch(zero, 50, 4, metric)
    else:
        assert v.as_batch(zero, 50, 4, metric) is zero


@pytest.mark.parametrize("backend", ["memory", "hybrid"])
def test_metadatas_that_are_no_list_are_refused_whole_and_nothing_is_stored(tmp_path, backend):
    # A single dict (meant for one id) or a str is named as such, not as its first key
    # or character.
    with jadevec.open(tmp_path / "s", backend=backend) as store:
        db = store.create_database("docs", 2)
        for bad, shown in (({"a": 1}, "got dict"), ("text", "got str"), (b"x", "got bytes"),
                           (5, "got int")):
            with pytest.raises(jadevec.InvalidInputError,
                               match=f"metadatas must be a list of dict or None .*{shown}"):
                db.batch_store(["a"], [[1, 2]], metadatas=bad)
        assert len(db) == 0
        with pytest.raises(jadevec.InvalidInputError, match="must be 2-D of shape"):
            db.batch_store(["a"], np.ones((1, 1, 2)))
        db.batch_store(["a"], [[1, 2]], metadatas=None)
        assert len(db) == 1 and db.get_metadata("a") is None


def test_a_vector_not_found_error_reads_as_its_message():
    assert str(jadevec.VectorNotFoundError("no vector 'x'")) == "no vector 'x'"
    assert str(jadevec.VectorNotFoundError()) == ""
    assert isinstance(jadevec.VectorNotFoundError("x"), KeyError)


def test_a_verify_report_is_true_when_ok():
    from jadevec.backends.base import VerifyReport

    assert VerifyReport() and VerifyReport().ok
    assert not VerifyReport(["a problem"])
