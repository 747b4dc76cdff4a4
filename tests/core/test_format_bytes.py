"""The bytes on disk match docs/vector_file_format.md, field by field.

The files are written through ``VectorFile`` and read back with
``format_reader`` (tests/format_reader.py), which is written from the
document alone and uses no jadevec code. The constants and field tables of
the reader are compared with the document's text, so the three (document,
reader, code) cannot drift apart silently.
"""

import os
import re
from pathlib import Path

import format_reader as fr  # the tests folder is on the path (tests/conftest.py)
import numpy as np
import pytest

from jadevec._core.fileset import _crc32c_force_software
from jadevec._core.id_index import hash_id
from jadevec._core.vector_file import VectorFile, crc32c

DOC = (Path(__file__).parents[2] / "docs" / "vector_file_format.md").read_text()
PROSE = " ".join(DOC.split())  # the document with line breaks folded

MASK64 = 2**64 - 1


def pattern(n):
    return bytes(i % 251 for i in range(n))


def random_rows(seed, count, dimension):
    """Rows of arbitrary float32 bit patterns (NaN payloads, -0.0, subnormals)."""
    bits = np.random.default_rng(seed).integers(0, 2**32, (count, dimension), dtype=np.uint32)
    return bits.view(np.float32)


def same_bits(a, b):
    return a.dtype == np.float32 and b.dtype == np.float32 and a.tobytes() == b.tobytes()


def assert_vectors(found, model):
    assert sorted(found) == sorted(model)
    for key, values in model.items():
        assert same_bits(found[key], np.asarray(values, dtype=np.float32)), key


# ---------------------------------------------------------------- checksums and hash


def test_crc32c_check_value():
    assert "0x1EDC6F41" in DOC and '`crc32c(b"123456789") == 0xE3069283`' in PROSE
    assert fr.crc32c(b"123456789") == 0xE3069283
    assert fr.crc32c(b"") == 0
    assert crc32c(b"123456789") == 0xE3069283
    data = np.random.default_rng(0).bytes(1000)
    lengths = list(range(0, 70)) + list(range(70, 1000, 37))
    hardware = [crc32c(data[:n]) for n in lengths]
    try:
        _crc32c_force_software(True)
        assert crc32c(b"123456789") == 0xE3069283
        software = [crc32c(data[:n]) for n in lengths]
    finally:
        _crc32c_force_software(False)
    assert software == hardware
    assert [fr.crc32c(data[:n]) for n in lengths] == hardware


# jv_hash is part of the format (the table stores it): these values must never
# change without a new format version.
PINNED_HASHES = [
    (b"", 5498322273961085759),
    (b"a", 7698875377368711574),
    (b"abc", 2647287152460518800),
    (b"x" * 17, 12515737038176658115),
    (pattern(15), 17274188484896626357),
    (pattern(16), 9353297125135721078),
    (pattern(17), 17746384142924285850),
    (pattern(1024), 9775654171655378826),
]


@pytest.mark.parametrize("data,value", PINNED_HASHES,
                         ids=["empty", "a", "abc", "x17", "15", "16", "17", "1024"])
def test_jv_hash_is_pinned(data, value):
    assert fr.jv_hash(data) == value
    assert hash_id(data) == value


def test_pure_python_jv_hash_matches_the_code():
    rng = np.random.default_rng(7)
    for n in list(range(0, 70)) + [127, 128, 129, 255, 256, 1023, 1024]:
        data = rng.bytes(n)
        assert fr.jv_hash(data) == hash_id(data), n
    assert fr.jv_hash("é".encode()) == hash_id("é")


# ---------------------------------------------------------------- the document's numbers


def doc_int(regex, text=PROSE):
    match = re.search(regex, text)
    assert match, regex
    return int(match.group(1).replace(",", ""))


def doc_table(heading):
    """[(offset, type, field)] of the first table after ``heading``."""
    start = DOC.index(heading)
    rows = []
    for line in DOC[start:].splitlines()[1:]:
        m = re.match(r"\| (\d+) \| (u16|u32|u64|\d+ bytes) \| `?(\w+)", line)
        if m:
            rows.append((int(m.group(1)), m.group(2), m.group(3)))
        elif rows and not line.startswith("|"):
            break
    assert rows, heading
    return rows


