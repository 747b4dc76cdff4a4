"""Conformance tests (part of ``BackendTests``, persistent backends only): a writer
killed with SIGKILL at random moments of mixed work, checked against an oracle.

The child is forked from the test process. It opens the store (recovering it
when the previous child was killed), writes ``ready`` and then runs a seeded
mix on one to three threads: store, update, delete and batch store on ids the
thread owns, reads of its own ids, flush and sync, and, on the first thread
only, compaction, creating and deleting a database, and closing and reopening
the store. Every call is logged before it starts and after it returns, each
line one ``os.write`` on an ``O_APPEND`` descriptor, so a kill leaves the log
whole up to at most one cut line (which is ignored).

A vector is a pure function of ``(database, id, version)`` and the metadata
is ``{"v": version}``, so the parent recognises every version ever issued
without storing any. After each kill the parent reopens the store and checks:

* it opens, and ``verify()`` passes;
* every acknowledged write is there, bit for bit, with its metadata;
* an interrupted call is all-or-nothing per vector, and an interrupted batch
  left a prefix of itself, in batch order;
* nothing acknowledged as deleted came back, no id was invented, and no
  vector matches no issued version;
* ``len`` agrees with ``list_vectors`` and the oracle; an exact search for a
  live vector finds it first.

The next cycle continues on the same store, so state builds up as it would in
a long-lived application; every 50 cycles the store starts afresh. Cycles come
from ``JADEVEC_STRESS_CYCLES`` (default 200), and ``JADEVEC_STRESS_REPORT``
receives the counts as one JSON line, kills grouped by the call they cut.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import jadevec
from jadevec.testing._child import ForkedChild
from jadevec.testing._stress_tests import KillLoopBase, report_counts, stress_cycles

__all__ = ["KillTortureTests", "issued_vector"]

_DIM = 8
_DATABASES = ("t0", "t1")
_SPARE = "tx"  # the database the first thread creates and deletes
_IDS_PER_THREAD = 150
_FRESH_EVERY = 50


@functools.lru_cache(maxsize=1 << 16)
def issued_vector(database: str, vector_id: str, version: int) -> np.ndarray:
    """The vector written for ``vector_id`` of ``database`` at ``version`` (read-only)."""
    key = f"{database}/{vector_id}/{version}".encode()
    seed = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")
    vector = np.random.default_rng(seed).standard_normal(_DIM).astype(np.float32)
    vector.flags.writeable = False
    return vector


class _Log:
    """The acknowledgement log: one ``os.write`` per line on an O_APPEND descriptor."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, **fields: Any) -> None:
        os.write(self._fd, (json.dumps(fields, separators=(",", ":")) + "\n").encode())


def _read_log(path: Path) -> list[dict[str, Any]]:
    entries = []
    for line in path.read_bytes().splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue  # the line the kill cut
    return entries


