"""Conformance tests (part of ``BackendTests``, persistent backends only): readers
beside a writer, and a writer killed at random moments of the database lifecycle.

Both are loops that count what went wrong rather than stop at the first
failure, then assert every count is zero. Each carries the ``slow`` marker;
``JADEVEC_STRESS_CYCLES`` sets the number of cycles (default 200), and
``JADEVEC_STRESS_REPORT`` names a file to which each test appends its counts
as one JSON line (the figures a release note quotes).

The second process is made with ``os.fork()`` from the test process (which
holds no open store at that moment), so a cycle costs milliseconds rather
than an interpreter start.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import jadevec
from jadevec.testing._base import SuiteBase
from jadevec.testing._child import ForkedChild

__all__ = ["StressTests", "report_counts", "stress_cycles", "torture_scale"]

_DIM = 16


def stress_cycles() -> int:
    """Cycles per stress test: ``JADEVEC_STRESS_CYCLES``, default 200."""
    return int(os.environ.get("JADEVEC_STRESS_CYCLES", "200"))


def torture_scale() -> int:
    """Size of the power-loss and fault-injection loops: ``JADEVEC_TORTURE_SCALE``,
    default 1 (the short run); the long run sets 10."""
    return max(1, int(os.environ.get("JADEVEC_TORTURE_SCALE", "1")))


def report_counts(name: str, counts: dict[str, Any]) -> None:
    """Append ``counts`` as one JSON line to the file ``JADEVEC_STRESS_REPORT`` names
    (if it is set): the figures a torture or stress run reports."""
    path = os.environ.get("JADEVEC_STRESS_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"test": name, **counts}) + "\n")


def versioned(vector_id: str, version: int) -> np.ndarray:
    """The vector a writer stores for ``vector_id`` at ``version``: its first value
    is the version, so a reader can tell a right vector from a torn or wrong one."""
    seed = int.from_bytes(vector_id.encode()[-8:].rjust(8, b"\0"), "little") ^ version
    v = np.random.default_rng(seed).standard_normal(_DIM).astype(np.float32)
    v[0] = version
    return v


class KillLoopBase(SuiteBase):
    """What every kill loop does after a kill: reopen, recover, verify."""

    def reopen_after_kill(self, tmp_path: Path, label: str, counts: dict[str, Any],
                          problems: list[str],
                          first_read: Callable[[jadevec.Store], Any] | None = None,
                          ) -> jadevec.Store | None:
        """Open the store a killed writer left (counting ``failed_reopens`` and
        ``verify_failures`` in ``counts``); ``None`` when it would not open.

        ``first_read`` runs before ``verify()``, so that a caller can time the
        recovery the first read triggers on its own.
        """
        try:
            store = self.make_store(tmp_path, flush_interval=0)
        except Exception as exc:  # noqa: BLE001 - counted: the store must always open
            counts["failed_reopens"] += 1
            problems.append(f"{label}: reopen failed: {exc!r}")
            return None
        try:
            if first_read is not None:
                first_read(store)
            report = store.verify()
        except BaseException:
            store.close()
            raise
        if not report.ok:
            counts["verify_failures"] += 1
            problems.append(f"{label}: verify: {report.problems[:3]}")
        return store


class StressTests(KillLoopBase):
    """Readers beside a writer; a writer killed during create, delete, compact and close."""

    # ------------------------------------------------------ readers beside a writer

    def open_read_only(self, tmp_path: Path) -> jadevec.Store:
        """Open the store under test read-only (override with ``make_store``)."""
        return self.make_store(tmp_path, read_only=True)

    def _writer(self, tmp_path: Path, stop: Path) -> None:  # pragma: no cover - a child
        store = self.make_store(tmp_path, flush_interval=0.5)
        db = store.get_database("rw")
        rng = np.random.default_rng(os.getpid())
        version: dict[str, int] = {}
        batch = 0
        progress = tmp_path / "writer-progress"
        while not stop.exists():
            progress.write_text(json.dumps({"batches": batch, "syncs": batch // 2,
                                            "compactions": batch // 5}))
            ids = list(dict.fromkeys(f"w{int(i)}" for i in rng.integers(0, 20000, 2000)))
            for i in ids:
                version[i] = version.get(i, 0) + 1
            db.batch_store(ids, np.stack([versioned(i, version[i]) for i in ids]))
            for i in ids[:100]:  # deletes free slots the next commits may reuse
                db.delete(i)
                version.pop(i)
            batch += 1
            if batch % 2 == 0:
                store.sync()
            if batch % 5 == 0:
                db.compact()  # the folder is swapped under the readers

    @pytest.mark.slow
    def test_readers_beside_a_writer(self, tmp_path: Path) -> None:
        if not self.persistent:
            pytest.skip("backend is not persistent")
        stable_ids = [f"s{i}" for i in range(100)]
        stable = {i: versioned(i, 0) for i in stable_ids}
        with self.make_store(tmp_path, flush_interval=0) as store:
            db = store.create_database("rw", _DIM, metric="l2")
            db.batch_store(stable_ids, np.stack(list(stable.values())))
            store.sync()
        stop = tmp_path / "stop-writer"
        writer = ForkedChild(lambda: self._writer(tmp_path, stop))
        counts = {"cycles": 0, "reads": 0, "wrong": 0, "missing": 0, "errors": 0,
                  "empty_searches": 0, "wrong_hits": 0, "writer_reads": 0, "writer_hits": 0,
                  "writer_wrong": 0}
        first_error = None
        latency: list[float] = []
        rng = np.random.default_rng(5)
        progress = tmp_path / "writer-progress"

        def compactions() -> int:
            try:
                return int(json.loads(progress.read_text())["compactions"])
            except (OSError, ValueError, KeyError):
                return 0

        try:
            time.sleep(0.2)  # the writer is under way
            deadline = time.monotonic() + 120
            # At least the asked cycles, and long enough to see the writer
            # compact (swap the folder) three times.
            while counts["cycles"] < stress_cycles() or (
                    compactions() < 3 and time.monotonic() < deadline):
                counts["cycles"] += 1
                try:
                    with self.open_read_only(tmp_path) as reader:
                        rdb = reader.get_database("rw")
                        rdb.retrieve(stable_ids[0])  # opens the files: not a read's latency
                        for i in stable_ids:
                            t = time.perf_counter()
                            got = rdb.retrieve(i)
                            latency.append(time.perf_counter() - t)
                            counts["reads"] += 1
                            if got is None:
                                counts["missing"] += 1
                            elif not np.array_equal(got, stable[i]):
                                counts["wrong"] += 1
                        target = stable_ids[int(rng.integers(100))]
                        hits = rdb.search(stable[target], k=1)
                        if not hits:
                            counts["empty_searches"] += 1
                        elif hits[0][0] != target:
                            counts["wrong_hits"] += 1
                        # The writer's vectors: every one read is some version of
                        # its id, whole (a batch and a search each read one commit
                        # for a while, which is when reuse would hurt).
                        wids = [f"w{int(i)}" for i in rng.integers(0, 20000, 300)]
                        for wid, got in zip(wids, rdb.batch_retrieve(wids), strict=True):
                            if got is not None:
                                counts["writer_reads"] += 1
                                if not np.array_equal(got, versioned(wid, int(got[0]))):
                                    counts["writer_wrong"] += 1
                        query = versioned(wids[0], 1)
                        for hit, score in rdb.search(query, k=10):
                            counts["writer_hits"] += 1
                            if hit.startswith("s"):
                                ok = np.isclose(score, np.linalg.norm(stable[hit] - query))
                            else:  # some version of the hit scores exactly this
                                ok = any(np.isclose(score, np.linalg.norm(
                                    versioned(hit, v) - query), rtol=1e-5)
                                    for v in range(1, 64))
                            counts["writer_wrong"] += not ok
                except Exception as exc:  # noqa: BLE001 - counted: a reader must never raise
                    counts["errors"] += 1
                    first_error = first_error or repr(exc)
        finally:
            stop.touch()
            status, detail = writer.outcome(60)  # killed if it does not stop by then
        if progress.exists():
            counts["writer"] = json.loads(progress.read_text())
        latency.sort()
        counts["retrieve_p50_us"] = round(latency[len(latency) // 2] * 1e6, 1) if latency else 0
        counts["retrieve_p99_us"] = (round(latency[int(len(latency) * 0.99)] * 1e6, 1)
                                     if latency else 0)
        report_counts(f"readers_beside_a_writer[{self.backend}]", counts)
        assert status == "ok", f"the writer failed: {status} {detail}"
        assert counts["errors"] == 0, (counts, first_error)
        assert counts["wrong"] == counts["missing"] == counts["wrong_hits"] == 0, counts
        assert counts["empty_searches"] == counts["writer_wrong"] == 0, counts
        with self.make_store(tmp_path, flush_interval=0) as store:
            assert store.verify().ok

    # --------------------------------------------- killed during the database lifecycle

    def _lifecycle(self, tmp_path: Path, log: Path, seed: int) -> None:  # pragma: no cover
        """A child: create, fill, update, compact, delete databases and close the store,
        logging each operation before it starts and after it returns."""
        names = [f"life{i}" for i in range(7)]
        rng = np.random.default_rng(seed)
        ack = open(log, "a", buffering=1)

        def note(**fields: Any) -> None:
            ack.write(json.dumps(fields) + "\n")  # line buffered: one write() per line

        store = self.make_store(tmp_path, flush_interval=0)
        value = int(rng.integers(1 << 20))
        while True:
            name = names[int(rng.integers(len(names)))]
            value += 1
            vector = [float(value)] * 4
            meta = {"v": value} if self.supports_metadata else None
            if name in store:
                op = ["delete", "store", "compact", "close"][int(rng.integers(4))]
                note(begin=op, name=name, value=value)
                if op == "delete":
                    store.delete_database(name)
                elif op == "store":
                    store.get_database(name).store("x", vector, metadata=meta)
                elif op == "compact":
                    store.get_database(name).compact()
                else:
                    store.close()
                    store = self.make_store(tmp_path, flush_interval=0)
            else:
                note(begin="create", name=name, value=value)
                store.create_database(name, 4, metric="l2").store("x", vector, metadata=meta)
            note(done=True)

    @staticmethod
    def _expected(log: Path, state: dict[str, int | None]) -> dict[str, tuple[Any, ...]]:
        """What each name may look like now: a set of acceptable states.

        ``state`` maps a name to the value of its vector, or None when absent;
        it is updated with every acknowledged operation. An operation begun
        but not acknowledged allows both its before and after states.
        """
        pending = None
        for line in log.read_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line cut by the kill
            if "begin" in entry:
                pending = entry
                continue
            if pending is None:
                continue
            op, name, value = pending["begin"], pending["name"], pending["value"]
            if op == "create" or op == "store":
                state[name] = value
            elif op == "delete":
                state[name] = None
            pending = None
        allowed = {n: (v,) for n, v in state.items()}
        if pending is not None:
            op, name, value = pending["begin"], pending["name"], pending["value"]
            before = state.get(name)
            if op == "create":  # not created, created but empty, or created with x
                allowed[name] = (before, "empty", value)
            elif op == "store":
                allowed[name] = (before, value)
            elif op == "delete":
                allowed[name] = (before, None)
        return allowed

    @pytest.mark.slow
    def test_killed_during_the_database_lifecycle(self, tmp_path: Path) -> None:
        if not self.persistent:
            pytest.skip("backend is not persistent")
        log = tmp_path / "acks.log"
        state: dict[str, int | None] = {}
        rng = np.random.default_rng(8)
        counts = {"kills": 0, "failed_reopens": 0, "verify_failures": 0, "lost": 0,
                  "unexpected": 0, "duplicate_names": 0}
        problems: list[str] = []
        for cycle in range(stress_cycles()):
            log.write_text("")
            child = ForkedChild(lambda cycle=cycle: self._lifecycle(tmp_path, log, seed=cycle))
            time.sleep(float(rng.uniform(0.01, 0.12)))
            child.kill()
            counts["kills"] += 1
            allowed = self._expected(log, state)
            store = self.reopen_after_kill(tmp_path, f"cycle {cycle}", counts, problems)
            if store is None:
                break
            try:
                listed = store.list_databases()
                if len({n.lower() for n in listed}) != len(listed):
                    counts["duplicate_names"] += 1
                seen: dict[str, Any] = {}
                for name in listed:
                    db = store.get_database(name)
                    got = db.retrieve("x")
                    seen[name] = "empty" if got is None else int(got[0])
                    if got is not None and self.supports_metadata:
                        meta = db.get_metadata("x")
                        if meta != {"v": int(got[0])}:
                            counts["lost"] += 1
                            problems.append(f"cycle {cycle}: {name}: metadata {meta} for "
                                            f"vector {int(got[0])}")
                for name in set(allowed) | set(seen):
                    have = seen.get(name)
                    ok = allowed.get(name, (None,))
                    if have not in ok:
                        counts["lost" if have is None or have == "empty" else "unexpected"] += 1
                        problems.append(f"cycle {cycle}: {name} is {have}, allowed {ok}")
                # The next cycle starts from what is there now.
                for name in set(allowed) | set(seen):
                    have = seen.get(name)
                    state[name] = None if have in (None, "empty") else have
                    if have == "empty":
                        store.delete_database(name)
            finally:
                store.close()
        report_counts(f"killed_during_the_database_lifecycle[{self.backend}]", counts)
        assert not problems, (counts, problems[:5])
