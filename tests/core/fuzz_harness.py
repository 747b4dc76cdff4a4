"""Seeded corruption fuzzer for jadevec's on-disk files (format version 2).

Run as a script, it is the *driver*: it builds template stores (mmap and
hybrid, each closed cleanly and killed after a checkpoint, so the newest
commit is dirty and slot records wait to be replayed), spreads mutant numbers
over worker subprocesses and prints a JSON summary. A worker copies a
template, applies one seeded mutation, then exercises the result through the
core and the public API:

* for the ``detect`` class (1 to 8 bits flipped in a live vector's row, index
  entry, slot record or id record), a read-only open and ``verify()``, which
  must report the damage;
* ``jadevec.open(..., read_only=True)`` on the damaged store, kept open;
* ``VectorFile.open(read_only=True)`` on the raw file set, kept open, then a
  writer ``VectorFile.open`` (which recovers a dirty set) that reads,
  reserves, writes, checkpoints and closes while the reader reads between
  its steps;
* a copy of the set marked moved (``mark_moved``): its reader must raise
  ``FileSetMoved``; ``swap_folders`` of a missing path;
* ``compact_into`` (and reads of the compacted set), ``compact_into`` an
  existing folder and on a read-only set;
* ``MemoryMappedVectorStore`` read-only beside a writer that compacts;
* ``jadevec.open`` for writing, then the read-only store opened first;
* a writer in a forked child that checkpoints, writes more and exits without
  closing: the next writer must replay all of it;
* on some mutants, a fork: the child must get ``StoreClosedError`` from the
  inherited ``VectorFile``.

Each operation must succeed or raise a ``jadevec.errors.JadevecError``
(``FileSetMoved`` is one: a ``StoreClosedError``), or an ``OSError`` naming a
path of the store. A leaked builtin error, a signal (SIGSEGV, SIGBUS, abort),
a hang, a silently wrong vector, a lost write (one a writer acknowledged and
closed, or crashed after, that a reopen does not return) or a compacted set
that fails ``verify`` fails the mutant. A vector read back must be bit-exact
the one the template stored under that id (a reader of a killed template may
see the newest commit's instead); after a mutation that forged a checksum (a
field rewritten with its CRCs recomputed, which looks like a legitimate
write by design) it must at least be a vector that was really stored, never
garbage. A crashed or hung worker is restarted after the mutant that killed
it. Workers run with glibc's checking malloc where it exists, and walk the
heap after each mutant, so heap damage aborts the mutant that did it.

    python tests/core/fuzz_harness.py --count 2000 --seed 1 [--jobs 8] [--only CLASS[,CLASS]]

Mutant ``n`` of seed ``s`` is fully determined by ``(s, n)``; rerun one with
``--mutant n --verbose`` (which prints every call before it is made, and the
worker's stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

VECTOR_FILES = ("vectors.jvdb", "slots.jvsl", "index.jvix", "ids.jvid", "readers.jvrd")
TEMPLATES = ("mmap", "hybrid", "mmap-killed", "hybrid-killed")
CLASSES = ("flip", "zero", "garbage", "truncate", "extend", "swap", "delete", "special",
           "commit", "header", "pagemap", "entry", "slot", "idrec", "rows", "readers",
           "combo", "leftover", "catalog", "journal", "metalog", "sqlite", "detect")
# what "combo" draws two or three of
FILE_CLASSES = ("flip", "zero", "garbage", "truncate", "extend", "commit", "header", "pagemap",
                "entry", "slot", "idrec", "rows", "readers")
DIM = 5
DIM_OTHER = 3
N = 150
PAGE = 4096
COMMIT_B = 2048


# ---------------------------------------------------------------------------
# templates


def _vectors(n: int, dim: int, salt: int) -> list[list[float]]:
    r = random.Random(salt)
    return [[r.uniform(-1, 1) for _ in range(dim)] for _ in range(n)]


def _f32(v) -> bytes:
    return struct.pack(f"<{len(v)}f", *v)


def _fill(store, kill: bool) -> dict:
    """Fill a store; return what a worker checks against (JSON-able)."""
    db = store.create_database("docs", DIM, metric="cosine")
    other = store.create_database("Other", DIM_OTHER, metric="l2")
    third = store.create_database("third", DIM, metric="dot")
    expected: dict[str, list[float]] = {}
    known: list[list[float]] = []  # every value ever stored in a DIM database
    vecs = _vectors(N, DIM, 1)
    ids = [f"id-{i}" for i in range(N)]
    ids[3] = "é\x00ü" * 3
    ids[4] = "x" * 1024
    # A batch that makes the table grow (a rebuild into fresh pages), then
    # single stores, deletes and updates (copy-on-write page copies).
    db.batch_store(ids[:100], vecs[:100],
                   metadatas=[{"i": i} if i % 2 else None for i in range(100)])
    store.sync()
    for i in range(100, N):
        db.store(ids[i], vecs[i], metadata={"k": [i, "v"]})
    expected.update(zip(ids, vecs, strict=True))
    known.extend(vecs)
    for i in (5, 6, 7):
        db.delete(ids[i])
        del expected[ids[i]]
    for i in (8, 9):
        v = [x * 2 for x in vecs[i]]
        db.update(ids[i], v, metadata={"u": i})
        expected[ids[i]] = v
        known.append(v)
    store.sync()
    ov = _vectors(10, DIM_OTHER, 2)
    other.batch_store([f"o{i}" for i in range(10)], ov)
    tv = _vectors(5, DIM, 3)
    third.batch_store([f"t{i}" for i in range(5)], tv)
    known.extend(tv)
    committed = dict(expected)
    if kill:
        # The newest commit is dirty; what follows lives only in slot records.
        store.sync()
        db.store("after-sync", vecs[0], metadata={"late": True})
        expected["after-sync"] = vecs[0]
        v = [x * -1 for x in vecs[20]]
        db.update(ids[20], v)
        expected[ids[20]] = v
        known.append(v)
        db.delete(ids[21])
        del expected[ids[21]]
        late = _vectors(5, DIM, 4)
        db.batch_store([f"late-{i}" for i in range(5)], late)
        expected.update((f"late-{i}", v) for i, v in enumerate(late))
        known.extend(late)
    # A reader sees the newest commit; a writer sees it with the slot records
    # written after it replayed (or, where those were damaged, left out).
    return {"expected": expected, "committed": committed, "known": known}


def _build_template(root: Path, backend: str, kill: bool) -> None:
    code = (
        "import sys, json, os, jadevec\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "import fuzz_harness as h\n"
        f"s = jadevec.open({str(root)!r}, backend={backend!r}, flush_interval=0)\n"
        f"exp = h._fill(s, {kill!r})\n"
        f"open({str(root) + '.expected.json'!r}, 'w').write(json.dumps(exp))\n"
        f"os._exit(0) if {kill!r} else s.close()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def build_templates(base: Path) -> None:
    for name in TEMPLATES:
        backend, _, state = name.partition("-")
        _build_template(base / name, backend, state == "killed")


# ---------------------------------------------------------------------------
# reading the format (docs/vector_file_format.md), independent of the code


U32 = (0, 1, 2, 3, 7, 63, 64, 65, 127, 128, 4095, 4096, 65536, 65537, 1 << 20,
       (1 << 31) - 1, 1 << 31, (1 << 32) - 2, (1 << 32) - 1)
U64 = U32 + ((1 << 32), (1 << 40), (1 << 41), (1 << 62), (1 << 63) - 1, 1 << 63,
             (1 << 64) - 1)
U16 = (0, 1, 2, 3, 255, 1023, 1024, 1025, 4096, 32767, 32768, 65535)

# (offset, size, name) of the commit record's fields
COMMIT_FIELDS = [(0, 4, "magic"), (4, 4, "version"), (8, 4, "dimension"), (12, 4, "state"),
                 (16, 8, "vector_count"), (24, 8, "index_offset"), (32, 8, "data_offset"),
                 (40, 8, "generation"), (48, 4, "capacity"), (52, 4, "high_water"),
                 (56, 4, "row_stride"), (60, 4, "header_crc"), (64, 8, "table_size"),
                 (72, 8, "tombstones"), (80, 8, "ids_end"), (88, 8, "next_sequence"),
                 (96, 8, "set_id"), (104, 4, "map_crc"), (108, 8, "reserved"),
                 (116, 8, "reserved+8"), (124, 4, "crc")]
HEADER_FIELDS = [(0, 4, "magic"), (4, 4, "version"), (8, 8, "set_id"), (16, 4, "dimension"),
                 (20, 4, "unit"), (24, 4, "count"), (28, 8, "reserved"), (52, 8, "reserved+24"),
                 (60, 4, "crc")]
SLOT_FIELDS = [(0, 8, "id_offset"), (8, 4, "id_length"), (12, 4, "flags"), (16, 8, "sequence"),
               (24, 4, "vector_crc"), (28, 4, "crc")]
ENTRY_FIELDS = [(0, 8, "hash"), (8, 4, "slot"), (12, 2, "id_length"), (14, 2, "flags"),
                (16, 8, "id_offset"), (24, 4, "vector_crc"), (28, 4, "crc")]


def _crc32c(data: bytes) -> int:
    from jadevec._core.vector_file import crc32c
    return crc32c(bytes(data))


def _u(data, off: int, size: int) -> int:
    return int.from_bytes(data[off:off + size], "little") if off + size <= len(data) else 0


def _put(data: bytearray, off: int, size: int, value: int) -> None:
    if off + size <= len(data):
        data[off:off + size] = (value % (1 << (8 * size))).to_bytes(size, "little")


def _seal(data: bytearray, base: int, span: int) -> None:
    """Write the CRC32C of data[base:base+span] at base+span."""
    if base + span + 4 <= len(data):
        _put(data, base + span, 4, _crc32c(data[base:base + span]))


def _seal_commit(data: bytearray, base: int) -> None:
    _seal(data, base, 60)   # header_crc over bytes 0..59
    _seal(data, base, 124)  # crc over bytes 0..123


def _commit(data, base: int) -> dict | None:
    """The commit record at ``base``, or None if it fails magic, version or a CRC."""
    if base + 128 > len(data):
        return None
    rec = bytes(data[base:base + 128])
    c = {name: _u(rec, off, size) for off, size, name in COMMIT_FIELDS}
    if (c["magic"] != 0x4A564442 or c["version"] != 2
            or _crc32c(rec[:60]) != c["header_crc"] or _crc32c(rec[:124]) != c["crc"]):
        return None
    c["base"] = base
    return c


def _commits(vec) -> tuple[dict | None, dict | None]:
    """(newest, other) valid commit records of a vectors.jvdb image."""
    a, b = _commit(vec, 0), _commit(vec, COMMIT_B)
    if a is None or (b is not None and b["generation"] > a["generation"]):
        return b, a
    return a, b


def _page_map(index, c: dict | None) -> list[int]:
    if c is None or not 0 < c["table_size"] <= (1 << 20):
        return []
    off, tp = c["index_offset"], c["table_size"] // 128
    if off + 4 * tp > len(index):
        return []
    return list(struct.unpack_from(f"<{tp}I", index, off))


def _entry_offsets(index, pages: list[int]) -> list[int]:
    return [p * PAGE + k * 32 for p in pages for k in range(128)
            if 0 < p and (p + 1) * PAGE <= len(index)]


def _id_records(ids) -> list[int]:
    offs, o = [], 64
    while o + 8 <= len(ids):
        ln = _u(ids, o, 4)
        if ln == 0 or ln > 1024 or o + 8 + ln > len(ids):
            break
        offs.append(o)
        o += 8 + ((ln + 7) & ~7)
    return offs


# ---------------------------------------------------------------------------
# mutations (all driven by one random.Random)


def _pick_value(r: random.Random, size: int, data_len: int, cur: int, extra=()) -> int:
    pool = list(U16 if size == 2 else U32 if size == 4 else U64)
    pool += [data_len, data_len + 1, data_len - 1, data_len * 2, cur + 1, cur - 1, cur * 2,
             cur ^ (1 << r.randrange(8 * size)), (1 << (8 * size)) - cur, cur // 2]
    pool += list(extra) * 3  # field-aware values are tried more often
    return r.choice(pool) % (1 << (8 * size))


def _biased_offset(r: random.Random, n: int) -> int:
    if n <= 0:
        return 0
    c = r.random()
    if c < 0.3:
        return r.randrange(min(n, 128))
    if c < 0.45 and n > COMMIT_B:
        return COMMIT_B + r.randrange(min(n - COMMIT_B, 128))
    if c < 0.7:
        return r.randrange(min(n, 2 * PAGE + 512))
    return r.randrange(n)


def _truncate_length(r: random.Random, n: int) -> int:
    special = [0, 1, 31, 32, 63, 64, 65, 95, 96, 127, 128, 2047, 2048, 2175, 2176, 4095,
               4096, 4097, 8191, 8192, 8193, n - 1, n - 32, n - 64, n // 2, n - 4096,
               n - 4095, n - 8192]
    if r.random() < 0.6:
        return max(0, min(n, r.choice(special)))
    return r.randrange(n + 1)


class Mutation:
    """What a mutation did: a description, whether it forged a checksum, and
    whether it damaged checksummed bytes in use, which ``verify()`` must report."""

    def __init__(self, desc: str, forged: bool = False, must_detect: bool = False) -> None:
        self.desc = desc
        self.forged = forged
        self.must_detect = must_detect


def _read(p: Path) -> bytearray:
    return bytearray(p.read_bytes())


def _mutate_bytes(r: random.Random, klass: str, p: Path) -> str:
    data = _read(p)
    n = len(data)
    if klass == "flip":
        flips = []
        for _ in range(r.randint(1, 8)):
            if not n:
                break
            o = _biased_offset(r, n)
            b = r.randrange(8)
            data[o] ^= 1 << b
            flips.append((o, b))
        desc = f"flip {p.name} {flips}"
    elif klass in ("zero", "garbage"):
        if r.random() < 0.5:
            start = (r.randrange(max(1, n)) // PAGE) * PAGE
            length = PAGE
        else:
            start = _biased_offset(r, n)
            length = r.choice([1, 4, 8, 16, 32, 64, 100, 128, 512, 4096])
        fill = (bytes(length) if klass == "zero"
                else bytes(r.randrange(256) for _ in range(length)))
        data[start:start + length] = fill[: max(0, n - start)]
        desc = f"{klass} {p.name} [{start}, +{length})"
    elif klass == "truncate":
        m = _truncate_length(r, n)
        del data[m:]
        desc = f"truncate {p.name} to {m} of {n}"
    else:  # extend
        m = r.choice([1, 7, 64, 4096, 4097, 100000])
        zeros = r.random() < 0.5
        data += bytes(m) if zeros else bytes(r.randrange(256) for _ in range(m))
        desc = f"extend {p.name} by {m} {'zeros' if zeros else 'garbage'}"
    p.write_bytes(bytes(data))
    return desc


def _mutate_special(r: random.Random, vdir: Path, other: Path) -> Mutation:
    """Replace a file by something that is not a regular file of this set."""
    name = r.choice(VECTOR_FILES)
    p = vdir / name
    p.unlink()
    kind = r.choice(["directory", "symlink to another set", "dangling symlink", "symlink loop",
                     "empty file", "fifo", "hard link to another set", "/dev/zero",
                     "/dev/null"])
    if kind == "directory":
        p.mkdir()
    elif kind == "symlink to another set":
        p.symlink_to(other / name)
    elif kind == "dangling symlink":
        p.symlink_to(vdir / "nowhere")
    elif kind == "symlink loop":
        p.symlink_to(p)
    elif kind == "empty file":
        p.write_bytes(b"")
    elif kind == "fifo":
        os.mkfifo(p)
    elif kind == "hard link to another set":
        os.link(other / name, p)
    else:
        p.symlink_to(kind)
    return Mutation(f"special {name} is a {kind}")


def _mutate_leftover(r: random.Random, vroot: Path, folders: dict) -> Mutation:
    """What a crash leaves beside a database folder: a compaction or a creation cut short."""
    x = folders["docs"]
    folder, compact = vroot / x, vroot / f".{x}.compact"
    old, creating = vroot / f".{x}.old", vroot / f".{x}.creating"
    kind = r.choice(["compact copy", "compact half", "compact garbage file", "swap cut",
                     "only old", "only compact", "creating copy", "compact symlink",
                     "old symlink", "compact symlink loop", "compact empty dir"])
    third = vroot / folders["third"]
    if kind in ("compact copy", "compact half"):
        shutil.copytree(folder, compact)
        if kind == "compact half":
            p = compact / r.choice(VECTOR_FILES)
            p.write_bytes(p.read_bytes()[: r.choice([0, 100, 4096, p.stat().st_size // 2])])
    elif kind == "compact garbage file":
        compact.write_bytes(bytes(r.randrange(256) for _ in range(100)))
    elif kind == "swap cut":  # the two-rename swap, cut between its renames
        folder.rename(old)
        shutil.copytree(old, compact)
    elif kind == "only old":
        folder.rename(old)
    elif kind == "only compact":
        folder.rename(compact)
    elif kind == "creating copy":
        shutil.copytree(third, creating)
    elif kind == "compact symlink":
        compact.symlink_to(third)
    elif kind == "old symlink":
        old.symlink_to(third)
    elif kind == "compact symlink loop":
        compact.symlink_to(compact)
    else:
        compact.mkdir()
    return Mutation(f"leftover: {kind}")


def _mutate_commit(r: random.Random, vdir: Path) -> Mutation:
    p = vdir / "vectors.jvdb"
    data = _read(p)
    index_len = (vdir / "index.jvix").stat().st_size
    ids_len = (vdir / "ids.jvid").stat().st_size
    newest, other = _commits(data)
    if newest is None:
        return Mutation("commit: no valid record to mutate")
    fix = r.random() < 0.8
    c = r.random()
    if c < 0.1 and other is not None:
        # Roll back: the older record becomes the newest (forged).
        _put(data, other["base"] + 40, 8, newest["generation"] + 1)
        _seal_commit(data, other["base"])
        p.write_bytes(bytes(data))
        return Mutation(f"commit rollback to the record at {other['base']}", forged=True)
    if c < 0.15:
        # The newest record copied over the other one (both the same commit).
        src = newest["base"]
        dst = COMMIT_B - src
        data[dst:dst + 128] = data[src:src + 128]
        p.write_bytes(bytes(data))
        return Mutation(f"commit record at {src} copied to {dst}")
    pick = r.random()
    bases = ([newest["base"]] if pick < 0.6 or other is None
             else [other["base"]] if pick < 0.8 else [0, COMMIT_B])
    descs = []
    for _ in range(r.choice([1, 1, 1, 2, 3])):
        off, size, name = r.choice(COMMIT_FIELDS)
        cur = _u(data, bases[0] + off, size)
        stride, cap = newest["row_stride"], newest["capacity"]
        extra = {
            "version": [1, 2, 3, 0xFFFFFFFF],
            "dimension": [1, 3, 4, 6, 16, 17, 65536, 65537],
            "state": [0, 1, 2, 3, 4],
            "vector_count": [newest["high_water"], newest["high_water"] + 1, newest["table_size"]],
            "index_offset": [k * PAGE for k in range(index_len // PAGE + 2)]
            + [index_len - 4, index_len, (other or newest)["index_offset"]],
            "data_offset": [0, 2048, 4096, 8192],
            "generation": [0, 1, (other or newest)["generation"], newest["generation"] + 1,
                           (1 << 64) - 1, (1 << 64) - 2, 1 << 63],
            "capacity": [0, cap - 1, cap + 1, 64, newest["high_water"],
                         (len(data) - PAGE) // max(1, stride), 1 << 31],
            "high_water": [0, cap, cap + 1, newest["high_water"] + 1, newest["high_water"] - 1],
            "row_stride": [0, 4, 20, 32, 60, 64, 128],
            "table_size": [0, 64, 127, 128, 256, 512, 1024, 1 << 40, 1 << 41, 1 << 63],
            "tombstones": [0, newest["table_size"], newest["table_size"] - newest["vector_count"],
                           (1 << 64) - 1],
            "ids_end": [ids_len, ids_len + 8, ids_len - 8, 64, 56, 65, 72],
            "next_sequence": [0, 1, 2, cur + 1000, 1 << 63, (1 << 64) - 1, (1 << 64) - 2],
            "set_id": [0, (other or newest)["set_id"] ^ 1],
            "map_crc": [0, (other or newest)["map_crc"]],
        }.get(name, [])
        val = _pick_value(r, size, len(data), cur, extra)
        if name == "table_size" and r.random() < 0.5:
            val = r.choice([128, 256, 512, 1024])
        for b in bases:
            _put(data, b + off, size, val)
            if fix and name == "index_offset" and r.random() < 0.6:
                # the map_crc of whatever lies at the new offset, so the map's
                # page numbers are what the checks meet
                index = (vdir / "index.jvix").read_bytes()
                tp = _u(data, b + 64, 8) // 128
                if 0 < tp <= (1 << 16) and val + 4 * tp <= len(index):
                    _put(data, b + 104, 4, _crc32c(index[val:val + 4 * tp]))
            if fix and name not in ("header_crc", "crc"):
                _seal_commit(data, b)
        descs.append(f"{name}@{bases}={val}")
    p.write_bytes(bytes(data))
    return Mutation(f"commit {' '.join(descs)} crc_fixed={fix}", forged=fix)


def _mutate_header(r: random.Random, vdir: Path, folders: dict, root: Path) -> Mutation:
    name = r.choice(VECTOR_FILES[1:])
    p = vdir / name
    data = _read(p)
    fix = r.random() < 0.8
    descs = []
    other_set = _u((root / "vectors" / folders["third"] / name).read_bytes(), 8, 8)
    for _ in range(r.choice([1, 1, 1, 2, 3])):
        off, size, field = r.choice(HEADER_FIELDS)
        cur = _u(data, off, size)
        extra = {
            "magic": [0x4A56534C, 0x4A564958, 0x4A564944, 0x4A565244, 0x4A564442],
            "version": [1, 2, 3],
            "set_id": [0, other_set, cur ^ 1],
            "dimension": [0, DIM, DIM_OTHER, 16],
            "unit": [0, 8, 32, 64, 4096],
            "count": [0, 126, 127, 128],
        }.get(field, [])
        val = _pick_value(r, size, len(data), cur, extra)
        _put(data, off, size, val)
        if fix and field != "crc":
            _seal(data, 0, 60)
        descs.append(f"{field}={val}")
    p.write_bytes(bytes(data))
    return Mutation(f"header {name} {' '.join(descs)} crc_fixed={fix}", forged=fix)


def _mutate_pagemap(r: random.Random, vdir: Path) -> Mutation:
    vp, ip = vdir / "vectors.jvdb", vdir / "index.jvix"
    vec, index = _read(vp), _read(ip)
    newest, other = _commits(vec)
    c = newest if other is None or r.random() < 0.75 else other
    if c is None:
        return Mutation("pagemap: no valid commit")
    m = _page_map(index, c)
    if not m:
        return Mutation("pagemap: no readable map")
    npages = len(index) // PAGE
    other_map = _page_map(index, other if c is newest else newest)
    in_use = set(m) | set(other_map) | {0}
    area = c["index_offset"] // PAGE
    free = [q for q in range(1, npages) if q not in in_use and q != area]
    descs = []
    kind = r.random()
    if kind < 0.2:
        # The same map, moved elsewhere (forged, CRCs right): a free page, the
        # other commit's area, a table page, or past the last whole page.
        raw = struct.pack(f"<{len(m)}I", *m)
        where = r.choice(["free", "other area", "table page", "tail", "tail", "header"])
        if where == "tail":
            # Padded to a page count whose bookkeeping arrays malloc sizes
            # exactly (a multiple of 16 plus 8), so a write one past their end
            # hits the allocator's next chunk header and glibc notices.
            pages = max(npages, r.choice([npages, 24, 40, 56]))
            off = pages * PAGE
            index[npages * PAGE:] = bytes(off - npages * PAGE) + raw + bytes(r.choice([0, 4, 100]))
        elif where == "free" and free:
            off = r.choice(free) * PAGE
        elif where == "other area" and other_map:
            off = (other if c is newest else newest)["index_offset"]
        elif where == "header":
            off = 0
        else:
            off = r.choice(m) * PAGE + r.choice([0, 2048])
        index[off:off + len(raw)] = raw
        for rec in (c, newest if c is other else other):
            if rec is not None and (rec is c or r.random() < 0.5):
                _put(vec, rec["base"] + 24, 8, off)
                _put(vec, rec["base"] + 104, 4, _crc32c(raw))
                _seal_commit(vec, rec["base"])
        vp.write_bytes(bytes(vec))
        ip.write_bytes(bytes(index))
        return Mutation(f"pagemap of the {'newest' if c is newest else 'other'} commit moved "
                        f"to {off} ({where}) npages={npages} size={len(index)}", forged=True)
    if kind < 0.3 and len(m) > 1:
        i, j = r.sample(range(len(m)), 2)
        m[i], m[j] = m[j], m[i]
        descs.append(f"swap entries {i} and {j}")
    else:
        for _ in range(r.choice([1, 1, 2])):
            i = r.randrange(len(m))
            val = r.choice([0, npages, npages - 1, npages + 1, (1 << 32) - 1, area, m[i] + 1,
                            m[i] - 1, r.choice(m)] + other_map + free[:8])
            m[i] = val % (1 << 32)
            descs.append(f"map[{i}]={m[i]}")
    struct.pack_into(f"<{len(m)}I", index, c["index_offset"], *m)
    fix = r.random() < 0.8
    if fix:
        _put(vec, c["base"] + 104, 4, _crc32c(struct.pack(f"<{len(m)}I", *m)))
        _seal_commit(vec, c["base"])
        vp.write_bytes(bytes(vec))
    ip.write_bytes(bytes(index))
    which = "newest" if c is newest else "other"
    return Mutation(f"pagemap of the {which} commit {' '.join(descs)} npages={npages} "
                    f"crc_fixed={fix}", forged=fix)


def _mutate_entry(r: random.Random, vdir: Path) -> Mutation:
    vec, ip = (vdir / "vectors.jvdb").read_bytes(), vdir / "index.jvix"
    index = _read(ip)
    newest, other = _commits(vec)
    pages = _page_map(index, newest if r.random() < 0.8 else (other or newest))
    if not pages or r.random() < 0.05:
        pages = list(range(1, len(index) // PAGE))
    offs = _entry_offsets(index, pages)
    if not offs:
        return Mutation("entry: no table page")
    live = [o for o in offs if _u(index, o + 14, 2) == 1]
    fix = r.random() < 0.85
    descs = []
    c = r.random()
    if c < 0.08:
        # No EMPTY entry left: every probe must still end.
        flags = r.choice([1, 2])
        for o in offs:
            if not any(index[o:o + 32]):
                struct.pack_into("<QIHHQI", index, o, r.getrandbits(64), 0, DIM * 4, flags,
                                 64, 0)
                _seal(index, o, 28)
        ip.write_bytes(bytes(index))
        return Mutation(f"entry: table full of flags {flags}", forged=True)
    if c < 0.15 and live:
        # A live entry copied over another position: the id twice.
        src = r.choice(live)
        dst = r.choice(offs)
        index[dst:dst + 32] = index[src:src + 32]
        ip.write_bytes(bytes(index))
        return Mutation(f"entry copied from {src} to {dst}", forged=True)
    hw = newest["high_water"] if newest else 0
    cap = newest["capacity"] if newest else 0
    ids_end = newest["ids_end"] if newest else 0
    for _ in range(r.choice([1, 1, 2, 4])):
        o = r.choice(live) if live and r.random() < 0.9 else r.choice(offs)
        off, size, field = r.choice(ENTRY_FIELDS)
        cur = _u(index, o + off, size)
        another = r.choice(live) if live else o
        extra = {
            "hash": [0, cur ^ 1, _u(index, another, 8)],
            "slot": [0, hw - 1, hw, hw + 1, cap - 1, cap, _u(index, another + 8, 4),
                     (1 << 32) - 1],
            "id_length": [0, 1, 1024, 1025, _u(index, another + 12, 2)],
            "flags": [0, 1, 2, 3, 4, 255],
            "id_offset": [0, 63, 64, 65, ids_end, ids_end - 8, ids_end + 8,
                          _u(index, another + 16, 8)],
            "vector_crc": [0, _u(index, another + 24, 4)],
        }.get(field, [])
        val = _pick_value(r, size, len(index), cur, extra)
        _put(index, o + off, size, val)
        if fix and field != "crc":
            _seal(index, o, 28)
        descs.append(f"entry@{o}.{field}={val}")
    ip.write_bytes(bytes(index))
    return Mutation(f"entry {' '.join(descs)} crc_fixed={fix}", forged=fix)


def _mutate_slot(r: random.Random, vdir: Path) -> Mutation:
    vec, sp = (vdir / "vectors.jvdb").read_bytes(), vdir / "slots.jvsl"
    slots = _read(sp)
    newest, _ = _commits(vec)
    next_seq = newest["next_sequence"] if newest else 1
    hw = newest["high_water"] if newest else 0
    count = (len(slots) - 64) // 32
    if count <= 0:
        return Mutation("slot: no record")
    used = [i for i in range(count) if any(slots[64 + i * 32: 96 + i * 32])]
    post = [i for i in used if _u(slots, 64 + i * 32 + 16, 8) >= next_seq]
    ids = (vdir / "ids.jvid").read_bytes()
    id_offs = _id_records(ids)
    fix = r.random() < 0.85
    c = r.random()
    if c < 0.1 and id_offs:
        # A forged LIVE record past the commit's high_water, replayed by a writer.
        i = r.choice([hw, hw + 1, count - 1, r.randrange(count)])
        o = r.choice(id_offs)
        row = PAGE + i * (newest["row_stride"] if newest else 64)
        vcrc = _crc32c(vec[row:row + DIM * 4]) if row + DIM * 4 <= len(vec) else 0
        base = 64 + i * 32
        struct.pack_into("<QIIQI", slots, base, o, _u(ids, o, 4), r.choice([1, 2]),
                         r.choice([next_seq, next_seq + 5, 1 << 62]), vcrc)
        _seal(slots, base, 28)
        sp.write_bytes(bytes(slots))
        return Mutation(f"slot: forged record {i} -> id record {o}", forged=True)
    descs = []
    for _ in range(r.choice([1, 1, 2, 4])):
        pool = post if post and r.random() < 0.5 else used
        i = r.choice(pool) if pool and r.random() < 0.9 else r.randrange(count)
        base = 64 + i * 32
        off, size, field = r.choice(SLOT_FIELDS)
        cur = _u(slots, base + off, size)
        another = 64 + r.choice(used or [i]) * 32
        extra = {
            "id_offset": [0, 63, 64, 65, len(ids), len(ids) - 8] + id_offs[:4]
            + [_u(slots, another, 8)],
            "id_length": [0, 1, 1024, 1025, _u(slots, another + 8, 4)],
            "flags": [0, 1, 2, 3, 4, 255],
            "sequence": [0, 1, next_seq - 1, next_seq, next_seq + 1, next_seq + 1000,
                         _u(slots, another + 16, 8), 1 << 63, (1 << 64) - 1],
            "vector_crc": [0, _u(slots, another + 24, 4)],
        }.get(field, [])
        val = _pick_value(r, size, len(slots), cur, extra)
        _put(slots, base + off, size, val)
        if fix and field != "crc":
            _seal(slots, base, 28)
        descs.append(f"slot{i}.{field}={val}")
    sp.write_bytes(bytes(slots))
    return Mutation(f"slot {' '.join(descs)} post={len(post)} crc_fixed={fix}", forged=fix)


def _mutate_idrec(r: random.Random, vdir: Path) -> Mutation:
    p = vdir / "ids.jvid"
    data = _read(p)
    offs = _id_records(data)
    if not offs:
        return Mutation("idrec: no id record")
    fix = r.random() < 0.6
    descs = []
    for _ in range(r.choice([1, 1, 2])):
        o = r.choice(offs)
        ln = _u(data, o, 4)
        c = r.random()
        if c < 0.4:
            val = r.choice(U32 + (0, 1024, 1025, ln + 1, ln - 1, ln + 8))
            _put(data, o, 4, val)
            descs.append(f"idrec@{o}.length={val}")
        elif c < 0.6:
            val = r.choice([0, _u(data, o + 4, 4) ^ 1])
            _put(data, o + 4, 4, val)
            descs.append(f"idrec@{o}.crc={val}")
        else:
            k = o + 8 + r.randrange(max(1, ln))
            val = r.choice([0x00, 0xFF, 0xC3, 0x80, 0x41, 0xED, data[k] ^ 1])
            data[k] = val
            if fix:
                _put(data, o + 4, 4, _crc32c(data[o + 8:o + 8 + ln]))
            descs.append(f"idrec@{o}.byte[{k - o - 8}]={val:#x} crc_fixed={fix}")
    p.write_bytes(bytes(data))
    return Mutation(f"idrec {' '.join(descs)}", forged=fix)


def _mutate_rows(r: random.Random, vdir: Path) -> Mutation:
    p = vdir / "vectors.jvdb"
    data = _read(p)
    newest, _ = _commits(data)
    stride = newest["row_stride"] if newest and 0 < newest["row_stride"] <= 1 << 20 else 64
    hw = newest["high_water"] if newest else 1
    descs = []
    for _ in range(r.choice([1, 1, 2, 5])):
        slot = r.randrange(max(1, hw + 2))
        o = PAGE + slot * stride + 4 * r.randrange(DIM)
        if o + 4 > len(data):
            continue
        how = r.random()
        if how < 0.5:
            b = r.randrange(32)
            _put(data, o, 4, _u(data, o, 4) ^ (1 << b))
            descs.append(f"row{slot}@{o} bit {b}")
        else:
            val = r.choice([0, 0x7FC00000, 0x7F800000, 0xFF800000, 0x80000000, 1, 0x3F800000])
            _put(data, o, 4, val)
            descs.append(f"row{slot}@{o}={val:#x}")
    p.write_bytes(bytes(data))
    return Mutation(f"rows {' '.join(descs)}")


def _mutate_detect(r: random.Random, vdir: Path) -> Mutation:
    """Flip 1 to 8 bits of checksummed bytes the newest commit uses: a live
    vector's row, its index entry, its slot record or its id record."""
    index = _read(vdir / "index.jvix")
    newest, _ = _commits(_read(vdir / "vectors.jvdb"))
    live = [o for o in _entry_offsets(index, _page_map(index, newest))
            if o + 32 <= len(index) and _u(index, o + 14, 2) == 1]
    if not live:
        return Mutation("detect: no live entry")
    o = r.choice(live)
    slot, id_length, id_offset = _u(index, o + 8, 4), _u(index, o + 12, 2), _u(index, o + 16, 8)
    target = r.choice(["row", "entry", "slot", "id"])
    path, start, span = {
        "row": (vdir / "vectors.jvdb", PAGE + slot * newest["row_stride"], 4 * DIM),
        "entry": (vdir / "index.jvix", o, 32),
        "slot": (vdir / "slots.jvsl", 64 + slot * 32, 32),
        "id": (vdir / "ids.jvid", id_offset, 8 + id_length),
    }[target]
    data = _read(path)
    if start + span > len(data):
        return Mutation(f"detect: {target} of slot {slot} past the end of {path.name}")
    bits = sorted(r.sample(range(8 * span), r.choice([1, 1, 2, 3, 8])))
    for b in bits:
        data[start + b // 8] ^= 1 << (b % 8)
    path.write_bytes(bytes(data))
    return Mutation(f"detect {target} of slot {slot} in {path.name}@{start} bits {bits}",
                    must_detect=True)


def _mutate_readers(r: random.Random, vdir: Path) -> Mutation:
    p = vdir / "readers.jvrd"
    data = _read(p)
    c = r.random()
    if c < 0.3:
        m = r.choice([0, 1, 60, 64, 100, 128, 4096, 8191])
        p.write_bytes(bytes(data[:m]))
        return Mutation(f"readers truncate to {m}")
    descs = []
    for _ in range(r.choice([1, 2, 8])):
        if r.random() < 0.4:
            off, size, field = r.choice(HEADER_FIELDS)
            val = _pick_value(r, size, len(data), _u(data, off, size), [0, 64, 126, 127, 128])
            _put(data, off, size, val)
            if r.random() < 0.5:
                _seal(data, 0, 60)
            descs.append(f"header.{field}={val}")
        else:
            i = r.randrange(127)
            off = 64 + i * 64 + r.choice([0, 8, 16])
            val = r.choice([1, 2, 1 << 40, (1 << 64) - 1, os.getpid(), 0])
            _put(data, off, 8, val)
            descs.append(f"slot{i}+{off - 64 - i * 64}={val}")
    p.write_bytes(bytes(data))
    return Mutation(f"readers {' '.join(descs)}")


WEIRD = [None, -1, 0, 65537, 1 << 70, 1.5, "x", "", [], {}, True, False, "../..", "..",
         "/etc", "db-\x00", "a/b", float("1e308"), "é" * 300, "db-000000000000"]


def _mutate_catalog(r: random.Random, root: Path, folders: dict) -> Mutation:
    p = root / "catalog.json"
    raw = p.read_bytes()
    doc = json.loads(raw)
    c = r.random()
    if c < 0.25:
        data = bytearray(raw)
        for _ in range(r.randint(1, 4)):
            data[r.randrange(len(data))] = r.randrange(256)
        if r.random() < 0.3:
            del data[r.randrange(len(data)):]
        p.write_bytes(bytes(data))
        return Mutation("catalog bytes")
    dbs = doc.get("databases", {})
    if c < 0.75 and dbs:
        key = r.choice(sorted(dbs))
        d = dbs[key]
        field = r.choice(["name", "dimension", "metric", "folder", "extra"])
        val = r.choice(WEIRD + ["docs", "DOCS", "other", "cosine", "l2", 3, 5, 2,
                                folders["Other"], folders["third"], folders["docs"]])
        if r.random() < 0.1:
            d.pop(field, None)
            desc = f"catalog {key} drop {field}"
        else:
            d[field] = val
            desc = f"catalog {key}.{field}={val!r}"
    elif c < 0.85 and dbs:
        key = r.choice(sorted(dbs))
        new = r.choice(["DOCS", "other", "x", "", "third", key.upper()])
        dbs[new] = dbs.pop(key)
        desc = f"catalog key {key!r} -> {new!r}"
    else:
        key = r.choice(["format", "version", "sequence", "clean", "databases", "root"])
        val = r.choice(WEIRD + [1, 2, 3, 1 << 64, [1, 2], [None], [[]], "jadevec-mmap",
                                {"docs": None}])
        if r.random() < 0.15:
            doc = r.choice([[], None, 1, "s", [doc]])
            desc = f"catalog doc={doc!r}"[:80]
        else:
            doc[key] = val
            desc = f"catalog top {key}={val!r}"
    p.write_text(json.dumps(doc))
    return Mutation(desc)


def _mutate_journal(r: random.Random, root: Path, folders: dict) -> Mutation:
    p = root / "catalog.log"
    raw = p.read_bytes() if p.exists() else b""
    seq = json.loads((root / "catalog.json").read_bytes()).get("sequence", 0)
    lines = raw.split(b"\n")[:-1] if raw else []
    for line in lines:
        try:
            seq = max(seq, json.loads(line)[0])
        except Exception:  # noqa: BLE001
            pass
    c = r.random()
    if c < 0.15 and raw:
        data = bytearray(raw)
        for _ in range(r.randint(1, 4)):
            data[r.randrange(len(data))] = r.randrange(256)
        p.write_bytes(bytes(data))
        return Mutation("journal bytes")
    if c < 0.2:
        p.write_bytes(bytes(r.randrange(256) for _ in range(r.randint(1, 300))))
        return Mutation("journal garbage")
    entry = {"name": "new", "dimension": 4, "metric": "l2", "folder": "db-0123456789ab"}
    dup = {"name": "DOCS", "dimension": 5, "metric": "l2", "folder": "db-0123456789ac"}
    same_folder = {"name": "fresh2", "dimension": 5, "metric": "l2", "folder": folders["docs"]}
    bad = [
        [seq + 1, "create", entry], [seq + 1, "create", dup], [seq + 1, "create", same_folder],
        [seq + 1, "delete", folders["third"]], [seq + 1, "delete", "db-ffffffffffff"],
        [seq + 1, "delete", None], [seq + 1, "clean", True], [seq + 1, "clean", 1],
        [seq + 1, "clean", "yes"], [seq + 2, "clean", True], [seq, "clean", False],
        [0, "clean", True], [-1, "clean", True], [True, "clean", True], [1.5, "clean", True],
        [seq + 1, "rename", "x"], [seq + 1, "create", {**entry, "folder": "../.."}],
        [seq + 1, "create", {**entry, "dimension": 0}], [seq + 1, "create", []],
        [seq + 1, "create", entry, 1], [seq + 1], [], {}, None, 7, "x", [1 << 70, "clean", True],
    ]
    text = [json.dumps(x).encode() for x in bad] + [b"[" * 100000, b"\xff\xfe", b"",
                                                    b'[1, "clean", tru']
    i = r.randint(0, len(lines))
    line = r.choice(text)
    lines.insert(i, line)
    torn = r.random() < 0.15
    data = b"\n".join(lines) + (b"" if torn else b"\n")
    p.write_bytes(data)
    return Mutation(f"journal insert at {i}: {line[:80]!r} torn={torn}")


def _mutate_metalog(r: random.Random, root: Path, folders: dict) -> Mutation:
    p = root / "metadata" / f"{folders['docs']}.jsonl"
    raw = p.read_bytes() if p.exists() else b""
    lines = raw.split(b"\n")
    c = r.random()
    good = '{"a": 1}'
    bad = [b"[]", b"{}", b"1", b"null", b"[1]", b"[null]", b'["id-1", 1, 2, 3, 4]',
           b'["id-1", "{}", 1, null, null, null, null]',
           b'["id-1", "{}", 1, null, null, null, null, 1, 9]',
           json.dumps(["id-1", good, 1, None, None, None, None, 0]).encode(),
           json.dumps(["id-1", good, 1.5, None, None, None, None, 0]).encode(),
           json.dumps(["id-1", good, 1 << 64, None, None, None, None, 0]).encode(),
           json.dumps(["id-1", good, 1, "{", 2, None, None, 0]).encode(),
           json.dumps(["id-1", "[1]", 1, None, None, None, None, 0]).encode(),
           json.dumps(["id-1", {"a": 1}, 1, None, None, None, None, 0]).encode(),
           json.dumps(["id-1", good, 1, None, "2", None, None, 0]).encode(),
           json.dumps(["id-1", good, 1, None, None, good, 1, None]).encode(),
           json.dumps(["id-1", good, 1, None, None, good, 1, True]).encode(),
           json.dumps([1, good, 1, None, None, None, None, 0]).encode(),
           json.dumps(["id-2", "[" * 5000 + "]" * 5000, 1, None, None, None, None, 0]).encode(),
           json.dumps(["id-2", "{\"a\":" * 3000 + "1" + "}" * 3000, 1, None, None, None, None,
                       0]).encode(),
           b'["id-1", "{}", 1e400, null, null, null, null, 0]', b'"\xff\xfe"', b"[" * 100000,
           b'["id-11"]', b'["id-11", 1]', b'[{"a": 1}]', b"\xff\xfe\xfd", b'["\\ud800"]']
    i = r.randrange(len(lines))
    records = [k for k, x in enumerate(lines) if x.startswith(b"[")]
    if c < 0.3 and records:
        # one field of a real record, in the 8-item shape
        k = r.choice(records)
        item = json.loads(lines[k])
        if len(item) == 8:
            f = r.randrange(8)
            item[f] = r.choice([None, 0, -1, 1 << 63, (1 << 63) - 1, 1.5, "x", "{}", "[]",
                                '{"a": 1}', {"a": 1}, [], True, item[(f + 1) % 8]])
        else:
            item.append(r.choice([None, 0, "{}"]))
        lines[k] = json.dumps(item).encode()
        p.write_bytes(b"\n".join(lines))
        return Mutation(f"metalog line {k} = {lines[k][:100]!r}")
    if c < 0.7:
        line = r.choice(bad)
        lines.insert(i, line)
        desc = f"metalog insert at {i}: {line[:80]!r}"
    elif c < 0.9:
        data = bytearray(b"\n".join(lines))
        for _ in range(r.randint(1, 4)):
            if data:
                data[r.randrange(len(data))] = r.randrange(256)
        p.write_bytes(bytes(data))
        return Mutation("metalog bytes")
    else:
        p.write_bytes(bytes(r.randrange(256) for _ in range(r.randint(1, 500))))
        return Mutation("metalog garbage")
    p.write_bytes(b"\n".join(lines))
    return Mutation(desc)


def _mutate_sqlite(r: random.Random, root: Path, folders: dict) -> Mutation:
    p = root / "catalog.sqlite3"
    c = r.random()
    if c < 0.35:
        data = _read(p)
        n = len(data)
        if r.random() < 0.3:
            m = _truncate_length(r, n)
            del data[m:]
            desc = f"sqlite truncate {m}"
        else:
            for _ in range(r.randint(1, 16)):
                data[_biased_offset(r, n)] = r.randrange(256)
            desc = "sqlite bytes"
        p.write_bytes(bytes(data))
        return Mutation(desc)
    folder = folders["docs"]
    weird = ["NULL", "-1", "0", "1", "65537", "9223372036854775807", "-9223372036854775808",
             "1.5", "'x'", "''", "'../..'", "'..'", "'/etc'", "X'00ff'", "'bogus'", "'docs'",
             "'DOCS'", "'cosine'", "'creating'", "'deleting'", "'live'", "'{'", "'[1]'",
             "'{}'", "'{\"a\": 1}'", f"'{folders['Other']}'", f"'{folders['third']}'",
             "'Other'", "'other'", "3", "x'ff'", "'2'", "'1'", "'0'", "'3'"]
    stmts = [
        ("databases", ["folder", "name", "name_lower", "dimension", "metric", "state"],
         "name = 'docs'"),
        ("vector_meta", ["folder", "id", "meta", "fp", "prev_meta", "prev_fp", "base_meta",
                         "base_fp", "gen"],
         f"folder = '{folder}' AND id = 'id-{r.choice([1, 8, 11, 31, 101, 120])}'"),
        ("store_state", ["key", "value"], f"key = '{r.choice(['format', 'clean'])}'"),
    ]
    table, cols, where = r.choice(stmts)
    col = r.choice(cols)
    val = r.choice(weird)
    con = sqlite3.connect(p)
    try:
        k = r.random()
        if k < 0.08:
            con.execute(f"DROP TABLE {table}")
            desc = f"sqlite drop {table}"
        elif k < 0.14:
            con.execute(f"DELETE FROM {table} WHERE {where}")
            desc = f"sqlite delete from {table} where {where}"
        elif k < 0.2 and table == "databases":
            con.execute("INSERT INTO databases VALUES ('db-0123456789ab', 'x', 'x', 4, "
                        f"'l2', {r.choice(['creating', 'deleting', 'live', 'bogus'])!r})")
            desc = "sqlite insert a database row"
        else:
            con.execute(f"UPDATE {table} SET {col} = {val} WHERE {where}")
            desc = f"sqlite {table}.{col}={val}"
        con.commit()
    except sqlite3.Error as exc:
        desc = f"sqlite no-op ({exc})"
    finally:
        con.close()
    return Mutation(desc)


def mutate(r: random.Random, klass: str, root: Path, folders: dict[str, str],
           backend: str) -> Mutation:
    """Damage the store at ``root``; return what was done."""
    vdir = root / "vectors" / folders["docs"]
    if klass in ("flip", "zero", "garbage", "truncate", "extend", "delete"):
        p = vdir / r.choice(VECTOR_FILES)
        if klass == "delete":
            p.unlink()
            return Mutation(f"delete {p.name}")
        return Mutation(_mutate_bytes(r, klass, p))
    if klass == "special":
        return _mutate_special(r, vdir, root / "vectors" / folders["third"])
    if klass == "leftover":
        return _mutate_leftover(r, root / "vectors", folders)
    if klass == "combo":
        done = [mutate(r, k, root, folders, backend)
                for k in r.sample(FILE_CLASSES, r.choice([2, 2, 3]))]
        return Mutation(" + ".join(m.desc for m in done), forged=any(m.forged for m in done))
    if klass == "swap":
        src_db = r.choice(["Other", "third"])
        src = root / "vectors" / folders[src_db]
        if r.random() < 0.3:  # the whole file set of another database
            for f in VECTOR_FILES:
                shutil.copyfile(src / f, vdir / f)
            return Mutation(f"swap whole set from {src_db}")
        name = r.choice(VECTOR_FILES)
        shutil.copyfile(src / name, vdir / name)
        return Mutation(f"swap {name} from {src_db}")
    if klass == "commit":
        return _mutate_commit(r, vdir)
    if klass == "header":
        return _mutate_header(r, vdir, folders, root)
    if klass == "pagemap":
        return _mutate_pagemap(r, vdir)
    if klass == "entry":
        return _mutate_entry(r, vdir)
    if klass == "slot":
        return _mutate_slot(r, vdir)
    if klass == "idrec":
        return _mutate_idrec(r, vdir)
    if klass == "rows":
        return _mutate_rows(r, vdir)
    if klass == "readers":
        return _mutate_readers(r, vdir)
    if klass == "detect":
        return _mutate_detect(r, vdir)
    if klass in ("catalog", "journal", "metalog"):
        if backend != "mmap":
            return _mutate_sqlite(r, root, folders)
        return {"catalog": _mutate_catalog, "journal": _mutate_journal,
                "metalog": _mutate_metalog}[klass](r, root, folders)
    if klass == "sqlite":
        if backend != "hybrid":
            return _mutate_catalog(r, root, folders)
        return _mutate_sqlite(r, root, folders)
    raise ValueError(klass)


# ---------------------------------------------------------------------------
# worker: run the operations on one mutant


def _allowed(exc: BaseException, root: Path) -> bool:
    from jadevec._core.vector_file import FileSetMoved
    from jadevec.errors import JadevecError
    if isinstance(exc, (JadevecError, FileSetMoved)):
        return True
    if isinstance(exc, OSError):
        text = f"{exc} {exc.filename or ''} {exc.filename2 or ''}"
        return str(root) in text
    return False


def _folders(root: Path, backend: str) -> dict[str, str]:
    if backend == "mmap":
        doc = json.loads((root / "catalog.json").read_bytes())
        out = {d["name"]: d["folder"] for d in doc["databases"].values()}
        journal = root / "catalog.log"
        for line in (journal.read_bytes().splitlines() if journal.exists() else []):
            seq, change, value = json.loads(line)
            if change == "create" and seq > doc["sequence"]:
                out[value["name"]] = value["folder"]
        return out
    con = sqlite3.connect(root / "catalog.sqlite3")
    try:
        return dict(con.execute("SELECT name, folder FROM databases"))
    finally:
        con.close()


class _Failed:
    def __repr__(self) -> str:
        return "<failed>"


_FAILED = _Failed()


def run_ops(root: Path, backend: str, template: dict, mutation: Mutation, folder: str,
            log: list[str], verbose: bool, fork_check: bool) -> list[str]:
    """Call everything; return problems (leaked errors, wrong vectors, bad fork)."""
    import numpy as np

    import jadevec
    from jadevec._core.vector_file import VectorFile, mark_moved, swap_folders
    from jadevec.backends._vector_store import MemoryMappedVectorStore

    problems: list[str] = []
    expected = template["expected"]
    committed = template["committed"]
    known = {_f32(v) for v in template["known"]}
    q = np.linspace(-1, 1, DIM, dtype=np.float32)
    known.add(q.tobytes())
    known.add((q * 0.5).astype(np.float32).tobytes())
    known.add(bytes(4 * DIM))  # a row never written: what a forged record may point at

    def call(label, fn, *a, **kw):
        log.append(label)
        if verbose:
            print(f"  > {label}", file=sys.stderr, flush=True)
        try:
            return fn(*a, **kw)
        except Exception as exc:  # noqa: BLE001 - the point of the harness
            if not _allowed(exc, root):
                problems.append(f"{label}: {type(exc).__name__}: {exc}"[:300] + "\n"
                                + "".join(traceback.format_exc(limit=-4))[-800:])
            elif verbose:
                print(f"    {type(exc).__name__}: {str(exc)[:200]}", file=sys.stderr,
                      flush=True)
            return _FAILED

    written: set[str] = set()  # ids some write touched: their value is no longer known

    def check_vec(label, vid, got):
        if got is _FAILED or got is None:
            return
        arr = np.asarray(got)
        if arr.dtype != np.float32 or arr.shape not in ((DIM,), (DIM_OTHER,)):
            problems.append(f"{label}: {vid!r} read back as {arr.dtype} {arr.shape}")
            return
        if not mutation.forged and vid in expected and vid not in written:
            allowed = {_f32(expected[vid])}
            if vid in committed:
                allowed.add(_f32(committed[vid]))
            if arr.shape != (DIM,) or arr.tobytes() not in allowed:
                problems.append(f"{label}: silently wrong vector for {vid!r}: {arr.tolist()} "
                                f"(stored {expected[vid]})")
        elif arr.shape == (DIM,) and arr.tobytes() not in known:
            problems.append(f"{label}: {vid!r} read back as {arr.tolist()}, a vector nobody "
                            f"stored")

    def check_rows(label, ids, got):
        if got is _FAILED or not isinstance(got, tuple):
            return
        rows, found = got
        for vid, row, hit in zip(ids, rows, found, strict=True):
            if hit:
                check_vec(label, vid, row)

    ids = (list(expected)[:10] + ["é\x00ü" * 3, "x" * 1024, "id-8", "id-9", "id-20", "id-21",
                                  "id-149", "after-sync", "late-4", "missing", "id-5"])
    ids = list(dict.fromkeys(ids))
    vdir = root / "vectors" / folder

    def vf_reads(tag, vf):
        call(f"{tag} len", len, vf)
        call(f"{tag} ids", vf.ids)
        call(f"{tag} contains", vf.__contains__, "id-1")
        for prop in ("dimension", "capacity", "high_water", "generation", "closed",
                     "read_only", "failed"):
            call(f"{tag} {prop}", getattr, vf, prop)
        for vid in ids:
            check_vec(f"{tag} get", vid, call(f"{tag} get", vf.get, vid))
        check_rows(f"{tag} get_batch", ids, call(f"{tag} get_batch", vf.get_batch, ids))
        dim = vf.dimension if 0 < vf.dimension <= 65536 else DIM
        qq = np.linspace(-1, 1, dim, dtype=np.float32)
        for metric in ("cosine", "dot", "l2"):
            call(f"{tag} search {metric}", vf.search, qq[None, :], 7, metric)
        call(f"{tag} search big k", vf.search, np.stack([qq, -qq]), 1 << 20, "l2", 2)
        call(f"{tag} verify", vf.verify)

    def vf_writes(tag, vf) -> dict:
        """Write; return {id: value or None (deleted)} for the writes that returned."""
        dim = vf.dimension if 0 < vf.dimension <= 65536 else DIM
        qq = np.linspace(-1, 1, dim, dtype=np.float32)
        half = (qq * 0.5).astype(np.float32)
        written.update(("id-1", "id-2", "id-10", "id-11"))
        done: dict = {}

        def write(label, vid, value, fn, *a):
            if call(f"{tag} {label}", fn, *a) is not _FAILED:
                done[vid] = value
        call(f"{tag} reserve", vf.reserve, ["new-id", "id-1"] + [f"nb{i}" for i in range(70)])
        write("put", "new-id", qq, vf.put, "new-id", qq)
        write("put existing", "id-1", qq, vf.put, "id-1", qq)
        write("update", "id-2", qq, vf.update, "id-2", qq)
        call(f"{tag} update missing", vf.update, "id-5", qq)
        nb = [f"nb{i}" for i in range(70)]
        if call(f"{tag} put_batch", vf.put_batch, nb, np.tile(qq, (70, 1))) is not _FAILED:
            done.update((vid, qq) for vid in nb)
        write("delete", "id-10", None, vf.delete, "id-10")
        call(f"{tag} delete missing", vf.delete, "id-5")
        call(f"{tag} checkpoint", vf.checkpoint)
        write("put after checkpoint", "id-11", half, vf.put, "id-11", half)
        call(f"{tag} flush", vf.flush)
        check_vec(f"{tag} get after", "new-id", call(f"{tag} get after", vf.get, "new-id"))
        call(f"{tag} verify after", vf.verify)
        return done

    def check_durable(tag, done: dict) -> None:
        """Every write that returned must be there after its writer closed (or crashed)."""
        vf = call(f"{tag} reopen", VectorFile.open, str(vdir), read_only=True)
        if vf is _FAILED:
            return
        for vid, value in done.items():
            got = call(f"{tag} get", vf.get, vid)
            if got is _FAILED:
                continue
            if value is None:
                if got is not None and not mutation.forged:
                    problems.append(f"{tag}: deleted id {vid!r} is back")
            elif got is None:
                problems.append(f"{tag}: lost write: {vid!r} is absent")
            elif np.asarray(got).tobytes() != np.asarray(value).tobytes():
                problems.append(f"{tag}: {vid!r} reads {np.asarray(got).tolist()}, "
                                f"{np.asarray(value).tolist()} was written")
        call(f"{tag} close", vf.close)

    # 1. the public API, read-only, on the store as damaged (kept open: it reads
    # again after the writers below)
    ro_store = None
    tag = f"jadevec.open({backend}, ro)"
    st = call(f"{tag} open", jadevec.open, str(root), backend=backend, read_only=True,
              flush_interval=0)
    if st is not _FAILED:
        ro_store = st

    def api_reads(tag, st, full=True):
        call(f"{tag} report", getattr, st, "recovery_report")
        names = call(f"{tag} list_databases", st.list_databases)
        if full:
            call(f"{tag} verify", st.verify)
        others = [n for n in (names if isinstance(names, list) else []) if n != "docs"]
        for name in ["docs"] + others[:3 if full else 1]:
            db = call(f"{tag} get_database", st.get_database, name)
            if db is _FAILED:
                continue
            dim = call(f"{tag} dimension", getattr, db, "dimension")
            qq = (np.linspace(-1, 1, dim, dtype=np.float32)
                  if isinstance(dim, int) and 0 < dim <= 65536 else q)
            call(f"{tag} len", len, db)
            call(f"{tag} contains", db.__contains__, "id-1")
            for vid in ids[:6]:
                got = call(f"{tag} retrieve", db.retrieve, vid)
                if name == "docs":
                    check_vec(f"{tag} retrieve", vid, got)
            for vid in ids[:4] if full else ids[:1]:
                call(f"{tag} get_metadata", db.get_metadata, vid)
            got = call(f"{tag} batch_retrieve", db.batch_retrieve, ids)
            if name == "docs" and isinstance(got, list):
                for vid, v in zip(ids, got, strict=False):
                    check_vec(f"{tag} batch_retrieve", vid, v)
            if full:
                call(f"{tag} list_vectors", db.list_vectors)
                call(f"{tag} search 2d", db.search, np.stack([qq, qq]), k=100)
            call(f"{tag} search", db.search, qq, k=5)
        return names

    if ro_store is not None:
        api_reads(tag, ro_store)

    # 2. the raw file set: a reader (kept open), then a writer beside it
    reader = call("VectorFile(ro) open", VectorFile.open, str(vdir), read_only=True)
    if reader is not _FAILED:
        call("VectorFile(ro) report", getattr, reader, "recovery_report")
        vf_reads("VectorFile(ro)", reader)
        call("VectorFile(ro) put", reader.put, "x", q)
        call("VectorFile(ro) compact_into", reader.compact_into, str(root / "ro-compact"))
    writer = call("VectorFile(rw) open", VectorFile.open, str(vdir))
    if writer is not _FAILED:
        call("VectorFile(rw) report", getattr, writer, "recovery_report")
        vf_reads("VectorFile(rw)", writer)
        if reader is not _FAILED:
            vf_reads("VectorFile(ro) beside a writer", reader)
        done = vf_writes("VectorFile(rw)", writer)
        if reader is not _FAILED:
            vf_reads("VectorFile(ro) after a checkpoint", reader)
        if call("VectorFile(rw) close", writer.close) is not _FAILED:
            check_durable("after the writer closed", done)
        call("VectorFile(rw) get after close", writer.get, "id-1")
        call("VectorFile(rw) close twice", writer.close)
    if reader is not _FAILED:
        vf_reads("VectorFile(ro) after the writer closed", reader)
        if fork_check:
            _fork_check(reader, problems, log)
        call("VectorFile(ro) close", reader.close)
        call("VectorFile(ro) get after close", reader.get, "id-1")
    if fork_check:
        w = call("VectorFile(rw) open for fork", VectorFile.open, str(vdir))
        if w is not _FAILED:
            _fork_check(w, problems, log)
            call("VectorFile(rw) close after fork", w.close)

    # 2b. a writer that crashes (a forked child that exits without closing):
    # the next writer must replay everything it wrote
    done = _crash_child(vdir, problems, log)
    if done is not None:
        w = call("after a crash: open", VectorFile.open, str(vdir))
        if w is not _FAILED:
            call("after a crash: report", getattr, w, "recovery_report")
            call("after a crash: close", w.close)
            check_durable("after a crash", done)
        written.update(done)
        known.update(np.asarray(v, np.float32).tobytes() for v in done.values() if v is not None)

    # 3. a copy of the set, marked moved under its reader
    copy = root / "moved-copy"
    try:
        shutil.copytree(vdir, copy, symlinks=True)
    except OSError:
        copy = None
    if copy is not None:
        mv = call("moved open", VectorFile.open, str(copy), read_only=True)
        call("mark_moved", mark_moved, str(copy))
        call("mark_moved again", mark_moved, str(copy))
        if mv is not _FAILED:
            for label, fn in (("get", lambda: mv.get("id-1")), ("len", lambda: len(mv)),
                              ("ids", mv.ids), ("verify", mv.verify),
                              ("search", lambda: mv.search(q[None, :], 3, "l2"))):
                got = call(f"moved {label}", fn)
                if label == "get":
                    check_vec("moved get", "id-1", got)
            call("moved close", mv.close)
        for ro in (True, False):
            vf = call(f"moved reopen ro={ro}", VectorFile.open, str(copy), read_only=ro)
            if vf is not _FAILED:
                call(f"moved reopen ro={ro} get", vf.get, "id-1")
                call(f"moved reopen ro={ro} close", vf.close)
        call("swap_folders missing", swap_folders, str(root / "nope"), str(copy),
             str(root / "old"))
        shutil.rmtree(copy, ignore_errors=True)
    call("mark_moved missing", mark_moved, str(root / "nope"))

    # 4. compaction of the raw set into a fresh folder
    vf = call("compact open", VectorFile.open, str(vdir))
    if vf is not _FAILED:
        dest = root / "compacted"
        call("compact_into existing", vf.compact_into, str(root / "vectors"))
        r = call("compact_into", vf.compact_into, str(dest))
        call("compact close", vf.close)
        if r is not _FAILED:
            for ro in (True, False):
                vf2 = call(f"compacted open ro={ro}", VectorFile.open, str(dest), read_only=ro)
                if vf2 is not _FAILED:
                    problems_before = len(problems)
                    got = call("compacted verify", vf2.verify)
                    if isinstance(got, list) and got:
                        problems.append(f"compacted set fails verify: {got[:3]}")
                    for vid in ids:
                        check_vec(f"compacted ro={ro} get", vid,
                                  call(f"compacted ro={ro} get", vf2.get, vid))
                    call(f"compacted ro={ro} close", vf2.close)
                    if len(problems) > problems_before:
                        break
        shutil.rmtree(dest, ignore_errors=True)

    # 5. MemoryMappedVectorStore: a reader beside a writer that compacts
    mm_ro = call("MMVS(ro) init", MemoryMappedVectorStore, root / "vectors", read_only=True)
    if mm_ro is not _FAILED:
        call("MMVS(ro) count", mm_ro.count, folder)
        for vid in ids[:4]:
            check_vec("MMVS(ro) retrieve", vid,
                      call("MMVS(ro) retrieve", mm_ro.retrieve_vector, folder, vid))
    mm = call("MMVS(rw) init", MemoryMappedVectorStore, root / "vectors")
    if mm is not _FAILED:
        call("MMVS(rw) count", mm.count, folder)
        for vid in ids[:4]:
            check_vec("MMVS(rw) retrieve", vid,
                      call("MMVS(rw) retrieve", mm.retrieve_vector, folder, vid))
        got = call("MMVS(rw) batch_retrieve", mm.batch_retrieve, folder, ids)
        if isinstance(got, list):
            for vid, v in zip(ids, got, strict=False):
                check_vec("MMVS(rw) batch_retrieve", vid, v)
        call("MMVS(rw) list", mm.list_vectors, folder)
        call("MMVS(rw) search", mm.search, folder, q[None, :], 5, "cosine")
        call("MMVS(rw) verify", mm.verify, folder)
        written.update(("mm-new", "mm1", "mm2"))
        call("MMVS(rw) store", mm.store_vector, folder, "mm-new", q)
        call("MMVS(rw) batch_store", mm.batch_store, folder, ["mm1", "mm2"], np.stack([q, q]))
        call("MMVS(rw) sync", mm.sync)
        if mm_ro is not _FAILED:
            check_vec("MMVS(ro) after sync", "mm-new",
                      call("MMVS(ro) retrieve after sync", mm_ro.retrieve_vector, folder,
                           "mm-new"))
        call("MMVS(rw) compact", mm.compact, folder)
        call("MMVS(rw) count after", mm.count, folder)
        if mm_ro is not _FAILED:
            for vid in ids[:4] + ["mm-new"]:
                check_vec("MMVS(ro) after compact", vid,
                          call("MMVS(ro) retrieve after compact", mm_ro.retrieve_vector,
                               folder, vid))
            call("MMVS(ro) count after compact", mm_ro.count, folder)
        call("MMVS(rw) close", mm.close)
    if mm_ro is not _FAILED:
        call("MMVS(ro) close", mm_ro.close)

    # 6. the public API for writing, then the read-only store from step 1 again
    tag = f"jadevec.open({backend}, rw)"
    st = call(f"{tag} open", jadevec.open, str(root), backend=backend, flush_interval=0)
    if st is not _FAILED:
        names = api_reads(tag, st)
        db = call(f"{tag} get_database", st.get_database, "docs")
        if db is not _FAILED:
            dim = call(f"{tag} dimension", getattr, db, "dimension")
            qq = (np.linspace(-1, 1, dim, dtype=np.float32)
                  if isinstance(dim, int) and 0 < dim <= 65536 else q)
            written.update(("api-new", "id-1", "id-2", "id-12", "b1", "b2"))
            call(f"{tag} store", db.store, "api-new", qq, metadata={"a": 1})
            call(f"{tag} store existing", db.store, "id-1", qq, metadata={"b": 1})
            call(f"{tag} update", db.update, "id-2", qq)
            call(f"{tag} batch_store", db.batch_store, ["b1", "b2"], np.stack([qq, qq]),
                 metadatas=[{"x": 1}, None])
            call(f"{tag} delete", db.delete, "id-12")
            call(f"{tag} sync", st.sync)
            if ro_store is not None:
                api_reads(f"{tag} reader after sync", ro_store, full=False)
            call(f"{tag} compact", db.compact)
            call(f"{tag} len after", len, db)
            call(f"{tag} get_metadata after", db.get_metadata, "api-new")
            check_vec(f"{tag} retrieve after", "api-new",
                      call(f"{tag} retrieve after", db.retrieve, "api-new"))
        call(f"{tag} create_database", st.create_database, "fresh", 4)
        if isinstance(names, list) and "third" in names:
            call(f"{tag} delete_database", st.delete_database, "third")
        call(f"{tag} sync", st.sync)
        call(f"{tag} verify after", st.verify)
        if ro_store is not None:
            api_reads(f"{tag} reader beside the writer", ro_store, full=False)
        call(f"{tag} close", st.close)
    if ro_store is not None:
        api_reads(f"jadevec.open({backend}, ro) after the writer closed", ro_store,
                  full=False)
        call(f"jadevec.open({backend}, ro) close", ro_store.close)
    return problems


def _wait_child(pid: int, what: str, problems: list[str]) -> int | None:
    """Wait for a forked child (30 s at most); its exit code, or None after a problem."""
    deadline = time.monotonic() + 30
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            problems.append(f"{what}: the child hung")
            status = None
            break
        if pidfd is not None:
            select.select([pidfd], [], [], 1.0)  # readable once the child exits
        else:
            time.sleep(0.002)
    if pidfd is not None:
        os.close(pidfd)
    if status is None:
        return None
    if os.WIFSIGNALED(status):
        problems.append(f"{what}: the child died of signal {os.WTERMSIG(status)}")
        return None
    return os.WEXITSTATUS(status)


def _crash_child(vdir: Path, problems: list[str], log: list[str]) -> dict | None:
    """A child opens a writer, writes, checkpoints, writes more and exits without closing.

    Returns {id: value or None} of what it wrote (every write returned), or
    None when it could not write (a typed error) or failed.
    """
    import numpy as np
    log.append("crash child")
    qc = np.asarray([0.25, -0.5, 1.0, 0.0, 2.0], dtype=np.float32)
    batch = [f"crash-b{i}" for i in range(8)]
    report = vdir.parent.parent / "crash-child.txt"
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            from jadevec._core.vector_file import VectorFile
            vf = VectorFile.open(str(vdir))
            if vf.dimension != DIM:
                os._exit(1)
            vf.put("crash-a", qc)
            vf.checkpoint()
            vf.put_batch(batch, np.tile(qc * 2, (8, 1)))
            vf.delete("id-14")
            vf.put("crash-a", qc * 3)
        except Exception as exc:  # noqa: BLE001
            code = 1 if _allowed(exc, vdir.parent.parent) else 2
            if code == 2:
                report.write_text(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        except BaseException:  # noqa: BLE001
            code = 2
        os._exit(code)  # no close: the set stays dirty, as after kill -9
    code = _wait_child(pid, "crash child", problems)
    if code == 2:
        problems.append("crash child: leaked " + (report.read_text()[-1500:]
                                                  if report.exists() else "?"))
    if code != 0:
        return None
    done = {"crash-a": qc * 3, "id-14": None}
    done.update((vid, qc * 2) for vid in batch)
    return done


def _fork_check(vf, problems: list[str], log: list[str]) -> None:
    """In a forked child, every call on the inherited ``vf`` must raise StoreClosedError."""
    log.append("fork")
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            from jadevec.errors import StoreClosedError
            for fn in (lambda: vf.get("id-1"), lambda: len(vf), vf.ids, vf.verify,
                       lambda: vf.put("x", [0.0] * DIM), vf.checkpoint):
                try:
                    fn()
                    code = 3
                except StoreClosedError:
                    pass
                except BaseException:  # noqa: BLE001
                    code = 4
            vf.close()  # releases without writing
            del vf
        except BaseException:  # noqa: BLE001
            code = 5
        os._exit(code)
    code = _wait_child(pid, "fork", problems)
    if code:
        problems.append(f"fork: the child's calls did not all raise StoreClosedError "
                        f"(exit {code})")


def _heap_check():
    """A call that walks glibc's free lists (malloc_trim), so heap damage shows at once."""
    try:
        import ctypes
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    return lambda: trim(0)


def spec_of(seed: int, n: int, only: str | None) -> tuple[random.Random, str, str, bool]:
    r = random.Random(f"{seed}:{n}")
    template = r.choice(TEMPLATES)
    klass = r.choice(only.split(",")) if only else r.choice(CLASSES)
    fork_check = r.random() < 0.1
    return r, template, klass, fork_check


def worker(templates: Path, work: Path, seed: int, numbers: list[int], only: str | None,
           verbose: bool) -> None:
    import faulthandler
    faulthandler.enable()
    import logging
    logging.getLogger("jadevec").setLevel(logging.CRITICAL)
    heap_check = _heap_check()
    for n in numbers:
        r, template, klass, fork_check = spec_of(seed, n, only)
        print(json.dumps({"start": n}), flush=True)
        root = work / f"m{n}"
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(templates / template, root)
        tpl = json.loads((templates / (template + ".expected.json")).read_text())
        backend = template.partition("-")[0]
        folders = _folders(root, backend)
        mutation = mutate(r, klass, root, folders, backend)
        print(json.dumps({"mutated": n, "desc": mutation.desc[:300]}), flush=True)
        if "whole set" in mutation.desc:
            # a consistent set of another database: undetectable by design
            tpl = {"expected": {}, "committed": {}, "known": tpl["known"]}
        log: list[str] = []
        if verbose:
            print(f"# mutant {n}: {template} {klass} {mutation.desc} forged={mutation.forged} "
                  f"fork={fork_check}", file=sys.stderr, flush=True)
        detected = None
        try:
            if mutation.must_detect:
                detected = _verify_flags(root, backend)
            problems = [] if detected in (None, True) else [
                f"verify() reported nothing after: {mutation.desc}"]
            problems += run_ops(root, backend, tpl, mutation, folders["docs"], log, verbose,
                                fork_check)
        except BaseException as exc:  # noqa: BLE001
            problems = [f"harness: {type(exc).__name__}: {exc}\n{traceback.format_exc()}"]
        shutil.rmtree(root, ignore_errors=True)
        heap_check()  # heap damage aborts here, blamed on this mutant, not a later one
        print(json.dumps({"done": n, "template": template, "class": klass,
                          "desc": mutation.desc[:300], "forged": mutation.forged,
                          "detected": detected, "problems": problems, "ops": len(log)}),
              flush=True)


def _verify_flags(root: Path, backend: str) -> bool:
    """Whether the store reports the damage (a typed error counts): first
    ``verify()`` from a read-only open, which checks the newest commit, then a
    writer's open and ``verify()``, which also check the slot records (a
    reader skips them: the writer may be changing them). A writer that
    recovers a killed store repairs a damaged slot record of a committed
    vector from the index and says so in ``recovery_report``; a kill alone
    never damages a record, so that report is the damage found."""
    import jadevec
    from jadevec.errors import JadevecError
    for read_only in (True, False):
        try:
            with jadevec.open(root, backend=backend, read_only=read_only,
                              flush_interval=0) as store:
                if not store.verify().ok:
                    return True
                report = store.recovery_report
                if report is not None and any("damaged" in a or "rewrote" in a
                                              for a in report.actions):
                    return True
        except JadevecError:
            return True
    return False


# ---------------------------------------------------------------------------
# driver


def _worker_env() -> dict[str, str]:
    """glibc's checking malloc for the workers: a write past a block aborts at its free.

    Without it a one-byte heap overflow may pass unnoticed, or abort a later
    mutant. glibc 2.34 and later need libc_malloc_debug preloaded for it.
    """
    import glob
    env = dict(os.environ, MALLOC_CHECK_="3")
    found = sorted(glob.glob("/usr/lib*/*/libc_malloc_debug.so.0")
                   + glob.glob("/lib*/*/libc_malloc_debug.so.0")
                   + glob.glob("/usr/lib*/libc_malloc_debug.so.0"))
    if found:
        env["LD_PRELOAD"] = " ".join(filter(None, [env.get("LD_PRELOAD"), found[0]]))
    return env


def _scratch_dir() -> str | None:
    """Where mutants are written: a RAM file system when there is one.

    Every open and close syncs; on a disk that, not the code under test, is
    what a mutant's time goes to.
    """
    for candidate in (os.environ.get("JADEVEC_FUZZ_TMP"), "/dev/shm"):
        if candidate and os.path.isdir(candidate) and os.access(candidate, os.W_OK):
            return candidate
    return None


def drive(seed: int, numbers: list[int], only: str | None, jobs: int, timeout: float,
          verbose: bool) -> dict:
    base = Path(tempfile.mkdtemp(prefix="jadevec-fuzz-", dir=_scratch_dir()))
    started = time.monotonic()
    try:
        build_templates(base / "templates")
        chunks = [numbers[i::jobs] for i in range(jobs)]
        results: dict[int, dict] = {}
        failures: list[dict] = []
        procs: list[dict] = []

        def spawn(todo: list[int]) -> None:
            if not todo:
                return
            cmd = [sys.executable, __file__, "--worker", "--seed", str(seed),
                   "--templates", str(base / "templates"), "--work", str(base / "work"),
                   "--numbers", ",".join(map(str, todo))]
            if only:
                cmd += ["--only", only]
            if verbose:
                cmd.append("--verbose")
            # stderr goes to a file: recovery logs a warning per mutant, and a
            # pipe nobody reads fills up and blocks the worker (a false hang).
            err = tempfile.TemporaryFile()
            p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=_worker_env())
            procs.append({"p": p, "todo": list(todo), "cur": None, "t": time.monotonic(),
                          "buf": b"", "err": err})

        (base / "work").mkdir()
        for c in chunks:
            spawn(c)
        while procs:
            for w in list(procs):
                p = w["p"]
                ready, _, _ = select.select([p.stdout], [], [], 0.05)
                if ready:
                    chunk = os.read(p.stdout.fileno(), 65536)
                    w["buf"] += chunk
                    while b"\n" in w["buf"]:
                        line, w["buf"] = w["buf"].split(b"\n", 1)
                        msg = json.loads(line)
                        if "start" in msg:
                            w["cur"], w["t"] = msg["start"], time.monotonic()
                            w["desc"] = ""
                        elif "mutated" in msg:
                            w["desc"] = msg["desc"]
                        else:
                            results[msg["done"]] = msg
                            w["todo"].remove(msg["done"])
                            w["cur"] = None
                            if msg["problems"]:
                                failures.append(msg)
                    if chunk:
                        continue
                hung = w["cur"] is not None and time.monotonic() - w["t"] > timeout
                if p.poll() is not None or hung:
                    if hung:
                        p.kill()
                    p.wait()
                    w["err"].seek(0)
                    err = w["err"].read().decode(errors="replace")
                    w["err"].close()
                    if verbose:
                        sys.stderr.write(err)
                    procs.remove(w)
                    if w["cur"] is not None:
                        n = w["cur"]
                        _, template, klass, _ = spec_of(seed, n, only)
                        what = "hang" if hung else f"worker died, rc={p.returncode}"
                        failures.append({"done": n, "template": template, "class": klass,
                                         "desc": w.get("desc", ""),
                                         "problems": [what + "\n" + err[-3000:]]})
                        results[n] = failures[-1]
                        w["todo"].remove(n)
                    elif p.returncode and w["todo"]:
                        failures.append({"done": None, "problems": [f"worker rc={p.returncode}"
                                                                    + err[-3000:]]})
                        break
                    spawn(w["todo"])
        per_class: dict[str, int] = {}
        failed_per_class: dict[str, int] = {}
        must_detect = [m for m in results.values() if m.get("detected") is not None]
        for msg in results.values():
            k = msg.get("class", "?")
            per_class[k] = per_class.get(k, 0) + 1
            if msg.get("problems"):
                failed_per_class[k] = failed_per_class.get(k, 0) + 1
        return {"seed": seed, "mutants": len(results), "per_class": per_class,
                "failed_per_class": failed_per_class,
                "checksummed_damage": len(must_detect),
                "checksummed_damage_detected": sum(m["detected"] for m in must_detect),
                "seconds": round(time.monotonic() - started, 1), "failures": failures}
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _classes(text: str) -> str:
    bad = [k for k in text.split(",") if k not in CLASSES]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown class {bad[0]!r}; choose from {CLASSES}")
    return text


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--mutant", type=int)
    ap.add_argument("--only", type=_classes,
                    help="a mutation class, or several separated by commas")
    ap.add_argument("--jobs", type=int, default=min(8, os.cpu_count() or 1))
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--templates")
    ap.add_argument("--work")
    ap.add_argument("--numbers")
    a = ap.parse_args()
    if a.worker:
        worker(Path(a.templates), Path(a.work), a.seed,
               [int(x) for x in a.numbers.split(",")], a.only, a.verbose)
        return
    numbers = [a.mutant] if a.mutant is not None else list(range(a.start, a.start + a.count))
    out = drive(a.seed, numbers, a.only, min(a.jobs, len(numbers)), a.timeout, a.verbose)
    print(json.dumps(out, indent=1))
    sys.exit(1 if out["failures"] else 0)


if __name__ == "__main__":
    main()
