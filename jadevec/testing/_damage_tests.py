"""Conformance tests (part of ``BackendTests``, persistent backends only): damaged
files, a killed writer, and compaction that gives the space back.

* **Damage.** Every file of a closed store (whatever files the backend keeps:
  the store folder is walked) is truncated to half, truncated to nothing, and
  has its middle bytes flipped, one file and one kind at a time. Opening and
  using the copy (read-only, then as the writer) in a forked child must end in
  success or a jadevec error (a ``JadevecError`` or an ``OSError``); a child
  killed by a signal, a child that hangs, and a builtin error that leaks out
  (``ValueError``, ``KeyError``, ``UnicodeDecodeError``...) each fail the test,
  which lists every case that did.
* **A killed writer.** A forked child writes, keeps its store referenced (so no
  finaliser closes it) and ends with ``os._exit``: the next open's
  ``recovery_report`` says so, and everything the child acknowledged is there.
* **Compaction.** Deleting 90% of 20,000 vectors of dimension 64 and calling
  ``compact()`` shrinks the store folder's bytes on disk (allocated blocks) to
  at most 40% of what they were, and every remaining vector reads back
  bit-exact, before and after a reopen.

The tests that make thousands of single-vector calls open the store with the
extra options ``bulk_options`` (a backend that syncs every call may trade that
for speed there).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

import jadevec
from jadevec.errors import JadevecError
from jadevec.testing._base import DIM, SuiteBase
from jadevec.testing._child import run_in_child
from jadevec.testing._lifecycle_tests import in_child

__all__ = ["DamageTests"]

#: Seconds a damaged store may take to be opened and used before it counts as a hang.
_CASE_TIMEOUT = 120.0
#: Bytes flipped in the middle of a file.
_FLIPPED = 64
# Stores a killed child keeps referenced until os._exit, so nothing closes them.
_kept: list[jadevec.Store] = []


def files_of(folder: Path) -> list[str]:
    """Every regular file under ``folder``, as sorted paths relative to it."""
    found = []
    for parent, _, names in os.walk(folder):
        for name in names:
            path = Path(parent) / name
            if path.is_file() and not path.is_symlink():
                found.append(str(path.relative_to(folder)))
    return sorted(found)


def disk_bytes(folder: Path) -> int:
    """Bytes the files under ``folder`` occupy on disk (allocated blocks, not sizes)."""
    total = 0
    for parent, _, names in os.walk(folder):
        for name in names:
            total += os.lstat(Path(parent) / name).st_blocks * 512
    return total


def damage(path: Path, kind: str) -> None:
    """Truncate ``path`` to half (``half``) or to nothing (``empty``), or flip its middle bytes."""
    size = path.stat().st_size
    if kind == "half":
        os.truncate(path, size // 2)
    elif kind == "empty":
        os.truncate(path, 0)
    else:
        start = max(size // 2 - _FLIPPED // 2, 0)
        with open(path, "r+b") as f:
            f.seek(start)
            raw = f.read(_FLIPPED)
            f.seek(start)
            f.write(bytes(b ^ 0xFF for b in raw))


class DamageTests(SuiteBase):
    """Damaged files are errors, never crashes; a killed writer is reported; compact() shrinks."""

    #: Extra options of ``make_store`` for the tests that make thousands of
    #: single-vector calls (say, to skip a per-call sync the test does not need).
    bulk_options: ClassVar[Mapping[str, Any]] = {}

    def _persistent_only(self) -> None:
        if not self.persistent:
            pytest.skip("backend is not persistent")

    # --------------------------------------------------------------- damaged files

    def _fill(self, store: jadevec.Store) -> None:
        rng = np.random.default_rng(11)
        docs = store.create_database("docs", DIM)
        ids = [f"doc-{i}" for i in range(400)] + ["é" * 300]
        docs.batch_store(ids, rng.standard_normal((len(ids), DIM)),
                         metadatas=[self.meta(i=i, text="t" * (i % 50)) for i in range(len(ids))])
        for i in range(0, 400, 9):
            docs.delete(f"doc-{i}")
        docs.update("doc-1", rng.standard_normal(DIM), metadata=self.meta(updated=True))
        store.create_database("points", 3, metric="l2").batch_store(
            [f"p{i}" for i in range(40)], np.arange(120.0).reshape(40, 3))
        store.create_database("empty", 5, metric="dot")
        store.create_database("dropped", 2).store("x", [1.0, 2.0])
        store.delete_database("dropped")

    def _use(self, tmp_path: Path) -> dict[str, Any]:  # pragma: no cover - runs in a child
        """Open the store read-only, then as the writer, and make every kind of call;
        return how many calls worked, were refused with a jadevec error, or leaked."""
        outcome: dict[str, Any] = {"ok": 0, "refused": 0, "leaked": []}

        def attempt(what: str, call: Callable[[], Any]) -> Any:
            try:
                result = call()
            except (JadevecError, OSError):
                outcome["refused"] += 1
                return None
            except Exception as exc:  # noqa: BLE001 - what the test is about
                outcome["leaked"].append(f"{what}: {type(exc).__name__}: {exc}"[:300])
                return None
            outcome["ok"] += 1
            return result

        for read_only in (True, False):
            store = attempt("open", lambda read_only=read_only: self.make_store(
                tmp_path, read_only=read_only, flush_interval=0))
            if store is None:
                continue
            for name in attempt("list_databases", store.list_databases) or []:
                db = attempt("get_database",
                             lambda name=name, store=store: store.get_database(name))
                if db is None:
                    continue
                attempt("len", lambda db=db: len(db))
                ids = attempt("list_vectors", db.list_vectors) or []
                for vid in ids[:10] + ["absent"]:
                    attempt("retrieve", lambda db=db, vid=vid: db.retrieve(vid))
                    if self.supports_metadata:
                        attempt("get_metadata", lambda db=db, vid=vid: db.get_metadata(vid))
                attempt("batch_retrieve", lambda db=db, ids=ids: db.batch_retrieve(ids))
                attempt("search", lambda db=db: db.search(np.linspace(1, 2, db.dimension), k=5))
                if not read_only:
                    attempt("store", lambda db=db: db.store("new", np.full(db.dimension, 0.5)))
                    attempt("delete", lambda db=db, ids=ids: db.delete(ids[0] if ids else "x"))
                    attempt("compact", db.compact)
            attempt("verify", store.verify)
            if not read_only:
                attempt("create_database", lambda store=store: store.create_database(
                    "fresh", 2).store("a", [1.0, 2.0]))
                attempt("delete_database", lambda store=store: store.delete_database("fresh"))
            attempt("close", store.close)
        return outcome

    def test_damaged_files_are_errors_never_crashes(self, tmp_path: Path) -> None:
        self._persistent_only()
        pristine_base = tmp_path / "pristine"
        with self.make_store(pristine_base, flush_interval=0) as store:
            self._fill(store)
        pristine = self.store_path(pristine_base)
        files = files_of(pristine)
        assert files, "the closed store has no files"
        failures: list[str] = []
        cases = 0
        for number, (name, kind) in enumerate(
                (name, kind) for name in files for kind in ("half", "empty", "flip")):
            if (pristine / name).stat().st_size == 0:
                continue  # nothing to damage
            case_base = tmp_path / f"case{number}"
            shutil.copytree(pristine, self.store_path(case_base))
            damage(self.store_path(case_base) / name, kind)
            status, result = run_in_child(lambda case_base=case_base: self._use(case_base),
                                          _CASE_TIMEOUT)
            cases += 1
            if status != "ok":
                failures.append(f"{name} {kind}: {status} {result or ''}".strip())
            elif result["leaked"]:
                failures.append(f"{name} {kind}: leaked {result['leaked'][:3]}")
            shutil.rmtree(case_base, ignore_errors=True)
        assert cases, "no file of the store had bytes to damage"
        assert not failures, f"{len(failures)} of {cases} damaged stores: " + "; ".join(failures)

    # ---------------------------------------------------------------- a killed writer

    def test_a_killed_writer_is_reported_and_keeps_what_it_acknowledged(
            self, tmp_path: Path) -> None:
        self._persistent_only()
        rng = np.random.default_rng(12)
        base = rng.standard_normal((50, DIM)).astype(np.float32)
        with self.make_store(tmp_path, flush_interval=0) as store:
            store.create_database("docs", DIM, metric="l2").batch_store(
                [f"base{i}" for i in range(50)], base,
                metadatas=[self.meta(i=i) for i in range(50)])
        written = rng.standard_normal((120, DIM)).astype(np.float32)

        def writer() -> list[str]:  # pragma: no cover - runs in a child
            store = self.make_store(tmp_path)  # the default checkpoint thread runs
            _kept.append(store)  # referenced until os._exit: no finaliser closes it
            db = store.get_database("docs")
            acknowledged = []
            for i in range(100):
                db.store(f"new{i}", written[i], metadata=self.meta(n=i))
                acknowledged.append(f"new{i}")
            db.batch_store([f"batch{i}" for i in range(20)], written[100:],
                           metadatas=[self.meta(b=i) for i in range(20)])
            acknowledged += [f"batch{i}" for i in range(20)]
            db.delete("base0")
            db.update("base1", written[0], metadata=self.meta(updated=True))
            store.create_database("late", 2).store("x", [1.0, 2.0])
            return acknowledged  # in_child then ends the process with os._exit

        acknowledged = in_child(writer)
        with self.make_store(tmp_path, flush_interval=0) as store:
            report = store.recovery_report
            assert report is not None, "a writer that died was not reported"
            assert report.actions and all(isinstance(a, str) and a for a in report.actions)
            db = store.get_database("docs")
            for i, vid in enumerate(acknowledged):
                got = db.retrieve(vid)
                assert got is not None and np.array_equal(got, written[i]), vid
                want = self.meta(n=i) if i < 100 else self.meta(b=i - 100)
                assert db.get_metadata(vid) == want, vid
            assert db.retrieve("base0") is None
            assert np.array_equal(db.retrieve("base1"), written[0])
            assert db.get_metadata("base1") == self.meta(updated=True)
            assert np.array_equal(db.retrieve("base2"), base[2])
            assert len(db) == 49 + len(acknowledged)
            assert store.get_database("late").retrieve("x").tolist() == [1.0, 2.0]
            assert store.verify().ok
        with self.make_store(tmp_path, flush_interval=0) as store:
            assert store.recovery_report is None  # the open after recovery closed cleanly

    # --------------------------------------------------------------------- compaction

    def test_compact_gives_the_space_of_deleted_vectors_back(self, tmp_path: Path) -> None:
        self._persistent_only()
        n, dim = 20_000, 64
        vectors = np.random.default_rng(13).standard_normal((n, dim)).astype(np.float32)
        ids = [f"v{i}" for i in range(n)]
        kept = range(0, n, 10)
        folder = self.store_path(tmp_path)
        with self.make_store(tmp_path, flush_interval=0, **self.bulk_options) as store:
            db = store.create_database("big", dim, metric="l2")
            for start in range(0, n, 2000):
                db.batch_store(ids[start:start + 2000], vectors[start:start + 2000])
            for i in range(n):
                if i % 10:
                    db.delete(ids[i])
            store.sync()
            before = disk_bytes(folder)
            db.compact()
            store.sync()
            after = disk_bytes(folder)
            assert after <= 0.4 * before, f"compact() left {after} of {before} bytes on disk"
            self._check_kept(db, vectors, kept)
        with self.make_store(tmp_path, flush_interval=0) as store:
            self._check_kept(store.get_database("big"), vectors, kept)
            assert store.verify().ok
        assert disk_bytes(folder) <= 0.4 * before

    @staticmethod
    def _check_kept(db: jadevec.Database, vectors: np.ndarray, kept: range) -> None:
        assert len(db) == len(kept)
        got = db.batch_retrieve([f"v{i}" for i in kept])
        for i, vector in zip(kept, got, strict=True):
            assert vector is not None, f"v{i}"
            assert vector.tobytes() == vectors[i].tobytes(), f"v{i} is not bit-exact"
