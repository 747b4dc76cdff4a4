"""Damage to the plugin's files is an error, never a crash: a fuzzer.

Each case copies a pristine store, damages one of its files (bit flips, a
truncation, a zeroed or garbage page, garbage appended, a deleted lock file)
and opens and uses the copy in a forked child, read-only and then as the
writer: list, count, retrieve, metadata, search, verify, store, delete,
compact, create and delete a database. The parent counts children killed by a
signal, children that hang (killed after a timeout), calls that raised
anything but a jadevec error, and ``CorruptionError``s that do not name a file
of the store; every count must be zero.

The quick run (``JADEVEC_FUZZ_QUICK`` cases, default 300) is part of the
default test run; the long one (``JADEVEC_FUZZ_CASES``, default 3000) carries
the ``slow`` marker. ``JADEVEC_FUZZ_REPORT`` names a file to which each run
appends its counts as one JSON line.
"""

from __future__ import annotations

import faulthandler
import json
import os
import random
import shutil
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import jadevec
import numpy as np
import pytest
from jadevec.errors import CorruptionError, JadevecError

DIM = 16
#: Seconds a case may take before its child counts as hung.
CASE_TIMEOUT = 60.0


def build_pristine(path: Path) -> None:
    """A store with what LMDB lays out differently: many small records, hashed
    long ids, a value on overflow pages, freed pages, three databases."""
    rng = np.random.default_rng(3)
    with jadevec.open(path, backend="lmdb", flush_interval=0) as store:
        docs = store.create_database("docs", DIM, metric="cosine")
        ids = [f"doc-{i}" for i in range(800)]
        docs.batch_store(ids, rng.standard_normal((800, DIM)).astype(np.float32),
                         metadatas=[{"i": i, "tag": "t" * (i % 40)} for i in range(800)])
        for i in range(0, 800, 7):
            docs.delete(f"doc-{i}")
        docs.store("é" * 400, np.ones(DIM), metadata={"long": True})  # a hashed key
        docs.store("big", np.full(DIM, 2.0), metadata={"text": "x" * 12000})  # overflow pages
        points = store.create_database("points", 3, metric="l2")
        points.batch_store([f"p{i}" for i in range(50)], np.arange(150.0).reshape(50, 3))
        store.create_database("empty", 5, metric="dot")
        store.create_database("gone", 2).store("x", [1.0, 1.0])
        store.delete_database("gone")


# -- damage ----------------------------------------------------------------------------------

def page_size(data: Path) -> int:
    raw = data.read_bytes()[:64]
    # mm_psize: the first field of the free database's record in meta page 0.
    return int.from_bytes(raw[40:44], "little") if len(raw) >= 44 else 4096


