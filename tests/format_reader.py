"""An independent reader of the vector file set, format version 2.

Written from docs/vector_file_format.md alone and using no jadevec code (only
the standard library's ``struct`` and numpy), so that tests and people can
look at the bytes on disk without trusting the code under test. Every check
that fails raises a plain ``ValueError`` naming the file and the field.

    fs = FileSet("/path/to/root/<database_id>")
    commit = fs.newest_commit()          # the winning commit record
    fs.vectors()                         # {id: float32 array} of that commit
    fs.entries(commit), fs.slot_record(0), fs.static_header("ids.jvid"), ...

The field tables below are the document's tables, row for row.
"""

from __future__ import annotations

import os
import struct

import numpy as np

# ---------------------------------------------------------------- constants

FORMAT_VERSION = 2

VECTORS = "vectors.jvdb"
SLOTS = "slots.jvsl"
INDEX = "index.jvix"
IDS = "ids.jvid"
READERS = "readers.jvrd"
FILE_NAMES = (VECTORS, SLOTS, INDEX, IDS, READERS)

# vectors.jvdb
HEADER_PAGE = 4096
COMMIT_RECORD = 128
COMMIT_A_OFFSET = 0
COMMIT_B_OFFSET = 2048
COMMIT_OFFSETS = {"A": COMMIT_A_OFFSET, "B": COMMIT_B_OFFSET}
DATA_OFFSET = 4096
ROW_ALIGN = 64
MAX_DIMENSION = 65536

# the other four files
FILE_HEADER = 64
SLOT_RECORD = 32
PAGE = 4096
ENTRY = 32
PAGE_ENTRIES = PAGE // ENTRY  # 128
MIN_TABLE = 128
ID_ALIGN = 8
MAX_ID_BYTES = 1024
READER_SLOT = 64
READER_SLOTS = 127
READERS_FILE_SIZE = FILE_HEADER + READER_SLOTS * READER_SLOT  # 8192

MAGIC_VECTORS = 0x4A564442  # bytes 42 44 56 4A
MAGICS = {SLOTS: 0x4A56534C, INDEX: 0x4A564958, IDS: 0x4A564944, READERS: 0x4A565244}
UNITS = {SLOTS: SLOT_RECORD, INDEX: PAGE, IDS: ID_ALIGN, READERS: READER_SLOT}

STATE_CLEAN, STATE_DIRTY, STATE_MOVED = 0, 1, 2
SLOT_FREE, SLOT_LIVE, SLOT_DELETED = 0, 1, 2
ENTRY_EMPTY, ENTRY_LIVE, ENTRY_TOMBSTONE = 0, 1, 2

# ---------------------------------------------------------------- field tables
# (offset, type, field), as in the document; "N bytes" is a raw byte string.

COMMIT_FIELDS = (
    (0, "u32", "magic"),
    (4, "u32", "version"),
    (8, "u32", "dimension"),
    (12, "u32", "state"),
    (16, "u64", "vector_count"),
    (24, "u64", "index_offset"),
    (32, "u64", "data_offset"),
    (40, "u64", "generation"),
    (48, "u32", "capacity"),
    (52, "u32", "high_water"),
    (56, "u32", "row_stride"),
    (60, "u32", "header_crc"),
    (64, "u64", "table_size"),
    (72, "u64", "tombstones"),
    (80, "u64", "ids_end"),
    (88, "u64", "next_sequence"),
    (96, "u64", "set_id"),
    (104, "u32", "map_crc"),
    (108, "16 bytes", "reserved"),
    (124, "u32", "crc"),
)

STATIC_HEADER_FIELDS = (
    (0, "u32", "magic"),
    (4, "u32", "version"),
    (8, "u64", "set_id"),
    (16, "u32", "dimension"),
    (20, "u32", "unit"),
    (24, "u32", "count"),
    (28, "32 bytes", "reserved"),
    (60, "u32", "crc"),
)

SLOT_FIELDS = (
    (0, "u64", "id_offset"),
    (8, "u32", "id_length"),
    (12, "u32", "flags"),
    (16, "u64", "sequence"),
    (24, "u32", "vector_crc"),
    (28, "u32", "crc"),
)

ENTRY_FIELDS = (
    (0, "u64", "hash"),
    (8, "u32", "slot"),
    (12, "u16", "id_length"),
    (14, "u16", "flags"),
    (16, "u64", "id_offset"),
    (24, "u32", "vector_crc"),
    (28, "u32", "crc"),
)

