"""Damaged files of an LMDB store: each is a CorruptionError naming the file and the field.

LMDB maps ``data.mdb`` and trusts it; without the check before it maps the
file, each case here kills the process (SIGBUS, SIGABRT or SIGSEGV), so every
case runs in a forked child and the parent asserts on what the child saw. The
fuzzer (``test_damage_fuzz.py``) covers the same ground at random; these name
the field each kind of damage must be reported by.
"""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path
from typing import Any

import jadevec
import lmdb
import numpy as np
import pytest
from jadevec.errors import CorruptionError, JadevecError

from jadevec_lmdb import _datafile

DIM = 8
SUBDATABASES = (b"meta", b"catalog", b"stats", b"vectors", b"metadata", b"long_ids")


def build(path: Path) -> dict[str, list[float]]:
    """A closed store with a two-level tree of vectors; returns what it holds."""
    rng = np.random.default_rng(5)
    data = {f"v{i}": rng.standard_normal(DIM).astype(np.float32) for i in range(600)}
    with jadevec.open(path, backend="lmdb", flush_interval=0) as store:
        db = store.create_database("docs", DIM, metric="l2")
        db.batch_store(list(data), np.stack(list(data.values())),
                       metadatas=[{"i": i} for i in range(600)])
    return {k: v.tolist() for k, v in data.items()}


def open_and_read(path: Path, read_only: bool) -> dict[str, Any]:
    """In a child: open, read everything, close; what happened, as JSON-ready data."""
    try:
        with jadevec.open(path, backend="lmdb", read_only=read_only, flush_interval=0) as store:
            db = store.get_database("docs")
            ids = db.list_vectors()
            vectors = {i: v.tolist() for i, v in zip(ids, db.batch_retrieve(ids), strict=True)}
            report = store.recovery_report
            return {"vectors": vectors, "report": None if report is None else report.actions}
    except JadevecError as exc:
        return {"error": type(exc).__name__, "message": str(exc),
                "corruption": isinstance(exc, CorruptionError)}


def psize_of(path: Path) -> int:
    with open(path / "data.mdb", "rb") as f:
        return struct.unpack_from("<I", f.read(44), 40)[0]


def meta_txnids(path: Path) -> tuple[int, int]:
    psize = psize_of(path)
    with open(path / "data.mdb", "rb") as f:
        raw = f.read(psize + 152)
    return (struct.unpack_from("<Q", raw, 144)[0], struct.unpack_from("<Q", raw, psize + 144)[0])


def walk_pages(path: Path) -> _datafile._Walk:
    """The plugin's own check of every page of the (closed) store's data file, run."""
    fd = os.open(path / "data.mdb", os.O_RDONLY)
    try:
        meta, _ = _datafile.choose(*_datafile.read_metas(fd, path), path)
        walk = _datafile._Walk(fd, path, meta, os.fstat(fd).st_size)
        walk.run()
    finally:
        os.close(fd)
    return walk


def live_node(path: Path, key: bytes) -> tuple[int, int]:
    """``(page, offset of the node header)`` of ``key`` in a leaf page in use (store closed).

    Free pages may still hold old copies of a key, so the page is found among
    the pages the check walks, and must be a leaf.
    """
    walk = walk_pages(path)
    raw = (path / "data.mdb").read_bytes()
    psize = psize_of(path)
    for page in map(int, np.flatnonzero(walk.live)):
        base = page * psize
        flags, lower = struct.unpack_from("<HH", raw, base + 10)
        if flags != _datafile.P_LEAF:
            continue
        # Through the node offsets: the gap between them and the nodes holds stale bytes.
        for ptr in struct.unpack_from(f"<{(lower - 16) // 2}H", raw, base + 16):
            ksize = struct.unpack_from("<H", raw, base + ptr + 6)[0]
            if raw[base + ptr + 8:base + ptr + 8 + ksize] == key:
                return page, base + ptr
    raise AssertionError(f"no leaf page in use holds {key!r}")


@pytest.fixture
def store(tmp_path: Path) -> tuple[Path, dict[str, list[float]]]:
    path = tmp_path / "store"
    return path, build(path)


