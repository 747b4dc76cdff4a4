"""A power loss can tear the unsynced tail of an mmap store's append-only files.

The metadata logs and the catalog journal get appended lines that are synced
only by the next checkpoint. After a power loss the part past the last sync
may be a line cut short, or blocks whose size reached the disk but whose
bytes did not (they read as NUL bytes), possibly with later lines after
them. The store must open, ignore that tail, and cut it before its next
append, so the line it appends is not read as damage at the next open.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import jadevec

TAILS = {
    "cut line": b'["x","{\\"v\\"',
    "unwritten blocks": bytes(700),
    "unwritten blocks, then lines": bytes(300) + b'["zz"]\n' + bytes(20) + b'["v0"]\n',
}


def make_store(path: Path) -> Path:
    with jadevec.open(path, backend="mmap", flush_interval=0) as store:
        db = store.create_database("docs", 3, "l2")
        for i in range(3):
            db.store(f"v{i}", [1.0, 2.0, float(i)], {"v": i})
    (log,) = (path / "metadata").glob("*.jsonl")
    return log


@pytest.mark.parametrize("tail", list(TAILS))
def test_a_torn_metadata_log_tail_is_ignored_and_cut(tmp_path: Path, tail: str) -> None:
    path = tmp_path / "store"
    log = make_store(path)
    synced = log.read_bytes()
    with log.open("ab") as f:
        f.write(TAILS[tail])
    with jadevec.open(path, backend="mmap", flush_interval=0) as store:
        db = store.get_database("docs")
        assert [db.get_metadata(f"v{i}") for i in range(3)] == [{"v": i} for i in range(3)]
        db.store("new", [3.0, 2.0, 1.0], {"v": "new"})
    assert log.read_bytes().startswith(synced)
    with jadevec.open(path, backend="mmap", flush_interval=0) as store:
        assert store.verify().ok
        db = store.get_database("docs")
        assert db.get_metadata("new") == {"v": "new"}
        assert [db.get_metadata(f"v{i}") for i in range(3)] == [{"v": i} for i in range(3)]


@pytest.mark.parametrize("tail", list(TAILS))
def test_a_torn_catalog_journal_tail_is_ignored_and_cut(tmp_path: Path, tail: str) -> None:
    path = tmp_path / "store"
    make_store(path)
    journal = path / "catalog.log"
    with journal.open("ab") as f:
        f.write(TAILS[tail])
    with jadevec.open(path, backend="mmap", flush_interval=0) as store:
        assert store.list_databases() == ["docs"]
        store.create_database("more", 2, "l2")
    with jadevec.open(path, backend="mmap", flush_interval=0) as store:
        assert sorted(store.list_databases()) == ["docs", "more"]
        assert store.verify().ok
