"""Damaged catalogs found by the corruption fuzzer (tests/core/fuzz_harness.py).

Each test damages one field of a real store's catalog (mmap: the snapshot
catalog.json, the journal catalog.log and the metadata logs; hybrid: the
schema-2 tables of catalog.sqlite3) and checks that the open either refuses
with ``CorruptionError`` naming the file, or keeps the data; never a leaked
``sqlite3``/``json`` error and never a deleted database. A short seeded
fuzz run over the catalog mutation classes closes the file.
"""

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import jadevec
from jadevec.errors import CorruptionError

HARNESS = Path(__file__).parents[1] / "core" / "fuzz_harness.py"


def _store(path, backend, clean=True):
    """docs (one vector with metadata) and an empty database; ``clean=False`` skips close."""
    s = jadevec.open(path, backend=backend, flush_interval=0)
    db = s.create_database("docs", 3)
    db.store("a", [1, 2, 3], metadata={"k": 1})
    s.create_database("empty", 3)
    if clean:
        s.close()
    return s


def _folders(path):
    return sorted(os.listdir(path / "vectors"))


def _catalog(path):
    return json.loads((path / "catalog.json").read_text())


def _write_catalog(path, doc):
    (path / "catalog.json").write_text(json.dumps(doc))


# -- mmap: the snapshot catalog.json ----------------------------------------------------


def test_mmap_catalog_is_a_snapshot_keyed_by_lower_case_name(tmp_path):
    _store(tmp_path, "mmap")
    doc = _catalog(tmp_path)
    assert doc["format"] == "jadevec-mmap" and doc["version"] == 2
    assert doc["clean"] is True and isinstance(doc["sequence"], int)
    assert set(doc["databases"]) == {"docs", "empty"}
    assert set(doc["databases"]["docs"]) == {"name", "dimension", "metric", "folder"}
    assert (tmp_path / "catalog.log").read_bytes() == b""  # a clean close empties it


@pytest.mark.parametrize("folder", ["../..", "..", "/etc", "cosine", None, "db-XYZ"])
def test_mmap_catalog_folder_that_is_not_an_id_is_refused(tmp_path, folder):
    _store(tmp_path, "mmap")
    doc = _catalog(tmp_path)
    doc["databases"]["docs"]["folder"] = folder
    _write_catalog(tmp_path, doc)
    before = _folders(tmp_path)
    for read_only in (True, False):
        with pytest.raises(CorruptionError, match="catalog.json"):
            jadevec.open(tmp_path, backend="mmap", read_only=read_only)
    assert _folders(tmp_path) == before and (tmp_path / "catalog.json").exists()


@pytest.mark.parametrize("field,value", [("dimension", 0), ("dimension", 65537),
                                         ("dimension", "3"), ("dimension", True),
                                         ("metric", "bogus"), ("name", 5), ("name", "")])
def test_mmap_catalog_bad_entry_field(tmp_path, field, value):
    _store(tmp_path, "mmap")
    doc = _catalog(tmp_path)
    doc["databases"]["docs"][field] = value
    _write_catalog(tmp_path, doc)
    with pytest.raises(CorruptionError, match=field):
        jadevec.open(tmp_path, backend="mmap", read_only=True)


@pytest.mark.parametrize("change", ["key not lower", "shared folder", "databases list",
                                    "entry not object", "sequence negative",
                                    "clean not bool", "format", "not an object"])
def test_mmap_catalog_damaged_structure(tmp_path, change):
    _store(tmp_path, "mmap")
    doc = _catalog(tmp_path)
    dbs = doc["databases"]
    if change == "key not lower":
        dbs["DOCS"] = dbs.pop("docs")
    elif change == "shared folder":
        dbs["empty"]["folder"] = dbs["docs"]["folder"]
    elif change == "databases list":
        doc["databases"] = list(dbs.values())
    elif change == "entry not object":
        dbs["docs"] = None
    elif change == "sequence negative":
        doc["sequence"] = -1
    elif change == "clean not bool":
        doc["clean"] = 1
    elif change == "format":
        doc["format"] = "jadevec-hybrid"
    else:
        doc = [doc]
    _write_catalog(tmp_path, doc)
    before = _folders(tmp_path)
    for read_only in (True, False):
        with pytest.raises(CorruptionError, match="catalog"):
            jadevec.open(tmp_path, backend="mmap", read_only=read_only)
    assert _folders(tmp_path) == before