def make_cases(count: int, seed: int, files: list[str], size: int, psize: int) -> list[dict]:
    """``count`` damage cases, reproducible from ``seed``; the first ones are fixed."""
    pages = max(size // psize, 1)
    fixed: list[dict] = [
        {"file": "lock.mdb", "kind": "delete"},
        {"file": "lock.mdb", "kind": "truncate", "size": 0},
        {"file": "lock.mdb", "kind": "truncate", "size": 100},
        {"file": "lock.mdb", "kind": "garbage_page", "page": 0},
        {"file": "lock.mdb", "kind": "zero_page", "page": 0},
        {"file": ".lock", "kind": "delete"},
        {"file": ".lock", "kind": "garbage_page", "page": 0},
        {"file": "data.mdb", "kind": "delete"},
        {"file": "data.mdb", "kind": "append", "bytes": 12345},
    ]
    for cut in sorted({0, 1, 100, 151, psize - 1, psize, psize + 100, 2 * psize - 1,
                       2 * psize, 3 * psize, size // 2, size - psize, size - psize - 1,
                       size - 1}):
        if 0 <= cut < size:
            fixed.append({"file": "data.mdb", "kind": "truncate", "size": cut})
    for page in sorted({0, 1, 2, 3, pages // 2, pages - 1}):
        fixed.append({"file": "data.mdb", "kind": "zero_page", "page": page})
        fixed.append({"file": "data.mdb", "kind": "garbage_page", "page": page})
    rnd = random.Random(seed)
    cases = fixed[:count]
    while len(cases) < count:
        roll = rnd.random()
        name = "data.mdb" if roll < 0.9 else rnd.choice(files)
        if roll < 0.3:  # single bits anywhere
            cases.append({"file": name, "kind": "flip_bits",
                          "offsets": [rnd.randrange(size) for _ in range(rnd.randint(1, 8))],
                          "seed": rnd.randrange(1 << 30)})
        elif roll < 0.45:  # a few bits of the meta pages, whose fields LMDB trusts most
            base = rnd.choice((0, psize))
            cases.append({"file": "data.mdb", "kind": "flip_bits",
                          "offsets": [base + rnd.randrange(152) for _ in range(rnd.randint(1, 3))],
                          "seed": rnd.randrange(1 << 30)})
        elif roll < 0.6:  # a burst of flipped bytes
            start = rnd.randrange(size)
            cases.append({"file": name, "kind": "flip_run", "start": start,
                          "length": rnd.randint(1, 64), "seed": rnd.randrange(1 << 30)})
        elif roll < 0.7:
            cases.append({"file": name, "kind": "truncate", "size": rnd.randrange(size)})
        elif roll < 0.8:
            cases.append({"file": name, "kind": "zero_page", "page": rnd.randrange(pages)})
        else:
            cases.append({"file": name, "kind": "garbage_page", "page": rnd.randrange(pages),
                          "seed": rnd.randrange(1 << 30)})
    return cases


def damage(store: Path, case: dict, psize: int) -> None:
    """Apply one case to the files of ``store``."""
    path = store / case["file"]
    kind = case["kind"]
    if kind == "delete":
        path.unlink()
        return
    raw = bytearray(path.read_bytes())
    assert raw, f"{path} is empty: the case would change nothing"
    rnd = random.Random(case.get("seed", 0))
    # Offsets and pages were drawn for data.mdb; the lock files are smaller.
    if kind == "truncate":
        raw = raw[: case["size"] % (len(raw) + 1)]
    elif kind == "append":
        raw += rnd.randbytes(case["bytes"])
    elif kind == "flip_bits":
        for offset in case["offsets"]:
            raw[offset % len(raw)] ^= 1 << rnd.randrange(8)
    elif kind == "flip_run":
        start = case["start"] % len(raw)
        for offset in range(start, min(start + case["length"], len(raw))):
            raw[offset] ^= rnd.randrange(1, 256)
    elif kind in ("zero_page", "garbage_page"):
        start = case["page"] % -(-len(raw) // psize) * psize
        end = min(start + psize, len(raw))
        if kind == "zero_page":
            raw[start:end] = bytes(end - start)
        else:
            raw[start:end] = rnd.randbytes(end - start)
    path.write_bytes(bytes(raw))


# -- the child -------------------------------------------------------------------------------

def exercise(path: Path) -> dict[str, Any]:
    """Open and use a (damaged) store, read-only then as the writer; count the outcomes."""
    outcome: dict[str, Any] = {"ok": 0, "refused": Counter(), "leaked": [], "unnamed": []}

    def attempt(what: str, call: Any) -> Any:
        try:
            result = call()
        except JadevecError as exc:
            outcome["refused"][type(exc).__name__] += 1
            if isinstance(exc, CorruptionError) and str(path) not in str(exc):
                outcome["unnamed"].append(f"{what}: {exc}")
            return None
        except Exception as exc:  # noqa: BLE001 - what the fuzzer counts
            outcome["leaked"].append(f"{what}: {type(exc).__name__}: {exc}"[:300])
            return None
        outcome["ok"] += 1
        return result

    for read_only in (True, False):
        store = attempt("open", lambda read_only=read_only: jadevec.open(
            path, backend="lmdb", read_only=read_only, flush_interval=0))
        if store is not None:
            use(store, attempt)
            attempt("close", store.close)
    outcome["refused"] = dict(outcome["refused"])
    return outcome


def use(store: jadevec.Store, attempt: Any) -> None:
    """Every kind of call on an open store, each through ``attempt``."""
    query = np.random.default_rng(1).standard_normal(64).astype(np.float32)
    names = attempt("list_databases", store.list_databases) or []
    for name in names:
        db = attempt("get_database", lambda name=name: store.get_database(name))
        if db is None:
            continue
        attempt("len", lambda db=db: len(db))
        ids = attempt("list_vectors", db.list_vectors) or []
        for vid in ids[:20] + ["absent"]:
            attempt("retrieve", lambda db=db, vid=vid: db.retrieve(vid))
            attempt("get_metadata", lambda db=db, vid=vid: db.get_metadata(vid))
        attempt("batch_retrieve", lambda db=db, ids=ids: db.batch_retrieve(ids))
        attempt("search", lambda db=db: db.search(query[: db.dimension] + 0.5, k=5))
        if not store.read_only:
            attempt("store", lambda db=db: db.store("fuzz", np.full(db.dimension, 0.25),
                                                    metadata={"f": 1}))
            attempt("delete", lambda db=db, ids=ids: db.delete(ids[0] if ids else "x"))
            attempt("compact", db.compact)
            attempt("search", lambda db=db: db.search(query[: db.dimension] + 0.5, k=5))
    attempt("verify", store.verify)
    if not store.read_only:
        attempt("create_database", lambda: store.create_database("fresh", 4).store(
            "a", [1.0, 2.0, 3.0, 4.0]))
        for name in names[:1]:
            attempt("delete_database", lambda name=name: store.delete_database(name))


def fuzz(tmp_path: Path, count: int, seed: int, forked: Any) -> dict[str, Any]:
    pristine = tmp_path / "pristine"
    build_pristine(pristine)
    files = sorted(p.name for p in pristine.iterdir() if p.is_file())
    size = (pristine / "data.mdb").stat().st_size
    psize = page_size(pristine / "data.mdb")
    cases = make_cases(count, seed, files, size, psize)
    counts: dict[str, Any] = {"cases": 0, "signals": 0, "hangs": 0, "died": 0, "leaked": 0,
                              "unnamed": 0, "opened": 0, "refused": Counter(),
                              "data_pages": size // psize}
    problems: list[str] = []
    case_dir = tmp_path / "case"
    for case in cases:
        shutil.rmtree(case_dir, ignore_errors=True)
        shutil.copytree(pristine, case_dir)
        damage(case_dir, case, psize)
        status, result = forked(lambda: exercise(case_dir), CASE_TIMEOUT)
        counts["cases"] += 1
        if status == "signal":
            counts["signals"] += 1
            problems.append(f"{result}: {case}")
        elif status == "hang":
            counts["hangs"] += 1
            problems.append(f"hang: {case}")
        elif status == "died":
            counts["died"] += 1
            problems.append(f"child failed ({result}): {case}")
        else:
            counts["leaked"] += len(result["leaked"])
            counts["unnamed"] += len(result["unnamed"])
            counts["opened"] += result["ok"] > 0
            counts["refused"].update(result["refused"])
            problems.extend(f"{leak}: {case}" for leak in result["leaked"][:2])
            problems.extend(f"unnamed {msg}: {case}" for msg in result["unnamed"][:1])
    counts["refused"] = dict(counts["refused"])
    report = os.environ.get("JADEVEC_FUZZ_REPORT")
    if report:
        with open(report, "a") as f:
            f.write(json.dumps({"test": "lmdb damage fuzz", "seed": seed, **counts}) + "\n")
    print(json.dumps(counts))
    return {"counts": counts, "problems": problems}


def check(outcome: dict[str, Any]) -> None:
    counts, problems = outcome["counts"], outcome["problems"]
    assert counts["cases"] > 0
    failures = {k: counts[k] for k in ("signals", "hangs", "died", "leaked", "unnamed")}
    assert not any(failures.values()), (failures, problems[:10])


def test_fuzz_quick(tmp_path: Path, forked: Any) -> None:
    check(fuzz(tmp_path, int(os.environ.get("JADEVEC_FUZZ_QUICK", "300")), 1, forked))


@pytest.mark.slow
def test_fuzz_long(tmp_path: Path, forked: Any) -> None:
    check(fuzz(tmp_path, int(os.environ.get("JADEVEC_FUZZ_CASES", "3000")), 2, forked))


def test_the_fuzzer_sees_a_crash_a_hang_and_a_leak(forked: Any) -> None:
    """The harness itself can fail: a signal, a hang and a leaked error are each seen."""

    def crash() -> None:
        faulthandler.disable()  # no traceback on stderr for a crash that is meant
        os.kill(os.getpid(), signal.SIGBUS)

    assert forked(crash, 30) == ("signal", "SIGBUS")
    assert forked(lambda: time.sleep(30), 0.5) == ("hang", None)
    assert forked(lambda: 1 / 0, 30)[0] == "died"

    def leaky_open() -> dict[str, Any]:
        def fail(*args: Any, **kwargs: Any) -> None:
            raise KeyError("not a jadevec error")

        jadevec.open = fail  # in the child only
        return exercise(Path("anywhere"))

    status, outcome = forked(leaky_open, 30)
    assert status == "ok" and outcome["ok"] == 0
    assert outcome["leaked"] == ["open: KeyError: 'not a jadevec error'"] * 2
