"""Simulated power loss (torture part T3): what a store finds after the power goes.

A writer process runs a seeded workload under the file-system shim
(``_faultfs.c``, preloaded), which records, at each barrier (``fsync``,
``fdatasync``, ``msync(MS_SYNC)``, a write through an ``O_DSYNC``
descriptor, a directory's ``fsync``), what that barrier made durable. The
writer is killed at a random moment. From the *durable images* and the files
as the kill left them (the page cache) we build several disk states a power
loss could leave: every byte the barriers made durable, and each other page
either as it was durable or as it is now (so writeback of any subset may
have happened), sometimes one page torn at 512-byte sectors, each file's
size as synced or as now, and each namespace change (create, rename,
unlink) its directory did not sync either done or not done.

A checker process opens each state (recovery allowed) and must find:
``verify()`` clean; every write acknowledged before the last completed
``sync()`` or background checkpoint still there (at that version or a later
one issued); no vector that matches no version ever issued (garbage);
nothing older than its synced version; no id or database that was never
written (phantom); no synced delete undone; metadata paired with its
vector; and the store accepts a write and reopens.

Vectors are a pure function of (database, id, version), and the version is
spelled in the vector's first two components, so the oracle recognises
every version ever issued. The writer appends to an acknowledgement log
(one ``os.write`` per line, ``O_APPEND``): when each operation began and
returned, when each ``sync()`` and each background checkpoint began and
ended, with ``time.monotonic_ns()`` and the shim's call count.

The model is POSIX's, not one file system's: a file's ``fsync`` does not
make its name durable (its directory's ``fsync`` does), and writeback of
any page may or may not have happened. The run continues from one checked
state to the next crash, so recovery of recovered stores is tested too.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from jadevec.testing._faultfs import build_shim, shim_env

__all__ = ["run_power_loss", "vector_for", "decode_version"]

DIM = 8
METRIC = "l2"
PAGE = 4096
SECTOR = 512
#: Database the checker writes to (its write-and-reopen probe); never the workload's.
PROBE_DB = "jvprobe"
#: Versions of one crash's run start at crash * VERSION_STRIDE, so they never repeat.
VERSION_STRIDE = 1_000_000
_MAX_PROBLEMS = 20


# ------------------------------------------------------------------ vectors


def vector_for(db: str, vector_id: str, version: int) -> np.ndarray:
    """The one vector written for (db, id, version)."""
    seed = int.from_bytes(f"{db}\0{vector_id}\0{version}".encode(), "little") % (1 << 63)
    rest = np.random.default_rng(seed).uniform(-1.0, 1.0, DIM - 2)
    # Two exact float32 integers spell the version (float32 holds 24 bits).
    return np.concatenate(([version >> 12, version & 0xFFF], rest)).astype(np.float32)


def decode_version(vector: np.ndarray) -> int | None:
    """The version a vector spells, or None if its components are no version."""
    hi, lo = float(vector[0]), float(vector[1])
    if not (hi.is_integer() and lo.is_integer() and hi >= 0 and 0 <= lo < 4096):
        return None
    return (int(hi) << 12) | int(lo)


# ------------------------------------------------------------------ the writer


_WRITER = textwrap.dedent("""
    import sys
    from jadevec.testing._powerloss import _writer_main
    _writer_main(sys.argv[1])
