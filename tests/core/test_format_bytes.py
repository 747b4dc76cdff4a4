"""The bytes on disk match docs/vector_file_format.md, field by field.

Field tables are parsed from the document, so the doc and the code cannot
drift apart silently.
"""

import re
import struct
from pathlib import Path

import numpy as np
import pytest

from jadevec._core.id_index import hash_id
from jadevec._core.vector_file import VectorFile, _crc32c_force_software, crc32c

DOC = (Path(__file__).parents[2] / "docs" / "vector_file_format.md").read_text()
FORMATS = {"u32": "<I", "u64": "<Q"}


def table(heading):
    """{field: (offset, struct format)} from the first table after ``heading``."""
    start = DOC.index(heading)
    fields = {}
    for line in DOC[start:].splitlines()[1:]:
        m = re.match(r"\| (\d+) \| (u32|u64) \| (\w+)", line)
        if m:
            fields[m.group(3)] = (int(m.group(1)), FORMATS[m.group(2)])
        elif fields and not line.startswith("|"):
            break
    assert fields, heading
    return fields


def read(raw, fields, name, base=0):
    offset, fmt = fields[name]
    return struct.unpack_from(fmt, raw, base + offset)[0]


def doc_hex(label):
    return int(re.search(rf"`(0x[0-9A-F]{{8}})` \"?{label}", DOC).group(1), 16)


@pytest.fixture(scope="module")
def file_set(tmp_path_factory):
    path = tmp_path_factory.mktemp("fmt") / "db"
    with VectorFile.create(path, 5) as vf:
        vf.put("alpha", np.arange(5, dtype=np.float32))
        vf.put("beta", np.ones(5, dtype=np.float32))
        vf.put("beta", np.full(5, 2, dtype=np.float32))  # supersedes a slot
        vf.delete("alpha")
    return path


def test_crc32c_check_value():
    assert "0xE3069283" in DOC
    assert crc32c(b"123456789") == 0xE3069283
    try:
        _crc32c_force_software(True)
        assert crc32c(b"123456789") == 0xE3069283
        data = np.random.default_rng(0).bytes(1000)
        soft = [crc32c(data[:n]) for n in range(0, 1000, 37)]
    finally:
        _crc32c_force_software(False)
    assert soft == [crc32c(data[:n]) for n in range(0, 1000, 37)]


def test_commit_records(file_set):
    fields = table("### Commit record")
    raw = (file_set / "vectors.jvdb").read_bytes()
    assert doc_hex("") == 0x4A564442
    gens = []
    for base in (0, 2048):
        assert read(raw, fields, "magic", base) == 0x4A564442
        assert raw[base:base + 4] == bytes.fromhex("4244564a")
        assert read(raw, fields, "version", base) == 1
        assert read(raw, fields, "dimension", base) == 5
        assert read(raw, fields, "index_offset", base) == 64
        assert read(raw, fields, "data_offset", base) == 4096
        assert read(raw, fields, "row_stride", base) == 64
        assert read(raw, fields, "crc", base) == crc32c(raw[base:base + 60])
        gens.append(read(raw, fields, "generation", base))
    # generation g lives in record g % 2; the newest is clean after close
    assert gens[0] % 2 == 0 and gens[1] % 2 == 1
    newest = 0 if gens[0] > gens[1] else 2048
    assert read(raw, fields, "state", newest) == 0
    assert read(raw, fields, "vector_count", newest) == 1
    assert read(raw, fields, "high_water", newest) == 3
    assert read(raw, fields, "capacity", newest) == 64
    assert raw[64:2048] == bytes(1984) and raw[2112:4096] == bytes(1984)
    # rows: slot i at 4096 + i * stride, padding zero
    row = np.frombuffer(raw, np.float32, 5, 4096)
    assert row.tolist() == [0, 1, 2, 3, 4] and raw[4096 + 20:4096 + 64] == bytes(44)


def test_file_headers(file_set):
    common = table("## Common 64-byte header")
    magics = {"slots.jvsl": 0x4A56534C, "index.jvix": 0x4A564958, "ids.jvid": 0x4A564944}
    for name, magic in magics.items():
        assert f"0x{magic:08X}" in DOC
        raw = (file_set / name).read_bytes()
        assert read(raw, common, "magic") == magic
        assert read(raw, common, "version") == 1
        assert read(raw, common, "crc") == crc32c(raw[:60])
    slots = (file_set / "slots.jvsl").read_bytes()
    assert struct.unpack_from("<QII", slots, 16) == (5, 32, 5)  # next_sequence, sizes
    index = (file_set / "index.jvix").read_bytes()
    table_size, live, tombs, entry = struct.unpack_from("<QQQI", index, 16)
    assert (live, tombs, entry) == (1, 1, 32) and table_size == 128
    ids = (file_set / "ids.jvid").read_bytes()
    assert struct.unpack_from("<Q", ids, 16)[0] == 64 + 16 + 16


def test_slot_records_and_ids(file_set):
    fields = table("## `slots.jvsl`: slot records")
    slots = (file_set / "slots.jvsl").read_bytes()
    ids = (file_set / "ids.jvid").read_bytes()
    seen = []
    for s in range(3):
        base = 64 + 32 * s
        assert read(slots, fields, "crc", base) == crc32c(slots[base:base + 28])
        off = read(slots, fields, "id_offset", base)
        n = read(slots, fields, "id_length", base)
        length, crc = struct.unpack_from("<II", ids, off)
        assert length == n and crc == crc32c(ids[off + 8:off + 8 + n])
        seen.append((ids[off + 8:off + 8 + n].decode(), read(slots, fields, "flags", base),
                     read(slots, fields, "sequence", base)))
    # alpha deleted (tombstone with the newest sequence), beta's first slot superseded
    assert seen == [("alpha", 2, 4), ("beta", 3, 2), ("beta", 1, 3)]
    assert slots[64 + 96:64 + 128] == bytes(32)  # FREE records are zero


def test_index_entries(file_set):
    fields = table("## `index.jvix`: the hash table")
    index = (file_set / "index.jvix").read_bytes()
    live = []
    for j in range(128):
        base = 64 + 32 * j
        flags = read(index, fields, "flags", base)
        if flags == 0:
            assert index[base:base + 32] == bytes(32)
            continue
        assert read(index, fields, "crc", base) == crc32c(index[base:base + 28])
        if flags == 1:
            live.append((j, read(index, fields, "hash", base), read(index, fields, "slot", base),
                         read(index, fields, "size", base), read(index, fields, "sequence", base),
                         read(index, fields, "vector_crc", base)))
    assert len(live) == 1
    j, h, slot, size, seq, vcrc = live[0]
    assert h == hash_id("beta") and j >= h & 127 and (slot, size, seq) == (2, 20, 3)
    assert vcrc == crc32c(np.full(5, 2, np.float32).tobytes())


def test_hash_values_are_pinned():
    # jv_hash is part of the format: these values must never change.
    assert [hash_id(s) for s in (b"", "a", "abc", "x" * 17)] == [
        5498322273961085759, 7698875377368711574, 2647287152460518800, 12515737038176658115
    ]
