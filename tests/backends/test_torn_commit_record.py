"""A commit record torn by a crash (or damaged) beside a valid one.

The newest valid record holds the state, so a writer opens from it, reports
the failed record in ``recovery_report`` and clears it: ``verify()`` is clean
afterwards, where it used to report a torn commit that nothing needs (the
power-loss loop found that state). A read-only open changes nothing and its
``verify()`` still reports the record.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

import jadevec

COMMIT_OFFSETS = (0, 2048)  # commit records A and B of vectors.jvdb
GENERATION = 40  # offset of the u64 generation inside a record


def _older_record(vectors: Path) -> int:
    data = vectors.read_bytes()
    generations = [struct.unpack_from("<Q", data, o + GENERATION)[0] for o in COMMIT_OFFSETS]
    return COMMIT_OFFSETS[generations.index(min(generations))]


@pytest.mark.parametrize("backend", ["mmap", "hybrid"])
def test_a_writer_clears_a_failed_commit_record_and_verifies_clean(tmp_path, backend):
    rows = np.random.default_rng(1).standard_normal((50, 8)).astype(np.float32)
    with jadevec.open(tmp_path / "s", backend=backend, flush_interval=0) as store:
        db = store.create_database("docs", 8)
        db.batch_store([f"v{i}" for i in range(25)], rows[:25])
        store.sync()
        db.batch_store([f"v{i}" for i in range(25, 50)], rows[25:])
    (vectors,) = (tmp_path / "s" / "vectors").glob("*/vectors.jvdb")
    offset = _older_record(vectors)
    with open(vectors, "r+b") as f:  # a record torn half way through
        f.seek(offset + 64)
        f.write(b"\xff" * 64)

    with jadevec.open(tmp_path / "s", backend=backend, read_only=True) as reader:
        assert not reader.verify().ok  # a read-only open leaves the files alone
    with jadevec.open(tmp_path / "s", backend=backend, flush_interval=0) as store:
        db = store.get_database("docs")
        assert np.array_equal(np.stack(db.batch_retrieve([f"v{i}" for i in range(50)])), rows)
        report = store.recovery_report
        assert report is not None and any("cleared" in a for a in report.actions), report
        assert store.verify().ok
    assert vectors.read_bytes()[offset:offset + 128] != b"\xff" * 64
    with jadevec.open(tmp_path / "s", backend=backend, read_only=True) as reader:
        assert reader.verify().ok