@pytest.mark.parametrize("heading,fields,size", [
    ("### Commit record (128 bytes)", "COMMIT_FIELDS", 128),
    ("## Static header of", "STATIC_HEADER_FIELDS", 64),
    ("## `slots.jvsl`: slot records", "SLOT_FIELDS", 32),
    ("### Index entry (32 bytes)", "ENTRY_FIELDS", 32),
    ("## `ids.jvid`: id records", "ID_RECORD_FIELDS", 8),
    ("## `readers.jvrd`: the reader table", "READER_SLOT_FIELDS", 64),
])
def test_the_document_tables_are_the_readers(heading, fields, size):
    assert doc_table(heading) == list(getattr(fr, fields))
    assert fr.record_size(getattr(fr, fields)) == size


def test_the_document_states_the_constants():
    assert doc_int(r"offset (\d+) commit record A") == fr.COMMIT_A_OFFSET == 0
    assert doc_int(r"offset (\d+) commit record B") == fr.COMMIT_B_OFFSET == 2048
    assert doc_int(r"commit record A \((\d+) bytes\)") == fr.COMMIT_RECORD == 128
    assert doc_int(r"### Commit record \((\d+) bytes\)") == fr.COMMIT_RECORD
    assert doc_int(r"offset (\d+) row 0") == fr.DATA_OFFSET == 4096
    assert doc_int(r"\(data_offset = (\d+)\)") == fr.DATA_OFFSET
    assert doc_int(r"different (\d+)-byte sectors") == 512
    assert fr.COMMIT_B_OFFSET // 512 != fr.COMMIT_A_OFFSET // 512
    assert doc_int(r"`dimension \* 4` rounded up to a multiple of (\d+)") == fr.ROW_ALIGN == 64
    assert doc_int(r"\| dimension \| 1 to ([\d,]+)", DOC) == fr.MAX_DIMENSION == 65536
    # static headers and slot records
    assert doc_int(r"Page 0 holds the static header \((\d+) bytes") == fr.FILE_HEADER == 64
    assert doc_int(r"Record `i` \((\d+) bytes\) starts at `64 \+ i \* 32`") == 32
    assert fr.SLOT_RECORD == 32
    units = re.search(r"unit: (\d+) \(slot record\), (\d+) \(index page\), (\d+) \(id "
                      r"alignment\), (\d+) \(reader slot\)", PROSE)
    assert [int(u) for u in units.groups()] == [
        fr.UNITS[name] for name in (fr.SLOTS, fr.INDEX, fr.IDS, fr.READERS)]
    # index
    assert doc_int(r"sequence of (\d+)-byte pages") == fr.PAGE == 4096
    assert doc_int(r"\((\d+) entries of 32 bytes\)") == fr.PAGE_ENTRIES == 128
    assert doc_int(r"\(128 entries of (\d+) bytes\)") == fr.ENTRY == 32
    assert doc_int(r"### Index entry \((\d+) bytes\)") == fr.ENTRY
    assert fr.PAGE_ENTRIES * fr.ENTRY == fr.PAGE
    assert doc_int(r"a power of two, >= (\d+)") == fr.MIN_TABLE == 128
    assert doc_int(r"\(never below (\d+)\)") == fr.MIN_TABLE
    # ids
    assert doc_int(r"From offset (\d+), records follow") == fr.FILE_HEADER
    assert doc_int(r"each (\d+)-byte aligned") == fr.ID_ALIGN == 8
    assert doc_int(r"UTF-8 bytes, 1 to ([\d,]+)") == fr.MAX_ID_BYTES == 1024
    # readers
    assert doc_int(r"`count` \((\d+)\) slots") == fr.READER_SLOTS == 127
    assert doc_int(r"`count` \(127\) slots of (\d+) bytes") == fr.READER_SLOT == 64
    assert fr.READERS_FILE_SIZE == 64 + 127 * 64 == 8192
    # magics and enumerations
    assert re.search(r"magic \| `0x4A564442` \(bytes `42 44 56 4A`, \"BDVJ\"\)", DOC)
    assert fr.MAGIC_VECTORS.to_bytes(4, "little") == bytes.fromhex("42 44 56 4A") == b"BDVJ"
    for name, label in [(fr.SLOTS, "JVSL"), (fr.INDEX, "JVIX"), (fr.IDS, "JVID"),
                        (fr.READERS, "JVRD")]:
        assert f'`0x{fr.MAGICS[name]:08X}` "{label}"' in DOC
        assert fr.MAGICS[name].to_bytes(4, "big") == label.encode()
    assert "version | 2;" in DOC and "version = 2" in DOC and fr.FORMAT_VERSION == 2
    assert "0 clean" in DOC and "1 dirty" in DOC and "2 moved" in DOC
    assert (fr.STATE_CLEAN, fr.STATE_DIRTY, fr.STATE_MOVED) == (0, 1, 2)
    assert "flags: 0 FREE, 1 LIVE, 2 DELETED" in DOC
    assert (fr.SLOT_FREE, fr.SLOT_LIVE, fr.SLOT_DELETED) == (0, 1, 2)
    assert "flags: 0 EMPTY, 1 LIVE, 2 TOMBSTONE" in DOC
    assert (fr.ENTRY_EMPTY, fr.ENTRY_LIVE, fr.ENTRY_TOMBSTONE) == (0, 1, 2)


