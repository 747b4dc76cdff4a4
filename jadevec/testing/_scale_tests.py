"""Conformance tests (part of ``BackendTests``) at the sizes applications reach:
every dimension from 1 to 65,536, 10,000 vectors across a restart, 1M vectors
across ten databases, 16 threads on one store, and the memory a large store
costs once open. All carry the ``slow`` marker.

Expected values never come from the store: each is regenerated from a seeded
generator (per id, or per database for the 1M-vector tests), so a store that
returned what it was given but lost it at close would fail. A "new process"
is a real one: the data is written by ``python -c`` in a subprocess and read
back by the test process, or the other way round.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jadevec.testing._base import (
    METRICS,
    SuiteBase,
    assert_same_ranking,
    reference_scores,
    reference_topk,
)
from jadevec.testing._stress_tests import report_counts

__all__ = ["ScaleTests", "id_vector"]

DIMENSIONS = (1, 128, 384, 768, 1536, 65_536)
_MILLION_DBS = 10
_MILLION_EACH = 100_000
_MILLION_DIM = 128
_WIDE_COUNT = 1_000_000
_WIDE_DIM = 768


def id_vector(vector_id: str, dim: int, version: int = 0) -> np.ndarray:
    """The vector a scale test writes for ``vector_id`` (a generator seeded by the id)."""
    digest = hashlib.blake2b(f"{vector_id}/{version}".encode(), digest_size=8).digest()
    return np.random.default_rng(int.from_bytes(digest, "little")).standard_normal(
        dim).astype(np.float32)


def part_matrix(part: int, count: int, dim: int) -> np.ndarray:
    """The rows of database ``part`` in the 1M-vector tests (``v0``, ``v1``, ... in order)."""
    return np.random.default_rng(1_000_003 * (part + 1)).standard_normal(
        (count, dim), dtype=np.float32)


def _child(source: str, body: str, prelude: str = "", timeout: float = 1800) -> str:
    """Run ``prelude``, then ``body`` with ``store = <source>`` open, in a new
    interpreter; return its stdout."""
    code = ("import json, sys, time, numpy as np, jadevec\n"
            "from jadevec.testing import _scale_tests as s\n"
            f"{prelude}\nstore = {source}\n{body}\nstore.close()\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ, PYTHONFAULTHANDLER="1"))
    assert proc.returncode == 0, f"the child failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    return proc.stdout


def _disk_bytes(path: Path) -> tuple[int, int]:
    """(apparent size, allocated bytes) of every file under ``path``."""
    size = allocated = 0
    for folder, _, files in os.walk(path):
        for name in files:
            st = os.stat(os.path.join(folder, name))
            size += st.st_size
            allocated += st.st_blocks * 512
    return size, allocated


def _memory_kib() -> dict[str, int]:
    """This process's anonymous and file-backed resident memory, from /proc."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile", "RssShmem"):
                out[key] = int(value.split()[0])
    return out