ID_RECORD_FIELDS = (
    (0, "u32", "length"),
    (4, "u32", "crc"),
)

READER_SLOT_FIELDS = (
    (0, "u64", "pid"),
    (8, "u64", "generation"),
    (16, "48 bytes", "reserved"),
)

_FORMATS = {"u16": "<H", "u32": "<I", "u64": "<Q"}


def type_size(kind: str) -> int:
    """Bytes of a table type: ``u16``, ``u32``, ``u64`` or ``N bytes``."""
    if kind in _FORMATS:
        return struct.calcsize(_FORMATS[kind])
    return int(kind.split()[0])


def record_size(fields) -> int:
    """Bytes of a record, checking that its fields follow each other without gaps."""
    end = 0
    for offset, kind, name in fields:
        if offset != end:
            raise ValueError(f"field table: {name} at {offset}, expected {end}")
        end = offset + type_size(kind)
    return end


def unpack(fields, raw, base=0) -> dict:
    """The fields of one record starting at ``base`` of ``raw``, as a dict."""
    out = {}
    for offset, kind, name in fields:
        if kind in _FORMATS:
            out[name] = struct.unpack_from(_FORMATS[kind], raw, base + offset)[0]
        else:
            out[name] = bytes(raw[base + offset:base + offset + type_size(kind)])
    return out


# ---------------------------------------------------------------- CRC32C

_CRC32C_POLY_REFLECTED = 0x82F63B78  # 0x1EDC6F41, bit-reversed


def _crc32c_table():
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _CRC32C_POLY_REFLECTED if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _crc32c_table()


def crc32c(data) -> int:
    """CRC32C (Castagnoli): reflected, initial value and final xor 0xFFFFFFFF."""
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for byte in bytes(data):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


# ---------------------------------------------------------------- jv_hash

_M64 = 0xFFFFFFFFFFFFFFFF
_K0 = 0xA0761D6478BD642F
_K1 = 0xE7037ED1A0B428DB
_K2 = 0x8EBC6AF09C88C6E3
_K3 = 0x589965CC75374CC3


def _fold(a: int, b: int) -> int:
    """Low and high halves of the 128-bit product, xor-ed."""
    r = (a & _M64) * (b & _M64)
    return (r ^ (r >> 64)) & _M64


def _le(data: bytes) -> int:
    """Up to 8 bytes, little-endian, zero-extended."""
    return int.from_bytes(data, "little")


def jv_hash(data: bytes) -> int:
    """The 64-bit id hash of jadevec/_core/src/jv_hash.h, in plain Python."""
    data = bytes(data)
    n = len(data)
    seed = _fold(n ^ _K0, _K1)
    p = 0
    while n - p > 16:
        seed = _fold(_le(data[p:p + 8]) ^ _K1, _le(data[p + 8:p + 16]) ^ seed)
        p += 16
    rest = data[p:]
    if len(rest) > 8:
        a, b = _le(rest[:8]), _le(rest[8:])
    else:
        a, b = _le(rest), 0
    return _fold(_fold(a ^ _K2, b ^ seed) ^ n, seed ^ _K3)


# ---------------------------------------------------------------- helpers


