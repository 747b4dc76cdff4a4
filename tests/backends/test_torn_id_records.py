"""Recovery after a power loss that tore an id record but kept a later one.

Two writes after the last commit append two id records to ``ids.jvid``. If
the first one's sectors never reached the disk but the second's did (a torn
page), replay keeps the second write and leaves out the first; ``ids_end``
must then cover the second record, with the torn one inside it. Recovery
rewrites the torn record as a filler, so the store it leaves passes
``verify()`` and takes new writes.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import jadevec

WRITER = textwrap.dedent("""
    import os, sys
    import jadevec
    store = jadevec.open(sys.argv[1], backend=sys.argv[2], flush_interval=0)
    db = store.get_database("docs")
    db.store("first-torn", [1.0, 0.0, 0.0, 1.0])
    db.store("second", [2.0, 0.0, 0.0, 2.0])
    os._exit(0)  # no checkpoint: both writes are after the last commit
""")


@pytest.mark.parametrize("backend", ["mmap", "hybrid"])
def test_a_torn_id_record_before_a_whole_one(tmp_path: Path, backend: str) -> None:
    path = tmp_path / "store"
    with jadevec.open(path, backend=backend, flush_interval=0) as store:
        db = store.create_database("docs", 4, "l2")
        for i in range(3):
            db.store(f"a{i}", [1.0, 2.0, 3.0, float(i)])
    subprocess.run([sys.executable, "-c", WRITER, str(path), backend], check=True, timeout=60)
    (ids,) = path.glob("vectors/*/ids.jvid")
    data = bytearray(ids.read_bytes())
    at = data.find(b"first-torn") - 8
    assert at > 0 and data.find(b"second") > at
    data[at:at + 24] = bytes(24)  # the record (8 + 10 bytes, padded to 24) never written
    ids.write_bytes(bytes(data))

    with jadevec.open(path, backend=backend, flush_interval=0) as store:
        db = store.get_database("docs")
        assert db.retrieve("first-torn") is None  # its file set recovers at first use
        assert np.array_equal(db.retrieve("second"), [2.0, 0.0, 0.0, 2.0])
        assert any("1 torn id records" in a for a in store.recovery_report.actions)
        assert store.verify().ok, store.verify().problems
        db.store("after", [0.5, 0.5, 0.5, 0.5])
    with jadevec.open(path, backend=backend, flush_interval=0) as store:
        assert store.verify().ok, store.verify().problems
        db = store.get_database("docs")
        assert sorted(db.list_vectors()) == ["a0", "a1", "a2", "after", "second"]
