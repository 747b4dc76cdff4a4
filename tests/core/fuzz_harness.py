"""Seeded corruption fuzzer for jadevec's on-disk files (research/reliability.md, T5).

Run as a script, it is the *driver*: it builds template stores (mmap and
hybrid, clean and killed), spreads mutant numbers over worker subprocesses
and prints a JSON summary. A worker copies a template, applies one seeded
mutation, then opens the result through ``VectorFile.open`` (read-only and
read-write), ``MemoryMappedVectorStore`` and ``jadevec.open`` and calls every
reading and writing operation. Each operation must succeed or raise a
``jadevec.errors.JadevecError`` (or an ``OSError`` naming a path); a leaked
builtin error, a signal (SIGSEGV, SIGBUS, abort) or a hang fails the mutant.
A crashed or hung worker is restarted after the mutant that killed it.

    python tests/core/fuzz_harness.py --count 2000 --seed 1 [--jobs 8] [--only CLASS]

Mutant ``n`` of seed ``s`` is fully determined by ``(s, n)``; rerun one with
``--mutant n --verbose``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import shutil
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

VECTOR_FILES = ("vectors.jvdb", "slots.jvsl", "index.jvix", "ids.jvid")
TEMPLATES = ("mmap", "hybrid", "mmap-killed", "hybrid-killed")
CLASSES = ("flip", "zero", "garbage", "truncate", "extend", "swap", "delete",
           "header", "record", "catalog", "metalog", "sqlite")
DIM = 5
DIM_OTHER = 3
N = 40


# ---------------------------------------------------------------------------
# templates


def _vectors(n: int, dim: int, salt: int) -> list[list[float]]:
    r = random.Random(salt)
    return [[r.uniform(-1, 1) for _ in range(dim)] for _ in range(n)]


def _fill(store, kill: bool) -> dict[str, list[float]]:
    db = store.create_database("docs", DIM, metric="cosine")
    other = store.create_database("Other", DIM_OTHER, metric="l2")
    third = store.create_database("third", DIM, metric="dot")
    expected: dict[str, list[float]] = {}
    vecs = _vectors(N, DIM, 1)
    ids = [f"id-{i}" for i in range(N)]
    ids[3] = "é\x00ü" * 3
    ids[4] = "x" * 1024
    db.batch_store(ids[:30], vecs[:30],
                   metadatas=[{"i": i} if i % 2 else None for i in range(30)])
    for i in range(30, N):
        db.store(ids[i], vecs[i], metadata={"k": [i, "v"]})
    expected.update(zip(ids, vecs, strict=True))
    for i in (5, 6, 7):
        db.delete(ids[i])
        del expected[ids[i]]
    for i in (8, 9):
        v = [x * 2 for x in vecs[i]]
        db.update(ids[i], v, metadata={"u": i})
        expected[ids[i]] = v
    store.sync()
    ov = _vectors(10, DIM_OTHER, 2)
    other.batch_store([f"o{i}" for i in range(10)], ov)
    third.batch_store([f"t{i}" for i in range(5)], _vectors(5, DIM, 3))
    if kill:
        store.sync()
        db.store("after-sync", vecs[0], metadata={"late": True})
        expected["after-sync"] = vecs[0]
    return expected


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
# mutations (all driven by one random.Random)

U32 = (0, 1, 2, 3, 7, 63, 64, 65, 4095, 4096, 65536, 65537, 1 << 16, 1 << 20,
       (1 << 31) - 1, 1 << 31, (1 << 32) - 2, (1 << 32) - 1)
U64 = U32 + ((1 << 32), (1 << 40), (1 << 62), (1 << 63) - 1, 1 << 63, (1 << 64) - 1)

# (offset, size) of every header field: vectors.jvdb commit record, common header
COMMIT_FIELDS = [(0, 4), (4, 4), (8, 4), (12, 4), (16, 8), (24, 8), (32, 8), (40, 8),
                 (48, 4), (52, 4), (56, 4)]
COMMON_FIELDS = {
    "slots.jvsl": [(0, 4), (4, 4), (8, 8), (16, 8), (24, 4), (28, 4)],
    "index.jvix": [(0, 4), (4, 4), (8, 8), (16, 8), (24, 8), (32, 8), (40, 4)],
    "ids.jvid": [(0, 4), (4, 4), (8, 8), (16, 8)],
}
SLOT_FIELDS = [(0, 8), (8, 4), (12, 4), (16, 8), (24, 4)]
ENTRY_FIELDS = [(0, 8), (8, 4), (12, 4), (16, 4), (20, 4), (24, 4)]


def _crc32c(data: bytes) -> int:
    from jadevec._core.vector_file import crc32c
    return crc32c(data)


def _set_field(data: bytearray, base: int, off: int, size: int, value: int,
               fix_crc: bool, crc_span: int = 60) -> None:
    if base + off + size > len(data):
        return
    data[base + off: base + off + size] = (value % (1 << (8 * size))).to_bytes(size, "little")
    if fix_crc and base + crc_span + 4 <= len(data):
        crc = _crc32c(bytes(data[base: base + crc_span]))
        data[base + crc_span: base + crc_span + 4] = struct.pack("<I", crc)


def _pick_value(r: random.Random, size: int, data_len: int, cur: int) -> int:
    pool = list(U32 if size == 4 else U64)
    pool += [data_len, data_len + 1, data_len - 1, data_len * 2, cur + 1, cur - 1,
             cur ^ (1 << r.randrange(8 * size)), (1 << (8 * size)) - cur]
    return r.choice(pool)


def _biased_offset(r: random.Random, n: int) -> int:
    if n <= 0:
        return 0
    c = r.random()
    if c < 0.35:
        return r.randrange(min(n, 64))
    if c < 0.5 and n > 2048:
        return 2048 + r.randrange(min(n - 2048, 64))
    if c < 0.7:
        return r.randrange(min(n, 4096 + 512))
    return r.randrange(n)


def _truncate_length(r: random.Random, n: int) -> int:
    special = [0, 1, 31, 32, 63, 64, 65, 95, 96, 2047, 2048, 2111, 2112, 4095, 4096, 4097,
               n - 1, n - 32, n - 64, n // 2, n - 4096]
    if r.random() < 0.6:
        return max(0, min(n, r.choice(special)))
    return r.randrange(n + 1)


def _vector_target(r: random.Random, root: Path, folder: str) -> Path:
    return root / "vectors" / folder / r.choice(VECTOR_FILES)


def mutate(r: random.Random, klass: str, root: Path, folders: dict[str, str],
           backend: str) -> str:
    """Damage the store at ``root``; return a description."""
    folder = folders["docs"]
    if klass in ("flip", "zero", "garbage", "truncate", "extend", "delete"):
        p = _vector_target(r, root, folder)
        data = bytearray(p.read_bytes())
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
                start = (r.randrange(max(1, n)) // 4096) * 4096
                length = 4096
            else:
                start = _biased_offset(r, n)
                length = r.choice([1, 4, 8, 16, 32, 64, 100, 512, 4096])
            fill = (bytes(length) if klass == "zero"
                    else bytes(r.randrange(256) for _ in range(length)))
            data[start:start + length] = fill[: max(0, n - start)]
            desc = f"{klass} {p.name} [{start}, +{length})"
        elif klass == "truncate":
            m = _truncate_length(r, n)
            del data[m:]
            desc = f"truncate {p.name} to {m} of {n}"
        elif klass == "extend":
            m = r.choice([1, 7, 64, 4096, 4097, 100000])
            zeros = r.random() < 0.5
            data += bytes(m) if zeros else bytes(r.randrange(256) for _ in range(m))
            desc = f"extend {p.name} by {m} {'zeros' if zeros else 'garbage'}"
        else:
            p.unlink()
            return f"delete {p.name}"
        p.write_bytes(bytes(data))
        return desc
    if klass == "swap":
        name = r.choice(VECTOR_FILES)
        src_db = r.choice(["Other", "third"])
        src = root / "vectors" / folders[src_db] / name
        if r.random() < 0.3:  # the whole file set of another database
            for f in VECTOR_FILES:
                shutil.copyfile(root / "vectors" / folders[src_db] / f,
                                root / "vectors" / folder / f)
            return f"swap whole set from {src_db}"
        shutil.copyfile(src, root / "vectors" / folder / name)
        return f"swap {name} from {src_db}"
    if klass == "header":
        name = r.choice(VECTOR_FILES)
        p = root / "vectors" / folder / name
        data = bytearray(p.read_bytes())
        fix = r.random() < 0.8
        descs = []
        for _ in range(r.choice([1, 1, 1, 2, 3])):
            if name == "vectors.jvdb":
                bases = r.choice([[0], [2048], [0, 2048]])
                off, size = r.choice(COMMIT_FIELDS)
            else:
                bases = [0]
                off, size = r.choice(COMMON_FIELDS[name])
            cur = int.from_bytes(data[off:off + size], "little") if off + size <= len(data) else 0
            val = _pick_value(r, size, len(data), cur)
            for b in bases:
                _set_field(data, b, off, size, val, fix)
            descs.append(f"@{bases}+{off}={val}")
        p.write_bytes(bytes(data))
        return f"header {name} {' '.join(descs)} crc_fixed={fix}"
    if klass == "record":
        name = r.choice(["slots.jvsl", "index.jvix", "ids.jvid"])
        p = root / "vectors" / folder / name
        data = bytearray(p.read_bytes())
        fix = r.random() < 0.85
        descs = []
        for _ in range(r.choice([1, 1, 2, 4])):
            if name == "ids.jvid":
                # walk the id records and damage a length or a crc
                offs, o = [], 64
                while o + 8 <= len(data):
                    ln = struct.unpack_from("<I", data, o)[0]
                    if ln == 0 or ln > 1024:
                        break
                    offs.append(o)
                    o += 8 + ((ln + 7) & ~7)
                if not offs:
                    break
                o = r.choice(offs)
                field = r.choice([0, 4])
                val = r.choice(U32 + (0, 1024, 1025))
                data[o + field:o + field + 4] = struct.pack("<I", val)
                descs.append(f"idrec@{o}+{field}={val}")
                continue
            count = (len(data) - 64) // 32
            if count <= 0:
                break
            live = [i for i in range(count) if any(data[64 + i * 32: 96 + i * 32])]
            i = r.choice(live) if live and r.random() < 0.9 else r.randrange(count)
            off, size = r.choice(SLOT_FIELDS if name == "slots.jvsl" else ENTRY_FIELDS)
            base = 64 + i * 32
            cur = int.from_bytes(data[base + off: base + off + size], "little")
            val = _pick_value(r, size, len(data), cur)
            if size == 4 and off in (12, 16) and r.random() < 0.5:
                val = r.choice([0, 1, 2, 3, 4, 255])  # flags
            _set_field(data, base, off, size, val, fix, crc_span=28)
            descs.append(f"rec{i}+{off}={val}")
        if name == "index.jvix" and r.random() < 0.15:
            # a table with no empty entry: fill every EMPTY with a valid-looking entry
            count = (len(data) - 64) // 32
            for i in range(count):
                base = 64 + i * 32
                if not any(data[base:base + 32]):
                    data[base:base + 28] = struct.pack("<QIIIII", r.getrandbits(64), 0,
                                                       DIM * 4, 2, 0, 0)
                    _set_field(data, base, 0, 0, 0, True, crc_span=28)
            descs.append("full table")
        p.write_bytes(bytes(data))
        return f"record {name} {' '.join(descs)} crc_fixed={fix}"
    if klass == "catalog":
        if backend != "mmap":
            return mutate(r, "sqlite", root, folders, backend)
        p = root / "catalog.json"
        doc = json.loads(p.read_bytes())
        c = r.random()
        if c < 0.3:
            data = bytearray(p.read_bytes())
            for _ in range(r.randint(1, 4)):
                data[r.randrange(len(data))] = r.randrange(256)
            if r.random() < 0.3:
                del data[r.randrange(len(data)):]
            p.write_bytes(bytes(data))
            return "catalog bytes"
        weird = [None, -1, 0, 65537, 1 << 70, 1.5, "x", "", [], {}, True, "../..", "..",
                 "/etc", "db-\x00", "a/b", float("1e308"), "é" * 300]
        if c < 0.85 and doc["databases"]:
            d = r.choice(doc["databases"])
            key = r.choice(["name", "dimension", "metric", "folder", "extra"])
            val = r.choice(weird + ["docs", "DOCS", "other", "cosine", "l2", 3, 5, 2,
                                    folders["Other"]])
            if r.random() < 0.1:
                d.pop(key, None)
                desc = f"catalog drop {key}"
            else:
                d[key] = val
                desc = f"catalog {key}={val!r}"
        else:
            key = r.choice(["format", "version", "clean", "databases", "root"])
            val = r.choice(weird + [2, 1 << 64, [1, 2], [None], [[]], "jadevec-mmap"])
            if r.random() < 0.15:
                doc = r.choice([[], None, 1, "s", [doc]])
                desc = f"catalog doc={doc!r}"[:80]
            else:
                doc[key] = val
                desc = f"catalog top {key}={val!r}"
        p.write_text(json.dumps(doc))
        return desc
    if klass == "metalog":
        if backend != "mmap":
            return mutate(r, "sqlite", root, folders, backend)
        p = root / "metadata" / f"{folder}.jsonl"
        lines = p.read_bytes().split(b"\n")
        c = r.random()
        bad = [b"[]", b"{}", b"1", b"null", b"[1]", b"[null]", b'["id-1", 1, 2, 3, 4]',
               b'["id-1", {"a": 1}, "fp", null, null]', b'["id-1", null, null, null, null]',
               b'["id-1", {"a": 1}, 1e400, null, null]', b'[[1], null, 1, null, null]',
               b'["id-10", [1,2], 99, "x", 1.5]', b'"\xff\xfe"', b"[" * 100000,
               b'["id-1", {}, -1, {}, 18446744073709551617]', b'["id-11"]',
               b'[{"a": 1}]', b'["id-12", 1, 2]', b"\xff\xfe\xfd"]
        i = r.randrange(len(lines))
        if c < 0.7:
            lines.insert(i, r.choice(bad))
            desc = f"metalog insert line {i}"
        elif c < 0.9:
            data = bytearray(b"\n".join(lines))
            for _ in range(r.randint(1, 4)):
                data[r.randrange(len(data))] = r.randrange(256)
            p.write_bytes(bytes(data))
            return "metalog bytes"
        else:
            p.write_bytes(bytes(r.randrange(256) for _ in range(r.randint(1, 500))))
            return "metalog garbage"
        p.write_bytes(b"\n".join(lines))
        return desc
    if klass == "sqlite":
        p = root / "catalog.sqlite3"
        if backend != "hybrid" or not p.exists():
            return mutate(r, "catalog", root, folders, "mmap")
        c = r.random()
        if c < 0.4:
            data = bytearray(p.read_bytes())
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
            return desc
        weird = ["NULL", "-1", "0", "65537", "9223372036854775807", "1.5", "'x'", "''",
                 "'../..'", "'..'", "'/etc'", "X'00ff'", "'bogus'", "'docs'", "'DOCS'",
                 "'cosine'", "'creating'", "'deleting'", "'live'", "'{'", "'[1]'", "'{}'",
                 f"'{folders['Other']}'", "'Other'", "'other'", "3", "x'ff'"]
        stmts = [
            ("databases", ["name", "name_lower", "dimension", "metric", "folder", "state"],
             "name = 'docs'"),
            ("vector_meta", ["id", "meta", "fp", "prev_meta", "prev_fp"],
             f"folder = '{folder}' AND id = 'id-{r.choice([1, 8, 11, 31])}'"),
            ("store_state", ["value"], f"key = '{r.choice(['format', 'clean'])}'"),
        ]
        table, cols, where = r.choice(stmts)
        col = r.choice(cols)
        val = r.choice(weird)
        con = sqlite3.connect(p)
        try:
            if r.random() < 0.1:
                con.execute(f"DROP TABLE {table}")
                desc = f"sqlite drop {table}"
            else:
                con.execute(f"UPDATE {table} SET {col} = {val} WHERE {where}")
                desc = f"sqlite {table}.{col}={val}"
            con.commit()
        except sqlite3.Error as exc:
            desc = f"sqlite no-op ({exc})"
        finally:
            con.close()
        return desc
    raise ValueError(klass)


# ---------------------------------------------------------------------------
# worker: run the operations on one mutant


class Leak(Exception):
    pass


def _allowed(exc: BaseException, root: Path) -> bool:
    from jadevec.errors import JadevecError
    if isinstance(exc, JadevecError):
        return True
    if isinstance(exc, OSError):
        text = f"{exc} {exc.filename or ''} {exc.filename2 or ''}"
        return str(root) in text
    return False


def _folders(root: Path, backend: str) -> dict[str, str]:
    if backend == "mmap":
        doc = json.loads((root / "catalog.json").read_bytes())
        return {d["name"]: d["folder"] for d in doc["databases"]}
    con = sqlite3.connect(root / "catalog.sqlite3")
    try:
        return dict(con.execute("SELECT name, folder FROM databases"))
    finally:
        con.close()


def run_ops(root: Path, backend: str, expected: dict, folder: str, log: list[str]) -> list[str]:
    """Call everything; return problems (leaked errors, wrong vectors)."""
    import numpy as np

    import jadevec
    from jadevec._core.vector_file import VectorFile
    from jadevec.backends.mmap import MemoryMappedVectorStore

    problems: list[str] = []
    q = np.linspace(-1, 1, DIM, dtype=np.float32)

    def call(label, fn, *a, **kw):
        log.append(label)
        try:
            return fn(*a, **kw)
        except Exception as exc:  # noqa: BLE001 - the point of the harness
            if not _allowed(exc, root):
                problems.append(f"{label}: {type(exc).__name__}: {exc}"[:300] + "\n"
                                + "".join(traceback.format_exc(limit=-3))[-600:])
            return _FAILED

    written: set[str] = set()  # ids some write touched: their value is no longer known

    def check_vec(label, vid, got):
        if got is _FAILED or got is None or vid not in expected or vid in written:
            return
        exp = np.asarray(expected[vid], dtype=np.float32)
        if got.shape != exp.shape or not np.array_equal(got, exp):
            problems.append(f"{label}: silently wrong vector for {vid!r}")

    ids = list(expected)[:12] + ["missing", "id-5"]
    vdir = root / "vectors" / folder

    def vf_ops(tag, vf, write):
        call(f"{tag} len", len, vf)
        call(f"{tag} ids", vf.ids)
        call(f"{tag} contains", vf.__contains__, "id-1")
        for vid in ids:
            got = call(f"{tag} get", vf.get, vid)
            if vf.dimension == DIM:
                check_vec(f"{tag} get", vid, got)
        call(f"{tag} get_batch", vf.get_batch, ids)
        call(f"{tag} slots_of", vf.slots_of, ids)
        call(f"{tag} live_slots", vf.live_slots)
        call(f"{tag} vectors_view", lambda: np.asarray(vf.vectors_view()).sum())
        qq = np.linspace(-1, 1, vf.dimension, dtype=np.float32)
        for metric in ("cosine", "dot", "l2"):
            call(f"{tag} search {metric}", vf.search, qq[None, :], 7, metric)
        call(f"{tag} search big k", vf.search, qq[None, :], 1 << 20, "l2", 2)
        call(f"{tag} verify", vf.verify)
        if write:
            written.update(("id-1", "id-2", "id-10"))
            call(f"{tag} put", vf.put, "new-id", qq)
            call(f"{tag} put existing", vf.put, "id-1", qq)
            call(f"{tag} update", vf.update, "id-2", qq)
            call(f"{tag} put_batch", vf.put_batch, [f"nb{i}" for i in range(70)],
                 np.tile(qq, (70, 1)))
            call(f"{tag} delete", vf.delete, "id-10")
            call(f"{tag} delete missing", vf.delete, "id-5")
            call(f"{tag} checkpoint", vf.checkpoint)
            call(f"{tag} flush", vf.flush)
            call(f"{tag} get after", vf.get, "new-id")
            call(f"{tag} verify after", vf.verify)

    # 1. the raw file set, read-only then read-write
    for ro in (True, False):
        tag = f"VectorFile(ro={ro})"
        vf = call(f"{tag} open", VectorFile.open, str(vdir), read_only=ro)
        if vf is not _FAILED:
            call(f"{tag} report", getattr, vf, "recovery_report")
            vf_ops(tag, vf, write=not ro)
            call(f"{tag} close", vf.close)
            call(f"{tag} get after close", vf.get, "id-1")

    # 2. compaction of the raw set into a fresh folder
    vf = call("compact open", VectorFile.open, str(vdir))
    if vf is not _FAILED:
        dest = root / "compacted"
        r = call("compact_into", vf.compact_into, str(dest))
        call("compact close", vf.close)
        if r is not _FAILED:
            vf2 = call("compacted open", VectorFile.open, str(dest))
            if vf2 is not _FAILED:
                call("compacted verify", vf2.verify)
                call("compacted close", vf2.close)
        shutil.rmtree(dest, ignore_errors=True)

    # 3. MemoryMappedVectorStore over the vectors folder
    for ro in (True, False):
        tag = f"MMVS(ro={ro})"
        s = call(f"{tag} init", MemoryMappedVectorStore, root / "vectors", read_only=ro)
        if s is _FAILED:
            continue
        call(f"{tag} count", s.count, folder)
        for vid in ids[:4]:
            got = call(f"{tag} retrieve", s.retrieve_vector, folder, vid)
        call(f"{tag} batch_retrieve", s.batch_retrieve, folder, ids)
        call(f"{tag} list", s.list_vectors, folder)
        call(f"{tag} search", s.search, folder, q[None, :], 5, "cosine")
        call(f"{tag} verify", s.verify, folder)
        if not ro:
            written.update(("id-1", "id-2", "id-10"))
            call(f"{tag} store", s.store_vector, folder, "mm-new", q)
            call(f"{tag} batch_store", s.batch_store, folder, ["mm1", "mm2"], np.stack([q, q]))
            call(f"{tag} compact", s.compact, folder)
            call(f"{tag} count after", s.count, folder)
        call(f"{tag} close", s.close)

    # 4. the public API, read-only then read-write
    for ro in (True, False):
        tag = f"jadevec.open({backend}, ro={ro})"
        st = call(f"{tag} open", jadevec.open, str(root), backend=backend, read_only=ro,
                  flush_interval=0)
        if st is _FAILED:
            continue
        call(f"{tag} report", getattr, st, "recovery_report")
        names = call(f"{tag} list_databases", st.list_databases)
        call(f"{tag} verify", st.verify)
        for name in (["docs"] + (names if isinstance(names, list) else []))[:4]:
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
                if name == "docs" and dim == DIM:
                    check_vec(f"{tag} retrieve", vid, got)
                call(f"{tag} get_metadata", db.get_metadata, vid)
            call(f"{tag} batch_retrieve", db.batch_retrieve, ids)
            call(f"{tag} list_vectors", db.list_vectors)
            call(f"{tag} search", db.search, qq, k=5)
            call(f"{tag} search 2d", db.search, np.stack([qq, qq]), k=100)
            if not ro:
                written.update(("id-1", "id-2", "id-11"))
                call(f"{tag} store", db.store, "api-new", qq, metadata={"a": 1})
                call(f"{tag} store existing", db.store, "id-1", qq, metadata={"b": 1})
                call(f"{tag} update", db.update, "id-2", qq)
                call(f"{tag} batch_store", db.batch_store, ["b1", "b2"], np.stack([qq, qq]),
                     metadatas=[{"x": 1}, None])
                call(f"{tag} delete", db.delete, "id-11")
                call(f"{tag} compact", db.compact)
                call(f"{tag} len after", len, db)
                call(f"{tag} get_metadata after", db.get_metadata, "api-new")
        if not ro:
            call(f"{tag} create_database", st.create_database, "fresh", 4)
            call(f"{tag} delete_database", st.delete_database, "third")
            call(f"{tag} sync", st.sync)
            call(f"{tag} verify after", st.verify)
        call(f"{tag} close", st.close)
    return problems


class _Failed:
    def __repr__(self) -> str:
        return "<failed>"


_FAILED = _Failed()


def spec_of(seed: int, n: int, only: str | None) -> tuple[random.Random, str, str]:
    r = random.Random(f"{seed}:{n}")
    template = r.choice(TEMPLATES)
    klass = only or r.choice(CLASSES)
    return r, template, klass


def worker(templates: Path, work: Path, seed: int, numbers: list[int], only: str | None,
           verbose: bool) -> None:
    import faulthandler
    faulthandler.enable()
    for n in numbers:
        r, template, klass = spec_of(seed, n, only)
        print(json.dumps({"start": n}), flush=True)
        root = work / f"m{n}"
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(templates / template, root)
        expected = json.loads((templates / (template + ".expected.json")).read_text())
        backend = template.partition("-")[0]
        folders = _folders(root, backend)
        desc = mutate(r, klass, root, folders, backend)
        if "whole set" in desc:
            expected = {}  # a consistent set of another database: undetectable by design
        log: list[str] = []
        if verbose:
            print(f"# mutant {n}: {template} {desc}", file=sys.stderr, flush=True)
        try:
            problems = run_ops(root, backend, expected, folders["docs"], log)
        except BaseException as exc:  # noqa: BLE001
            problems = [f"harness: {type(exc).__name__}: {exc}\n{traceback.format_exc()}"]
        shutil.rmtree(root, ignore_errors=True)
        print(json.dumps({"done": n, "template": template, "class": klass, "desc": desc[:300],
                          "problems": problems, "ops": len(log)}), flush=True)


# ---------------------------------------------------------------------------
# driver


def drive(seed: int, numbers: list[int], only: str | None, jobs: int, timeout: float,
          verbose: bool) -> dict:
    base = Path(tempfile.mkdtemp(prefix="jadevec-fuzz-"))
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
            p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
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
                    procs.remove(w)
                    if w["cur"] is not None:
                        n = w["cur"]
                        _, template, klass = spec_of(seed, n, only)
                        failures.append({"done": n, "template": template, "class": klass,
                                         "problems": [("hang" if hung else
                                                       f"worker died, rc={p.returncode}")
                                                      + "\n" + err[-3000:]]})
                        results[n] = failures[-1]
                        w["todo"].remove(n)
                    elif p.returncode and w["todo"]:
                        failures.append({"done": None, "problems": [f"worker rc={p.returncode}"
                                                                    + err[-3000:]]})
                        break
                    spawn(w["todo"])
        per_class: dict[str, int] = {}
        for msg in results.values():
            per_class[msg.get("class", "?")] = per_class.get(msg.get("class", "?"), 0) + 1
        return {"seed": seed, "mutants": len(results), "per_class": per_class,
                "failures": failures}
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--mutant", type=int)
    ap.add_argument("--only", choices=CLASSES)
    ap.add_argument("--jobs", type=int, default=min(8, os.cpu_count() or 1))
    ap.add_argument("--timeout", type=float, default=60.0)
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
    out = drive(a.seed, numbers, a.only, a.jobs, a.timeout, a.verbose)
    print(json.dumps(out, indent=1))
    sys.exit(1 if out["failures"] else 0)


if __name__ == "__main__":
    main()