# ---------------------------------------------------------------- checks shared by the tests


def check_header_page(fs):
    raw = fs.raw[fr.VECTORS]
    assert len(raw) >= fr.HEADER_PAGE
    assert raw[fr.COMMIT_RECORD:fr.COMMIT_B_OFFSET] == bytes(2048 - 128)
    assert raw[fr.COMMIT_B_OFFSET + fr.COMMIT_RECORD:fr.HEADER_PAGE] == bytes(4096 - 2176)


def check_commit(fs, c, dimension):
    """Every field of a valid commit record, per the commit record table."""
    raw = fs.raw[fr.VECTORS]
    base = c["offset"]
    assert c["valid"], c["problems"]
    assert raw[base:base + 4] == b"BDVJ" and c["magic"] == 0x4A564442
    assert c["version"] == 2
    assert c["dimension"] == dimension
    assert c["state"] in (0, 1)
    assert c["vector_count"] <= c["high_water"] <= c["capacity"]
    assert c["index_offset"] % 4096 == 0 and c["index_offset"] >= 4096
    assert c["data_offset"] == 4096
    assert c["generation"] >= 1
    assert c["row_stride"] == -(-dimension * 4 // 64) * 64
    assert c["header_crc"] == fr.crc32c(raw[base:base + 60])
    ts = c["table_size"]
    assert ts >= 128 and ts & (ts - 1) == 0
    assert c["vector_count"] + c["tombstones"] <= ts
    assert 64 <= c["ids_end"] <= fs.size(fr.IDS)
    assert c["next_sequence"] >= 1
    assert c["reserved"] == bytes(16)
    assert c["crc"] == fr.crc32c(raw[base:base + 124])
    # sizes for capacity
    assert fs.size(fr.VECTORS) >= 4096 + c["capacity"] * c["row_stride"]
    assert fs.size(fr.SLOTS) >= 64 + c["capacity"] * 32
    # the page map: table_size / 128 page numbers at index_offset, map_crc
    pages = fs.page_map(c)
    n = ts // 128
    assert len(pages) == n == len(set(pages))
    blob = fs.raw[fr.INDEX][c["index_offset"]:c["index_offset"] + 4 * n]
    assert fr.crc32c(blob) == c["map_crc"]
    assert all(0 < p and (p + 1) * 4096 <= fs.size(fr.INDEX) for p in pages)
    assert c["index_offset"] // 4096 not in pages
    fs.check_commit(c)


def check_static_headers(fs, c, dimension):
    for name in (fr.SLOTS, fr.INDEX, fr.IDS, fr.READERS):
        raw = fs.raw[name]
        h = fs.static_header(name, c)
        assert h["magic"] == {fr.SLOTS: 0x4A56534C, fr.INDEX: 0x4A564958,
                              fr.IDS: 0x4A564944, fr.READERS: 0x4A565244}[name]
        assert h["version"] == 2
        assert h["set_id"] == c["set_id"]
        assert h["dimension"] == (dimension if name == fr.SLOTS else 0)
        assert h["unit"] == {fr.SLOTS: 32, fr.INDEX: 4096, fr.IDS: 8, fr.READERS: 64}[name]
        assert h["count"] == (127 if name == fr.READERS else 0)
        assert h["reserved"] == bytes(32)
        assert h["crc"] == fr.crc32c(raw[:60])
    # page 0 of the index: the header, then zeros
    assert fs.raw[fr.INDEX][64:4096] == bytes(4096 - 64)
    assert fs.size(fr.INDEX) % 4096 == 0
    assert fs.size(fr.READERS) == 8192


def check_slots(fs, c):
    """Slot records below high_water, rows and padding; FREE records above."""
    dim = c["dimension"]
    sequences = []
    for i in range(c["high_water"]):
        s = fs.slot_record(i)
        assert s["offset"] == 64 + 32 * i
        assert s["crc_ok"] and s["crc"] == fr.crc32c(fs.raw[fr.SLOTS][s["offset"]:s["offset"] + 28])
        assert s["flags"] in (fr.SLOT_LIVE, fr.SLOT_DELETED)
        assert s["id_offset"] >= 64 and s["id_offset"] % 8 == 0
        assert 1 <= s["id_length"] <= 1024
        fs.id_at(s["id_offset"], s["id_length"], c["ids_end"])
        assert 1 <= s["sequence"]
        sequences.append(s["sequence"])
        start = 4096 + i * c["row_stride"]
        values, padding = fs.row_bytes(i, c)
        assert values == fs.raw[fr.VECTORS][start:start + 4 * dim]
        assert padding == bytes(c["row_stride"] - 4 * dim)
        assert s["vector_crc"] == fr.crc32c(values)
    # above high_water: FREE (all zero), or the journal of writes after the commit
    for i in range(c["high_water"], c["capacity"]):
        s = fs.slot_record(i)
        if not s["free"]:
            assert s["crc_ok"] and s["sequence"] >= c["next_sequence"], i
            sequences.append(s["sequence"])
    assert len(set(sequences)) == len(sequences)
    return sequences


def check_entries(fs, c, hash_mask=MASK64):
    """Every entry of the commit's table; returns {id: entry} of the LIVE ones."""
    ts = c["table_size"]
    entries = fs.entries(c)
    pages = fs.page_map(c)
    live = {}
    tombstones = 0
    occupied = {e["position"] for e in entries}
    for e in entries:
        assert e["page"] == pages[e["position"] // 128]
        assert e["offset"] == e["page"] * 4096 + (e["position"] % 128) * 32
        raw = fs.raw[fr.INDEX][e["offset"]:e["offset"] + 32]
        assert e["crc_ok"] and e["crc"] == fr.crc32c(raw[:28])
        assert e["flags"] in (fr.ENTRY_LIVE, fr.ENTRY_TOMBSTONE)
        if e["flags"] == fr.ENTRY_TOMBSTONE:
            tombstones += 1
            continue
        key = fs.id_at(e["id_offset"], e["id_length"], c["ids_end"])
        assert e["hash"] == fr.jv_hash(key) & hash_mask == hash_id(key) & hash_mask
        assert e["slot"] < c["high_water"]
        s = fs.slot_record(e["slot"])
        assert (s["id_offset"], s["id_length"]) == (e["id_offset"], e["id_length"])
        assert s["vector_crc"] == e["vector_crc"] == fr.crc32c(fs.row_bytes(e["slot"], c)[0])
        # linear probing: no EMPTY entry between the home position and this one
        j = e["hash"] & (ts - 1)
        while j != e["position"]:
            assert j in occupied, (key, j)
            j = (j + 1) % ts
        live[key.decode()] = e
    assert len(live) == c["vector_count"]
    assert tombstones == c["tombstones"]
    # the table never gets fuller than 0.7 before it is rebuilt
    assert (len(live) + tombstones) * 10 <= ts * 7
    return live


def check_id_records(fs, c, expected_ids):
    """Id records from 64 to ids_end: 8-aligned, length, CRC, zero padding."""
    records = fs.id_records(c["ids_end"])
    raw = fs.raw[fr.IDS]
    offset = 64
    for at, key in records:
        assert at == offset and at % 8 == 0
        length, crc = int.from_bytes(raw[at:at + 4], "little"), raw[at + 4:at + 8]
        assert length == len(key) and crc == fr.crc32c(key).to_bytes(4, "little")
        end = at + 8 + length
        offset = -(-end // 8) * 8
        assert raw[end:offset] == bytes(offset - end)
    assert offset == c["ids_end"]
    assert [key for _, key in records] == [k.encode() for k in expected_ids]
    return {key.decode(): at for at, key in records}


def check_everything(fs, c, dimension, model, hash_mask=MASK64):
    check_header_page(fs)
    check_commit(fs, c, dimension)
    check_static_headers(fs, c, dimension)
    check_slots(fs, c)
    live = check_entries(fs, c, hash_mask)
    assert sorted(live) == sorted(model)
    assert_vectors(fs.vectors(c), model)
    return live


# ---------------------------------------------------------------- one history, step by step

DIM = 7  # row_stride 64: 28 value bytes, 36 padding bytes
IDS = ["alpha", "beta", "gamma", "a\x00b", "é" * 3, "eight888", "nine99999", "z" * 1024]


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """Snapshots (FileSet, model) of one file set after each step."""
    path = tmp_path_factory.mktemp("fmt") / "db"
    rows = random_rows(1, len(IDS) + 1, DIM)
    steps = {}
    model = {}
    vf = VectorFile.create(path, DIM)
    steps["created"] = (fr.FileSet(path), dict(model))
    vf.put(IDS[0], rows[0])
    model[IDS[0]] = rows[0]
    steps["first write"] = (fr.FileSet(path), dict(model))
    vf.put_batch(IDS[1:], rows[1:len(IDS)])
    model.update(zip(IDS[1:], rows[1:len(IDS)], strict=True))
    vf.checkpoint()
    steps["checkpoint"] = (fr.FileSet(path), dict(model))
    vf.delete("alpha")
    del model["alpha"]
    vf.update("beta", rows[-1])
    model["beta"] = rows[-1]
    steps["writes after checkpoint"] = (fr.FileSet(path), dict(model))
    vf.close()
    steps["closed"] = (fr.FileSet(path), dict(model))
    steps["path"] = path
    return steps


ORDER = ["created", "first write", "checkpoint", "closed"]


def test_commit_records_alternate_and_generations_grow(history):
    newest = [history[step][0].newest_commit() for step in ORDER]
    for before, after in zip(newest, newest[1:], strict=False):
        # each commit record write goes to the record the newest does not occupy
        assert after["record"] != before["record"]
        assert after["generation"] == before["generation"] + 1
    assert [c["state"] for c in newest[1:]] == [fr.STATE_DIRTY, fr.STATE_DIRTY, fr.STATE_CLEAN]
    for step in ORDER:
        fs, model = history[step]
        records = fs.commit_records()
        assert [c["offset"] for c in records] == [0, 2048]
        for c in records:
            assert c["valid"] or c["empty"], (step, c["record"], c["problems"])
        check_everything(fs, fs.newest_commit(), DIM, model if step != "first write" else {})


def test_first_write_commits_the_same_state_as_dirty(history):
    created = history["created"][0].newest_commit()
    fs = history["first write"][0]
    first = fs.newest_commit()
    assert first["state"] == fr.STATE_DIRTY
    assert first["generation"] == created["generation"] + 1
    same = set(created) - {"generation", "state", "header_crc", "crc", "record", "offset",
                           "valid", "problems", "empty"}
    assert {k: first[k] for k in same} == {k: created[k] for k in same}
    assert first["vector_count"] == 0 and first["high_water"] == 0
    assert fs.vectors(first) == {}
    # the older record is still there and valid
    older = fs.commit(created["record"])
    assert older["generation"] == created["generation"]
    # the put itself: row, then a LIVE slot record with the next sequence
    s = fs.slot_record(0)
    assert s["flags"] == fr.SLOT_LIVE and s["crc_ok"]
    assert s["sequence"] == first["next_sequence"]
    assert fs.id_at(s["id_offset"], s["id_length"]) == b"alpha"
    values, padding = fs.row_bytes(0, first)
    assert values == history["first write"][1]["alpha"].tobytes()
    assert padding == bytes(64 - 4 * DIM)
    assert s["vector_crc"] == fr.crc32c(values)
    assert fs.slot_record(1)["free"]


def test_checkpoint_names_the_writes(history):
    fs, model = history["checkpoint"]
    c = fs.newest_commit()
    previous = history["first write"][0].newest_commit()
    assert c["state"] == fr.STATE_DIRTY  # open for writing
    # the map goes to the area the previous commit does not use
    assert c["index_offset"] != previous["index_offset"]
    assert c["vector_count"] == c["high_water"] == len(IDS)
    assert c["tombstones"] == 0
    live = check_everything(fs, c, DIM, model)
    # no reuse yet: slot i holds IDS[i], written with sequences 1, 2, ... in order
    assert [live[key]["slot"] for key in IDS] == list(range(len(IDS)))
    sequences = [fs.slot_record(i)["sequence"] for i in range(len(IDS))]
    first = history["first write"][0].newest_commit()["next_sequence"]
    assert sequences == list(range(first, first + len(IDS)))
    assert c["next_sequence"] == sequences[-1] + 1
    offsets = check_id_records(fs, c, IDS)
    for key in IDS:
        assert live[key]["id_offset"] == offsets[key]
        assert live[key]["id_length"] == len(key.encode())
    assert fs.id_at(offsets["é" * 3], 6) == "é".encode() * 3


def test_writes_after_a_checkpoint_leave_the_commit_intact(history):
    fs, model = history["writes after checkpoint"]
    committed_fs, committed = history["checkpoint"]
    # only checkpoints write commit records
    assert fs.raw[fr.VECTORS][:4096] == committed_fs.raw[fr.VECTORS][:4096]
    c = fs.newest_commit()
    # copy on write: the committed table, rows and ids still read as at the checkpoint
    assert_vectors(fs.vectors(c), committed)
    check_entries(fs, c)
    # the delete rewrote alpha's record as DELETED with the next sequence, and
    # the update wrote a fresh LIVE slot reusing beta's id record
    alpha = fs.slot_record(0)
    old_beta = fs.slot_record(1)
    new_beta = fs.slot_record(len(IDS))
    assert alpha["crc_ok"] and alpha["flags"] == fr.SLOT_DELETED
    assert alpha["sequence"] == c["next_sequence"]
    assert fs.id_at(alpha["id_offset"], alpha["id_length"]) == b"alpha"
    assert alpha["vector_crc"] == committed_fs.slot_record(0)["vector_crc"]
    assert fs.row_bytes(0, c) == committed_fs.row_bytes(0, c)  # the row stays
    assert old_beta == committed_fs.slot_record(1)
    assert new_beta["crc_ok"] and new_beta["flags"] == fr.SLOT_LIVE
    assert new_beta["sequence"] == c["next_sequence"] + 1
    assert (new_beta["id_offset"], new_beta["id_length"]) == (
        old_beta["id_offset"], old_beta["id_length"])
    assert fs.row_bytes(len(IDS), c)[0] == model["beta"].tobytes()
    assert new_beta["vector_crc"] == fr.crc32c(model["beta"].tobytes())
    # no new id record: the update reused beta's
    assert fs.raw[fr.IDS][:c["ids_end"]] == committed_fs.raw[fr.IDS][:c["ids_end"]]


def test_close_commits_clean(history):
    fs, model = history["closed"]
    c = fs.newest_commit()
    assert c["state"] == fr.STATE_CLEAN
    assert c["vector_count"] == len(IDS) - 1 and c["tombstones"] == 1
    assert c["high_water"] == len(IDS) + 1
    assert c["next_sequence"] == max(check_slots(fs, c)) + 1
    live = check_everything(fs, c, DIM, model)
    assert "alpha" not in fs.vectors() and same_bits(fs.vectors()["beta"], model["beta"])
    assert live["beta"]["slot"] == len(IDS)
    tomb = [e for e in fs.entries(c) if e["flags"] == fr.ENTRY_TOMBSTONE]
    assert len(tomb) == 1
    check_id_records(fs, c, IDS)  # deleted ids' records stay
    # the previous commit (the checkpoint) is still intact beside it
    older = fs.commit("AB"[1 - "AB".index(c["record"])])
    assert older["generation"] == c["generation"] - 1
    assert older["index_offset"] != c["index_offset"]
    check_commit(fs, older, DIM)
    assert_vectors(fs.vectors(older), history["checkpoint"][1])


def test_static_headers_are_never_rewritten(history):
    first = history["created"][0]
    set_id = first.newest_commit()["set_id"]
    for step in ORDER + ["writes after checkpoint"]:
        fs = history[step][0]
        for c in fs.commit_records():
            assert c["empty"] or c["set_id"] == set_id
        for name in (fr.SLOTS, fr.INDEX, fr.IDS, fr.READERS):
            assert fs.raw[name][:64] == first.raw[name][:64], (step, name)
            assert fs.static_header(name)["set_id"] == set_id


def test_reader_slots(history):
    fs = history["closed"][0]
    slots = fs.reader_slots()
    assert len(slots) == 127
    assert all(s["generation"] == 0 and s["reserved"] == bytes(48) for s in slots)


def test_a_reader_owns_a_slot(tmp_path):
    path = tmp_path / "db"
    with VectorFile.create(path, 3) as vf:
        vf.put("a", np.ones(3, np.float32))
    reader = VectorFile.open(path, read_only=True)
    try:
        assert same_bits(reader.get("a"), np.ones(3, np.float32))
        fs = fr.FileSet(path)
        mine = [s for s in fs.reader_slots() if s["pid"] == os.getpid()]
        assert len(mine) == 1
        assert mine[0]["generation"] == 0  # no read call in flight
        assert fs.size(fr.READERS) == 8192
    finally:
        reader.close()


# ---------------------------------------------------------------- reopen, growth, rows


def test_open_writes_nothing_and_the_first_write_is_dirty(tmp_path):
    path = tmp_path / "db"
    rows = random_rows(2, 4, 3)
    with VectorFile.create(path, 3) as vf:
        vf.put_batch(["a", "b", "c"], rows[:3])
    closed = fr.FileSet(path)
    clean = closed.newest_commit()
    assert clean["state"] == fr.STATE_CLEAN
    vf = VectorFile.open(path)
    try:
        opened = fr.FileSet(path)
        for name in (fr.VECTORS, fr.SLOTS, fr.INDEX, fr.IDS):
            assert opened.raw[name] == closed.raw[name], name
        vf.put("d", rows[3])
        fs = fr.FileSet(path)
        dirty = fs.newest_commit()
        assert dirty["record"] != clean["record"]
        assert dirty["generation"] == clean["generation"] + 1
        assert dirty["state"] == fr.STATE_DIRTY
        for field in ("vector_count", "index_offset", "high_water", "table_size", "ids_end",
                      "next_sequence", "set_id", "map_crc", "capacity"):
            assert dirty[field] == clean[field], field
        assert_vectors(fs.vectors(dirty), dict(zip("abc", rows[:3], strict=True)))
        s = fs.slot_record(3)
        assert s["flags"] == fr.SLOT_LIVE and s["sequence"] == clean["next_sequence"]
    finally:
        vf.close()
    fs = fr.FileSet(path)
    final = fs.newest_commit()
    assert final["record"] == clean["record"] and final["state"] == fr.STATE_CLEAN
    assert final["generation"] == clean["generation"] + 2
    check_everything(fs, final, 3, dict(zip("abcd", rows, strict=True)))


@pytest.mark.parametrize("dimension,stride", [(1, 64), (5, 64), (16, 64), (17, 128),
                                              (100, 448), (1000, 4032)])
def test_row_stride_and_row_positions(tmp_path, dimension, stride):
    path = tmp_path / "db"
    rows = random_rows(dimension, 3, dimension)
    with VectorFile.create(path, dimension) as vf:
        vf.put("r0", rows[0])
        vf.put_batch(["r1", "r2"], rows[1:])
    fs = fr.FileSet(path)
    c = fs.newest_commit()
    assert c["row_stride"] == stride == fr.row_stride_for(dimension)
    raw = fs.raw[fr.VECTORS]
    for i in range(3):
        start = 4096 + i * stride
        assert start % 64 == 0
        assert raw[start:start + 4 * dimension] == rows[i].tobytes()
        assert raw[start + 4 * dimension:start + stride] == bytes(stride - 4 * dimension)
    check_everything(fs, c, dimension, {f"r{i}": rows[i] for i in range(3)})


def test_growth_and_copy_on_write_across_pages(tmp_path):
    path = tmp_path / "db"
    n = 300
    ids = [f"id-{i:04d}" for i in range(n)]
    rows = random_rows(3, n, 4)
    replacement = random_rows(4, n, 4)
    vf = VectorFile.create(path, 4)
    try:
        vf.put_batch(ids[:200], rows[:200])
        vf.checkpoint()
        vf.put_batch(ids[200:], rows[200:])
        for i in range(0, 100):
            vf.delete(ids[i])
        for i in range(100, 150):
            vf.update(ids[i], replacement[i])
        vf.checkpoint()
        model = {ids[i]: rows[i] for i in range(100, n)}
        model.update((ids[i], replacement[i]) for i in range(100, 150))
        at_second_checkpoint = dict(model)
        vf.put_batch(ids[:10], rows[:10])  # re-store deleted ids
        model.update((ids[i], rows[i]) for i in range(10))
    finally:
        vf.close()
    fs = fr.FileSet(path)
    c = fs.newest_commit()
    assert c["state"] == fr.STATE_CLEAN
    assert c["table_size"] >= 512 and len(fs.page_map(c)) == c["table_size"] // 128
    check_everything(fs, c, 4, model)
    older = fs.commit("AB"[1 - "AB".index(c["record"])])
    assert older["generation"] == c["generation"] - 1
    check_commit(fs, older, 4)
    assert not set(fs.page_map(older)) & {c["index_offset"] // 4096, older["index_offset"] // 4096}
    assert_vectors(fs.vectors(older), at_second_checkpoint)
    # id records: one per id ever stored (re-stored ids get a new record)
    records = fs.id_records(c["ids_end"])
    assert [key for _, key in records] == [k.encode() for k in ids + ids[:10]]


def test_forced_collisions_probe_linearly(tmp_path):
    path = tmp_path / "db"
    rows = random_rows(5, 40, 2)
    ids = [f"c{i}" for i in range(40)]
    with VectorFile.create(path, 2, hash_mask=3) as vf:
        vf.put_batch(ids, rows)
        for i in range(0, 40, 3):
            vf.delete(ids[i])
    fs = fr.FileSet(path, hash_mask=3)
    c = fs.newest_commit()
    model = {ids[i]: rows[i] for i in range(40) if i % 3}
    live = check_everything(fs, c, 2, model, hash_mask=3)
    assert {e["hash"] for e in live.values()} <= {0, 1, 2, 3}
    with pytest.raises(ValueError, match="index.jvix: hash"):
        fr.FileSet(path).vectors()


# ---------------------------------------------------------------- the reader's own checks


def test_the_reader_names_file_and_field(tmp_path):
    path = tmp_path / "db"
    with VectorFile.create(path, 3) as vf:
        vf.put("a", np.ones(3, np.float32))
    fs = fr.FileSet(path)
    c = fs.newest_commit()
    e = fs.entries(c)[0]
    s = fs.slot_record(e["slot"])
    with pytest.raises(ValueError, match="ids.jvid: length"):
        fs.id_at(s["id_offset"], 2)
    with pytest.raises(ValueError, match="ids.jvid: id_offset"):
        fs.id_at(s["id_offset"] + 4, 1)
    damaged = bytearray(fs.raw[fr.VECTORS])
    damaged[c["offset"] + 16] ^= 1  # vector_count: both CRCs fail
    fs.raw[fr.VECTORS] = bytes(damaged)
    bad = fs.commit_records()["AB".index(c["record"])]
    assert not bad["valid"] and bad["problems"] == ["header_crc", "crc"]
    with pytest.raises(ValueError, match="vectors.jvdb: commit record"):
        fs.commit(c["record"])
    fs = fr.FileSet(path)
    damaged = bytearray(fs.raw[fr.INDEX])
    damaged[c["index_offset"]] ^= 1
    fs.raw[fr.INDEX] = bytes(damaged)
    with pytest.raises(ValueError, match="index.jvix: map_crc"):
        fs.page_map(c)
    fs = fr.FileSet(path)
    damaged = bytearray(fs.raw[fr.VECTORS])
    damaged[4096 + e["slot"] * 64] ^= 1
    fs.raw[fr.VECTORS] = bytes(damaged)
    with pytest.raises(ValueError, match="vectors.jvdb: vector_crc"):
        fs.vectors()
    fs = fr.FileSet(path)
    damaged = bytearray(fs.raw[fr.SLOTS])
    damaged[20] ^= 1  # unit
    fs.raw[fr.SLOTS] = bytes(damaged)
    with pytest.raises(ValueError, match="slots.jvsl: unit"):
        fs.static_header(fr.SLOTS)