class ScaleTests(SuiteBase):
    """Dimensions, 10,000 and 1M vectors across restarts, 16 threads, memory once open."""

    # -------------------------------------------------------------- dimensions

    @pytest.mark.slow
    @pytest.mark.parametrize("dim", DIMENSIONS)
    def test_every_operation_at_dimension(self, tmp_path: Path, dim: int) -> None:
        """Store, batch, update, delete, retrieve, search and a restart at ``dim``."""
        metric = "l2" if dim == 1 else METRICS[DIMENSIONS.index(dim) % len(METRICS)]
        n = 12 if dim > 4096 else 200
        ids = [f"d{dim}-{i}" for i in range(n)]
        want = {i: id_vector(i, dim) for i in ids}
        with self.make_store(tmp_path, flush_interval=0) as store:
            db = store.create_database("dims", dim, metric=metric)
            for i in ids[: n // 4]:
                db.store(i, want[i], metadata=self.meta(id=i))
            db.batch_store(ids[n // 4:], np.stack([want[i] for i in ids[n // 4:]]),
                           [self.meta(id=i) for i in ids[n // 4:]])
            for i in ids[::5]:  # updates
                want[i] = id_vector(i, dim, version=1)
                db.update(i, want[i])
            for i in ids[1::7]:
                assert db.delete(i)
                del want[i]
            assert len(db) == len(want)
            for i, got in zip(ids, db.batch_retrieve(ids), strict=True):
                assert (got is None) if i not in want else np.array_equal(got, want[i]), i
            live = sorted(want)
            matrix = np.stack([want[i] for i in live])
            scores = dict(zip(live, reference_scores(matrix, matrix[0], metric).tolist(),
                              strict=True))
            query = matrix[0]
            assert_same_ranking(db.search(query, k=5),
                                reference_topk(live, matrix, query, metric, 5), metric, scores)
        if not self.persistent:
            return
        # A new process finds every vector bit-exact and its metadata.
        digest = hashlib.sha256(b"".join(want[i].tobytes() for i in live)).hexdigest()
        out = _child(self.reopen_source(tmp_path), (
            "db = store.get_database('dims')\n"
            f"live = {live!r}\n"
            "got = db.batch_retrieve(live)\n"
            "import hashlib\n"
            "print(json.dumps({'n': len(db), 'digest': hashlib.sha256(b''.join(g.tobytes() "
            "for g in got)).hexdigest(), 'meta': [db.get_metadata(i) for i in live[:20]]}))"))
        seen = json.loads(out.splitlines()[-1])
        assert seen["n"] == len(want)
        assert seen["digest"] == digest
        assert seen["meta"] == [self.meta(id=i) for i in live[:20]]

    # -------------------------------------------------- 10,000 across a restart

    @pytest.mark.slow
    def test_ten_thousand_vectors_survive_a_restart(self, tmp_path: Path) -> None:
        """Written and closed by one process, every vector and record read by another."""
        if not self.persistent:
            pytest.skip("backend is not persistent")
        n, dim = 10_000, 128
        source = self.reopen_source(tmp_path)
        meta = "{'id': i, 'n': k}" if self.supports_metadata else "None"
        _child(source, (
            "db = store.create_database('restart', 128, metric='cosine')\n"
            f"ids = [f'r{{k}}' for k in range({n})]\n"
            "for lo in range(0, len(ids), 1000):\n"
            "    chunk = ids[lo:lo + 1000]\n"
            "    db.batch_store(chunk, np.stack([s.id_vector(i, 128) for i in chunk]),\n"
            f"                   [{meta} for k, i in enumerate(chunk, lo)])\n"))
        with self.make_store(tmp_path, flush_interval=0) as store:
            assert store.recovery_report is None  # closed cleanly: nothing to recover
            db = store.get_database("restart")
            assert len(db) == n
            ids = [f"r{k}" for k in range(n)]
            for k, (i, got) in enumerate(zip(ids, db.batch_retrieve(ids), strict=True)):
                assert got is not None and np.array_equal(got, id_vector(i, dim)), i
                if self.supports_metadata:
                    assert db.get_metadata(i) == {"id": i, "n": k}
            assert sorted(db.list_vectors()) == sorted(ids)

    # ------------------------------------------------ 1M vectors, ten databases

    @pytest.mark.slow
    def test_one_million_vectors_across_ten_databases(self, tmp_path: Path) -> None:
        """Stored and closed by a child; reopened here, scanned in full, searched exactly."""
        if not self.persistent:
            pytest.skip("backend is not persistent")
        source = self.reopen_source(tmp_path)
        _child(source, (
            f"for p in range({_MILLION_DBS}):\n"
            f"    db = store.create_database(f'part{{p}}', {_MILLION_DIM}, "
            f"metric={METRICS!r}[p % 3])\n"
            f"    rows = s.part_matrix(p, {_MILLION_EACH}, {_MILLION_DIM})\n"
            f"    for lo in range(0, {_MILLION_EACH}, 20_000):\n"
            "        db.batch_store([f'v{k}' for k in range(lo, lo + 20_000)], "
            "rows[lo:lo + 20_000])\n"))
        started = time.perf_counter()
        store = self.make_store(tmp_path, flush_interval=0)
        try:
            first = store.get_database("part0")
            hits = first.search(part_matrix(0, 1, _MILLION_DIM)[0], k=10)
            restart_s = time.perf_counter() - started
            assert hits and hits[0][0] == "v0"
            rng = np.random.default_rng(3)
            for p in range(_MILLION_DBS):
                db = store.get_database(f"part{p}")
                metric = METRICS[p % 3]
                assert (db.dimension, db.metric, len(db)) == (_MILLION_DIM, metric,
                                                               _MILLION_EACH)
                rows = part_matrix(p, _MILLION_EACH, _MILLION_DIM)
                ids = [f"v{k}" for k in range(_MILLION_EACH)]
                for k in rng.integers(0, _MILLION_EACH, 500).tolist():  # sampled
                    assert np.array_equal(db.retrieve(ids[k]), rows[k]), (p, k)
                got = db.batch_retrieve(ids)  # the full scan
                assert all(g is not None for g in got)
                assert np.array_equal(np.stack(got), rows), p
                del got
                query = rng.standard_normal(_MILLION_DIM).astype(np.float32)
                scores = reference_scores(rows, query, metric)
                assert_same_ranking(db.search(query, k=10),
                                    reference_topk(ids, rows, query, metric, 10), metric,
                                    {ids[k]: float(scores[k]) for k in range(_MILLION_EACH)})
        finally:
            store.close()
        size, allocated = _disk_bytes(self.store_path(tmp_path))
        total = _MILLION_DBS * _MILLION_EACH
        figures = {"vectors": total, "restart_to_first_search_s": round(restart_s, 3),
                   "disk_bytes_per_vector": round(size / total, 1),
                   "allocated_bytes_per_vector": round(allocated / total, 1),
                   "raw_bytes_per_vector": 4 * _MILLION_DIM}
        print(f"1M x {_MILLION_DIM} across {_MILLION_DBS} databases [{self.backend}]: {figures}")
        report_counts(f"one_million_across_ten_databases[{self.backend}]", figures)
        # Growth doubles a database's capacity, so up to half of it may be free:
        # at most twice a row, its slot record and its id record, plus the index.
        assert size / total <= 2 * (4 * _MILLION_DIM + 32 + 16) + 256, figures

    # ------------------------------------------------------ memory once open

    @pytest.mark.slow
    def test_a_large_store_costs_little_anonymous_memory_once_open(self, tmp_path: Path
                                                                   ) -> None:
        """1M x 768 (3 GB of rows): opening it and reading a vector keeps the process's
        anonymous memory under 5% of the data; file-backed pages are reported apart."""
        if not self.persistent:
            pytest.skip("backend is not persistent")
        source = self.reopen_source(tmp_path)
        _child(source, (
            f"db = store.create_database('wide', {_WIDE_DIM}, metric='dot')\n"
            f"for lo in range(0, {_WIDE_COUNT}, 20_000):\n"
            "    rows = np.random.default_rng(lo).standard_normal("
            f"(20_000, {_WIDE_DIM}), dtype=np.float32)\n"
            "    db.batch_store([f'w{k}' for k in range(lo, lo + 20_000)], rows)\n"))
        out = _child(source, prelude="before = s._memory_kib()", body=(
            "db = store.get_database('wide')\n"
            "v = db.retrieve('w12345')\n"
            "assert v is not None and len(db) == "
            f"{_WIDE_COUNT}\n"
            "opened = s._memory_kib()\n"
            "db.search(v, k=10)\n"
            "searched = s._memory_kib()\n"
            "print(json.dumps({'before': before, 'opened': opened, 'searched': searched}))"))
        seen = json.loads(out.splitlines()[-1])
        data_kib = _WIDE_COUNT * _WIDE_DIM * 4 // 1024
        anon_kib = seen["opened"]["RssAnon"] - seen["before"]["RssAnon"]
        figures = {"data_MiB": data_kib // 1024, "anon_after_open_MiB": round(anon_kib / 1024, 1),
                   "file_after_open_MiB": round(seen["opened"]["RssFile"] / 1024, 1),
                   "anon_after_search_MiB": round(
                       (seen["searched"]["RssAnon"] - seen["before"]["RssAnon"]) / 1024, 1),
                   "file_after_search_MiB": round(seen["searched"]["RssFile"] / 1024, 1),
                   "disk_bytes_per_vector": round(
                       _disk_bytes(self.store_path(tmp_path))[0] / _WIDE_COUNT, 1)}
        print(f"1M x {_WIDE_DIM} memory [{self.backend}]: {figures}")
        report_counts(f"memory_once_open[{self.backend}]", figures)
        assert anon_kib < 0.05 * data_kib, figures

    # --------------------------------------------------------------- 16 threads

    @pytest.mark.slow
    def test_sixteen_threads_against_a_model(self, tmp_path: Path) -> None:
        """Ten writers on their own ids, three readers and a searcher on everything, a
        batch reader, and a thread creating and deleting other databases, flushing
        and compacting; every read is an issued version, the end state the model's."""
        dim = 16
        store = self.make_store(tmp_path, flush_interval=0.05)
        db = store.create_database("busy", dim, metric="l2")
        writers = 10
        models: list[dict[str, int]] = [{} for _ in range(writers)]
        errors: list[str] = []
        stop = threading.Event()
        counts = {"writes": 0, "reads": 0, "searches": 0, "batch_reads": 0, "maintenance": 0}
        start = threading.Barrier(16)

        def versioned(vector_id: str, version: int) -> np.ndarray:
            v = id_vector(vector_id, dim, version)
            v[0] = version  # a reader tells which version it got from the vector itself
            return v

        def check(vector_id: str, got: np.ndarray | None) -> None:
            if got is not None and not np.array_equal(got, versioned(vector_id, int(got[0]))):
                errors.append(f"{vector_id}: a vector that was never written (torn?)")

        def guard(fn: Any, *args: Any) -> None:
            try:
                start.wait()
                fn(*args)
            except Exception as exc:  # noqa: BLE001 - every error is a failure here
                errors.append(f"{fn.__name__}: {type(exc).__name__}: {exc}")
            finally:
                if errors:
                    stop.set()

        def writer(t: int) -> None:
            # model: an id's version while stored, minus its last version once deleted
            rng = np.random.default_rng(t)
            model = models[t]
            for step in range(400):
                vid = f"w{t}-{int(rng.integers(60))}"
                version = abs(model.get(vid, 0)) + 1
                roll = rng.random()
                if roll < 0.35:
                    db.store(vid, versioned(vid, version))
                    model[vid] = version
                elif roll < 0.5 and model.get(vid, 0) > 0:
                    db.update(vid, versioned(vid, version))
                    model[vid] = version
                elif roll < 0.6:
                    existed = model.get(vid, 0) > 0
                    if db.delete(vid) != existed:
                        errors.append(f"{vid}: delete said {not existed}")
                    model[vid] = -abs(model.get(vid, 0))
                elif roll < 0.8:
                    batch = [f"w{t}-b{step}-{j}" for j in range(int(rng.integers(1, 40)))]
                    db.batch_store(batch, np.stack([versioned(b, 1) for b in batch]))
                    model.update(dict.fromkeys(batch, 1))
                else:
                    got = db.retrieve(vid)
                    want = model.get(vid, 0)
                    if (got is None) != (want <= 0) or (
                            got is not None and int(got[0]) != want):
                        errors.append(f"{vid}: read {None if got is None else got[0]}, "
                                      f"wrote {want}")
                    check(vid, got)
                counts["writes"] += 1
                if stop.is_set():
                    return

        def reader(seed: int) -> None:
            rng = np.random.default_rng(100 + seed)
            while not stop.is_set():
                vid = f"w{int(rng.integers(writers))}-{int(rng.integers(60))}"
                check(vid, db.retrieve(vid))
                counts["reads"] += 1

        def batch_reader() -> None:
            rng = np.random.default_rng(200)
            while not stop.is_set():
                ids = list(dict.fromkeys(f"w{int(rng.integers(writers))}-"
                                         f"{int(rng.integers(60))}" for _ in range(30)))
                for vid, got in zip(ids, db.batch_retrieve(ids), strict=True):
                    check(vid, got)
                counts["batch_reads"] += 1

        def searcher() -> None:
            rng = np.random.default_rng(300)
            while not stop.is_set():
                query = rng.standard_normal(dim).astype(np.float32)
                hits = db.search(query, k=8)
                scores = [s for _, s in hits]
                if scores != sorted(scores):
                    errors.append(f"search results out of order: {hits}")
                counts["searches"] += 1

        def maintainer() -> None:
            rng = np.random.default_rng(400)
            k = 0
            while not stop.is_set():
                k += 1
                roll = rng.random()
                if roll < 0.3:
                    side = store.create_database(f"side{k}", 4, metric="dot")
                    side.store("x", [1.0, 2.0, 3.0, 4.0])
                    store.delete_database(f"side{k}")
                elif roll < 0.6:
                    store.flush()
                elif roll < 0.8:
                    store.sync()
                else:
                    db.compact()
                counts["maintenance"] += 1

        threads = [threading.Thread(target=guard, args=(writer, t)) for t in range(writers)]
        threads += [threading.Thread(target=guard, args=(reader, r)) for r in range(3)]
        threads += [threading.Thread(target=guard, args=(f,))
                    for f in (batch_reader, searcher, maintainer)]
        assert len(threads) == 16
        for t in threads:
            t.start()
        for t in threads[:writers]:
            t.join(timeout=300)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        try:
            assert not any(t.is_alive() for t in threads), "a thread hangs"
            assert not errors, errors[:5]
            want = {vid: version for model in models for vid, version in model.items()
                    if version > 0}
            assert len(db) == len(want)
            assert sorted(db.list_vectors()) == sorted(want)
            ids = sorted(want)
            for vid, got in zip(ids, db.batch_retrieve(ids), strict=True):
                assert got is not None and np.array_equal(got, versioned(vid, want[vid])), vid
            assert store.verify().ok
            assert store.list_databases() == ["busy"]
        finally:
            store.close()
        report_counts(f"sixteen_threads[{self.backend}]", counts)
