"""Concurrency stress: many threads on one store, each run in a subprocess.

A SIGSEGV / SIGBUS in the worker is a failed test (a non-zero exit code), not
a dead pytest; a deadlock is caught by the subprocess timeout.

What makes the assertions deterministic although thread timing varies:

* every writer thread owns its own ids, so the model of what each id holds
  is sequential per thread (a thread's own reads must see its last write);
* every vector is a pure function of ``(id number, version)``, and carries
  both in its first two components, so any vector read by any thread can be
  checked exactly against the vector it claims to be (garbage or a torn read
  is caught without knowing the interleaving);
* the final state (after all threads joined) is compared exactly with the
  union of the per-thread models: ids, vectors, ``len``, ``verify()``, and
  search results recomputed with numpy from the retrieved vectors.

The worker is this file run as a script: ``python <this file> BACKEND
SCENARIO SEED DIR``. Scenarios: ``mixed`` (reads, writes, growth from a tiny
file, compaction, flush/sync), ``teardown`` (delete_database and close race
the others) and ``evict`` (``max_open_files=1`` over several databases).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import traceback
from pathlib import Path

import numpy as np
import pytest

DIM = 13  # not a multiple of the SIMD width: padded rows, scalar tails
METRICS = ("cosine", "l2", "dot")
ROOT = Path(__file__).resolve().parents[2]


def _backends() -> list[str]:
    names = ["memory", "mmap", "hybrid"]
    try:
        import jadevec_lmdb  # noqa: F401
    except ImportError:
        pass
    else:
        names.append("lmdb")
    return names


# -- the worker ---------------------------------------------------------------------


def vector(num: int, version: int) -> np.ndarray:
    """The vector of id number ``num`` at ``version``: a pure function of both."""
    rng = np.random.default_rng(num * 1_000_003 + version)
    v = rng.standard_normal(DIM).astype(np.float32)
    v[0] = np.float32(num)
    v[1] = np.float32(version)
    return v


def check_vector(vid: str, got: np.ndarray | None) -> None:
    """``got`` must be exactly one of the vectors ever written under ``vid``."""
    if got is None:
        return
    num = int(vid.split("-")[1])
    assert got.dtype == np.float32 and got.shape == (DIM,), (vid, got.dtype, got.shape)
    assert got[0] == num, f"{vid}: vector of another id {got[0]}"
    want = vector(num, int(got[1]))
    assert np.array_equal(got, want), f"{vid}: garbage vector {got}"


def check_hits(hits: list, k: int, metric: str) -> None:
    assert len(hits) <= k, (len(hits), k)
    seen = set()
    scores = []
    for vid, score in hits:
        assert isinstance(vid, str) and vid.startswith("v-"), vid
        assert vid not in seen, f"duplicate hit {vid}"
        seen.add(vid)
        assert np.isfinite(score), (vid, score)
        scores.append(score)
    order = np.diff(scores)
    if metric == "l2":
        assert np.all(order >= -1e-4), scores
    else:
        assert np.all(order <= 1e-4), scores


def score_all(mat: np.ndarray, q: np.ndarray, metric: str) -> np.ndarray:
    mat64, q64 = mat.astype(np.float64), q.astype(np.float64)
    if metric == "dot":
        return mat64 @ q64
    if metric == "cosine":
        norms = np.linalg.norm(mat64, axis=1) * np.linalg.norm(q64)
        return (mat64 @ q64) / np.where(norms == 0, 1, norms)
    return np.linalg.norm(mat64 - q64, axis=1)


class Owner:
    """The ids one writer thread owns and what each holds now (``None``: absent)."""

    def __init__(self, tid: int, per_thread: int) -> None:
        self.nums = [tid * 100_000 + i for i in range(per_thread)]
        self.version = dict.fromkeys(self.nums, 0)
        self.present: dict[int, bool] = dict.fromkeys(self.nums, False)

    @staticmethod
    def vid(num: int) -> str:
        return f"v-{num}"


def final_check(db, model: dict[str, np.ndarray], metric: str, rng) -> None:
    ids = sorted(db.list_vectors())
    assert ids == sorted(model), (
        f"{db.name}: ids differ: missing {sorted(set(model) - set(ids))[:5]}, "
        f"extra {sorted(set(ids) - set(model))[:5]}")
    assert len(db) == len(model)
    got = db.batch_retrieve(ids)
    for vid, vec in zip(ids, got, strict=True):
        assert vec is not None and np.array_equal(vec, model[vid]), vid
        one = db.retrieve(vid)
        assert one is not None and np.array_equal(one, model[vid]), vid
    if not ids:
        assert db.search(rng.standard_normal(DIM), k=3) == []
        return
    mat = np.stack([model[i] for i in ids])
    queries = rng.standard_normal((4, DIM)).astype(np.float32)
    for k in (1, 7, len(ids) + 5):
        results = db.search(queries, k=k)
        assert len(results) == len(queries)
        for q, hits in zip(queries, results, strict=True):
            check_hits(hits, k, metric)
            assert len(hits) == min(k, len(ids)), (len(hits), k, len(ids))
            all_scores = score_all(mat, q, metric)
            pos = {vid: i for i, vid in enumerate(ids)}
            for vid, score in hits:
                assert abs(all_scores[pos[vid]] - score) <= 1e-3 * max(1, abs(score)), (
                    vid, score, all_scores[pos[vid]])
            # Nothing left out may beat the worst hit (beyond rounding).
            worst = hits[-1][1]
            left = np.delete(all_scores, [pos[v] for v, _ in hits])
            if left.size:
                if metric == "l2":
                    assert left.min() >= worst - 1e-3 * max(1, abs(worst)), (left.min(), worst)
                else:
                    assert left.max() <= worst + 1e-3 * max(1, abs(worst)), (left.max(), worst)
    single = db.search(queries[0], k=3)
    assert isinstance(single, list) and all(isinstance(h, tuple) for h in single)


class Run:
    """Shared state of one worker run: errors of every thread, the stop flag."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def fail(self, where: str) -> None:
        with self.lock:
            self.errors.append(f"{where}:\n{traceback.format_exc()}")
        self.stop.set()