@pytest.mark.parametrize("read_only", [True, False])
def test_a_truncated_data_file_names_the_file_and_mm_last_pg(store, forked, read_only):
    path, _ = store
    data = path / "data.mdb"
    os.truncate(data, data.stat().st_size // 2)
    status, got = forked(lambda: open_and_read(path, read_only), 60)
    assert status == "ok", (status, got)  # not SIGBUS
    assert got.get("corruption"), got
    assert str(data) in got["message"] and "mm_last_pg" in got["message"]
    assert "truncated" in got["message"]


@pytest.mark.parametrize("cut, reader, writer", [
    (0, "shorter than LMDB's first meta page", "shorter than LMDB's first meta page"),
    (100, "shorter than LMDB's first meta page", "shorter than LMDB's first meta page"),
    # A writer would rebuild meta page 1 from page 0, but page 0's tree is gone too.
    (4095, "meta page 1 is cut short", "truncated"),
    (4096 + 100, "meta page 1 is cut short", "truncated")])
def test_a_data_file_cut_inside_its_meta_pages_names_them(store, forked, cut, reader, writer):
    path, _ = store
    data = path / "data.mdb"
    assert psize_of(path) == 4096
    os.truncate(data, cut)
    for read_only, field in ((True, reader), (False, writer)):
        status, got = forked(lambda read_only=read_only: open_and_read(path, read_only), 60)
        assert status == "ok" and got.get("corruption"), (status, got)
        assert str(data) in got["message"] and field in got["message"], got["message"]
    # Nothing was laid over the damaged file: LMDB never took it for a new one.
    assert data.stat().st_size == cut


@pytest.mark.parametrize("how", ["zero", "garbage"])
def test_a_zeroed_or_garbage_leaf_page_is_a_corruption_error(store, forked, how):
    path, _ = store
    page, _ = live_node(path, b"\x00" * 7 + b"\x01v599")  # a key of database number 1
    psize = psize_of(path)
    with open(path / "data.mdb", "r+b") as f:
        f.seek(page * psize)
        f.write(bytes(psize) if how == "zero" else np.random.default_rng(1).bytes(psize))
    for read_only in (True, False):
        status, got = forked(lambda read_only=read_only: open_and_read(path, read_only), 60)
        assert status == "ok" and got.get("corruption"), (status, got)  # not SIGABRT
        assert f"page {page} of database '" in got["message"], got["message"]


def test_a_node_size_that_still_fits_its_page_is_caught(store, forked):
    """A leaf node's data size grown by 2: every node still lies inside the page, but
    deleting it would shift its neighbours wrongly (LMDB corrupted its heap)."""
    path, _ = store
    _, at = live_node(path, b"\x00" * 7 + b"\x01v300")
    raw = bytearray((path / "data.mdb").read_bytes())
    size = struct.unpack_from("<H", raw, at)[0]
    struct.pack_into("<H", raw, at, size + 2)
    (path / "data.mdb").write_bytes(bytes(raw))
    status, got = forked(lambda: open_and_read(path, False), 60)
    assert status == "ok" and got.get("corruption"), (status, got)
    assert "do not tile" in got["message"]


def test_one_damaged_meta_page_is_refused_to_a_reader_and_rebuilt_by_a_writer(store, forked):
    path, data = store
    t0, t1 = meta_txnids(path)
    older = 0 if t0 < t1 else 1
    psize = psize_of(path)
    with open(path / "data.mdb", "r+b") as f:
        f.seek(older * psize + 16)
        f.write(b"\x00\x00\x00\x00")  # mm_magic
    status, got = forked(lambda: open_and_read(path, True), 60)
    assert status == "ok" and got.get("corruption"), got
    assert f"meta page {older}: field mm_magic" in got["message"]
    assert "open the store for writing once" in got["message"]
    status, got = forked(lambda: open_and_read(path, False), 60)
    assert status == "ok" and "error" not in got, got
    assert got["vectors"] == data  # the newer meta page was the sound one: nothing lost
    assert any(f"meta page {older}" in a and "rebuilt it" in a for a in got["report"])
    status, got = forked(lambda: open_and_read(path, True), 60)
    assert status == "ok" and got["vectors"] == data and got["report"] is None


def test_both_meta_pages_damaged_is_a_corruption_error(store, forked):
    path, _ = store
    psize = psize_of(path)
    with open(path / "data.mdb", "r+b") as f:
        for slot in (0, 1):
            f.seek(slot * psize + 16)
            f.write(b"\x00\x00\x00\x00")
    for read_only in (True, False):
        status, got = forked(lambda read_only=read_only: open_and_read(path, read_only), 60)
        assert status == "ok" and got.get("corruption"), got
        assert "meta pages are damaged" in got["message"]


def test_meta_pages_whose_transaction_ids_disagree_are_refused(store, forked):
    path, _ = store
    psize = psize_of(path)
    t0, t1 = meta_txnids(path)
    newer = 0 if t0 > t1 else 1
    with open(path / "data.mdb", "r+b") as f:
        f.seek(newer * psize + 144)
        f.write(struct.pack("<Q", max(t0, t1) + 2))  # same parity, two ahead
    status, got = forked(lambda: open_and_read(path, False), 60)
    assert status == "ok" and got.get("corruption"), got
    assert "field mm_txnid" in got["message"]


@pytest.mark.parametrize("how", ["delete", "empty", "garbage", "half"])
def test_a_lost_or_damaged_lock_mdb_is_rebuilt(store, forked, how):
    """LMDB rebuilds ``lock.mdb`` when no process has the store open: the store opens."""
    path, data = store
    lock = path / "lock.mdb"
    if how == "delete":
        lock.unlink()
    elif how == "empty":
        os.truncate(lock, 0)
    elif how == "half":
        os.truncate(lock, lock.stat().st_size // 2)
    else:
        lock.write_bytes(np.random.default_rng(2).bytes(lock.stat().st_size))
    for read_only in (True, False, True):
        status, got = forked(lambda read_only=read_only: open_and_read(path, read_only), 60)
        assert status == "ok" and got.get("vectors") == data, (status, got)


def test_damaged_metadata_and_catalog_records_are_corruption_errors(tmp_path):
    path = tmp_path / "store"
    with jadevec.open(path, backend="lmdb", flush_interval=0) as store:
        store.create_database("docs", 2).store("a", [1.0, 2.0], metadata={"k": "v"})
    env = lmdb.open(str(path), max_dbs=len(SUBDATABASES))
    with env.begin(write=True) as txn:
        meta = env.open_db(b"metadata", txn=txn, create=False)
        key = next(iter(txn.cursor(db=meta)))[0]
        txn.put(key, b'{"k": "v\xff', db=meta)  # not UTF-8, not JSON
    env.close()
    with jadevec.open(path, backend="lmdb") as store:
        db = store.get_database("docs")
        with pytest.raises(CorruptionError, match="metadata of 'a' is damaged") as caught:
            db.get_metadata("a")
        assert str(path / "data.mdb") in str(caught.value)
    env = lmdb.open(str(path), max_dbs=len(SUBDATABASES))
    with env.begin(write=True) as txn:
        txn.put(b"docs", b'{"name": "docs", "dimension": "two"}',
                db=env.open_db(b"catalog", txn=txn, create=False))
    env.close()
    with jadevec.open(path, backend="lmdb") as store:
        for call in (store.list_databases, lambda: store.get_database("docs"),
                     lambda: store.delete_database("docs")):
            with pytest.raises(CorruptionError, match="sub-database 'catalog' is damaged"):
                call()
        assert not store.verify().ok


def test_losing_only_free_pages_at_the_end_of_the_file_is_no_damage(tmp_path, forked):
    """LMDB may leave freed tail pages unwritten (mdb.c: "the file may be shorter if
    the freeDB lists the final pages"): a file cut there opens with all its data,
    while a cut one page further is a truncation."""
    path = tmp_path / "store"
    data = build(path)
    with jadevec.open(path, backend="lmdb", flush_interval=0) as store:
        db = store.get_database("docs")
        db.store("big", np.ones(DIM), metadata={"t": "x" * 400_000})  # overflow pages at the end
        db.delete("big")  # ...now free
    walk = walk_pages(path)
    free_tail = 0
    while walk.free[walk.next_pgno - 1 - free_tail]:
        free_tail += 1
    assert free_tail >= 1, "the construction left no free page at the end"
    psize = psize_of(path)
    pristine = tmp_path / "pristine"
    shutil.copytree(path, pristine)
    os.truncate(path / "data.mdb", (walk.next_pgno - free_tail) * psize)
    status, got = forked(lambda: open_and_read(path, False), 60)
    assert status == "ok" and got.get("vectors") == data, (status, got)
    shutil.rmtree(path)
    shutil.copytree(pristine, path)
    os.truncate(path / "data.mdb", (walk.next_pgno - free_tail - 1) * psize)
    status, got = forked(lambda: open_and_read(path, False), 60)
    assert status == "ok" and got.get("corruption") and "truncated" in got["message"], got
