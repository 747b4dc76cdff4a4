"""IdIndex against a dict: probing, tombstones, rehash, forced collisions."""

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from jadevec._core.id_index import IdIndex, hash_id
from jadevec.errors import InvalidInputError


@pytest.mark.parametrize("mask", [2**64 - 1, 0xF, 0x1, 0x0])
def test_matches_a_dict_under_collisions(mask):
    rng = np.random.default_rng(1)
    index = IdIndex(hash_mask=mask)
    model = {}
    next_slot = 0
    for _ in range(3000 if mask else 600):
        key = f"k{rng.integers(400)}"
        op = rng.integers(3)
        if op == 0:
            old = index.insert(key, next_slot)
            assert old == model.get(key, -1)
            model[key] = next_slot
            next_slot += 1
        elif op == 1:
            assert index.delete(key) == model.pop(key, -1)
        else:
            assert index.get(key) == model.get(key, -1)
    assert len(index) == len(model)
    assert dict(index.items()) == model
    keys = list(model) + ["absent"]
    assert index.lookup(keys).tolist() == [model.get(k, -1) for k in keys]


def test_rehash_keeps_load_bounded():
    index = IdIndex()
    for i in range(10_000):
        index.insert(str(i), i)
        assert (len(index) + index.tombstones) * 10 <= index.table_size * 7
    for i in range(0, 10_000, 2):
        index.delete(str(i))
    assert len(index) == 5000 and index.tombstones == 5000
    assert all(index.get(str(i)) == (i if i % 2 else -1) for i in range(10_000))


def test_ids_are_checked():
    index = IdIndex()
    for bad in ["", "x" * 1025, "\udc80", 5, b"bytes", None]:
        with pytest.raises(InvalidInputError):
            index.insert(bad, 0)
    index.insert("é" * 512, 0)  # 1,024 UTF-8 bytes: the limit
    index.insert("a\0b", 1)  # NUL is allowed
    assert index.get("a\0b") == 1 and "a\0b" in index and 5 not in index
    with pytest.raises(ValueError):
        index.insert("other", 0)  # slot 0 belongs to another id


def test_hash_is_stable_and_spreads():
    assert hash_id("abc") == hash_id(b"abc")
    values = {hash_id(f"id{i}") for i in range(100_000)}
    assert len(values) == 100_000
    low_bits = np.array([hash_id(f"id{i}") & 0xFF for i in range(20_000)])
    counts = np.bincount(low_bits, minlength=256)
    assert counts.min() > 40 and counts.max() < 120


class IndexMachine(RuleBasedStateMachine):
    """Random insert/delete/lookup sequences with a 2-bit hash: all collide."""

    def __init__(self):
        super().__init__()
        self.index = IdIndex(capacity=0, hash_mask=0x3)
        self.model = {}
        self.slot = 0

    keys = st.text(min_size=1, max_size=6)

    @rule(key=keys)
    def insert(self, key):
        assert self.index.insert(key, self.slot) == self.model.get(key, -1)
        self.model[key] = self.slot
        self.slot += 1

    @rule(key=keys)
    def delete(self, key):
        assert self.index.delete(key) == self.model.pop(key, -1)

    @rule(key=keys)
    def get(self, key):
        assert self.index.get(key) == self.model.get(key, -1)

    @invariant()
    def same_contents(self):
        assert len(self.index) == len(self.model)
        assert dict(self.index.items()) == self.model


TestIndexMachine = IndexMachine.TestCase
TestIndexMachine.settings = settings(max_examples=60, stateful_step_count=60, deadline=None)


# ---------------------------------------------------------------- scan_ids


def test_scan_ids_accepts_unique_ascii_ids():
    from jadevec._core.id_index import MAX_ID_BYTES, scan_ids

    assert scan_ids([]) == (-1, -1)
    assert scan_ids(["a", "b", "x" * MAX_ID_BYTES, "a\x00b"]) == (-1, -1)


def test_scan_ids_reports_the_first_repeat():
    from jadevec._core.id_index import scan_ids

    assert scan_ids(["a", "b", "c", "b", "a"]) == (1, 3)
    ids = [f"id-{i}" for i in range(5000)] + ["id-4321"]
    assert scan_ids(ids) == (4321, 5000)


@pytest.mark.parametrize(
    "ids,position",
    [(["a", 1], 1), (["a", "é"], 1), (["", "a"], 0), (["x" * 1025], 0), ([b"a"], 0)],
    ids=["not-str", "non-ascii", "empty", "too-long", "bytes"],
)
def test_scan_ids_leaves_other_items_to_the_slow_path(ids, position):
    from jadevec._core.id_index import scan_ids

    assert scan_ids(ids) == (position, -1)


def test_scan_ids_str_subclass_takes_the_slow_path():
    from jadevec._core.id_index import scan_ids

    class Name(str):
        pass

    assert scan_ids(["a", Name("b")]) == (1, -1)
    with pytest.raises(TypeError):
        scan_ids(None)
