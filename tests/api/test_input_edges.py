"""Inputs at the edge of what the public API accepts: vectors whose squared
norm overflows float32, bools mixed into numbers, unordered id collections and
deeply nested metadata. Each is refused with InvalidInputError at the API edge
(nothing written), and none lets a RuntimeWarning or RecursionError through."""

import collections
import json
import sys
import warnings

import numpy as np
import pytest

import jadevec
from jadevec import _validate as v
from jadevec.backends._pairing import check_record
from jadevec.errors import InvalidInputError

METRICS = ["cosine", "dot", "l2"]
F32_MAX = float(np.finfo(np.float32).max)


@pytest.fixture(autouse=True)
def warnings_are_errors():
    """No check here may emit a RuntimeWarning (numpy's overflow warning included)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


@pytest.fixture
def store(tmp_path):
    with jadevec.open(tmp_path / "s", backend="memory") as store:
        yield store


# ------------------------------------------------------------- norm overflow


# 2e19**2 = 4e38 is beyond float32's largest value (3.4e38), though 2e19 is not.
OVERFLOWING = [
    [2e19, 0, 0, 0],
    [-2e19, 1, 0, 0],
    [1.5e19, 1.5e19, 0, 0],  # each square fits, the sum does not
    np.array([1.3e19] * 4, dtype=np.float32),
    np.array([1.3e19] * 4, dtype=np.float64),
]


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("vector", OVERFLOWING, ids=range(len(OVERFLOWING)))
def test_overflowing_norm_is_refused_everywhere(metric, vector):
    with pytest.raises(InvalidInputError, match=r"vector .*squared norm"):
        v.as_vector(vector, 4, metric)
    batch = [[1, 2, 3, 4], [5, 6, 7, 8], list(np.asarray(vector, dtype=np.float64))]
    with pytest.raises(InvalidInputError, match=r"vectors .*row 2"):
        v.as_batch(batch, 3, 4, metric)
    with pytest.raises(InvalidInputError, match=r"vectors .*row 2"):
        v.as_batch(np.asarray(batch, dtype=np.float32), 3, 4, metric)
    with pytest.raises(InvalidInputError, match=r"query .*row 2"):
        v.as_queries(np.asarray(batch, dtype=np.float32), 4, metric)
    with pytest.raises(InvalidInputError, match=r"query .*squared norm"):
        v.as_queries(vector, 4, metric)


@pytest.mark.parametrize("metric", METRICS)
def test_norm_just_inside_float32_is_accepted(metric):
    # Squared norm 3.0e38: finite in float32, so it is a valid vector.
    edge = np.array([np.sqrt(1.5e38)] * 2 + [0, 0], dtype=np.float32)
    assert v.as_vector(edge, 4, metric) is edge
    batch = np.stack([edge, np.ones(4, np.float32), edge])
    assert v.as_batch(batch, 3, 4, metric) is batch
    queries, _ = v.as_queries(batch, 4, metric)
    assert queries is batch


def test_many_large_rows_whose_total_overflows_are_accepted():
    # Each row's squared norm is 1e37; the batch total (1e41) overflows, which
    # must not be mistaken for one overflowing row.
    batch = np.full((40_000, 4), np.sqrt(2.5e36), dtype=np.float32)
    for metric in METRICS:
        assert v.as_batch(batch, 40_000, 4, metric) is batch


@pytest.mark.parametrize("metric", METRICS)
def test_overflow_through_the_public_api(store, metric):
    db = store.create_database("d", 4, metric=metric)
    with pytest.raises(InvalidInputError, match="squared norm"):
        db.store("a", [2e19, 0, 0, 0])
    with pytest.raises(InvalidInputError, match="row 1"):
        db.batch_store(["a", "b"], [[1, 0, 0, 0], [2e19, 0, 0, 0]])
    db.batch_store(["a", "b"], [[1, 0, 0, 0], [1e19, 0, 0, 0]])
    with pytest.raises(InvalidInputError, match="query"):
        db.search([2e19, 0, 0, 0], k=1)
    with pytest.raises(InvalidInputError, match="row 1"):
        db.search([[1, 0, 0, 0], [0, 2e19, 0, 0]], k=1)
    assert len(db) == 2
    # Admissible vectors whose l2 distance overflows still rank deterministically.
    hits = db.search([-1e19, 0, 0, 0], k=2)
    assert [h[0] for h in hits] == (["a", "b"] if metric != "dot" else ["a", "b"])


def test_nan_and_inf_messages_unchanged():
    with pytest.raises(InvalidInputError, match="finite"):
        v.as_vector([np.nan, 0, 0, 1], 4, "l2")
    with pytest.raises(InvalidInputError, match="finite.*row 1"):
        v.as_batch([[1, 1, 1, 1], [np.inf, 0, 0, 0]], 2, 4, "dot")
    with pytest.raises(InvalidInputError, match="finite"):
        v.as_vector([1e39, 0, 0, 1], 4, "dot")  # inf after conversion to float32


def test_tiny_vectors_are_not_zero():
    tiny = np.array([1e-30, 2e-30, 0, 0], dtype=np.float32)
    assert v.as_vector(tiny, 4, "cosine") is tiny
    assert v.as_batch(np.stack([tiny, tiny]), 2, 4, "cosine").shape == (2, 4)
    with pytest.raises(InvalidInputError, match="all-zero row.*row 1"):
        v.as_batch(np.stack([tiny, np.zeros(4, np.float32)]), 2, 4, "cosine")


# -------------------------------------------------------------------- bools


@pytest.mark.parametrize(
    "vector",
    [
        [1, True, 0, False],
        [True, False, True, True],
        [1.5, 2.5, True, 0.0],
        (1, 2, 3, np.True_),
        [1, 2, 3, np.bool_(False)],
        np.array([True, False, True, True]),
    ],
    ids=["mixed-int", "all-bool", "mixed-float", "numpy-bool-in-tuple", "np-bool-false",
         "bool-array"],
)
def test_bool_elements_are_refused(vector):
    with pytest.raises(InvalidInputError, match="bool|real numbers"):
        v.as_vector(vector, 4, "l2")


def test_bool_rows_are_refused_in_batches_and_queries():
    with pytest.raises(InvalidInputError, match=r"vectors.*bool.*\[1\]\[2\]"):
        v.as_batch([[1, 2, 3, 4], [1, 2, True, 4]], 2, 4, "dot")
    with pytest.raises(InvalidInputError, match="bool"):
        v.as_batch([[1, 2, 3, 4], np.array([True, False, True, True])], 2, 4, "dot")
    with pytest.raises(InvalidInputError, match="bool"):
        v.as_queries([[0, 1, 0, False]], 4, "l2")
    with pytest.raises(InvalidInputError, match=r"vector.*bool.*\[1\]"):
        v.as_vector([1, True, 0, 0], 4, "l2")


def test_bool_through_the_public_api(store):
    db = store.create_database("d", 4, metric="l2")
    with pytest.raises(InvalidInputError, match="bool"):
        db.store("a", [1, True, 0, False])
    with pytest.raises(InvalidInputError, match="bool"):
        db.store("a", [True, False, True, True])
    assert len(db) == 0


def test_numbers_without_bools_still_convert():
    assert v.as_vector([1, 2, 3, 4], 4, "l2").tolist() == [1, 2, 3, 4]
    assert v.as_vector((np.int8(1), 2.5, np.float16(3), 4), 4, "l2").dtype == np.float32
    assert v.as_batch([[1, 2, 3, 4], (5, 6, 7, 8)], 2, 4, "l2").shape == (2, 4)


# --------------------------------------------------------------- ordered ids


@pytest.mark.parametrize(
    "ids",
    [
        {"a", "b"},
        frozenset({"a", "b"}),
        {"a": 1, "b": 2},
        {"a": 1, "b": 2}.keys(),
        {1: "a", 2: "b"}.values(),
        {"a": 1, "b": 2}.items(),
        collections.OrderedDict(a=1, b=2),
        collections.Counter("ab"),
    ],
    ids=["set", "frozenset", "dict", "keys", "values", "items", "ordereddict", "counter"],
)
def test_unordered_ids_are_refused(ids):
    for unique in (True, False):
        with pytest.raises(InvalidInputError, match="list"):
            v.check_ids(ids, unique=unique)


def test_unordered_ids_through_the_public_api(store):
    db = store.create_database("d", 2, metric="l2")
    with pytest.raises(InvalidInputError, match="ids.*list"):
        db.batch_store({"a", "b"}, [[1, 2], [3, 4]])
    assert len(db) == 0
    db.batch_store(["a", "b"], [[1, 2], [3, 4]])
    with pytest.raises(InvalidInputError, match="ids.*list"):
        db.batch_retrieve({"a", "b"})


def test_ordered_ids_are_accepted():
    assert v.check_ids(["a", "b"]) == ["a", "b"]
    assert v.check_ids(("a", "b")) == ["a", "b"]
    assert v.check_ids(np.array(["a", "b"])) == ["a", "b"]
    assert v.check_ids(x for x in "ab") == ["a", "b"]
    assert v.check_ids(iter(["b", "a"])) == ["b", "a"]
    assert v.check_ids(collections.deque(["a", "b"])) == ["a", "b"]
    assert v.check_ids(sorted({"b", "a"})) == ["a", "b"]


# ----------------------------------------------------------- deep metadata


def nested(levels: int) -> dict:
    """A dict nested ``levels`` deep (the top-level dict counts as 1), alternating
    dict and list, built without recursion."""
    top: dict = {}
    current: object = top
    for level in range(2, levels + 1):
        child: object = {} if level % 2 else []
        if isinstance(current, dict):
            current["k"] = child
        else:
            current.append(child)
        current = child
    return top


def depth_of(value) -> int:
    depth, stack = 0, [(value, 1)]
    while stack:
        item, d = stack.pop()
        depth = max(depth, d)
        children = item.values() if isinstance(item, dict) else item
        stack.extend((c, d + 1) for c in children if isinstance(c, (dict, list)))
    return depth


def test_metadata_limit_is_documented_constant():
    assert v.MAX_METADATA_DEPTH == 64
    assert depth_of(nested(64)) == 64


def test_metadata_at_the_limit_round_trips(tmp_path):
    meta = nested(v.MAX_METADATA_DEPTH)
    with jadevec.open(tmp_path / "s", backend="memory") as store:
        db = store.create_database("d", 2)
        db.store("a", [1, 2], metadata=meta)
        assert db.get_metadata("a") == meta
        db.batch_store(["b"], [[1, 2]], metadatas=[meta])
        assert db.get_metadata("b") == meta


@pytest.mark.parametrize("levels", [65, 100, 990, 5_000, 100_000])
def test_deeper_metadata_is_refused(levels):
    with pytest.raises(InvalidInputError, match="64 levels"):
        v.check_metadata(nested(levels))


def test_deep_metadata_through_the_public_api(store):
    db = store.create_database("d", 2)
    for levels in (65, 990, 5_000):
        with pytest.raises(InvalidInputError, match="metadata.*64"):
            db.store("a", [1, 2], metadata=nested(levels))
        with pytest.raises(InvalidInputError, match=r"metadatas\[1\].*64"):
            db.batch_store(["a", "b"], [[1, 2], [3, 4]], metadatas=[None, nested(levels)])
    assert len(db) == 0


def test_deep_lists_and_tuples_count_as_levels():
    assert v.check_metadata({"a": [[[1]]]}) == '{"a":[[[1]]]}'  # 4 levels
    deep: object = 1
    for _ in range(64):
        deep = (deep,)
    with pytest.raises(InvalidInputError, match="64 levels"):
        v.check_metadata({"a": deep})  # 65 levels


def test_wide_metadata_is_not_deep():
    meta = {str(i): [{"x": i}] * 3 for i in range(1_000)}
    assert json.loads(v.check_metadata(meta)) == meta


def test_cyclic_metadata_is_still_refused():
    cyclic: dict = {"a": []}
    cyclic["a"].append(cyclic)
    with pytest.raises(InvalidInputError, match="itself"):
        v.check_metadata(cyclic)


def test_record_check_accepts_deep_json_from_disk():
    levels = 2_000
    text = '{"a":' * (levels - 1) + "{}" + "}" * (levels - 1)
    record = check_record("test", "id", text, 1, None, None, None, None, 0)
    assert record.meta == text
    deeper = '{"a":' * (sys.getrecursionlimit() * 5) + "{}" + "}" * (sys.getrecursionlimit() * 5)
    assert check_record("test", "id", None, 1, deeper, 2, None, None, 0).prev_meta == deeper


@pytest.mark.parametrize(
    "text",
    ["[1]", "1", "not json", '{"a": 1', "", '  [{"a":' * 3000 + "1" + "}]" * 3000,
     '{"a":' * 3000 + "1" + "}" * 2999],
    ids=["list", "number", "garbage", "truncated", "empty", "deep-list", "deep-truncated"],
)
def test_record_check_still_reports_damage(text):
    from jadevec.errors import CorruptionError

    with pytest.raises(CorruptionError, match="'meta' is damaged"):
        check_record("test", "id", text, 1, None, None, None, None, 0)


# Deeper than json.loads goes from here, so the record check reads them with its
# own loop: each kind of value and each kind of damage inside the nesting.
DEEP = 3000
OPEN = '{"k": [1, "s", true, null, -2.5e3, '
CLOSE = "]}"


def test_record_check_reads_every_kind_of_value_deep_inside():
    text = OPEN * DEEP + '{"x": "y", "z": [false, 0]}' + CLOSE * DEEP
    assert check_record("test", "id", text, 1, None, None, None, None, 0).meta == text


@pytest.mark.parametrize("inner", ['{k: 1}', '{"k" 1}', '{"k": @}', '{"k": "bad \\q escape"}'],
                         ids=["unquoted-key", "no-colon", "not-a-value", "bad-escape"])
def test_record_check_finds_damage_deep_inside(inner):
    from jadevec.errors import CorruptionError

    with pytest.raises(CorruptionError, match="'meta' is damaged"):
        check_record("test", "id", OPEN * DEEP + inner + CLOSE * DEEP, 1, None, None, None,
                     None, 0)