def row_stride_for(dimension: int) -> int:
    """``dimension * 4`` rounded up to a multiple of 64."""
    return -(-dimension * 4 // ROW_ALIGN) * ROW_ALIGN


def id_record_size(length: int) -> int:
    """Bytes an id record of ``length`` id bytes takes, padding included."""
    return -(-(8 + length) // ID_ALIGN) * ID_ALIGN


def _check(ok, file, field, message):
    if not ok:
        raise ValueError(f"{file}: {field}: {message}")


# ---------------------------------------------------------------- the file set


class FileSet:
    """The five files of one file set, read into memory at construction.

    ``hash_mask`` is the test hook of the document: the mask the set was
    created with, AND-ed into ``jv_hash`` when entries are checked.
    """

    def __init__(self, folder, hash_mask: int = _M64):
        self.folder = os.fspath(folder)
        self.hash_mask = hash_mask
        self.raw = {}
        for name in FILE_NAMES:
            with open(os.path.join(self.folder, name), "rb") as f:
                self.raw[name] = f.read()

    def size(self, name: str) -> int:
        return len(self.raw[name])

    # -- vectors.jvdb: commit records ----------------------------------------

    def commit_records(self) -> list[dict]:
        """Both commit records, A then B, each with every field of the table.

        Added keys: ``record`` ("A" or "B"), ``offset``, ``empty`` (all zero),
        ``valid`` (magic, version, header_crc and crc check out) and
        ``problems`` (why it is not valid).
        """
        raw = self.raw[VECTORS]
        _check(len(raw) >= HEADER_PAGE, VECTORS, "size",
               f"{len(raw)} bytes, the header page needs {HEADER_PAGE}")
        out = []
        for record, base in COMMIT_OFFSETS.items():
            c = unpack(COMMIT_FIELDS, raw, base)
            problems = []
            if c["magic"] != MAGIC_VECTORS:
                problems.append(f"magic {c['magic']:#x}")
            if c["version"] != FORMAT_VERSION:
                problems.append(f"version {c['version']}")
            if c["header_crc"] != crc32c(raw[base:base + 60]):
                problems.append("header_crc")
            if c["crc"] != crc32c(raw[base:base + 124]):
                problems.append("crc")
            c.update(record=record, offset=base, problems=problems, valid=not problems,
                     empty=raw[base:base + COMMIT_RECORD] == bytes(COMMIT_RECORD))
            out.append(c)
        return out

    def newest_commit(self) -> dict:
        """The valid commit record with the highest generation (the one open uses)."""
        valid = [c for c in self.commit_records() if c["valid"]]
        _check(valid, VECTORS, "commit record", "neither A nor B is valid")
        return max(valid, key=lambda c: c["generation"])

    def commit(self, record: str) -> dict:
        """Commit record ``"A"`` or ``"B"``, which must be valid."""
        c = self.commit_records()["AB".index(record)]
        _check(c["valid"], VECTORS, f"commit record {record}", ", ".join(c["problems"]))
        return c

    def check_commit(self, commit: dict) -> None:
        """The open checks of the document on a winning record (sizes included)."""
        f = VECTORS
        _check(1 <= commit["dimension"] <= MAX_DIMENSION, f, "dimension", commit["dimension"])
        _check(commit["row_stride"] == row_stride_for(commit["dimension"]), f, "row_stride",
               commit["row_stride"])
        _check(commit["data_offset"] == DATA_OFFSET, f, "data_offset", commit["data_offset"])
        _check(commit["state"] in (STATE_CLEAN, STATE_DIRTY, STATE_MOVED), f, "state",
               commit["state"])
        _check(commit["high_water"] <= commit["capacity"], f, "high_water",
               f"{commit['high_water']} > capacity {commit['capacity']}")
        _check(commit["vector_count"] <= commit["high_water"], f, "vector_count",
               f"{commit['vector_count']} > high_water {commit['high_water']}")
        ts = commit["table_size"]
        _check(ts >= MIN_TABLE and ts & (ts - 1) == 0 and ts <= 1 << 40, f, "table_size", ts)
        _check(commit["vector_count"] + commit["tombstones"] <= ts, f, "tombstones",
               commit["tombstones"])
        _check(commit["index_offset"] % PAGE == 0, f, "index_offset", commit["index_offset"])
        _check(FILE_HEADER <= commit["ids_end"] <= self.size(IDS), f, "ids_end",
               commit["ids_end"])
        _check(commit["next_sequence"] >= 1, f, "next_sequence", commit["next_sequence"])
        _check(commit["reserved"] == bytes(16), f, "reserved", "not zero")
        _check(self.size(VECTORS) >= DATA_OFFSET + commit["capacity"] * commit["row_stride"],
               f, "capacity", f"file has {self.size(VECTORS)} bytes")
        _check(self.size(SLOTS) >= FILE_HEADER + commit["capacity"] * SLOT_RECORD, SLOTS,
               "capacity", f"file has {self.size(SLOTS)} bytes")

    def _resolve(self, commit):
        return self.newest_commit() if commit is None else commit

    # -- static headers ------------------------------------------------------

    def static_header(self, name: str, commit: dict | None = None) -> dict:
        """The 64-byte header of slots/index/ids/readers, checked (magic, version,
        unit, crc, reserved; ``set_id`` too when ``commit`` is given)."""
        if "." not in name:
            name = {n.split(".")[0]: n for n in FILE_NAMES}[name]
        raw = self.raw[name]
        _check(len(raw) >= FILE_HEADER, name, "size", f"{len(raw)} bytes")
        h = unpack(STATIC_HEADER_FIELDS, raw)
        _check(h["magic"] == MAGICS[name], name, "magic", f"{h['magic']:#x}")
        _check(h["version"] == FORMAT_VERSION, name, "version", h["version"])
        _check(h["unit"] == UNITS[name], name, "unit", h["unit"])
        _check(h["reserved"] == bytes(32), name, "reserved", "not zero")
        _check(h["crc"] == crc32c(raw[:60]), name, "crc", f"{h['crc']:#x}")
        if commit is not None:
            _check(h["set_id"] == commit["set_id"], name, "set_id",
                   f"{h['set_id']:#x}, commit has {commit['set_id']:#x}")
        return h

    # -- index.jvix ----------------------------------------------------------

    def page_map(self, commit: dict | None = None) -> list[int]:
        """The commit's page map: ``table_size / 128`` page numbers, map_crc checked."""
        c = self._resolve(commit)
        raw = self.raw[INDEX]
        n = c["table_size"] // PAGE_ENTRIES
        start = c["index_offset"]
        _check(start % PAGE == 0, INDEX, "index_offset", f"{start} is not a multiple of {PAGE}")
        _check(start + 4 * n <= len(raw), INDEX, "index_offset",
               f"map of {n} pages at {start} passes the end ({len(raw)} bytes)")
        blob = raw[start:start + 4 * n]
        _check(crc32c(blob) == c["map_crc"], INDEX, "map_crc", f"{c['map_crc']:#x}")
        pages = list(struct.unpack(f"<{n}I", blob))
        for page in pages:
            _check(0 < page and (page + 1) * PAGE <= len(raw), INDEX, "page map",
                   f"page {page} is 0 or outside the file")
        return pages

    def entry_at(self, position: int, commit: dict | None = None, pages=None) -> dict:
        """Table position ``position`` of the commit's table (entry j % 128 of page
        map[j / 128]), with ``position``, ``page``, ``offset``, ``empty``, ``crc_ok``."""
        pages = self.page_map(commit) if pages is None else pages
        page = pages[position // PAGE_ENTRIES]
        offset = page * PAGE + (position % PAGE_ENTRIES) * ENTRY
        raw = self.raw[INDEX]
        e = unpack(ENTRY_FIELDS, raw, offset)
        e.update(position=position, page=page, offset=offset,
                 empty=raw[offset:offset + ENTRY] == bytes(ENTRY),
                 crc_ok=e["crc"] == crc32c(raw[offset:offset + 28]))
        return e

    def entries(self, commit: dict | None = None) -> list[dict]:
        """Every non-empty entry of the commit's table, in table order."""
        c = self._resolve(commit)
        pages = self.page_map(c)
        out = []
        for j in range(c["table_size"]):
            e = self.entry_at(j, c, pages)
            if not e["empty"]:
                out.append(e)
        return out

    # -- slots.jvsl ----------------------------------------------------------

    def slot_record(self, i: int) -> dict:
        """Slot record ``i`` (at 64 + i * 32), with ``free`` (all zero) and ``crc_ok``."""
        raw = self.raw[SLOTS]
        offset = FILE_HEADER + i * SLOT_RECORD
        _check(0 <= i and offset + SLOT_RECORD <= len(raw), SLOTS, "slot",
               f"record {i} is outside the file")
        s = unpack(SLOT_FIELDS, raw, offset)
        s.update(slot=i, offset=offset,
                 free=raw[offset:offset + SLOT_RECORD] == bytes(SLOT_RECORD),
                 crc_ok=s["crc"] == crc32c(raw[offset:offset + 28]))
        return s

    # -- ids.jvid ------------------------------------------------------------

    def id_at(self, offset: int, length: int, end: int | None = None) -> bytes:
        """The id bytes of the record at ``offset``, checking alignment, bounds
        (against ``end``, e.g. a commit's ids_end), length and CRC."""
        raw = self.raw[IDS]
        end = len(raw) if end is None else end
        _check(offset >= FILE_HEADER and offset % ID_ALIGN == 0, IDS, "id_offset",
               f"{offset} is below {FILE_HEADER} or not a multiple of {ID_ALIGN}")
        _check(1 <= length <= MAX_ID_BYTES, IDS, "id_length", length)
        _check(offset + 8 + length <= min(end, len(raw)), IDS, "id_offset",
               f"record at {offset} of {length} bytes passes the end {end}")
        rec = unpack(ID_RECORD_FIELDS, raw, offset)
        _check(rec["length"] == length, IDS, "length",
               f"record at {offset} holds {rec['length']} bytes, the reference says {length}")
        data = raw[offset + 8:offset + 8 + length]
        _check(rec["crc"] == crc32c(data), IDS, "crc", f"record at {offset}")
        return data

    def id_records(self, end: int | None = None) -> list[tuple[int, bytes]]:
        """Every id record from offset 64 up to ``end`` (default: the newest commit's
        ids_end) as (offset, id bytes), checking length, CRC and zero padding."""
        raw = self.raw[IDS]
        end = self.newest_commit()["ids_end"] if end is None else end
        out = []
        offset = FILE_HEADER
        while offset < end:
            length = unpack(ID_RECORD_FIELDS, raw, offset)["length"]
            out.append((offset, self.id_at(offset, length, end)))
            pad_start, nxt = offset + 8 + length, offset + id_record_size(length)
            _check(raw[pad_start:nxt] == bytes(nxt - pad_start), IDS, "padding",
                   f"record at {offset}")
            offset = nxt
        _check(offset == end, IDS, "ids_end", f"records end at {offset}, not {end}")
        return out

    # -- rows ----------------------------------------------------------------

    def row_bytes(self, slot: int, commit: dict | None = None) -> tuple[bytes, bytes]:
        """Row ``slot``: its ``dimension * 4`` value bytes and its padding bytes."""
        c = self._resolve(commit)
        start = c["data_offset"] + slot * c["row_stride"]
        raw = self.raw[VECTORS]
        _check(start + c["row_stride"] <= len(raw), VECTORS, "row", f"row {slot} passes the end")
        cut = start + 4 * c["dimension"]
        return raw[start:cut], raw[cut:start + c["row_stride"]]

    # -- the committed state -------------------------------------------------

    def vectors(self, commit: dict | None = None) -> dict[str, np.ndarray]:
        """{id: float32 array} of every LIVE entry of ``commit`` (default: the newest).

        Each entry's CRC, hash, slot, id record and vector CRC are checked; the
        arrays are copies.
        """
        c = self._resolve(commit)
        out = {}
        for e in self.entries(c):
            where = f"entry {e['position']} (page {e['page']})"
            _check(e["crc_ok"], INDEX, "crc", where)
            _check(e["flags"] in (ENTRY_LIVE, ENTRY_TOMBSTONE), INDEX, "flags",
                   f"{where}: {e['flags']}")
            if e["flags"] != ENTRY_LIVE:
                continue
            _check(e["slot"] < c["high_water"], INDEX, "slot",
                   f"{where}: {e['slot']} >= high_water {c['high_water']}")
            key = self.id_at(e["id_offset"], e["id_length"], c["ids_end"])
            _check(e["hash"] == jv_hash(key) & self.hash_mask, INDEX, "hash",
                   f"{where}: {e['hash']:#x} is not jv_hash of {key!r}")
            values, _ = self.row_bytes(e["slot"], c)
            _check(crc32c(values) == e["vector_crc"], VECTORS, "vector_crc",
                   f"row {e['slot']} of {key!r}")
            name = key.decode("utf-8")
            _check(name not in out, INDEX, "id", f"{name!r} is live twice")
            out[name] = np.frombuffer(values, dtype="<f4").astype(np.float32)
        _check(len(out) == c["vector_count"], VECTORS, "vector_count",
               f"{c['vector_count']}, the table has {len(out)} live entries")
        return out

    # -- readers.jvrd --------------------------------------------------------

    def reader_slots(self) -> list[dict]:
        """The ``count`` (127) reader slots after the readers file's header."""
        h = self.static_header(READERS)
        raw = self.raw[READERS]
        _check(h["count"] == READER_SLOTS, READERS, "count", h["count"])
        _check(len(raw) >= FILE_HEADER + h["count"] * READER_SLOT, READERS, "size", len(raw))
        out = []
        for i in range(h["count"]):
            r = unpack(READER_SLOT_FIELDS, raw, FILE_HEADER + i * READER_SLOT)
            r["index"] = i
            out.append(r)
        return out