""")


def _writer_main(config_path: str) -> None:
    """The workload, run in the child until it is killed."""
    import jadevec
    from jadevec.testing._faultfs import ShimControl

    cfg = json.loads(Path(config_path).read_text())
    ctl = ShimControl()
    ack = os.open(cfg["ack"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def note(**fields: Any) -> None:
        fields["s"] = ctl.calls()
        fields.setdefault("t", time.monotonic_ns())
        os.write(ack, (json.dumps(fields) + "\n").encode())

    # The background checkpoint's ticks, from the "checkpoint took S s" record
    # the checkpoint thread logs on the jadevec logger after each: it ended now
    # and began S seconds before (5 ms earlier still, so an op acknowledged
    # just after the real start is never counted as covered by it).
    class Ticks(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if str(record.msg).startswith("checkpoint took") and record.args:
                took = float(record.args[0])  # type: ignore[index]
                now = time.monotonic_ns()
                note(e="cb", t=now - int((took + 0.005) * 1e9))
                note(e="ca", t=now)

    logger = logging.getLogger("jadevec")
    logger.addHandler(Ticks())
    logger.setLevel(logging.DEBUG)

    rng = random.Random(cfg["seed"])
    version = cfg["version_base"]
    store = jadevec.open(cfg["path"], backend=cfg["backend"],
                         flush_interval=cfg["flush_interval"])
    with_meta = bool(getattr(store, "_supports_metadata", False))
    dbs: dict[str, set[str]] = {}
    for name in store.list_databases():
        if name != PROBE_DB:
            handle = store.get_database(name)
            dbs[name] = set(handle.list_vectors())
    note(e="open", dbs=sorted(dbs))
    n_db = 0
    n = 0

    def new_db() -> None:
        nonlocal n_db
        name = f"d{cfg['crash']}x{n_db}"
        n_db += 1
        note(e="b", n=n, op="create", db=name)
        store.create_database(name, DIM, METRIC)
        dbs[name] = set()
        note(e="a", n=n)

    while True:
        n += 1
        if not dbs or (len(dbs) < 4 and rng.random() < 0.02):
            new_db()
            continue
        name = rng.choice(sorted(dbs))
        db = store.get_database(name)
        live = dbs[name]
        r = rng.random()
        if r < 0.004 and len(dbs) > 1:
            note(e="b", n=n, op="drop", db=name)
            store.delete_database(name)
            del dbs[name]
            note(e="a", n=n)
        elif r < 0.05:
            note(e="b", n=n, op="sync")
            store.sync()
            note(e="a", n=n)
        elif r < 0.06:
            note(e="b", n=n, op="compact", db=name)
            db.compact()
            note(e="a", n=n)
        elif r < 0.25 and live:
            vid = rng.choice(sorted(live))
            note(e="b", n=n, op="delete", db=name, items=[[vid, None]])
            db.delete(vid)
            live.discard(vid)
            note(e="a", n=n)
        elif r < 0.40 and live:
            vid = rng.choice(sorted(live))
            version += 1
            note(e="b", n=n, op="update", db=name, items=[[vid, version]])
            db.update(vid, vector_for(name, vid, version),
                      {"v": version} if with_meta else None)
            note(e="a", n=n)
        elif r < 0.55:
            ids = rng.sample(range(400), rng.randint(2, 24))
            items = []
            for i in ids:
                version += 1
                items.append([f"v{i}", version])
            note(e="b", n=n, op="batch", db=name, items=items)
            db.batch_store([vid for vid, _ in items],
                           np.stack([vector_for(name, vid, ver) for vid, ver in items]),
                           [{"v": ver} for _, ver in items] if with_meta else None)
            live.update(vid for vid, _ in items)
            note(e="a", n=n)
        else:
            vid = f"v{rng.randrange(400)}"
            version += 1
            note(e="b", n=n, op="store", db=name, items=[[vid, version]])
            db.store(vid, vector_for(name, vid, version), {"v": version} if with_meta else None)
            live.add(vid)
            note(e="a", n=n)


# ------------------------------------------------------------------ file states


def _key(st: os.stat_result) -> str:
    return f"{st.st_dev:x}_{st.st_ino:x}"


def _walk(root: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """Every entry under root (root included), without following links."""
    st = os.lstat(root)
    yield root, st
    if stat.S_ISDIR(st.st_mode):
        for name in sorted(os.listdir(root)):
            yield from _walk(root / name)


def _snapshot(root: Path, into: Path) -> tuple[str, dict[str, dict[str, tuple[str, str]]]]:
    """Copy every file under root to ``into/f_<key>`` and return the root's key
    and each directory's entries ({dir key: {name: (type, key)}})."""
    into.mkdir(parents=True, exist_ok=True)
    listings: dict[str, dict[str, tuple[str, str]]] = {}
    root_key = ""
    for path, st in _walk(root):
        key = _key(st)
        if path == root:
            root_key = key
        if stat.S_ISDIR(st.st_mode):
            entries = {}
            for name in os.listdir(path):
                try:
                    est = os.lstat(path / name)
                except FileNotFoundError:
                    continue
                entries[name] = ("d" if stat.S_ISDIR(est.st_mode) else "f", _key(est))
            listings[key] = entries
        elif stat.S_ISREG(st.st_mode):
            try:
                shutil.copyfile(path, into / f"f_{key}")
            except FileNotFoundError:
                pass
    return root_key, listings


