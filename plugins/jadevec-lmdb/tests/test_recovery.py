"""An unclean shutdown is detected and reported: the ``clean`` flag in sub-database ``meta``.

A writer commits ``clean = 0`` when it opens and ``clean = 1`` when it closes;
the next writer that finds 0 reports what it checked in ``recovery_report`` and
logs a warning on the ``jadevec`` logger. Raw state is read with ``lmdb``
itself, in another process while the store is open (LMDB allows one
environment per process).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import jadevec
import lmdb
import numpy as np
import pytest

SUBDATABASES = (b"meta", b"catalog", b"stats", b"vectors", b"metadata", b"long_ids")
# The child imports the very jadevec and plugin this process uses.
CHILD_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
_kept: list[jadevec.Store] = []


def clean_flag(path: Path) -> bytes | None:
    """The ``clean`` key, read by plain LMDB in another process (the store may be open here)."""
    code = ("import lmdb, sys\n"
            "env = lmdb.open(sys.argv[1], readonly=True, max_dbs=6)\n"
            "with env.begin() as txn:\n"
            "    v = txn.get(b'clean', db=env.open_db(b'meta', txn=txn, create=False))\n"
            "print('none' if v is None else v.hex())\n")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, env=CHILD_ENV, check=True).stdout.strip()
    return None if out == "none" else bytes.fromhex(out)


def killed_writer(path: Path, forked, **options) -> list[str]:
    """A forked writer stores vectors and dies with ``os._exit``, its store still open."""

    def body() -> list[str]:
        store = jadevec.open(path, backend="lmdb", **options)
        _kept.append(store)  # referenced until os._exit: no finaliser closes it
        db = (store.get_database("docs") if "docs" in store
              else store.create_database("docs", 4, metric="l2"))
        ids = [f"k{i}" for i in range(30)]
        for i, vid in enumerate(ids):
            db.store(vid, np.full(4, float(i)), metadata={"i": i})
        return ids

    status, ids = forked(body, 60)
    assert status == "ok", (status, ids)
    return ids


def test_the_flag_is_0_while_a_writer_is_open_and_1_after_close(tmp_path):
    path = tmp_path / "store"
    store = jadevec.open(path, backend="lmdb", flush_interval=0)
    assert clean_flag(path) == b"\x00"
    reader = jadevec.open(path, backend="lmdb", read_only=True)
    reader.close()  # a reader's close leaves the writer's mark alone
    assert clean_flag(path) == b"\x00"
    store.close()
    assert clean_flag(path) == b"\x01"
    with jadevec.open(path, backend="lmdb") as again:
        assert again.recovery_report is None


def test_a_killed_writer_is_reported_with_what_was_checked(tmp_path, forked, caplog):
    path = tmp_path / "store"
    jadevec.open(path, backend="lmdb").close()
    ids = killed_writer(path, forked)
    assert clean_flag(path) == b"\x00"
    with caplog.at_level(logging.WARNING, logger="jadevec"):
        store = jadevec.open(path, backend="lmdb", flush_interval=0)
    try:
        report = store.recovery_report
        assert report is not None
        text = "\n".join(report.actions)
        assert "field 'clean' of sub-database 'meta' was 0" in text
        assert f"checked {str(path / 'data.mdb')!r} before opening it" in text
        assert "pages of 6 databases walked" in text
        assert "verified the catalog against the data: 1 databases, 30 vectors, no problems" \
            in text
        assert report.databases == ["docs"] and report.seconds >= 0
        warnings = [r for r in caplog.records if r.name == "jadevec"
                    and r.levelno == logging.WARNING and str(path) in r.getMessage()]
        assert len(warnings) == 1 and "'clean'" in warnings[0].getMessage()
        db = store.get_database("docs")
        for i, vid in enumerate(ids):  # every acknowledged write is there
            assert db.retrieve(vid).tolist() == [float(i)] * 4
            assert db.get_metadata(vid) == {"i": i}
    finally:
        store.close()
    with jadevec.open(path, backend="lmdb") as again:
        assert again.recovery_report is None  # recovered and closed cleanly


def test_a_killed_writer_without_synced_commits_is_reported_too(tmp_path, forked):
    path = tmp_path / "store"
    killed_writer(path, forked, lmdb_sync=False, flush_interval=0)
    with jadevec.open(path, backend="lmdb") as store:
        assert store.recovery_report is not None
        assert len(store.get_database("docs")) == 30


def test_a_reader_does_not_report_and_does_not_clear_the_mark(tmp_path, forked):
    path = tmp_path / "store"
    killed_writer(path, forked)
    with jadevec.open(path, backend="lmdb", read_only=True) as reader:
        # A live writer also leaves 0 behind, so a reader cannot tell: it says nothing.
        assert reader.recovery_report is None
        assert len(reader.get_database("docs")) == 30
    with jadevec.open(path, backend="lmdb") as store:
        assert store.recovery_report is not None


def test_damage_found_after_an_unclean_shutdown_is_in_the_report(tmp_path, forked):
    path = tmp_path / "store"
    killed_writer(path, forked)
    env = lmdb.open(str(path), max_dbs=len(SUBDATABASES))
    with env.begin(write=True) as txn:
        vec = env.open_db(b"vectors", txn=txn, create=False)
        key = next(iter(txn.cursor(db=vec)))[0]
        txn.put(key, b"\x00" * 12, db=vec)  # 3 floats in a 4-d database
    env.close()
    with jadevec.open(path, backend="lmdb") as store:
        text = "\n".join(store.recovery_report.actions)
        assert "found: database 'docs': vector key" in text and "has 12 bytes" in text


def test_a_store_of_an_older_release_without_the_flag_counts_as_clean(tmp_path):
    path = tmp_path / "store"
    with jadevec.open(path, backend="lmdb") as store:
        store.create_database("docs", 2).store("a", [1.0, 2.0])
    env = lmdb.open(str(path), max_dbs=len(SUBDATABASES))
    with env.begin(write=True) as txn:
        assert txn.delete(b"clean", db=env.open_db(b"meta", txn=txn, create=False))
    env.close()
    with jadevec.open(path, backend="lmdb") as store:
        assert store.recovery_report is None
        assert store.get_database("docs").retrieve("a").tolist() == [1.0, 2.0]
    assert clean_flag(path) == b"\x01"


@pytest.mark.parametrize("read_only", [True, False])
def test_the_report_is_readable_after_close(tmp_path, forked, read_only):
    path = tmp_path / "store"
    killed_writer(path, forked)
    store = jadevec.open(path, backend="lmdb", read_only=read_only)
    store.close()
    report = store.recovery_report
    assert (report is None) == read_only
    if report is not None:
        assert json.loads(json.dumps(report.actions))  # plain strings
