"""The pairing rule: which version of a metadata record goes with the live vector."""

import numpy as np

from jadevec.backends._pairing import DROP, UNKNOWN, Record, fingerprints, resolve


def test_fingerprints_of_no_rows_are_none_and_of_rows_tell_them_apart():
    assert fingerprints(np.zeros((0, 4), np.float32)) == []
    rows = np.array([[1, 2, 3, 4], [4, 3, 2, 1], [1, 2, 3, 4]], np.float32)
    first, swapped, again = fingerprints(rows)
    assert first == again and first != swapped


def test_resolve_picks_the_version_whose_fingerprint_is_live():
    record = Record('{"v": 3}', 30, '{"v": 2}', 20, '{"v": 1}', 10, 5)
    assert resolve(record, None) is DROP
    assert resolve(record, 30) == '{"v": 3}'
    assert resolve(record, 20) == '{"v": 2}'
    assert resolve(record, 10) == '{"v": 1}'
    assert resolve(record, 99) is UNKNOWN


def test_resolve_falls_back_to_the_base_when_the_previous_version_does_not_match():
    without_base = Record('{"v": 3}', 30, '{"v": 2}', 20, '{"v": 1}', None, 5)
    assert resolve(without_base, 99) == '{"v": 1}'
    without_previous = Record('{"v": 3}', 30, '{"v": 2}', None, '{"v": 1}', 10, 5)
    assert resolve(without_previous, 99) == '{"v": 2}'