@pytest.mark.parametrize("data", [b"", b"{", b"\xff\xfe", b"[" * 100000, b"null"])
def test_mmap_catalog_unreadable(tmp_path, data):
    _store(tmp_path, "mmap")
    (tmp_path / "catalog.json").write_bytes(data)
    for read_only in (True, False):
        with pytest.raises(CorruptionError, match="catalog.json"):
            jadevec.open(tmp_path, backend="mmap", read_only=read_only)


def test_a_database_whose_catalog_entry_is_damaged_keeps_its_vectors(tmp_path):
    """Recovery must not remove the folder as an orphan: one damaged field must not lose data."""
    _store(tmp_path, "mmap")
    doc = _catalog(tmp_path)
    real = doc["databases"]["docs"]["folder"]
    doc["databases"]["docs"]["folder"] = "db-000000000000"  # a valid id, but not the folder
    _write_catalog(tmp_path, doc)
    with jadevec.open(tmp_path, backend="mmap") as s:
        assert any("kept folder" in a and real in a for a in s.recovery_report.actions)
    assert real in _folders(tmp_path)


# -- mmap: the journal catalog.log ---------------------------------------------------------


def _journal_store(tmp_path):
    """A store killed after its databases were created: they live only in the journal."""
    code = (
        "import os, jadevec\n"
        f"s = jadevec.open({str(tmp_path)!r}, backend='mmap', flush_interval=0)\n"
        "db = s.create_database('docs', 3)\n"
        "db.store('a', [1, 2, 3], metadata={'k': 1})\n"
        "s.create_database('empty', 3)\n"
        "s.sync()\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    lines = (tmp_path / "catalog.log").read_bytes().splitlines()
    assert len(lines) >= 3, lines
    return [json.loads(x) for x in lines]


def test_mmap_journal_replays_after_a_crash(tmp_path):
    items = _journal_store(tmp_path)
    assert [i[1] for i in items].count("create") == 2
    assert [i[0] for i in items] == list(range(items[0][0], items[0][0] + len(items)))
    with jadevec.open(tmp_path, backend="mmap", read_only=True) as s:
        assert sorted(s.list_databases()) == ["docs", "empty"]
        assert s.get_database("docs").retrieve("a").tolist() == [1, 2, 3]


def test_mmap_journal_ignores_a_torn_last_line(tmp_path):
    _journal_store(tmp_path)
    with open(tmp_path / "catalog.log", "ab") as f:
        f.write(b'[99, "create", {"name": "x", "dim')
    with jadevec.open(tmp_path, backend="mmap", read_only=True) as s:
        assert sorted(s.list_databases()) == ["docs", "empty"]


@pytest.mark.parametrize("kind", ["not json", "not a list", "wrong arity", "bool sequence",
                                  "unknown change", "sequence gap", "create taken name",
                                  "create taken folder", "create bad folder",
                                  "delete unknown", "clean not bool", "deep"])
def test_mmap_journal_damaged_line(tmp_path, kind):
    items = _journal_store(tmp_path)
    seq = items[-1][0]
    docs = next(i[2] for i in items if i[1] == "create" and i[2]["name"] == "docs")
    entry = {"name": "new", "dimension": 4, "metric": "l2", "folder": "db-0123456789ab"}
    line = {
        "not json": b"[1, ",
        "not a list": b'{"seq": 1}',
        "wrong arity": json.dumps([seq + 1, "clean", True, 1]).encode(),
        "bool sequence": json.dumps([True, "clean", True]).encode(),
        "unknown change": json.dumps([seq + 1, "rename", "x"]).encode(),
        "sequence gap": json.dumps([seq + 2, "clean", True]).encode(),
        "create taken name": json.dumps([seq + 1, "create", {**entry, "name": "DOCS"}]).encode(),
        "create taken folder": json.dumps(
            [seq + 1, "create", {**entry, "folder": docs["folder"]}]).encode(),
        "create bad folder": json.dumps([seq + 1, "create", {**entry, "folder": ".."}]).encode(),
        "delete unknown": json.dumps([seq + 1, "delete", "db-ffffffffffff"]).encode(),
        "clean not bool": json.dumps([seq + 1, "clean", "yes"]).encode(),
        "deep": b"[" * 100000,
    }[kind]
    with open(tmp_path / "catalog.log", "ab") as f:
        f.write(line + b"\n")
    before = _folders(tmp_path)
    for read_only in (True, False):
        with pytest.raises(CorruptionError, match="catalog"):
            jadevec.open(tmp_path, backend="mmap", read_only=read_only)
    assert _folders(tmp_path) == before


def test_mmap_journal_lines_the_snapshot_holds_are_skipped(tmp_path):
    """A crash between the snapshot's rename and the journal's truncation loses nothing."""
    items = _journal_store(tmp_path)
    journal = (tmp_path / "catalog.log").read_bytes()
    with jadevec.open(tmp_path, backend="mmap") as s:  # writes a snapshot at close
        assert sorted(s.list_databases()) == ["docs", "empty"]
    assert _catalog(tmp_path)["sequence"] >= items[-1][0]
    (tmp_path / "catalog.log").write_bytes(journal)  # as if the truncation never happened
    with jadevec.open(tmp_path, backend="mmap", read_only=True) as s:
        assert sorted(s.list_databases()) == ["docs", "empty"]


# -- mmap: the metadata logs ---------------------------------------------------------------


@pytest.mark.parametrize("line", [
    b"[" * 100000,
    b'["a", "{\\"k\\": 1}", 1, null, null]',                  # the old five-item shape
    b'["a", "{not json", 1, null, null, null, null, 0]',
    b'["a", "[1]", 1, null, null, null, null, 0]',
    b'["a", {"k": 1}, 1, null, null, null, null, 0]',       # meta must be JSON text
    b'["a", null, 1e400, null, null, null, null, 0]',
    b'["a", null, 1.5, null, null, null, null, 0]',
    b'["a", null, 18446744073709551616, null, null, null, null, 0]',
    b'["a", null, 1, null, "2", null, null, 0]',
    b'["a", null, 1, null, null, "{", 2, 0]',
    b'["a", null, 1, null, null, null, null, null]',
    b'["a", null, 1, null, null, null, null, true]',
    b'[1, null, 1, null, null, null, null, 0]',
    b"[]", b"7", b'["a", 1]', b"\xff\xfe",
])
def test_mmap_metadata_log_damaged_line(tmp_path, line):
    _store(tmp_path, "mmap")
    (log,) = (tmp_path / "metadata").glob("*.jsonl")
    log.write_bytes(line + b"\n" + log.read_bytes())
    with jadevec.open(tmp_path, backend="mmap", read_only=True) as s, \
            pytest.raises(CorruptionError, match="line at byte 0"):
        s.get_database("docs").get_metadata("a")


def test_mmap_metadata_log_deep_metadata_is_not_damage(tmp_path):
    """Metadata nested deeper than json.loads recurses is valid, not a damaged line."""
    _store(tmp_path, "mmap")
    (log,) = (tmp_path / "metadata").glob("*.jsonl")
    deep = '{"a":' * 3000 + "1" + "}" * 3000
    line = json.dumps(["b", deep, 1, None, None, None, None, 0]).encode()
    log.write_bytes(log.read_bytes() + line + b"\n" + json.dumps(["b"]).encode() + b"\n")
    with jadevec.open(tmp_path, backend="mmap", read_only=True) as s:
        assert s.get_database("docs").get_metadata("a") == {"k": 1}


def test_mmap_metadata_log_ignores_a_torn_last_line(tmp_path):
    _store(tmp_path, "mmap")
    (log,) = (tmp_path / "metadata").glob("*.jsonl")
    log.write_bytes(log.read_bytes() + b'["a", "{\\"k\\": 2}", 1, nu')
    with jadevec.open(tmp_path, backend="mmap", read_only=True) as s:
        assert s.get_database("docs").get_metadata("a") == {"k": 1}


# -- hybrid: catalog.sqlite3, schema 2 -----------------------------------------------------


def test_hybrid_catalog_has_schema_2(tmp_path):
    _store(tmp_path, "hybrid")
    con = sqlite3.connect(tmp_path / "catalog.sqlite3")
    try:
        cols = {t: [r[1] for r in con.execute(f"PRAGMA table_info({t})")]
                for t in ("databases", "vector_meta")}
        fmt = con.execute("SELECT value FROM store_state WHERE key = 'format'").fetchone()
    finally:
        con.close()
    assert cols["databases"] == ["folder", "name", "name_lower", "dimension", "metric", "state"]
    assert cols["vector_meta"] == ["folder", "id", "meta", "fp", "prev_meta", "prev_fp",
                                   "base_meta", "base_fp", "gen"]
    assert fmt == ("2",)


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
    "UPDATE databases SET folder = NULL WHERE name = 'docs'",
    "UPDATE databases SET dimension = 'x' WHERE name = 'docs'",
    "UPDATE databases SET dimension = 0 WHERE name = 'docs'",
    "UPDATE databases SET dimension = 1.5 WHERE name = 'docs'",
    "UPDATE databases SET metric = 'bogus' WHERE name = 'docs'",
    "UPDATE databases SET state = 'bogus' WHERE name = 'docs'",
    "UPDATE databases SET name = X'ff' WHERE name = 'docs'",
    "UPDATE databases SET name = '' WHERE name = 'docs'",
    "UPDATE store_state SET value = X'ff00' WHERE key = 'format'",
    "UPDATE store_state SET value = 'two' WHERE key = 'format'",
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


@pytest.mark.parametrize("column,value", [
    ("meta", "'{not json'"), ("meta", "'[1]'"), ("meta", "X'ff'"), ("meta", "3"),
    ("fp", "'x'"), ("fp", "1.5"), ("prev_meta", "'{'"), ("prev_fp", "'y'"),
    ("base_meta", "'[]'"), ("base_fp", "2.5"), ("gen", "'g'"),
])
def test_hybrid_damaged_metadata_row(tmp_path, column, value):
    _store(tmp_path, "hybrid")
    con = sqlite3.connect(tmp_path / "catalog.sqlite3")
    try:
        con.execute(f"UPDATE vector_meta SET {column} = {value}")
        con.commit()
    except sqlite3.IntegrityError:
        pytest.skip("the schema refuses this value")
    finally:
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


# -- a short seeded run of the fuzzer over the catalog classes -----------------------------


def test_fuzz_catalog_classes():
    """40 seeded mutants of catalogs, journals, metadata logs and SQLite catalogs."""
    proc = subprocess.run([sys.executable, str(HARNESS), "--seed", "7", "--count", "40",
                           "--only", "catalog,journal,metalog,sqlite",
                           "--jobs", str(min(2, os.cpu_count() or 1))],
                          capture_output=True, timeout=300)
    assert proc.stdout, proc.stderr.decode(errors="replace")[-3000:]
    out = json.loads(proc.stdout)
    assert out["mutants"] == 40
    assert set(out["per_class"]) == {"catalog", "journal", "metalog", "sqlite"}
    assert not out["failures"], json.dumps(out["failures"][:3], indent=1)[:4000]
