"""The mmap backend: the conformance suite unchanged, plus its catalog and metadata logs."""

import json
import os
import time

import numpy as np
import pytest
import raw_store  # the tests folder is on the path (tests/conftest.py)

from jadevec.backends.base import StoreOptions
from jadevec.backends.mmap import MmapBackend
from jadevec.errors import CorruptionError, UnsupportedVersionError
from jadevec.testing import BackendTests


class TestMmapBackend(BackendTests):
    backend = "mmap"
    persistent = True
    supports_metadata = True

    def raw_vector(self, store, database, vector_id):
        # Below the backend: the catalog and the vector files as they are on disk.
        return raw_store.raw_vector(store, database, vector_id)


def open_store(path, **options):
    return MmapBackend(path, StoreOptions(flush_interval=0, **options))


def test_catalog_maps_names_to_generated_folders(tmp_path):
    store = open_store(tmp_path)
    store.create_database("Trailing.", 3, "dot")
    store.create_database("CON", 5, "l2")
    journal = [json.loads(line) for line in (tmp_path / "catalog.log").read_text().splitlines()]
    assert [j[1] for j in journal] == ["clean", "create", "create"]  # one line per change
    assert [j[0] for j in journal] == [1, 2, 3]
    store.close()
    doc = json.loads((tmp_path / "catalog.json").read_text())
    assert doc["clean"] is True and doc["sequence"] == 3
    assert (tmp_path / "catalog.log").read_text() == ""  # a clean close folds the journal in
    by_name = {d["name"]: d for d in doc["databases"].values()}
    assert set(doc["databases"]) == {"trailing.", "con"}
    assert set(by_name) == {"Trailing.", "CON"}
    assert by_name["CON"]["dimension"] == 5 and by_name["CON"]["metric"] == "l2"
    folders = {d["folder"] for d in doc["databases"].values()}
    assert all(f.startswith("db-") and f.isascii() and f == f.lower() for f in folders)
    assert {p.name for p in (tmp_path / "vectors").iterdir()} == folders
    assert not list(tmp_path.glob("*.tmp"))


def test_create_costs_the_same_with_many_databases(tmp_path):
    """A create appends one journal line; it does not rewrite a catalog of n entries."""
    store = open_store(tmp_path)
    sizes = []
    for i in range(600):
        store.create_database(f"db{i}", 2, "l2")
        sizes.append(os.path.getsize(tmp_path / "catalog.json"))
    # The snapshot is rewritten only when the journal outgrows it: a handful
    # of times over 600 creates, never once per create.
    assert len(set(sizes)) < 12
    store.close()
    store = open_store(tmp_path)
    assert len(store.list_databases()) == 600
    store.close()


def test_a_journal_that_names_a_taken_name_is_damage(tmp_path):
    store = open_store(tmp_path)
    store.create_database("a", 2, "l2")
    line = (tmp_path / "catalog.log").read_text().splitlines()[-1]
    store._lock.release()  # "crash": the journal stays as it is
    seq, change, value = json.loads(line)
    value["folder"] = "db-000000000000"
    with open(tmp_path / "catalog.log", "a") as f:
        f.write(json.dumps([seq + 1, "create", value]) + "\n")
    with pytest.raises(CorruptionError, match="taken"):
        open_store(tmp_path)


def test_a_torn_last_journal_line_is_ignored(tmp_path):
    store = open_store(tmp_path)
    store.create_database("a", 2, "l2")
    store._lock.release()
    with open(tmp_path / "catalog.log", "a") as f:
        f.write('[9, "create", {"name": "b"')  # an append cut by a power loss
    store = open_store(tmp_path)
    assert [i.name for i in store.list_databases()] == ["a"]
    store.close()


def test_a_reader_sees_databases_created_after_it_opened(tmp_path):
    writer = open_store(tmp_path)
    writer.create_database("first", 2, "l2")
    reader = MmapBackend(tmp_path, StoreOptions(read_only=True))
    assert [i.name for i in reader.list_databases()] == ["first"]
    writer.create_database("second", 2, "l2")
    time.sleep(0.01)
    assert sorted(i.name for i in reader.list_databases()) == ["first", "second"]
    writer.delete_database("first")
    assert [i.name for i in reader.list_databases()] == ["second"]
    reader.close()
    writer.close()


def test_unclean_flag_and_newer_version_are_detected(tmp_path):
    open_store(tmp_path).close()
    doc = json.loads((tmp_path / "catalog.json").read_text())
    doc["version"] = 99
    (tmp_path / "catalog.json").write_text(json.dumps(doc))
    with pytest.raises(UnsupportedVersionError, match="upgrade"):
        open_store(tmp_path)
    (tmp_path / "catalog.json").write_text("{not json")
    with pytest.raises(CorruptionError, match="catalog.json"):
        open_store(tmp_path)