class KillTortureTests(KillLoopBase):
    """A writer killed at random moments of mixed multi-threaded work."""

    # ------------------------------------------------------------------ the child

    def _child(self, tmp_path: Path, log_path: Path, seed: int,
               first_version: int) -> None:  # pragma: no cover - runs in a child
        rng = np.random.default_rng(seed)
        threads = int(rng.choice([1, 1, 2, 3]))
        interval = float(rng.choice([0.0, 0.05, 0.2]))
        log = _Log(log_path)
        holder = {"store": self.make_store(tmp_path, flush_interval=interval)}
        log.write(ready=True, threads=threads, flush_interval=interval)
        meta_ok = self.supports_metadata
        # Versions only grow, across threads and cycles, so every version
        # issued is unique to one call.
        counter = iter(range(first_version, first_version + 10**9, 1))
        lock = threading.Lock()

        def next_version() -> int:
            with lock:
                return next(counter)

        def work(thread: int) -> None:
            trng = np.random.default_rng(seed * 16 + thread)
            mine: dict[tuple[str, str], int] = {}  # what this thread's ids hold now
            for step in range(10**9):
                store = holder["store"]
                database = _DATABASES[int(trng.integers(len(_DATABASES)))]
                db = store.get_database(database)
                roll = float(trng.random())
                opseq = f"{thread}.{step}"
                if roll < 0.25 or not mine:
                    op, ids = "store", [f"{thread}-{int(trng.integers(_IDS_PER_THREAD))}"]
                elif roll < 0.45:
                    live = [vid for (dbn, vid), ver in mine.items() if dbn == database and ver >= 0]
                    if live:
                        op, ids = "update", [live[int(trng.integers(len(live)))]]
                    else:
                        op, ids = "store", [f"{thread}-{int(trng.integers(_IDS_PER_THREAD))}"]
                elif roll < 0.55:
                    op, ids = "delete", [f"{thread}-{int(trng.integers(_IDS_PER_THREAD))}"]
                elif roll < 0.75:
                    n = int(trng.integers(1, 120))
                    picks = trng.choice(_IDS_PER_THREAD, size=min(n, _IDS_PER_THREAD),
                                        replace=False)
                    op, ids = "batch", [f"{thread}-{int(i)}" for i in picks]
                elif roll < 0.90:
                    op, ids = "read", []
                elif roll < 0.93:
                    op, ids = "flush", []
                elif roll < 0.95:
                    op, ids = "sync", []
                elif thread == 0 and roll < 0.97:
                    op, ids = "compact", []
                elif thread == 0 and roll < 0.99:
                    op, ids = ("delete_db" if _SPARE in store else "create_db"), []
                elif thread == 0 and threads == 1:
                    op, ids = "reopen", []
                else:
                    op, ids = "read", []
                if op == "read":
                    for (dbn, vid), version in list(mine.items())[:20]:
                        if dbn != database:
                            continue
                        got = db.retrieve(vid)
                        want = None if version < 0 else issued_vector(dbn, vid, version)
                        if (got is None) != (want is None) or (
                                got is not None and not np.array_equal(got, want)):
                            log.write(wrong_read=f"{dbn}/{vid}", want=version)
                    continue
                version = next_version()
                log.write(b=opseq, op=op, db=database, ids=ids, v=version)
                if op in ("store", "update"):
                    vec = issued_vector(database, ids[0], version)
                    meta = {"v": version} if meta_ok else None
                    (db.store if op == "store" else db.update)(ids[0], vec, metadata=meta)
                    mine[(database, ids[0])] = version
                elif op == "delete":
                    db.delete(ids[0])
                    mine[(database, ids[0])] = -1
                elif op == "batch":
                    vecs = np.stack([issued_vector(database, i, version) for i in ids])
                    metas = [{"v": version}] * len(ids) if meta_ok else None
                    db.batch_store(ids, vecs, metas)
                    for i in ids:
                        mine[(database, i)] = version
                elif op == "flush":
                    store.flush()
                elif op == "sync":
                    store.sync()
                elif op == "compact":
                    db.compact()
                elif op == "create_db":
                    spare = store.create_database(_SPARE, _DIM, metric="l2")
                    spare.batch_store(["a", "b", "c"], np.stack(
                        [issued_vector(_SPARE, i, version) for i in "abc"]))
                elif op == "delete_db":
                    store.delete_database(_SPARE)
                elif op == "reopen":
                    store.close()
                    holder["store"] = self.make_store(tmp_path, flush_interval=interval)
                log.write(a=opseq)

        workers = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(threads)]
        for t in workers:
            t.start()
        while any(t.is_alive() for t in workers):
            time.sleep(0.01)
        os._exit(3)  # a thread died (its traceback is on stderr): not a kill

    # ----------------------------------------------------------------- the oracle

    @staticmethod
    def _replay(entries: list[dict[str, Any]], state: dict[tuple[str, str], int],
                spare: dict[str, Any]) -> tuple[list[dict[str, Any]], int, int]:
        """Apply the acknowledged calls of one child's log to ``state`` (an id's
        version, -1 when deleted) and ``spare`` (the spare database, or absent);
        return the calls begun but not acknowledged, the acknowledged count and
        the count of wrong reads the child logged."""
        begun: dict[str, dict[str, Any]] = {}
        acked = wrong_reads = 0
        for entry in entries:
            if "b" in entry:
                begun[entry["b"]] = entry
            elif "a" in entry:
                call = begun.pop(entry["a"])
                acked += 1
                op, version = call["op"], call["v"]
                if op in ("store", "update", "batch"):
                    for i in call["ids"]:
                        state[(call["db"], i)] = version
                elif op == "delete":
                    state[(call["db"], call["ids"][0])] = -1
                elif op == "create_db":
                    spare.clear()
                    spare.update(present=True, version=version)
                elif op == "delete_db":
                    spare.clear()
            elif "wrong_read" in entry:
                wrong_reads += 1
        return list(begun.values()), acked, wrong_reads

    def _check(self, store: jadevec.Store, state: dict[tuple[str, str], int],
               spare: dict[str, Any], pending: list[dict[str, Any]],
               touched: set[tuple[str, str]], counts: Counter[str], problems: list[str],
               rng: np.random.Generator) -> None:
        """Compare the reopened store with the oracle; settle the interrupted calls.

        Every vector is compared; metadata (one SQL read each on some backends)
        for the ids the last child wrote and a sample of the others."""
        in_flight: dict[tuple[str, str], list[int]] = {}
        batches = []
        for call in pending:
            if call["op"] in ("store", "update", "batch", "delete"):
                new = -1 if call["op"] == "delete" else call["v"]
                for i in call["ids"]:
                    in_flight.setdefault((call["db"], i), []).append(new)
                if call["op"] == "batch":
                    batches.append(call)
        for name in _DATABASES:
            db = store.get_database(name)
            listed = db.list_vectors()
            if len(set(listed)) != len(listed):
                counts["duplicate_ids"] += 1
                problems.append(f"{name}: list_vectors has duplicates")
            keys = {k for k in state if k[0] == name} | {k for k in in_flight if k[0] == name}
            for vid in set(listed) - {k[1] for k in keys}:
                counts["phantom"] += 1
                problems.append(f"{name}/{vid}: never written, yet stored")
            got_all = db.batch_retrieve(sorted(k[1] for k in keys))
            live = 0
            for (dbn, vid), got in zip(sorted(keys), got_all, strict=True):
                before = state.get((dbn, vid), -1)
                allowed = [before, *in_flight.get((dbn, vid), [])]
                if got is None:
                    have = -1
                else:
                    have = next((v for v in allowed if v >= 0 and np.array_equal(
                        got, issued_vector(dbn, vid, v))), None)
                    if have is None:
                        counts["garbage"] += 1
                        problems.append(f"{dbn}/{vid}: a vector of no allowed version "
                                        f"{allowed}")
                        continue
                    live += 1
                    if self.supports_metadata and ((dbn, vid) in touched
                                                   or rng.random() < 0.05):
                        meta = db.get_metadata(vid)
                        if meta != {"v": have}:
                            counts["unpaired_metadata"] += 1
                            problems.append(f"{dbn}/{vid}: metadata {meta} beside version "
                                            f"{have}")
                if have not in allowed:
                    kind = "resurrected" if before == -1 and have >= 0 else "lost"
                    counts[kind] += 1
                    problems.append(f"{dbn}/{vid}: holds {have}, allowed {allowed}")
                state[(dbn, vid)] = have  # the next cycle starts from what is there
            if len(db) != live:
                counts["wrong_len"] += 1
                problems.append(f"{name}: len {len(db)} but {live} live ids")
            live_ids = [k[1] for k, v in state.items() if k[0] == name and v >= 0]
            for vid in rng.choice(live_ids, size=min(3, len(live_ids)), replace=False) \
                    if live_ids else []:
                vec = issued_vector(name, str(vid), state[(name, str(vid))])
                hits = db.search(vec, k=1)
                if not hits or hits[0][0] != vid:
                    counts["wrong_hits"] += 1
                    problems.append(f"{name}/{vid}: search found {hits[:1]}")
        for call in batches:  # a batch cut by the kill left a prefix of itself
            applied = [state[(call["db"], i)] == call["v"] for i in call["ids"]]
            if applied != sorted(applied, reverse=True):
                counts["batch_not_prefix"] += 1
                problems.append(f"batch {call['b']} applied {applied}")
        self._check_spare(store, spare, pending, counts, problems)

    @staticmethod
    def _check_spare(store: jadevec.Store, spare: dict[str, Any],
                     pending: list[dict[str, Any]], counts: Counter[str],
                     problems: list[str]) -> None:
        """The spare database is whole or gone, as its create and delete calls say."""
        cut = next((c for c in pending if c["op"] in ("create_db", "delete_db")), None)
        cut_op = cut["op"] if cut else None
        if _SPARE not in store:
            if spare and cut_op != "delete_db":
                counts["lost"] += 1
                problems.append("the spare database is gone, its deletion never begun")
            spare.clear()
            return
        if not spare and cut_op != "create_db":
            counts["resurrected"] += 1
            problems.append("the spare database is there after its deletion was acknowledged")
        version = cut["v"] if cut_op == "create_db" else spare.get("version")
        got = store.get_database(_SPARE).batch_retrieve(["a", "b", "c"])
        present = [g is not None for g in got]
        complete = all(present)
        # Only a creation cut short (its batch in flight) may leave it partly filled.
        if present != sorted(present, reverse=True) or (cut_op != "create_db" and not complete):
            counts["lost"] += 1
            problems.append(f"the spare database holds {present}")
        for vid, g in zip("abc", got, strict=True):
            if g is not None and not np.array_equal(g, issued_vector(_SPARE, vid, version)):
                counts["garbage"] += 1
                problems.append(f"spare/{vid}: not the vector written")
        if complete:
            spare.clear()
            spare.update(present=True, version=version)
        else:  # an interrupted creation: start the spare over
            store.delete_database(_SPARE)
            spare.clear()

    # ------------------------------------------------------------------- the test

    def _fresh(self, tmp_path: Path) -> None:
        path = self.store_path(tmp_path)
        if path is not None and path.exists():
            shutil.rmtree(path)
        with self.make_store(tmp_path, flush_interval=0) as store:
            for name in _DATABASES:
                store.create_database(name, _DIM, metric="l2")

    @pytest.mark.torture
    def test_killed_during_mixed_work(self, tmp_path: Path) -> None:
        if not self.persistent:
            pytest.skip("backend is not persistent")
        rng = np.random.default_rng(11)
        counts: Counter[str] = Counter()
        kills_by_call: Counter[str] = Counter()
        problems: list[str] = []
        state: dict[tuple[str, str], int] = {}
        spare: dict[str, Any] = {}
        log_path = tmp_path / "acks.log"
        version = 1
        recover_ms: list[float] = []
        for cycle in range(stress_cycles()):
            if cycle % _FRESH_EVERY == 0:
                self._fresh(tmp_path)
                state.clear()
                spare.clear()
            log_path.write_bytes(b"")
            child = ForkedChild(lambda c=cycle, v=version: self._child(tmp_path, log_path, c, v))
            early = rng.random() < 0.1  # during the open, which may be recovering
            if not early:
                deadline = time.monotonic() + 20
                while b"ready" not in log_path.read_bytes() and time.monotonic() < deadline:
                    time.sleep(0.002)
            time.sleep(float(rng.uniform(0, 0.01 if early else 0.3)))
            counts["kills"] += 1
            if not child.kill():
                counts["child_failures"] += 1
                problems.append(f"cycle {cycle}: the child ended by itself (a thread failed)")
            entries = _read_log(log_path)
            if not any(e.get("ready") for e in entries):
                kills_by_call["open"] += 1
            pending, acked, wrong_reads = self._replay(entries, state, spare)
            touched = {(e["db"], i) for e in entries if "b" in e for i in e["ids"]}
            counts["acks_checked"] += acked
            counts["wrong_reads"] += wrong_reads
            for call in pending:
                kills_by_call[call["op"]] += 1
            if entries and not pending and any(e.get("ready") for e in entries):
                kills_by_call["between_calls"] += 1
            version += sum(1 for e in entries if "b" in e) + 1
            started = time.perf_counter()

            def first_read(store: jadevec.Store, started: float = started) -> None:
                store.get_database(_DATABASES[0]).retrieve("0-0")  # opens (recovers) its files
                recover_ms.append((time.perf_counter() - started) * 1e3)

            store = self.reopen_after_kill(tmp_path, f"cycle {cycle}", counts, problems,
                                           first_read)
            if store is None:
                break
            try:
                before = len(problems)
                self._check(store, state, spare, pending, touched, counts, problems,
                            np.random.default_rng(cycle))
                for i in range(before, len(problems)):
                    problems[i] = f"cycle {cycle}: {problems[i]}"
            finally:
                store.close()
        recover_ms.sort()
        result: dict[str, Any] = {
            **{k: counts[k] for k in ("kills", "acks_checked", "lost", "resurrected",
                                      "phantom", "garbage", "batch_not_prefix",
                                      "unpaired_metadata", "wrong_len", "wrong_hits",
                                      "duplicate_ids", "wrong_reads", "failed_reopens",
                                      "verify_failures", "child_failures")},
            "kills_by_call": dict(kills_by_call),
            "reopen_ms_p50": round(recover_ms[len(recover_ms) // 2], 2) if recover_ms else None,
            "reopen_ms_p99": (round(recover_ms[int(len(recover_ms) * 0.99)], 2)
                              if recover_ms else None),
        }
        report_counts(f"killed_during_mixed_work[{self.backend}]", result)
        assert not problems, (result, problems[:8])
