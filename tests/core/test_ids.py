"""Id helpers of jadevec._core.id_index: the id hash and the batch id scan.

The hash's pinned values (part of the file format) are in test_format_bytes.py.
"""

import numpy as np
import pytest

from jadevec._core.id_index import MAX_ID_BYTES, hash_id, scan_ids

# ---------------------------------------------------------------- hash_id


def test_hash_id_takes_str_and_bytes_alike():
    assert hash_id("abc") == hash_id(b"abc") == hash_id(bytearray(b"abc"))
    assert hash_id("é") == hash_id("é".encode())


def test_hash_id_spreads():
    values = {hash_id(f"id{i}") for i in range(100_000)}
    assert len(values) == 100_000
    low_bits = np.array([hash_id(f"id{i}") & 0xFF for i in range(20_000)])
    counts = np.bincount(low_bits, minlength=256)
    assert counts.min() > 40 and counts.max() < 120


# ---------------------------------------------------------------- scan_ids
# scan_ids is the fast path of a batch: exact str, ASCII, 1 to 1,024 bytes.
# It returns (i, j) for the first repeat (ids[i] == ids[j], i < j), (k, -1)
# for the first item it leaves to the slow path, and (-1, -1) otherwise.


def test_max_id_bytes():
    assert MAX_ID_BYTES == 1024


def test_scan_ids_accepts_unique_ascii_ids():
    assert scan_ids([]) == (-1, -1)
    assert scan_ids(["a", "b", "x" * MAX_ID_BYTES, "a\x00b"]) == (-1, -1)
    assert scan_ids([chr(c) for c in range(1, 128)]) == (-1, -1)


def test_scan_ids_reports_the_first_repeat():
    assert scan_ids(["a", "a"]) == (0, 1)
    assert scan_ids(["a", "b", "c", "b", "a"]) == (1, 3)
    ids = [f"id-{i}" for i in range(5000)] + ["id-4321"]
    assert scan_ids(ids) == (4321, 5000)
    assert scan_ids(["x" * MAX_ID_BYTES, "y", "x" * MAX_ID_BYTES]) == (0, 2)


@pytest.mark.parametrize(
    "ids,position",
    [(["a", 1], 1), (["a", "é"], 1), (["", "a"], 0), (["x" * (MAX_ID_BYTES + 1)], 0),
     ([b"a"], 0), (["a", None], 1)],
    ids=["not-str", "non-ascii", "empty", "too-long", "bytes", "none"],
)
def test_scan_ids_leaves_other_items_to_the_slow_path(ids, position):
    assert scan_ids(ids) == (position, -1)


def test_scan_ids_str_subclass_takes_the_slow_path():
    class Name(str):
        pass

    assert scan_ids(["a", Name("b")]) == (1, -1)
    with pytest.raises(TypeError):
        scan_ids(None)