def test_metadata_log_pairs_with_vectors_after_a_crash(tmp_path):
    store = open_store(tmp_path)
    db = store.create_database("m", 2, "l2")
    db.store(["a", "b"], np.ones((2, 2), np.float32), ['{"a": 1}', '{"b": 1}'])
    folder = store._databases["m"].folder
    store.sync()
    # Simulate a crash: records of an insert and of an update whose vectors never landed.
    from jadevec.backends._pairing import Record
    store._catalog.put(folder, [("ghost", Record('{"g": 1}', 123, None, None, None, None, 1)),
                                ("a", Record('{"a": 2}', 456, '{"a": 1}',
                                             store._catalog.get(folder, "a").fp, None, None,
                                             1))])
    log = tmp_path / "metadata" / f"{folder}.jsonl"
    with open(log, "ab") as f:
        f.write(b'["torn", "{\\"x')  # a torn last append
    store._catalog.close()
    store._vectors.close()
    store._lock.release()  # the "process" died: no clean flag written

    store = open_store(tmp_path)
    report = store.recovery_report
    assert report is not None and any("rolled 1" in a for a in report.actions)
    assert any("removed 1" in a for a in report.actions)
    db = store.open_database("m")
    assert db.get_metadata("a") == '{"a": 1}'
    assert db.get_metadata("ghost") is None
    assert store.verify().ok
    lines = log.read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(line)[0] in ("a", "b") for line in lines)
    store.close()


def test_damaged_log_line_is_a_corruption_error(tmp_path):
    store = open_store(tmp_path)
    db = store.create_database("m", 2, "l2")
    db.store(["a"], np.ones((1, 2), np.float32), ['{"a": 1}'])
    folder = store._databases["m"].folder
    store.close()
    log = tmp_path / "metadata" / f"{folder}.jsonl"
    log.write_bytes(b"garbage\n" + log.read_bytes())
    store = open_store(tmp_path)
    with pytest.raises(CorruptionError, match="line at byte 0"):
        store.open_database("m").get_metadata("a")
    store.close()


def test_compact_rewrites_the_log(tmp_path):
    store = open_store(tmp_path)
    db = store.create_database("m", 2, "l2")
    for i in range(20):
        db.store(["a"], np.full((1, 2), i, np.float32), [f'{{"i": {i}}}'])
    folder = store._databases["m"].folder
    log = tmp_path / "metadata" / f"{folder}.jsonl"
    assert len(log.read_text().splitlines()) == 20
    db.compact()
    assert len(log.read_text().splitlines()) == 1
    assert db.get_metadata("a") == '{"i": 19}'
    store.close()


@pytest.mark.parametrize("journal_after", ["emptied", "restarted"])
def test_a_reader_between_a_snapshot_and_the_next_journal_reads_again(
        tmp_path, monkeypatch, journal_after):
    """A reader that read catalog.json just before the writer folded the journal
    into a new one, and reads the journal after, must not mix the two (the new
    journal's lines do not follow the old snapshot): it reads both again."""
    from jadevec.backends._catalog import CatalogEntry, new_folder_id
    from jadevec.backends.mmap import JsonCatalog

    writer = JsonCatalog(tmp_path, read_only=False)
    writer.set_clean(False)
    entries = [CatalogEntry(f"d{i}", 2, "l2", new_folder_id()) for i in range(3)]
    for e in entries[:2]:
        writer.commit_create(e)
    folded = []
    replay = JsonCatalog._replay

    def fold_first(self, *args):
        if self is not writer and not folded:  # the reader read the old snapshot
            folded.append(True)
            writer._write_snapshot(clean=False)  # new snapshot, journal emptied
            if journal_after == "restarted":
                writer.commit_create(entries[2])  # a line after the new snapshot
        return replay(self, *args)

    monkeypatch.setattr(JsonCatalog, "_replay", fold_first)
    reader = JsonCatalog(tmp_path, read_only=True)
    names = sorted(e.name for e, _ in reader.entries())
    want = ["d0", "d1"] + (["d2"] if journal_after == "restarted" else [])
    assert folded and names == want


def closed_mmap_store(tmp_path):
    store = open_store(tmp_path)
    store.create_database("docs", 2, "l2").store(["a"], np.ones((1, 2), np.float32),
                                                 ['{"k": 1}'])
    store.close()
    return json.loads((tmp_path / "catalog.json").read_text())


@pytest.mark.parametrize("edit,fragment", [
    (lambda doc: doc.update(deleting=[]), "field 'deleting' is not an object"),
    (lambda doc: doc.update(deleting={"db-000000000000": dict(
        doc["databases"]["docs"], name="old", folder="db-111111111111")}),
     "a deleting entry is filed under 'db-000000000000'"),
])
def test_a_damaged_deleting_list_is_refused_and_nothing_is_changed(tmp_path, edit, fragment):
    doc = closed_mmap_store(tmp_path)
    edit(doc)
    (tmp_path / "catalog.json").write_text(json.dumps(doc))
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(CorruptionError, match=fragment):
        open_store(tmp_path)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_a_journal_that_forgets_a_folder_not_being_deleted_is_damage(tmp_path):
    doc = closed_mmap_store(tmp_path)
    with open(tmp_path / "catalog.log", "a") as f:
        f.write(json.dumps([doc["sequence"] + 1, "forget", "db-0123456789ab"]) + "\n")
    with pytest.raises(CorruptionError, match="forgets 'db-0123456789ab', which is not being "
                                              "deleted"):
        open_store(tmp_path)