def writer(run: Run, dbs: list, owner: Owner, seed: int, rounds: int) -> None:
    """Owns ``owner``'s ids in every db: batch stores, stores, updates, deletes."""
    rng = np.random.default_rng(seed)
    try:
        for _ in range(rounds):
            if run.stop.is_set():
                return
            db = dbs[int(rng.integers(len(dbs)))]
            state = owner_state(owner, db)
            op = rng.random()
            nums = owner.nums
            if op < 0.3:  # batch of new or replaced ids (grows the file)
                pick = sorted(set(rng.choice(nums, size=min(len(nums), 40), replace=False)))
                vecs = []
                for n in pick:
                    state.version[n] += 1
                    vecs.append(vector(n, state.version[n]))
                db.batch_store([Owner.vid(n) for n in pick], np.stack(vecs))
                for n in pick:
                    state.present[n] = True
            elif op < 0.5:
                n = int(rng.choice(nums))
                state.version[n] += 1
                db.store(Owner.vid(n), vector(n, state.version[n]))
                state.present[n] = True
            elif op < 0.65:
                n = int(rng.choice(nums))
                if state.present[n]:
                    state.version[n] += 1
                    db.update(Owner.vid(n), vector(n, state.version[n]))
            elif op < 0.8:
                n = int(rng.choice(nums))
                existed = db.delete(Owner.vid(n))
                assert existed == state.present[n], (Owner.vid(n), existed)
                state.present[n] = False
            else:  # own reads: must see the last own write exactly
                pick = [int(x) for x in rng.choice(nums, size=5, replace=False)]
                got = db.batch_retrieve([Owner.vid(n) for n in pick])
                for n, vec in zip(pick, got, strict=True):
                    want = vector(n, state.version[n]) if state.present[n] else None
                    assert (vec is None) == (want is None), (Owner.vid(n), vec, want)
                    assert vec is None or np.array_equal(vec, want), Owner.vid(n)
                n = pick[0]
                one = db.retrieve(Owner.vid(n))
                if state.present[n]:
                    assert one is not None and np.array_equal(one, vector(n, state.version[n]))
                else:
                    assert one is None
    except Exception:
        run.fail(f"writer {owner.nums[0] // 100_000}")


_STATES: dict[tuple[int, str], Owner] = {}
_STATES_LOCK = threading.Lock()