def _write_listing(images: Path, key: str, entries: dict[str, tuple[str, str]]) -> None:
    text = "".join(f"{typ} {k} {name}\n" for name, (typ, k) in sorted(entries.items()))
    (images / f"d_{key}").write_text(text)


def _read_listing(path: Path) -> dict[str, tuple[str, str]] | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    entries = {}
    for line in text.splitlines():
        typ, key, name = line.split(" ", 2)
        entries[name] = (typ, key)
    return entries


class _StateBuilder:
    """Builds disk states from the durable images and the kill state."""

    def __init__(self, images: Path, kill: Path, root_key: str,
                 kill_listings: dict[str, dict[str, tuple[str, str]]]) -> None:
        self.images = images
        self.kill = kill
        self.root_key = root_key
        self.kill_listings = kill_listings

    def build(self, out: Path, rng: random.Random, p: float, namespace: str,
              torn: bool, sizes: str = "random") -> None:
        """One state in ``out``: each differing page from the kill state with
        probability ``p``; pending namespace changes "old", "new" or "random";
        one page torn at sectors if ``torn``; sizes "random" or "current"."""
        self.rng, self.p, self.namespace, self.torn = rng, p, namespace, torn
        self.sizes = sizes
        out.mkdir(parents=True)
        self._dir(self.root_key, out, seen=set())

    def _dir(self, key: str, out: Path, seen: set[str]) -> None:
        if key in seen:  # a directory inside itself: only a confused namespace does that
            return
        seen.add(key)
        durable = _read_listing(self.images / f"d_{key}") or {}
        now = self.kill_listings.get(key, {})
        for name, (typ, k) in sorted(self._resolve(durable, now).items()):
            if typ == "d":
                (out / name).mkdir()
                self._dir(k, out / name, seen)
            else:
                (out / name).write_bytes(self._file(k))

    def _resolve(self, durable: dict[str, tuple[str, str]],
                 now: dict[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
        """Each name whose entry differs is pending; names linked by a rename
        (one inode under an old and a new name) are decided together."""
        pending = [name for name in set(durable) | set(now) if durable.get(name) != now.get(name)]
        group = {name: name for name in pending}

        def find(x: str) -> str:
            while group[x] != x:
                x = group[x]
            return x

        by_key: dict[str, list[str]] = {}
        for name in pending:
            for side in (durable, now):
                if name in side:
                    by_key.setdefault(side[name][1], []).append(name)
        for names in by_key.values():
            for other in names[1:]:
                group[find(other)] = find(names[0])
        choice: dict[str, bool] = {}
        result = {name: entry for name, entry in durable.items() if name not in group}
        for name in sorted(pending):
            root = find(name)
            if root not in choice:
                choice[root] = (self.namespace == "new" or
                                (self.namespace == "random" and self.rng.random() < 0.5))
            entry = (now if choice[root] else durable).get(name)
            if entry is not None:
                result[name] = entry
        return result

    def _file(self, key: str) -> bytes:
        image_path = self.images / f"f_{key}"
        image = image_path.read_bytes() if image_path.exists() else b""
        kill_path = self.kill / f"f_{key}"
        if not kill_path.exists():
            return image  # gone at the kill: only its durable bytes remain
        now = kill_path.read_bytes()
        size = len(now) if self.sizes == "current" or self.rng.random() < 0.5 else len(image)
        length = max(len(image), len(now))
        base = bytearray(image.ljust(length, b"\0"))
        cur = now.ljust(length, b"\0")
        differing = [i for i in range(0, length, PAGE) if base[i:i + PAGE] != cur[i:i + PAGE]]
        for i in differing:
            if self.rng.random() < self.p:
                base[i:i + PAGE] = cur[i:i + PAGE]
        if self.torn and differing:
            i = self.rng.choice(differing)
            for s in range(i, min(i + PAGE, length), SECTOR):
                src = cur if self.rng.random() < 0.5 else image.ljust(length, b"\0")
                base[s:s + SECTOR] = src[s:s + SECTOR]
        return bytes(base[:size]).ljust(size, b"\0")


# ------------------------------------------------------------------ the checker


_CHECKER = textwrap.dedent("""
    import sys
    from jadevec.testing._powerloss import _checker_main
    _checker_main(sys.argv[1])
""")


def _checker_main(config_path: str) -> None:
    """Open each state, verify, dump its contents, probe a write; print JSON lines."""
    import jadevec

    cfg = json.loads(Path(config_path).read_text())
    for state in cfg["states"]:
        result: dict[str, Any] = {"state": state, "problems": []}
        try:
            store = jadevec.open(state, backend=cfg["backend"], flush_interval=0)
        except Exception as exc:
            result["open_error"] = f"{type(exc).__name__}: {exc}"
            print(json.dumps(result), flush=True)
            continue
        try:
            report = store.verify()
            result["verify"] = list(report.problems)
            dump: dict[str, Any] = {}
            for name in store.list_databases():
                if name == PROBE_DB:
                    continue
                db = store.get_database(name)
                entries = {}
                for vid in db.list_vectors():
                    vec = db.retrieve(vid)
                    try:
                        meta = db.get_metadata(vid)
                    except jadevec.UnsupportedError:
                        meta = "unsupported"
                    entries[vid] = [None if vec is None else vec.tolist(), meta]
                dump[name] = {"dim": db.dimension, "metric": db.metric, "ids": entries}
            result["dump"] = dump
            # The recovered store takes a write and keeps it across a reopen.
            probe = (store.get_database(PROBE_DB) if PROBE_DB in store
                     else store.create_database(PROBE_DB, DIM, METRIC))
            probe.store("p", vector_for(PROBE_DB, "p", 1))
            store.close()
            store = jadevec.open(state, backend=cfg["backend"], flush_interval=0)
            got = store.get_database(PROBE_DB).retrieve("p")
            if got is None or not np.array_equal(got, vector_for(PROBE_DB, "p", 1)):
                result["problems"].append("the probe write was not there after a reopen")
            again = store.verify()
            if not again.ok:
                result["problems"].append(f"verify after the probe write: {again.problems[:3]}")
        except Exception as exc:
            result["problems"].append(f"{type(exc).__name__}: {exc}")
        finally:
            try:
                store.close()
            except Exception as exc:
                result["problems"].append(f"close: {type(exc).__name__}: {exc}")
        print(json.dumps(result), flush=True)


# ------------------------------------------------------------------ the oracle


DELETED = -1


class _Oracle:
    """What each (database, id) may hold after a crash of one writer run.

    ``base`` is the content the run started from (the checked state it
    continued, all of it durable). The run's operations are read from the
    acknowledgement log; an operation is *synced* when a ``sync()`` or a
    background checkpoint began after it returned and ended before the kill.
    """

    def __init__(self, base: dict[str, dict[str, tuple[int, bool]]],
                 ack_lines: list[dict[str, Any]], kill_ns: int) -> None:
        self.base = base
        ops: dict[int, dict[str, Any]] = {}
        covering_begin = -1  # begin time of the latest completed sync or checkpoint
        cp_begin: int | None = None
        self.open_ns: int | None = None
        self.checkpoint_s_max = 0.0
        for line in ack_lines:
            e = line["e"]
            if e == "open":
                self.open_ns = line["t"]
            elif e == "b":
                ops[line["n"]] = dict(line, acked=None)
            elif e == "a":
                op = ops[line["n"]]
                op["acked"] = line["t"]
                if op["op"] == "sync":
                    covering_begin = max(covering_begin, op["t"])
                    self.checkpoint_s_max = max(self.checkpoint_s_max, (line["t"] - op["t"]) / 1e9)
            elif e == "cb":
                cp_begin = line["t"]
            elif e == "ca" and cp_begin is not None:
                covering_begin = max(covering_begin, cp_begin)
                self.checkpoint_s_max = max(self.checkpoint_s_max, (line["t"] - cp_begin) / 1e9)
                cp_begin = None
        self.kill_ns = kill_ns
        self.ops = [ops[n] for n in sorted(ops)]
        for op in self.ops:
            # Synced: returned before a completed barrier began. A dropped
            # database is durable when the drop returns (documented).
            op["synced"] = op["acked"] is not None and (
                op["acked"] < covering_begin or op["op"] == "drop")

        # Per key: the versions in issue order (base first), with synced flags.
        self.history: dict[tuple[str, str], list[tuple[int, bool, int | None]]] = {}
        # Base versions whose metadata read as None (unknowable after an
        # earlier power loss) may stay so.
        self.base_without_meta: set[tuple[str, str]] = set()
        for name, ids in base.items():
            for vid, (ver, meta_known) in ids.items():
                self.history[(name, vid)] = [(ver, True, None)]
                if not meta_known:
                    self.base_without_meta.add((name, vid))
        self.db_events: dict[str, list[tuple[str, bool]]] = {
            name: [("create", True)] for name in base}
        for op in self.ops:
            if op["op"] in ("create", "drop"):
                self.db_events.setdefault(op["db"], []).append((op["op"], op["synced"]))
            for vid, ver in op.get("items") or ():
                self.history.setdefault((op["db"], vid), []).append(
                    (DELETED if ver is None else ver, op["synced"], op["acked"]))

    def db_may_exist(self, name: str) -> tuple[bool, bool]:
        """(must exist, may exist) for a database name."""
        events = self.db_events.get(name)
        if not events:
            return False, False
        synced = [kind for kind, s in events if s]
        last_synced = synced[-1] if synced else None
        must = last_synced == "create" and all(kind != "drop" for kind, _ in events)
        # A drop returned is durable; one in flight may or may not be.
        may = not (last_synced == "drop")
        return must, may

    def check(self, dump: dict[str, Any], with_meta: bool) -> tuple[dict[str, int], list[str],
                                                                     float]:
        counts = dict(lost_synced=0, garbage=0, older_than_synced=0, phantom=0,
                      resurrected=0, metadata=0)
        problems: list[str] = []
        loss_window = 0.0

        def problem(kind: str, msg: str) -> None:
            counts[kind] += 1
            problems.append(f"{kind}: {msg}")

        for name in dump:
            must, may = self.db_may_exist(name)
            if not may:
                problem("phantom" if name not in self.db_events else "resurrected",
                        f"database {name!r} is there but was never created or its drop was synced")
        for name in self.db_events:
            must, _ = self.db_may_exist(name)
            if must and name not in dump:
                problem("lost_synced", f"database {name!r} was created and synced but is gone")
        for name, info in dump.items():
            if name not in self.db_events:
                continue
            if info["dim"] != DIM or info["metric"] != METRIC:
                problem("garbage", f"database {name!r} has dimension {info['dim']}, "
                                   f"metric {info['metric']}")
            for vid, (vec, meta) in info["ids"].items():
                hist = self.history.get((name, vid))
                if hist is None:
                    problem("phantom", f"{name}/{vid} was never written")
                    continue
                if vec is None:
                    problem("garbage", f"{name}/{vid} is listed but reads as None")
                    continue
                arr = np.asarray(vec, dtype=np.float32)
                ver = decode_version(arr)
                idx = next((i for i, (v, _, _) in enumerate(hist) if v == ver), None)
                if ver is None or idx is None or not np.array_equal(
                        arr, vector_for(name, vid, ver)):
                    problem("garbage", f"{name}/{vid} holds {vec[:3]}..., no version issued")
                    continue
                last_synced = max((i for i, (_, s, _) in enumerate(hist) if s), default=None)
                if last_synced is not None and idx < last_synced:
                    kind = "resurrected" if hist[last_synced][0] == DELETED else \
                        "older_than_synced"
                    problem(kind, f"{name}/{vid} holds version {ver}, older than its synced "
                                  f"{'delete' if kind == 'resurrected' else hist[last_synced][0]}")
                if with_meta and meta != "unsupported":
                    final_synced = last_synced == len(hist) - 1 and idx == last_synced
                    if meta is not None and meta != {"v": ver}:
                        problem("metadata", f"{name}/{vid} holds version {ver} with metadata "
                                            f"{meta}")
                    elif meta is None and final_synced and not (
                            idx == 0 and (name, vid) in self.base_without_meta):
                        problem("metadata", f"{name}/{vid}: synced version {ver} lost its "
                                            f"metadata")
        for (name, vid), hist in self.history.items():
            if name not in dump:
                continue
            present = vid in dump[name]["ids"]
            last_synced = max((i for i, (_, s, _) in enumerate(hist) if s), default=None)
            # Absent is allowed when the synced event or a later one is a delete.
            if not present and last_synced is not None and all(
                    v != DELETED for v, _, _ in hist[last_synced:]):
                problem("lost_synced", f"{name}/{vid} version {hist[last_synced][0]} was synced "
                                       f"but is gone")
        # The loss window: the oldest acknowledged write the state lost (a
        # dropped database's writes are not lost, they were dropped).
        for (name, vid), hist in self.history.items():
            if any(kind == "drop" for kind, _ in self.db_events.get(name, ())):
                continue
            entry = dump.get(name, {}).get("ids", {}).get(vid)
            got = None
            if entry is not None and entry[0] is not None:
                got = decode_version(np.asarray(entry[0], dtype=np.float32))
            held = next((i for i, (v, _, _) in enumerate(hist) if v == got), None) \
                if got is not None else None
            for i, (_, _, acked) in enumerate(hist):
                if acked is None:
                    continue
                later_or_same = [w for w, _, _ in hist[i:]]
                ok = (got in later_or_same) if got is not None else (DELETED in later_or_same)
                if held is not None and held >= i:
                    ok = True
                if not ok:
                    loss_window = max(loss_window, (self.kill_ns - acked) / 1e9)
        return counts, problems, loss_window


# ------------------------------------------------------------------ the driver


def _read_ack(path: Path) -> list[dict[str, Any]]:
    lines = []
    try:
        text = path.read_text()
    except FileNotFoundError:
        return lines
    for raw in text.splitlines():
        try:
            lines.append(json.loads(raw))
        except ValueError:
            pass  # a line the kill cut short
    return lines


def _dump_versions(dump: dict[str, Any]) -> dict[str, dict[str, tuple[int, bool]]]:
    """{db: {id: (version, whether its metadata was there)}} of a checked state."""
    out: dict[str, dict[str, tuple[int, bool]]] = {}
    for name, info in dump.items():
        ids = {}
        for vid, (vec, meta) in info["ids"].items():
            ver = decode_version(np.asarray(vec, dtype=np.float32)) if vec is not None else None
            if ver is not None:
                ids[vid] = (ver, meta is not None)
        out[name] = ids
    return out


_P_CHOICES = (0.0, 0.25, 0.5, 0.75, 1.0)


def run_power_loss(backend: str, workdir: Path, *, crashes: int, states_per_crash: int,
                   seed: int, flush_interval: float = 0.2, run_s: tuple[float, float] = (0.3, 1.5),
                   keep: bool = False) -> dict[str, Any]:
    """Kill a writer ``crashes`` times and check ``states_per_crash`` power-loss states of each.

    Parameters
    ----------
    backend : str
        A persistent backend's name ("mmap", "hybrid", a plugin's).
    workdir : Path
        A folder for the store, the images and the states (made if missing;
        each crash's files are removed once checked unless ``keep``).
    crashes, states_per_crash : int
        Writer runs, and disk states built from each.
    seed : int
        Everything random follows from it: the workload, the kill moment
        (up to scheduling) and the states.
    flush_interval : float
        The writer's background checkpoint interval.
    run_s : (float, float)
        The writer runs a uniform random time in this range before the kill.

    Returns
    -------
    dict
        Counts (``crashes``, ``states``, ``lost_synced``, ``garbage``,
        ``older_than_synced``, ``phantom``, ``resurrected``, ``metadata``,
        ``failed_recoveries``, ``verify_failures``, ``writer_failures``),
        ``ops`` (operations acknowledged), ``syncs`` (sync marks and
        completed checkpoints), ``max_loss_window_s`` (the oldest
        acknowledged write a state lost, seconds before the kill),
        ``checkpoint_s_max`` (the longest sync or checkpoint seen),
        ``loss_bound_s`` (``flush_interval`` plus that), ``late_losses``
        (states that lost a write older than the bound; the scheduler can
        delay a checkpoint on a loaded machine, so it is a figure, not a
        check: every loss of a write a completed checkpoint covered is
        counted in ``lost_synced``), and ``problems``: the first messages,
        each naming the backend, the seed, the crash and the state.
    """
    workdir = Path(workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    shim = build_shim()
    rng = random.Random(seed)
    store = workdir / "store"
    if store.exists():
        shutil.rmtree(store)
    store.mkdir()
    base: dict[str, dict[str, tuple[int, bool]]] = {}
    totals: dict[str, Any] = dict(
        backend=backend, seed=seed, crashes=0, states=0, lost_synced=0, garbage=0,
        older_than_synced=0, phantom=0, resurrected=0, metadata=0, failed_recoveries=0,
        verify_failures=0, writer_failures=0, ops=0, syncs=0, max_loss_window_s=0.0,
        checkpoint_s_max=0.0, late_losses=0)
    problems: list[str] = []

    def report(where: str, msg: str) -> None:
        if len(problems) < _MAX_PROBLEMS:
            problems.append(f"{backend} seed={seed} {where}: {msg}")

    env_base = dict(os.environ)
    env_base["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parents[2])] +
        ([env_base["PYTHONPATH"]] if env_base.get("PYTHONPATH") else []))

    for crash in range(crashes):
        run = workdir / f"crash-{crash}"
        if run.exists():
            shutil.rmtree(run)
        images = run / "images"
        # Everything on disk when the writer starts is durable.
        root_key, listings = _snapshot(store, images)
        for key, entries in listings.items():
            _write_listing(images, key, entries)
        ack = run / "ack.log"
        cfg = dict(path=str(store), backend=backend, flush_interval=flush_interval,
                   seed=rng.randrange(1 << 32), crash=crash, ack=str(ack),
                   version_base=(crash + 1) * VERSION_STRIDE)
        (run / "writer.json").write_text(json.dumps(cfg))
        env = shim_env(shim, store, log=run / "fs.log", images=images, base=env_base)
        run_for = rng.uniform(*run_s)
        with open(run / "writer.err", "wb") as err:
            child = subprocess.Popen([sys.executable, "-c", _WRITER, str(run / "writer.json")],
                                     env=env, stdout=subprocess.DEVNULL, stderr=err)
            # The run time counts from the store's open, not the interpreter's start.
            deadline = time.monotonic() + 60
            while child.poll() is None and time.monotonic() < deadline:
                if ack.exists() and ack.stat().st_size:
                    break
                time.sleep(0.01)
            time.sleep(run_for)
            alive = child.poll() is None
            if alive:
                child.send_signal(signal.SIGKILL)
            kill_ns = time.monotonic_ns()
            child.wait()
        totals["crashes"] += 1
        if not alive:
            totals["writer_failures"] += 1
            report(f"crash {crash}", "the writer stopped before the kill: "
                   + (run / "writer.err").read_text()[-800:])
        kill = run / "kill"
        kill_root, kill_listings = _snapshot(store, kill)
        (kill / "listings.json").write_text(json.dumps([kill_root, kill_listings]))
        ack_lines = _read_ack(ack)
        oracle = _Oracle(base, ack_lines, kill_ns)
        totals["ops"] += sum(1 for op in oracle.ops if op["acked"] is not None)
        totals["syncs"] += sum(1 for line in ack_lines if line["e"] == "ca") + sum(
            1 for op in oracle.ops if op["op"] == "sync" and op["acked"] is not None)
        totals["checkpoint_s_max"] = max(totals["checkpoint_s_max"], oracle.checkpoint_s_max)

        builder = _StateBuilder(images, kill, kill_root, kill_listings)
        states = []
        for s in range(states_per_crash):
            srng = random.Random(rng.randrange(1 << 32))
            p = _P_CHOICES[s] if s < len(_P_CHOICES) else srng.random()
            namespace = ("old", "new", "random")[s % 3]
            torn = srng.random() < 0.3
            sizes = "random"
            if p == 1.0:
                # Every page, name and size as the kill left them: what a
                # killed process (no power loss) leaves; it must recover too.
                namespace, torn, sizes = "new", False, "current"
            out = run / f"state-{s}"
            builder.build(out, srng, p, namespace, torn, sizes)
            if keep:  # the checker changes the state it opens: keep it as built
                shutil.copytree(out, run / f"state-{s}.built", symlinks=True)
            states.append(str(out))
        (run / "checker.json").write_text(json.dumps(dict(backend=backend, states=states)))
        done = subprocess.run([sys.executable, "-c", _CHECKER, str(run / "checker.json")],
                              env=env_base, capture_output=True, text=True, timeout=600)
        results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0 or len(results) != len(states):
            totals["failed_recoveries"] += len(states) - len(results)
            report(f"crash {crash}", f"the checker died (rc {done.returncode}): "
                   f"{done.stderr[-800:]}")
        next_base: dict[str, dict[str, tuple[int, bool]]] | None = None
        next_state: str | None = None
        for res in results:
            totals["states"] += 1
            where = f"crash {crash} {Path(res['state']).name}"
            if "open_error" in res:
                totals["failed_recoveries"] += 1
                report(where, f"open failed: {res['open_error']}")
                continue
            if res["verify"]:
                totals["verify_failures"] += 1
                report(where, f"verify: {res['verify'][:3]}")
            if res["problems"]:
                totals["failed_recoveries"] += 1
                for msg in res["problems"][:3]:
                    report(where, msg)
            if "dump" not in res:
                continue
            counts, found, window = oracle.check(res["dump"], with_meta=True)
            for kind, value in counts.items():
                totals[kind] += value
            for msg in found[:3]:
                report(where, msg)
            totals["max_loss_window_s"] = max(totals["max_loss_window_s"], window)
            if flush_interval > 0 and window > flush_interval + oracle.checkpoint_s_max:
                totals["late_losses"] += 1
            if not res["problems"] and not res["verify"] and not found:
                next_base, next_state = _dump_versions(res["dump"]), res["state"]
        # The next run continues from the last clean state (fresh files,
        # so new inodes), or starts a fresh store if none was clean.
        shutil.rmtree(store)
        if next_state is not None:
            shutil.copytree(next_state, store, symlinks=True)
            base = next_base or {}
        else:
            store.mkdir()
            base = {}
        if not keep and not any(p.startswith(f"{backend} seed={seed} crash {crash}")
                                for p in problems):
            shutil.rmtree(run)
    totals["loss_bound_s"] = flush_interval + totals["checkpoint_s_max"]
    totals["problems"] = problems
    return totals
