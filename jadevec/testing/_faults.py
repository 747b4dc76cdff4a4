"""Fault injection at every file-system call (T4 of the torture harness).

The method is SQLite's I/O-error loop. For each operation script (one store,
a batch that grows the files, update, delete, compact, create and delete of a
database, ``sync()``, ``close()``, an open that recovers after a killed
writer, ``backup()``): build a base store once; run the script once with the
fault shim loaded but not armed, counting the file-system calls it makes
under the store's folder (K); then for every call k in 1..K, every errno and
every mode, run the script again on a fresh copy of the base with the k-th
call failing, and check:

* the call returned, or raised a typed jadevec error naming a path
  (``StorageFullError`` for ENOSPC/EFBIG, or ``StoreFailedError`` when the
  failed call was a durability barrier; for EIO any ``JadevecError`` that is
  an ``OSError``, or the plain ``OSError(EIO, ..., path)`` the architecture
  document allows for an I/O error);
* all or nothing: with the fault cleared, in the child and again in a new
  process that reopens the store without the shim, the store holds exactly
  the state before the script (the call failed) or after it (it returned),
  every acknowledged vector and record bit for bit, and ``verify().ok``;
* no signal killed the child and nothing hung;
* after a fault at a barrier (fsync, fdatasync, msync), one more write with
  the fault cleared tells whether the store marked itself failed.

The children run in a worker process started with ``LD_PRELOAD`` of the
shim (:mod:`jadevec.testing._faultfs`); the worker forks one child per run,
so each run pays for a fork, not an interpreter. The fresh-process checks run
in a fork of the calling process, which has no shim.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import logging
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SCRIPTS", "run_fault_injection"]

DIM = 8
#: Vectors in the base store's "docs" database (above its initial capacity of 64).
_BASE_ROWS = 100
#: The batch script's size: enough to grow every file of the set.
_BATCH_ROWS = 1000
#: Seconds one child may take before it counts as hung.
_CHILD_TIMEOUT = 60.0
_BARRIERS = frozenset({"fsync", "fdatasync", "msync", "sync_file_range"})
_PROBLEMS_KEPT = 20
_PER_KIND_KEPT = 3

SCRIPTS = ("store", "batch", "update", "delete", "compact", "create_database",
           "delete_database", "sync", "close", "open_recover", "backup")


# ------------------------------------------------------------------ the data


def _vector(tag: str) -> np.ndarray:
    """A float32 vector fixed by ``tag`` (the same in every process)."""
    seed = int.from_bytes(hashlib.sha256(tag.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)


def _meta(tag: str, meta: bool) -> dict[str, Any] | None:
    return {"tag": tag, "pad": "m" * 40} if meta else None


def _digest(vector: np.ndarray | None, metadata: Any) -> str:
    """One vector and its record, as a short hash (bit-exact: the float32 bytes)."""
    h = hashlib.sha256()
    h.update(b"-" if vector is None else np.ascontiguousarray(vector, np.float32).tobytes())
    h.update(json.dumps(metadata, sort_keys=True).encode())
    return h.hexdigest()[:20]


def _snapshot(store: Any) -> dict[str, Any]:
    """Every database's shape and every id's digest (vector bytes and metadata)."""
    out: dict[str, Any] = {}
    for name in sorted(store.list_databases()):
        db = store.get_database(name)
        rows = {}
        for vid in sorted(db.list_vectors()):
            meta = db.get_metadata(vid) if _SUPPORTS_META.get(store.backend, True) else None
            rows[vid] = _digest(db.retrieve(vid), meta)
        out[name] = {"dimension": db.dimension, "metric": db.metric, "rows": rows}
    return out


# The worker fills this in from the backend's class (memory of one process).
_SUPPORTS_META: dict[str, bool] = {}


# ------------------------------------------------------------------ the scripts
#
# Each script is (prelude, op): the prelude runs on the opened store before the
# fault is armed, the op is the call under test. ``open_recover`` opens the
# store itself, so its op gets the folder instead.


def _fill(db: Any, prefix: str, n: int, meta: bool) -> None:
    ids = [f"{prefix}{i}" for i in range(n)]
    vectors = np.stack([_vector(i) for i in ids])
    db.batch_store(ids, vectors, [_meta(i, meta) for i in ids] if meta else None)


def _build_base(backend: str, folder: Path, script: str, meta: bool) -> None:
    """The store a script starts from (runs in a forked child of the caller)."""
    import jadevec

    store = jadevec.open(folder, backend=backend, flush_interval=0)
    docs = store.create_database("docs", DIM, metric="l2")
    _fill(docs, "v", _BASE_ROWS, meta)
    other = store.create_database("other", DIM)
    _fill(other, "o", 10, meta)
    if script == "compact":
        for i in range(0, _BASE_ROWS, 2):
            docs.delete(f"v{i}")
    if script == "open_recover":
        # A writer killed after acknowledging more work: the next open recovers.
        docs.store("late", _vector("late"), _meta("late", meta))
        _fill(store.get_database("other"), "k", 20, meta)
        os.kill(os.getpid(), signal.SIGKILL)
    store.close()


def _prelude(script: str, store: Any, meta: bool) -> None:
    if script in ("sync", "close"):
        store.get_database("docs").store("pre", _vector("pre"), _meta("pre", meta))


def _op(script: str, store: Any, folder: Path, backend: str, meta: bool) -> Any:
    """Run the call under test; returns the store (``open_recover`` opens it)."""
    import jadevec

    if script == "open_recover":
        store = jadevec.open(folder, backend=backend, flush_interval=0)
        store.get_database("docs").retrieve("late")  # first use recovers the file set
        return store
    docs = store.get_database("docs")
    if script == "store":
        docs.store("new", _vector("new"), _meta("new", meta))
    elif script == "batch":
        _fill(docs, "b", _BATCH_ROWS, meta)
    elif script == "update":
        docs.update("v3", _vector("v3-updated"), _meta("v3-updated", meta))
    elif script == "delete":
        docs.delete("v5")
    elif script == "compact":
        docs.compact()
    elif script == "create_database":
        store.create_database("fresh", DIM, metric="dot")
    elif script == "delete_database":
        store.delete_database("other")
    elif script == "sync":
        store.sync()
    elif script == "close":
        store.close()
    elif script == "backup":
        store.backup(folder.parent / "copy")
    else:
        raise ValueError(f"unknown script {script!r}")
    return store


# ------------------------------------------------------------------ the child


def _describe(exc: BaseException) -> dict[str, Any]:
    from jadevec.errors import JadevecError, StorageFullError, StoreFailedError

    return {
        "type": type(exc).__name__,
        "jadevec": isinstance(exc, JadevecError),
        "oserror": isinstance(exc, OSError),
        "full": isinstance(exc, StorageFullError),
        "failed": isinstance(exc, StoreFailedError),
        "errno": getattr(exc, "errno", None),
        "filename": getattr(exc, "filename", None),
        "message": str(exc)[:300],
    }


def _child(job: dict[str, Any]) -> dict[str, Any]:
    """One run of a script (in a fork of the worker, which has the shim loaded)."""
    import jadevec

    lib = ctypes.CDLL(None)
    lib.jvfs_calls.restype = ctypes.c_long
    lib.jvfs_arm.argtypes = (ctypes.c_long, ctypes.c_int, ctypes.c_int)
    backend, script, meta = job["backend"], job["script"], job["meta"]
    folder = Path(job["folder"])
    out: dict[str, Any] = {}
    store = None
    if script != "open_recover":
        store = jadevec.open(folder, backend=backend, flush_interval=0)
        _prelude(script, store, meta)
        out["before"] = _snapshot(store)
    start = lib.jvfs_calls()
    if job["k"]:
        lib.jvfs_arm(job["k"], getattr(errno, job["errno"]), int(job["persist"]))
    try:
        store = _op(script, store, folder, backend, meta)
        out["error"] = None
    except BaseException as exc:  # noqa: BLE001 - every outcome is data here
        out["error"] = _describe(exc)
    out["start"] = start
    out["calls"] = lib.jvfs_calls() - start
    lib.jvfs_disarm()
    if store is not None and not store.closed:
        # With the fault cleared: what this process sees, then one more write
        # (does the store refuse writes after a failed barrier?), then close.
        try:
            out["child"] = _snapshot(store)
        except BaseException as exc:  # noqa: BLE001
            out["child"] = {"error": _describe(exc)}
        try:
            store.get_database("docs").store("probe", _vector("probe"))
            out["probe"] = None
        except BaseException as exc:  # noqa: BLE001
            out["probe"] = _describe(exc)
        try:
            store.close()
            out["close"] = None
        except BaseException as exc:  # noqa: BLE001
            out["close"] = _describe(exc)
    elif store is None:
        out["child"] = None  # open failed: nothing to look at here
    return out


def _run_forked(body: Callable[[], Any], timeout: float) -> dict[str, Any]:
    """``body()`` in a forked child: {"result"} or {"signal"}, {"hang"}, {"crash"}."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        # Recovery is expected after most runs: its warnings would only be noise.
        logging.getLogger("jadevec").addHandler(logging.NullHandler())
        logging.getLogger("jadevec").propagate = False
        code = 0
        try:
            payload = json.dumps({"result": body()}, default=repr)
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            payload = json.dumps({"crash": f"{type(exc).__name__}: {exc}"})
            code = 3
        try:
            with os.fdopen(write, "w") as pipe:
                pipe.write(payload)
        finally:
            os._exit(code)
    os.close(write)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return {"hang": True}
            ready, _, _ = select.select([read], [], [], left)
            if ready:
                chunk = os.read(read, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
    finally:
        os.close(read)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return {"signal": signal.Signals(os.WTERMSIG(status)).name}
    try:
        return json.loads(b"".join(chunks))
    except ValueError:
        return {"crash": f"no result (exit status {status})"}


def _worker() -> None:
    """Serve jobs from stdin, one JSON line each, one forked child per job."""
    import tempfile

    import jadevec

    imported: set[str] = set()
    for line in sys.stdin:
        job = json.loads(line)
        _SUPPORTS_META[job["backend"]] = job["meta"]
        if job.get("log"):
            Path(job["log"]).write_text("")
        if job["backend"] not in imported:
            # Import the backend once, before the forks (outside the counted folder).
            with tempfile.TemporaryDirectory() as scratch:
                jadevec.open(scratch, backend=job["backend"], flush_interval=0).close()
            imported.add(job["backend"])
        reply = _run_forked(lambda job=job: _child(job), job["timeout"])
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


class _Worker:
    """The shim-loaded worker process and its job pipe."""

    def __init__(self, shim: Path, root: Path, log: Path | None) -> None:
        self.shim, self.root, self.log = shim, root, log
        self.proc: subprocess.Popen[str] | None = None

    def _start(self) -> subprocess.Popen[str]:
        env = dict(os.environ, LD_PRELOAD=str(self.shim), JVFS_ROOT=str(self.root))
        for name in ("JVFS_FAIL_AT", "JVFS_FAIL_ERRNO", "JVFS_FAIL_MODE", "JVFS_LOG"):
            env.pop(name, None)
        if self.log is not None:
            env["JVFS_LOG"] = str(self.log)
        return subprocess.Popen(
            [sys.executable, "-c", "from jadevec.testing._faults import _worker; _worker()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = self._start()
        assert self.proc.stdin is not None and self.proc.stdout is not None
        job = dict(job, timeout=_CHILD_TIMEOUT, log=str(self.log) if self.log else None)
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], _CHILD_TIMEOUT + 30)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.close()
            return {"crash": "the worker died or hung"}
        return json.loads(line)

    def close(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self.proc = None


# ------------------------------------------------------------------ the checks


def _fresh_look(backend: str, folder: Path, backup: Path | None) -> dict[str, Any]:
    """Reopen without the shim: the state, ``verify()``, and the backup if one exists."""
    import jadevec

    out: dict[str, Any] = {}
    with jadevec.open(folder, backend=backend, flush_interval=0) as store:
        out["state"] = _snapshot(store)
        report = store.verify()
        out["verify"] = list(map(str, report.problems)) if not report.ok else None
    if backup is not None and backup.exists():
        with jadevec.open(backup, backend=backend, flush_interval=0) as copy:
            out["backup"] = _snapshot(copy)
            report = copy.verify()
            out["backup_verify"] = list(map(str, report.problems)) if not report.ok else None
    return out


def _with_probe(state: dict[str, Any], probe_ok: bool) -> dict[str, Any]:
    if not probe_ok:
        return state
    state = json.loads(json.dumps(state))
    state["docs"]["rows"]["probe"] = _digest(_vector("probe"), None)
    return state


def _lost_or_partial(got: dict[str, Any], before: dict[str, Any],
                     after: dict[str, Any]) -> str:
    """``lost`` when something both sides hold is missing or changed, else ``partial``."""
    for name, db in before.items():
        if name not in after or name not in got:
            continue
        for vid, digest in db["rows"].items():
            if after[name]["rows"].get(vid) == digest and got[name]["rows"].get(vid) != digest:
                return "lost"
    return "partial"


def _differences(got: dict[str, Any], want: dict[str, Any]) -> str:
    """A short account of how two snapshots differ."""
    parts = []
    for name in sorted(set(got) | set(want)):
        if name not in got or name not in want:
            parts.append(f"database {name!r} {'missing' if name not in got else 'extra'}")
            continue
        g, w = got[name]["rows"], want[name]["rows"]
        missing = sorted(set(w) - set(g))
        extra = sorted(set(g) - set(w))
        changed = sorted(v for v in set(g) & set(w) if g[v] != w[v])
        for label, ids in (("missing", missing), ("extra", extra), ("changed", changed)):
            if ids:
                parts.append(f"{name}: {len(ids)} {label} ({', '.join(ids[:3])})")
    return "; ".join(parts) or "same"


# ------------------------------------------------------------------ the loop


def run_fault_injection(
    backend: str,
    workdir: Path,
    *,
    seed: int = 0,
    scripts: Sequence[str] | None = None,
    errnos: Sequence[str] = ("ENOSPC", "EIO", "EFBIG"),
    modes: Sequence[str] = ("once", "persist"),
    max_sites: int | None = None,
) -> dict[str, Any]:
    """Fail each counted file-system call of each script in turn; count what went wrong.

    Parameters
    ----------
    backend : str
        A persistent backend's entry-point name (``"mmap"``, ``"hybrid"``, ``"lmdb"``).
    workdir : Path
        An empty folder for the base stores and the runs (left behind).
    seed : int
        Chooses the sites when ``max_sites`` samples them.
    scripts : sequence of str, optional
        Names from :data:`SCRIPTS` (default: all).
    errnos, modes
        The errors to inject (``ENOSPC``, ``EIO``, ``EFBIG``) and whether the
        fault hits one call (``once``) or every call from the k-th on
        (``persist``).
    max_sites : int, optional
        At most this many call sites per script, chosen at random (the first
        and last included); default every site.

    Returns
    -------
    dict
        ``runs``; ``sites`` (per script); the failure counts ``untyped_errors``,
        ``wrong_type``, ``no_path``, ``signals``, ``hangs``, ``crashes``,
        ``lost``, ``partial``, ``applied_despite_error``, ``reopen_failures``,
        ``verify_failures``, ``backup_mismatch``; what the store did after a
        fault at a barrier: ``barrier_faults``, ``not_failed_after_barrier_fault``
        (a later write was accepted), ``barrier_fault_returned_ok`` (the call
        returned although its barrier failed); ``plain_eio`` (EIO reported as
        a plain ``OSError``, as the contract allows); ``sqlite_errno_hidden`` (an
        injected ENOSPC or EFBIG that SQLite reported as an I/O error); ``calls`` (per
        script, the counted call names); ``problems`` (a few of each kind, in
        words) and ``problems_by_kind``.
    """
    from jadevec.testing._faultfs import build_shim

    workdir = Path(os.path.realpath(workdir))
    workdir.mkdir(parents=True, exist_ok=True)
    chosen = list(SCRIPTS if scripts is None else scripts)
    for name in chosen:
        if name not in SCRIPTS:
            raise ValueError(f"unknown script {name!r}; known: {', '.join(SCRIPTS)}")
    meta = _takes_metadata(backend, workdir / "metadata-check")
    _SUPPORTS_META[backend] = meta
    shim = build_shim()
    rng = random.Random(seed)
    counts: dict[str, Any] = {
        "backend": backend, "runs": 0, "sites": {}, "calls": {},
        "untyped_errors": 0, "wrong_type": 0, "no_path": 0, "signals": 0, "hangs": 0,
        "crashes": 0, "lost": 0, "partial": 0, "applied_despite_error": 0,
        "reopen_failures": 0, "verify_failures": 0, "backup_mismatch": 0,
        "barrier_faults": 0, "not_failed_after_barrier_fault": 0,
        "barrier_fault_returned_ok": 0, "plain_eio": 0, "sqlite_errno_hidden": 0,
        "faults_not_reached": 0,
    }
    kept: dict[str, list[str]] = {}

    def problem(key: str, text: str) -> None:
        counts[key] += 1
        kept.setdefault(key, [])
        if len(kept[key]) < _PER_KIND_KEPT:
            kept[key].append(text)

    runs_dir = workdir / "runs"
    runs_dir.mkdir(exist_ok=True)
    log = workdir / "calls.log"
    counter = _Worker(shim, workdir, log)
    injector = _Worker(shim, workdir, None)
    try:
        for script in chosen:
            base = workdir / "bases" / script
            if base.exists():
                shutil.rmtree(base)
            base.parent.mkdir(exist_ok=True)
            built = _run_forked(
                lambda base=base, script=script: _build_base(backend, base, script, meta),
                _CHILD_TIMEOUT)
            if script == "open_recover" and built.get("signal") == "SIGKILL":
                pass  # the base writer kills itself on purpose
            elif "result" not in built:
                problem("crashes", f"{script}: building the base failed: {built}")
                continue

            def fresh_copy(script: str = script, base: Path = base) -> Path:
                run = runs_dir / script
                if run.exists():
                    shutil.rmtree(run)
                run.mkdir(parents=True)
                shutil.copytree(base, run / "store")
                return run

            run = fresh_copy()
            job = {"backend": backend, "script": script, "meta": meta,
                   "folder": str(run / "store"), "k": 0, "errno": "EIO", "persist": False}
            dry = counter.run(job)
            if "result" not in dry or dry["result"]["error"] is not None:
                problem("crashes", f"{script}: the run without a fault failed: {dry}")
                continue
            clean = dry["result"]
            total = clean["calls"]
            names = _call_names(log, clean["start"], total)
            counts["calls"][script] = names
            expected_after = _with_probe(clean["child"], False) if clean.get("child") else None
            look = _run_forked(lambda run=run: _fresh_look(backend, run / "store", None),
                               _CHILD_TIMEOUT)
            if "result" not in look:
                problem("crashes", f"{script}: reopening after the run without a fault: {look}")
                continue
            after = _strip_probe(look["result"]["state"])
            if expected_after is not None and _strip_probe(expected_after) != after:
                problem("crashes", f"{script}: the child and the reopen disagree without a "
                        f"fault: {_differences(after, _strip_probe(expected_after))}")
            before = clean.get("before") or after
            sites = list(range(1, total + 1))
            if max_sites is not None and len(sites) > max_sites:
                inner = sites[1:-1]
                picked = rng.sample(inner, max(0, max_sites - 2))
                sites = sorted({sites[0], sites[-1], *picked})[:max_sites]
            counts["sites"][script] = len(sites)
            for k in sites:
                call = names[k - 1] if k - 1 < len(names) else "?"
                for mode in modes:
                    for err in errnos:
                        counts["runs"] += 1
                        where = f"{backend}/{script} k={k}/{total} ({call}) {err} {mode}"
                        run = fresh_copy()
                        job = dict(job, folder=str(run / "store"), k=k, errno=err,
                                   persist=(mode == "persist"))
                        _check_run(backend, script, injector.run(job), run, where, err,
                                   call, before, after, counts, problem)
    finally:
        counter.close()
        injector.close()
    # A few of each kind, so one frequent failure does not hide the others.
    counts["problems"] = [text for texts in kept.values() for text in texts][:_PROBLEMS_KEPT]
    counts["problems_by_kind"] = kept
    return counts


def _takes_metadata(backend: str, folder: Path) -> bool:
    """Whether ``backend`` stores metadata (asked of a scratch store, in a fork)."""
    import jadevec
    from jadevec.errors import UnsupportedError

    def ask() -> bool:
        with jadevec.open(folder, backend=backend, flush_interval=0) as store:
            try:
                store.create_database("m", DIM).store("a", _vector("a"), {"a": 1})
            except UnsupportedError:
                return False
            return True

    got = _run_forked(ask, _CHILD_TIMEOUT)
    shutil.rmtree(folder, ignore_errors=True)
    if "result" not in got:
        raise RuntimeError(f"cannot open a {backend!r} store in {str(folder)!r}: {got}")
    return bool(got["result"])


def _strip_probe(state: dict[str, Any]) -> dict[str, Any]:
    state = json.loads(json.dumps(state))
    if "docs" in state:
        state["docs"]["rows"].pop("probe", None)
    return state


def _call_names(log: Path, start: int, total: int) -> list[str]:
    """The names of counted calls ``start + 1 .. start + total`` in the shim's log."""
    names = ["?"] * total
    try:
        lines = log.read_text().splitlines()
    except OSError:
        return names
    for line in lines:
        fields = line.split()
        if len(fields) > 1 and fields[0].isdigit() and start < int(fields[0]) <= start + total:
            names[int(fields[0]) - start - 1] = fields[1]
    return names


def _check_run(backend: str, script: str, reply: dict[str, Any], run: Path, where: str,
               err: str, call: str, before: dict[str, Any], after: dict[str, Any],
               counts: dict[str, Any], problem: Callable[[str, str], None]) -> None:
    """Judge one faulted run: its error, the child's view, and a fresh reopen."""
    if "signal" in reply:
        problem("signals", f"{where}: the child died of {reply['signal']}")
    elif "hang" in reply:
        problem("hangs", f"{where}: the child hung")
    elif "crash" in reply:
        problem("crashes", f"{where}: {reply['crash']}")
    if "result" not in reply:
        _check_reopen(backend, script, run, where, None, before, after, False, counts, problem)
        return
    res = reply["result"]
    error = res["error"]
    k = int(where.split("k=")[1].split("/")[0])
    if res["calls"] < k:
        counts["faults_not_reached"] += 1
    barrier = call in _BARRIERS and res["calls"] >= k
    if barrier:
        counts["barrier_faults"] += 1
    if error is not None:
        _judge_error(error, err, barrier, where, counts, problem)
    elif barrier:
        problem("barrier_fault_returned_ok",
                f"{where}: the call returned although its {call} failed")
    probe = res.get("probe", "absent")
    if barrier and probe is None and script not in ("close",):
        problem("not_failed_after_barrier_fault",
                f"{where}: a write after the failed {call} was accepted")
    probe_ok = probe is None
    child = res.get("child")
    if isinstance(child, dict) and "error" not in child:
        _compare(child, error, before, after, probe_ok=False, where=f"{where} (in the child)",
                 counts=counts, problem=problem)
    _check_reopen(backend, script, run, where, error, before, after, probe_ok, counts, problem)


def _judge_error(error: dict[str, Any], err: str, barrier: bool, where: str,
                 counts: dict[str, Any], problem: Callable[[str, str], None]) -> None:
    text = f"{error['type']}: {error['message']}"
    if not error["jadevec"]:
        if err == "EIO" and error["oserror"] and error["errno"] == errno.EIO:
            counts["plain_eio"] += 1
        elif (error["oserror"] and error["errno"] == errno.EIO
              and str(error["filename"]).endswith(".sqlite3")):
            # SQLite reports a failed write or sync as an I/O error and keeps
            # the errno to itself; the catalog recognises a real full disk or
            # file-size limit by looking, which an injected one does not match.
            problem("sqlite_errno_hidden", f"{where}: {err} reported as {text}")
        else:
            problem("untyped_errors", f"{where}: untyped {text}")
            return
    elif err in ("ENOSPC", "EFBIG"):
        if not (error["full"] or (barrier and error["failed"])):
            problem("wrong_type", f"{where}: {text} (StorageFullError expected)")
    elif not error["oserror"]:
        problem("wrong_type", f"{where}: {text} (an OSError kind expected for EIO)")
    if not error["filename"] and "/" not in error["message"]:
        problem("no_path", f"{where}: the error names no path: {text}")


def _compare(got: dict[str, Any], error: Any, before: dict[str, Any], after: dict[str, Any],
             *, probe_ok: bool, where: str, counts: dict[str, Any],
             problem: Callable[[str, str], None]) -> None:
    got = _strip_probe(got) if not probe_ok else got
    want = _with_probe(after if error is None else before, probe_ok)
    if got == want:
        return
    if error is not None and got == _with_probe(after, probe_ok):
        problem("applied_despite_error", f"{where}: the call raised but its change is there")
        return
    kind = _lost_or_partial(got, before, after)
    problem(kind, f"{where}: {kind}: {_differences(got, want)}")


def _check_reopen(backend: str, script: str, run: Path, where: str, error: Any,
                  before: dict[str, Any], after: dict[str, Any], probe_ok: bool,
                  counts: dict[str, Any], problem: Callable[[str, str], None]) -> None:
    look = _run_forked(lambda: _fresh_look(backend, run / "store", run / "copy"),
                       _CHILD_TIMEOUT)
    if "result" not in look:
        problem("reopen_failures", f"{where}: reopening failed: {look}")
        return
    got = look["result"]
    if got["verify"]:
        problem("verify_failures", f"{where}: verify: {got['verify'][:2]}")
    _compare(got["state"], error, before, after, probe_ok=probe_ok,
             where=f"{where} (reopened)", counts=counts, problem=problem)
    if script == "backup" and error is None and "backup" not in got:
        problem("backup_mismatch", f"{where}: backup() returned but left no copy")
    if "backup" in got:
        if error is not None:
            problem("backup_mismatch", f"{where}: backup() raised but left a copy")
        elif _strip_probe(got["backup"]) != _strip_probe(before) or got["backup_verify"]:
            problem("backup_mismatch", f"{where}: the copy differs: "
                    f"{_differences(got['backup'], before)} {got['backup_verify']}")
