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


STORE_ONE = textwrap.dedent("""
    import os, sys
    import jadevec
    store = jadevec.open(sys.argv[1], backend=sys.argv[2], flush_interval=0)
    store.get_database("docs").store(sys.argv[3], [float(len(sys.argv[3])), 1.0, 1.0, 1.0])
    os._exit(0)  # no checkpoint
""")


@pytest.mark.parametrize("backend", ["mmap", "hybrid"])
def test_a_stale_id_record_past_ids_end_names_no_write(tmp_path: Path, backend: str) -> None:
    """An id record a recovery left out stays past ``ids_end``; the next new id
    is appended over it. If a power loss then keeps that write's slot record
    but not its id record, the stale one must not name the write."""
    path = tmp_path / "store"
    with jadevec.open(path, backend=backend, flush_interval=0) as store:
        store.create_database("docs", 4, "l2").store("a", [1.0, 2.0, 3.0, 4.0])
    # A write whose slot record is lost (torn) but whose id record "stale" is whole.
    subprocess.run([sys.executable, "-c", STORE_ONE, str(path), backend, "stale"], check=True,
                   timeout=60)
    (folder,) = path.glob("vectors/*/")
    slots = bytearray((folder / "slots.jvsl").read_bytes())
    live = [i for i in range(64, len(slots), 32) if slots[i + 12] == 1]
    slots[live[-1]:live[-1] + 32] = bytes(32)
    (folder / "slots.jvsl").write_bytes(bytes(slots))
    with jadevec.open(path, backend=backend, flush_interval=0) as store:
        db = store.get_database("docs")
        assert db.list_vectors() == ["a"]
    after_recovery = (folder / "ids.jvid").read_bytes()
    # A new id of the same length, appended where "stale" was; then the power
    # loss keeps its slot record and row but not its id record.
    subprocess.run([sys.executable, "-c", STORE_ONE, str(path), backend, "fresh"], check=True,
                   timeout=60)
    ids = bytearray((folder / "ids.jvid").read_bytes())
    ids[:len(after_recovery)] = after_recovery
    (folder / "ids.jvid").write_bytes(bytes(ids))
    with jadevec.open(path, backend=backend, flush_interval=0) as store:
        db = store.get_database("docs")
        assert db.list_vectors() == ["a"]  # "fresh" is lost (never synced), "stale" never written
        assert store.verify().ok, store.verify().problems


STORE_AND_DIE = textwrap.dedent("""
    import os, sys
    import jadevec
    store = jadevec.open(sys.argv[1], backend=sys.argv[2], flush_interval=0)
    store.get_database("docs").store(sys.argv[3], [float(sys.argv[4]), 1.0, 1.0, 1.0])
    os._exit(0)  # no checkpoint
""")


@pytest.mark.parametrize("backend", ["mmap", "hybrid"])
def test_a_slot_record_one_recovery_left_out_is_never_replayed(tmp_path: Path,
                                                               backend: str) -> None:
    """A power loss keeps a write's slot record and row but tears its id
    record: recovery leaves the write out. A later write of a new id then
    appends its id record at the same offset. When that writer is killed, the
    next recovery must not take the stale slot record (whole, its row whole,
    its id reference now whole too) as a write of the new id."""
    path = tmp_path / "store"
    with jadevec.open(path, backend=backend, flush_interval=0) as store:
        store.create_database("docs", 4, "l2").store("a", [1.0, 2.0, 3.0, 4.0])
    subprocess.run([sys.executable, "-c", STORE_AND_DIE, str(path), backend, "lost", "9"],
                   check=True, timeout=60)
    (folder,) = path.glob("vectors/*/")
    # The power loss: the write (slot 1) reached the disk in slot 40's place,
    # which no later write of this test touches (as a slot freed before the
    # crash may be), and its id record was never written.
    slots = bytearray((folder / "slots.jvsl").read_bytes())
    rows = bytearray((folder / "vectors.jvdb").read_bytes())
    stride = 64  # dimension 4: 16 bytes, rounded up to 64
    slots[64 + 40 * 32:64 + 41 * 32] = slots[64 + 32:64 + 64]
    slots[64 + 32:64 + 64] = bytes(32)
    rows[4096 + 40 * stride:4096 + 41 * stride] = rows[4096 + stride:4096 + 2 * stride]
    (folder / "slots.jvsl").write_bytes(bytes(slots))
    (folder / "vectors.jvdb").write_bytes(bytes(rows))
    ids = bytearray((folder / "ids.jvid").read_bytes())
    at = ids.find(b"lost") - 8
    ids[at:at + 16] = bytes(16)
    (folder / "ids.jvid").write_bytes(bytes(ids))

    with jadevec.open(path, backend=backend, flush_interval=0) as store:
        db = store.get_database("docs")
        assert db.list_vectors() == ["a"]  # the write is left out
        assert store.verify().ok, store.verify().problems
    # A new id of the same length: its id record lands where "lost"'s was.
    subprocess.run([sys.executable, "-c", STORE_AND_DIE, str(path), backend, "next", "5"],
                   check=True, timeout=60)
    assert (folder / "ids.jvid").read_bytes().find(b"next") - 8 == at
    with jadevec.open(path, backend=backend, flush_interval=0) as store:
        db = store.get_database("docs")
        assert sorted(db.list_vectors()) == ["a", "next"]
        assert db.retrieve("next").tolist() == [5.0, 1.0, 1.0, 1.0]  # not the lost write's 9
        assert store.verify().ok, store.verify().problems