def test_a_store_without_a_journal_opens_from_its_snapshot(tmp_path):
    closed_mmap_store(tmp_path)
    (tmp_path / "catalog.log").unlink()
    store = open_store(tmp_path)
    db = store.open_database("docs")
    assert db.retrieve("a").tolist() == [1, 1] and db.get_metadata("a") == '{"k": 1}'
    store.close()


# -- the catalog's file writes when the disk fails ---------------------------------

def failing(error):
    def fail(*args, **kwargs):
        raise error
    return fail


def test_a_failed_atomic_write_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    from jadevec.backends.mmap import write_atomically
    from jadevec.errors import StorageFullError

    path = tmp_path / "catalog.json"
    path.write_bytes(b"old")
    monkeypatch.setattr(os, "replace", failing(OSError(28, "No space left on device")))
    with pytest.raises(StorageFullError, match="write failed: the disk is full") as caught:
        write_atomically(path, b"new")
    assert caught.value.filename == str(path)
    monkeypatch.setattr(os, "open", failing(OSError(5, "Input/output error")))
    with pytest.raises(OSError, match="write failed: Input/output error"):
        write_atomically(path, b"new")  # the temp file was never made: nothing to remove
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalog.json"]
    assert path.read_bytes() == b"old"


def test_a_failed_append_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    from jadevec.backends.mmap import append_lines
    from jadevec.errors import StorageFullError

    path = tmp_path / "catalog.log"
    path.write_bytes(b"[1]\n")
    monkeypatch.setattr(os, "write", failing(OSError(28, "No space left on device")))
    monkeypatch.setattr(os, "ftruncate", failing(OSError(5, "Input/output error")))
    with pytest.raises(StorageFullError, match="append failed: the disk is full"):
        append_lines(path, b"[2]\n")
    monkeypatch.undo()
    assert path.read_bytes() == b"[1]\n"
    with pytest.raises(OSError, match="open failed") as caught:
        append_lines(tmp_path, b"[2]\n")  # a folder where the log should be
    assert caught.value.filename == str(tmp_path)


def test_a_torn_tail_that_cannot_be_cut_names_the_file(tmp_path, monkeypatch):
    from jadevec.backends.mmap import _cut_tail

    path = tmp_path / "catalog.log"
    path.write_bytes(b"[1]\n[2")
    monkeypatch.setattr(os, "truncate", failing(OSError(5, "Input/output error")))
    with pytest.raises(OSError, match="truncate failed: Input/output error") as caught:
        _cut_tail(path, 4)
    assert caught.value.filename == str(path)
    monkeypatch.undo()
    _cut_tail(path, 4)
    assert path.read_bytes() == b"[1]\n"
    _cut_tail(tmp_path / "absent.log", 0)  # no log yet: nothing to cut


def test_metadata_log_and_journal_sync_failures_name_the_file(tmp_path, monkeypatch):
    import pathlib

    from jadevec.errors import StorageFullError

    store = open_store(tmp_path)
    catalog = store._catalog
    db = store.create_database("docs", 2, "l2")
    db.store(["a"], np.ones((1, 2), np.float32), ['{"k": 1}'])
    log = next((tmp_path / "metadata").glob("*.jsonl"))
    monkeypatch.setattr(os, "fsync", failing(OSError(28, "No space left on device")))
    with pytest.raises(StorageFullError, match="fsync failed") as caught:
        catalog.sync()
    assert caught.value.filename == str(log)
    monkeypatch.undo()
    catalog.sync()  # the log is still pending, and now synced

    store.create_database("more", 2, "l2")  # a journal line, not yet synced
    monkeypatch.setattr(os, "fsync", failing(OSError(5, "Input/output error")))
    with pytest.raises(OSError, match="fsync failed: Input/output error") as caught:
        catalog.sync()
    assert caught.value.filename == str(tmp_path / "catalog.log")
    monkeypatch.undo()

    db.store(["b"], np.ones((1, 2), np.float32), ['{"k": 2}'])
    saved = log.read_bytes()
    log.unlink()  # gone before its sync (its database was dropped meanwhile)
    catalog.sync()
    log.write_bytes(saved)
    monkeypatch.setattr(pathlib.Path, "unlink", failing(OSError(5, "Input/output error")))
    with pytest.raises(OSError, match="removing the metadata log failed") as caught:
        catalog.drop(log.name[: -len(".jsonl")])
    monkeypatch.undo()
    assert caught.value.filename == str(log) and log.exists()
    store.close()