def owner_state(owner: Owner, db) -> Owner:
    """The per-database model of ``owner`` (one Owner object per (owner, db))."""
    key = (id(owner), db.name)
    with _STATES_LOCK:
        state = _STATES.get(key)
        if state is None:
            state = _STATES[key] = Owner(owner.nums[0] // 100_000, len(owner.nums))
        return state


def reader(run: Run, dbs: list, seed: int, ok_errors: tuple = ()) -> None:
    """Searches (1-D, 2-D, k beyond len), retrieves, lists and counts until stopped."""
    rng = np.random.default_rng(seed)
    try:
        while not run.stop.is_set():
            db = dbs[int(rng.integers(len(dbs)))]
            metric = db.metric
            try:
                op = rng.random()
                if op < 0.35:
                    k = int(rng.integers(1, 200))
                    if rng.random() < 0.5:
                        check_hits(db.search(rng.standard_normal(DIM), k=k), k, metric)
                    else:
                        for hits in db.search(rng.standard_normal((3, DIM)), k=k):
                            check_hits(hits, k, metric)
                elif op < 0.55:
                    ids = db.list_vectors()
                    assert all(isinstance(i, str) and i.startswith("v-") for i in ids)
                    assert len(set(ids)) == len(ids)
                    if ids:
                        pick = [ids[int(i)] for i in rng.integers(len(ids), size=8)]
                        for vid, vec in zip(pick, db.batch_retrieve(pick), strict=True):
                            check_vector(vid, vec)
                elif op < 0.8:
                    num = int(rng.integers(4)) * 100_000 + int(rng.integers(30))
                    check_vector(f"v-{num}", db.retrieve(f"v-{num}"))
                else:
                    assert len(db) >= 0
            except ok_errors:
                pass
    except Exception:
        run.fail("reader")


def maintainer(run: Run, store, dbs: list, seed: int, ok_errors: tuple = ()) -> None:
    """compact(), flush() and sync() at random until stopped."""
    rng = np.random.default_rng(seed)
    try:
        while not run.stop.is_set():
            op = rng.random()
            try:
                if op < 0.4:
                    dbs[int(rng.integers(len(dbs)))].compact()
                elif op < 0.7:
                    store.flush()
                else:
                    store.sync()
            except ok_errors:
                pass
            run.stop.wait(0.002)
    except Exception:
        run.fail("maintainer")


def open_store(backend: str, path: str, **options):
    import jadevec

    if backend == "memory":
        return jadevec.open(None, backend="memory")
    return jadevec.open(path, backend=backend, flush_interval=0.05, **options)


def make_dbs(store, count: int) -> list:
    return [store.create_database(f"db{i}", DIM, METRICS[i % len(METRICS)])
            for i in range(count)]


def model_of(owners: list[Owner], db) -> dict[str, np.ndarray]:
    model = {}
    for owner in owners:
        state = owner_state(owner, db)
        for n in state.nums:
            if state.present[n]:
                model[Owner.vid(n)] = vector(n, state.version[n])
    return model


def join_all(threads: list[threading.Thread], run: Run, limit: float = 60) -> None:
    for t in threads:
        t.join(limit)
        assert not t.is_alive(), f"{t.name} hangs"


def scenario_mixed(backend: str, path: str, seed: int, scale: int, evict: bool) -> None:
    store = open_store(backend, path, **({"max_open_files": 1} if evict else {}))
    dbs = make_dbs(store, 4 if evict else 2)
    run = Run()
    owners = [Owner(t, 30 * scale) for t in range(3)]
    writers = [threading.Thread(target=writer, name=f"writer{t}",
                                args=(run, dbs, owners[t], seed * 10 + t, 60 * scale))
               for t in range(3)]
    others = [threading.Thread(target=reader, name=f"reader{t}", args=(run, dbs, seed * 20 + t))
              for t in range(3)]
    others.append(threading.Thread(target=maintainer, name="maintainer",
                                   args=(run, store, dbs, seed * 30)))
    for t in writers + others:
        t.start()
    join_all(writers, run)
    run.stop.set()
    join_all(others, run)
    assert not run.errors, "\n".join(run.errors)
    rng = np.random.default_rng(seed)
    models = [model_of(owners, db) for db in dbs]
    for db, model in zip(dbs, models, strict=True):
        final_check(db, model, db.metric, rng)
    report = store.verify()
    assert report.ok, report.problems
    store.close()
    if backend != "memory":  # the same state after a reopen
        store = open_store(backend, path)
        for i, model in enumerate(models):
            db = store.get_database(f"db{i}")
            final_check(db, model, db.metric, rng)
        assert store.verify().ok
        store.close()


def scenario_teardown(backend: str, path: str, seed: int, scale: int) -> None:
    from jadevec.errors import DatabaseNotFoundError, StoreClosedError

    gone = (DatabaseNotFoundError, StoreClosedError)
    store = open_store(backend, path)
    dbs = make_dbs(store, 3)
    for db in dbs:  # something to search and to compact
        nums = list(range(900_000, 900_000 + 50))
        db.batch_store([f"v-{n}" for n in nums], np.stack([vector(n, 1) for n in nums]))
    run = Run()
    threads = [threading.Thread(target=reader, name=f"reader{t}",
                                args=(run, dbs, seed * 20 + t, gone)) for t in range(3)]
    threads.append(threading.Thread(target=maintainer, name="maintainer",
                                    args=(run, store, dbs, seed * 30, gone)))

    def churn(tid: int) -> None:  # writes that race the teardown
        rng = np.random.default_rng(seed * 40 + tid)
        try:
            while not run.stop.is_set():
                db = dbs[int(rng.integers(len(dbs)))]
                n = tid * 100_000 + int(rng.integers(200))
                try:
                    if rng.random() < 0.5:
                        pick = [tid * 100_000 + int(x) for x in rng.integers(200, size=30)]
                        pick = sorted(set(pick))
                        db.batch_store([f"v-{m}" for m in pick],
                                       np.stack([vector(m, 1) for m in pick]))
                    elif rng.random() < 0.5:
                        db.store(f"v-{n}", vector(n, 1))
                    else:
                        db.delete(f"v-{n}")
                except gone:
                    pass
        except Exception:
            run.fail(f"churn {tid}")

    threads += [threading.Thread(target=churn, name=f"churn{t}", args=(t,)) for t in range(2)]
    for t in threads:
        t.start()
    stop_at = np.random.default_rng(seed).uniform(0.05, 0.25, size=2) * scale
    run.stop.wait(stop_at[0])
    store.delete_database("db0")
    run.stop.wait(stop_at[1])
    # While the others keep going: db0 is gone for good, db1/db2 still work.
    for _ in range(3):
        with pytest.raises(DatabaseNotFoundError):
            dbs[0].search(np.ones(DIM), k=3)
        with pytest.raises(DatabaseNotFoundError):
            dbs[0].retrieve("v-900000")
        assert dbs[1].retrieve("v-900000") is not None
    store.close()
    run.stop.wait(0.05)
    run.stop.set()
    join_all(threads, run)
    assert not run.errors, "\n".join(run.errors)
    calls = [
        lambda db: db.search(np.ones(DIM), k=3),
        lambda db: db.search(np.ones((2, DIM)), k=300),
        lambda db: db.retrieve("v-900000"),
        lambda db: db.batch_retrieve(["v-900000", "v-1"]),
        lambda db: db.list_vectors(),
        lambda db: len(db),
        lambda db: db.store("v-1", vector(1, 1)),
        lambda db: db.batch_store(["v-1", "v-2"], np.stack([vector(1, 1), vector(2, 1)])),
        lambda db: db.update("v-900000", vector(900_000, 2)),
        lambda db: db.delete("v-900000"),
        lambda db: db.compact(),
    ]
    for db in dbs:
        for call in calls:
            with pytest.raises(gone):
                call(db)
    for call in (store.flush, store.sync, store.verify, store.list_databases,
                 lambda: store.get_database("db1"), lambda: store.delete_database("db1")):
        with pytest.raises(StoreClosedError):
            call()
    if backend != "memory":  # what survived is consistent
        store = open_store(backend, path)
        assert sorted(store.list_databases()) == ["db1", "db2"]
        for name in ("db1", "db2"):
            db = store.get_database(name)
            ids = db.list_vectors()
            for vid, vec in zip(ids, db.batch_retrieve(ids), strict=True):
                assert vec is not None
                check_vector(vid, vec)
            assert len(db) == len(ids)
        assert store.verify().ok
        store.close()


def main(argv: list[str]) -> int:
    backend, scenario, seed, path = argv[0], argv[1], int(argv[2]), argv[3]
    scale = int(argv[4]) if len(argv) > 4 else 1
    if backend == "lmdb":
        import jadevec_lmdb  # noqa: F401
    if scenario == "mixed":
        scenario_mixed(backend, path, seed, scale, evict=False)
    elif scenario == "evict":
        scenario_mixed(backend, path, seed, scale, evict=True)
    elif scenario == "teardown":
        scenario_teardown(backend, path, seed, scale)
    else:
        raise SystemExit(f"unknown scenario {scenario}")
    print("OK")
    return 0


# -- the tests ----------------------------------------------------------------------


def run_worker(tmp_path: Path, backend: str, scenario: str, seed: int, scale: int = 1,
               timeout: float = 60) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               PYTHONFAULTHANDLER="1")
    cmd = [sys.executable, str(Path(__file__).resolve()), backend, scenario, str(seed),
           str(tmp_path / "store"), str(scale)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                              cwd=str(ROOT))
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{backend}/{scenario} seed {seed}: deadlock? no exit after {timeout} s\n"
                    f"{exc.stdout}\n{exc.stderr}")
    assert proc.returncode == 0 and proc.stdout.strip().endswith("OK"), (
        f"{backend}/{scenario} seed {seed}: exit code {proc.returncode}"
        f"{' (killed by a signal)' if proc.returncode < 0 else ''}\n"
        f"{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")


@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("scenario", ["mixed", "teardown", "evict"])
def test_threads_race(tmp_path: Path, backend: str, scenario: str) -> None:
    run_worker(tmp_path, backend, scenario, seed=1)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2, 12))
@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("scenario", ["mixed", "teardown", "evict"])
def test_threads_race_sweep(tmp_path: Path, backend: str, scenario: str, seed: int) -> None:
    run_worker(tmp_path, backend, scenario, seed=seed, scale=3, timeout=180)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
