"""Damaged catalogs found by the corruption fuzzer (tests/core/fuzz_harness.py).

Each test damages one field of a real store's catalog and checks that the
open either refuses with ``CorruptionError`` naming the file, or keeps the
data; never a leaked ``sqlite3``/``json`` error and never a deleted database.
"""

import json
import os
import sqlite3

import pytest

import jadevec
from jadevec.errors import CorruptionError


def _store(path, backend):
    with jadevec.open(path, backend=backend, flush_interval=0) as s:
        db = s.create_database("docs", 3)
        db.store("a", [1, 2, 3], metadata={"k": 1})
        s.create_database("empty", 3)


def _folders(path):
    return sorted(os.listdir(path / "vectors"))


@pytest.mark.parametrize("folder", ["../..", "..", "/etc", "cosine", None, "db-XYZ"])
def test_mmap_manifest_folder_that_is_not_an_id_is_refused(tmp_path, folder):
    _store(tmp_path, "mmap")
    doc = json.loads((tmp_path / "catalog.json").read_text())
    doc["databases"][0]["folder"] = folder
    (tmp_path / "catalog.json").write_text(json.dumps(doc))
    before = _folders(tmp_path)
    with pytest.raises(CorruptionError, match="catalog.json"):
        jadevec.open(tmp_path, backend="mmap")
    assert _folders(tmp_path) == before and (tmp_path / "catalog.json").exists()


@pytest.mark.parametrize("field,value", [("dimension", 0), ("dimension", 65537),
                                         ("dimension", "3"), ("metric", "bogus"),
                                         ("name", 5)])
def test_mmap_manifest_bad_entry_field(tmp_path, field, value):
    _store(tmp_path, "mmap")
    doc = json.loads((tmp_path / "catalog.json").read_text())
    doc["databases"][0][field] = value
    (tmp_path / "catalog.json").write_text(json.dumps(doc))
    with pytest.raises(CorruptionError, match=field):
        jadevec.open(tmp_path, backend="mmap", read_only=True)


def test_a_database_whose_catalog_entry_is_damaged_keeps_its_vectors(tmp_path):
    """Recovery used to remove the folder as an orphan: one damaged field lost the data."""
    _store(tmp_path, "mmap")
    doc = json.loads((tmp_path / "catalog.json").read_text())
    real = doc["databases"][0]["folder"]
    doc["databases"][0]["folder"] = "db-000000000000"  # a valid id, but not the folder
    (tmp_path / "catalog.json").write_text(json.dumps(doc))
    with jadevec.open(tmp_path, backend="mmap") as s:
        assert any("kept folder" in a and real in a for a in s.recovery_report.actions)
    assert real in _folders(tmp_path)


@pytest.mark.parametrize("line", [b"[" * 100000, b'["a", {"k": 1}, 1, null, null]',
                                  b'["a", "{not json", 1, null, null]', b"[]", b"7",
                                  b'["a", null, 1e400, null, null]'])
def test_mmap_metadata_log_damaged_line(tmp_path, line):
    _store(tmp_path, "mmap")
    (log,) = (tmp_path / "metadata").glob("*.jsonl")
    log.write_bytes(line + b"\n" + log.read_bytes())
    with jadevec.open(tmp_path, backend="mmap", read_only=True) as s, \
            pytest.raises(CorruptionError, match="line 1"):
        s.get_database("docs").get_metadata("a")


def test_hybrid_catalog_without_its_databases_table_keeps_the_vectors(tmp_path):
    """A writer recreates the schema; the folders then look orphaned and must survive."""
    _store(tmp_path, "hybrid")
    con = sqlite3.connect(tmp_path / "catalog.sqlite3")
    con.execute("DROP TABLE databases")
    con.commit()
    con.close()
    with pytest.raises(CorruptionError, match="catalog.sqlite3"):
        jadevec.open(tmp_path, backend="hybrid", read_only=True)
    with jadevec.open(tmp_path, backend="hybrid") as s:
        assert any("holds 1 vectors" in a for a in s.recovery_report.actions)
    assert len(_folders(tmp_path)) == 1  # the empty database went, the one with data stayed


@pytest.mark.parametrize("sql", [
    "UPDATE databases SET folder = '../..' WHERE name = 'docs'",
    "UPDATE databases SET dimension = 'x' WHERE name = 'docs'",
    "UPDATE databases SET metric = 'bogus' WHERE name = 'docs'",
    "UPDATE store_state SET value = X'ff00' WHERE key = 'format'",
])
def test_hybrid_damaged_catalog_is_a_corruption_error(tmp_path, sql):
    _store(tmp_path, "hybrid")
    before = _folders(tmp_path)
    con = sqlite3.connect(tmp_path / "catalog.sqlite3")
    try:
        con.execute(sql)
        con.commit()
    except sqlite3.IntegrityError:
        pytest.skip("the schema refuses this value")
    finally:
        con.close()
    for read_only in (True, False):
        with pytest.raises(CorruptionError, match="catalog.sqlite3"):
            jadevec.open(tmp_path, backend="hybrid", read_only=read_only)
    assert _folders(tmp_path) == before


@pytest.mark.parametrize("value", ["'{not json'", "'[1]'", "X'ff'"])
def test_hybrid_damaged_metadata_row(tmp_path, value):
    _store(tmp_path, "hybrid")
    con = sqlite3.connect(tmp_path / "catalog.sqlite3")
    con.execute(f"UPDATE vector_meta SET meta = {value}")
    con.commit()
    con.close()
    with jadevec.open(tmp_path, backend="hybrid", read_only=True) as s, \
            pytest.raises(CorruptionError, match="catalog.sqlite3"):
        s.get_database("docs").get_metadata("a")


def test_hybrid_truncated_catalog(tmp_path):
    _store(tmp_path, "hybrid")
    p = tmp_path / "catalog.sqlite3"
    p.write_bytes(p.read_bytes()[:5000])
    for read_only in (True, False):
        with pytest.raises(CorruptionError):
            s = jadevec.open(tmp_path, backend="hybrid", read_only=read_only)
            s.verify()
            s.close()
