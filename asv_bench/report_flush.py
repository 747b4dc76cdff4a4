"""Print what the background checkpoint costs, beside its targets (within 10%; 0 bytes idle).

    python asv_bench/report_flush.py [--dir DIR] [--backends hybrid,mmap] [--intervals 5.0,0.5]
                                     [--vectors 3000000] [--read-vectors 1000000]
                                     [--repeats 3] [--idle-seconds 3] [--skip-ingest]
                                     [--skip-reads] [--skip-idle]

Three sections, each run with the background checkpoint off
(``flush_interval=0``) and at every interval of ``--intervals``, the runs
interleaved (off, then each interval, the order rotated every repeat) so that
a noisy machine hits all of them alike; every figure is the median over
``--repeats``, every ratio the median of the per-repeat ratios to the run
with the checkpoint off.

1. **Ingest.** ``batch_store`` of ``--vectors`` vectors (d=128, float32) in
   batches of 1,000 into a fresh database: vectors/s while storing, and
   vectors/s including the ``sync()`` after the last batch (with the
   checkpoint off all the work lands there). The duration of every
   background checkpoint is read from the ``jadevec`` logger, which logs it
   at DEBUG level: p50/p99 over all checkpoints of all repeats, and how many
   there were per run.
2. **Reads beside a writer.** A thread ingests ``--read-vectors`` vectors as
   above while the main thread calls ``retrieve`` on random ids of 100,000
   vectors stored (and synced) before: the latency p50/p99/max of those calls.
3. **Idle.** A child process opens a store (``hybrid``, ``mmap``, and
   ``lmdb`` with ``lmdb_sync=False`` when the plugin is installed) with a
   0.1 s interval, writes 3 databases of 1,000 vectors with metadata, waits
   for two ticks (the first commits the writes), then stays idle for
   ``--idle-seconds``. Over that window: ``write_bytes`` and ``syscw`` of
   ``/proc/PID/io``, the files whose size, modification time or bytes
   changed, and (when ``strace`` can attach) every system call that writes
   or syncs, counted by ``strace -f -c``.

Temporary files go under DIR (default: the system temp folder) and are removed.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
from benchmarks.flush import (
    BATCH,
    DIM,
    READ_SET,
    CheckpointLog,
    checkpoint_log,
    make_batches,
    ticks_of,
)

import jadevec

IDLE_TICK = 0.1
#: System calls that write to or sync a file (what an idle store must not make).
IO_CALLS = {"write", "pwrite64", "writev", "pwritev", "pwritev2", "fsync", "fdatasync",
            "msync", "sync_file_range", "ftruncate", "fallocate", "rename", "renameat",
            "renameat2", "unlink", "unlinkat"}


def run_ingest(base: Path, backend: str, interval: float,
               batches: list[tuple[list[str], np.ndarray]],
               log: CheckpointLog) -> dict[str, float]:
    path = Path(tempfile.mkdtemp(prefix="flush-", dir=base))
    try:
        log.seconds.clear()
        store = jadevec.open(path, backend=backend, flush_interval=interval)
        db = store.create_database("ingest", DIM, "l2")
        started = time.perf_counter()
        for ids, rows in batches:
            db.batch_store(ids, rows)
        stored = time.perf_counter() - started
        store.sync()
        synced = time.perf_counter() - started
        ticks = ticks_of(store)
        store.close()
        n = len(batches) * BATCH
        return {"rate": n / stored, "rate_synced": n / synced, "ticks": ticks,
                "final_sync": synced - stored, "checkpoints": list(log.seconds)}
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_reads(base: Path, backend: str, interval: float,
              batches: list[tuple[list[str], np.ndarray]]) -> dict[str, float]:
    path = Path(tempfile.mkdtemp(prefix="flush-", dir=base))
    try:
        store = jadevec.open(path, backend=backend, flush_interval=interval)
        db = store.create_database("ingest", DIM, "l2")
        rng = np.random.default_rng(1)
        read_ids = [f"r{i}" for i in range(READ_SET)]
        data = rng.standard_normal((READ_SET, DIM)).astype(np.float32)
        for start in range(0, READ_SET, 10_000):
            db.batch_store(read_ids[start:start + 10_000], data[start:start + 10_000])
        store.sync()
        picks = [read_ids[i] for i in rng.integers(0, READ_SET, 1 << 16)]
        done = threading.Event()

        def writer() -> None:
            try:
                for ids, rows in batches:
                    db.batch_store(ids, rows)
            finally:
                done.set()

        latencies: list[int] = []
        thread = threading.Thread(target=writer)
        clock = time.perf_counter_ns
        retrieve = db.retrieve
        thread.start()
        i = 0
        while not done.is_set():
            vid = picks[i & 0xFFFF]
            t0 = clock()
            retrieve(vid)
            latencies.append(clock() - t0)
            i += 1
        thread.join()
        ticks = ticks_of(store)
        store.close()
        lat = np.array(latencies) / 1000.0
        return {"p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)),
                "max": float(lat.max()), "calls": len(lat), "ticks": ticks}
    finally:
        shutil.rmtree(path, ignore_errors=True)


def interleaved(settings: list[float], repeats: int):
    """(repeat, setting) pairs: every repeat runs every setting, the order rotated."""
    for r in range(repeats):
        shift = r % len(settings)
        for s in settings[shift:] + settings[:shift]:
            yield r, s


def ratio_line(name: str, results: dict[float, list[dict]], key: str, settings: list[float],
               fmt: str, higher_is_better: bool) -> str:
    off = results[0.0]
    parts = [f"off {fmt.format(statistics.median(x[key] for x in off))}"]
    verdicts = []
    for s in settings[1:]:
        runs = results[s]
        ratio = statistics.median(on[key] / base[key] for on, base in zip(runs, off, strict=True))
        parts.append(f"{s:g}s {fmt.format(statistics.median(x[key] for x in runs))} "
                     f"(x{ratio:.3f})")
        cost = (1 / ratio if higher_is_better else ratio)
        verdicts.append("ok" if cost <= 1.10 else "MISSED")
    return f"  {name:<26}" + "   ".join(parts) + "   target within 10%: " + "/".join(verdicts)


def section_ingest(args, base: Path, settings: list[float]) -> None:
    batches = make_batches(args.vectors, "v")
    with checkpoint_log() as log:
        for backend in args.backends:
            results: dict[float, list[dict]] = {s: [] for s in settings}
            for _, s in interleaved(settings, args.repeats):
                results[s].append(run_ingest(base, backend, s, batches, log))
            print(f"{backend}: batch_store of {args.vectors:,} x {DIM} in batches of "
                  f"{BATCH:,}, median of {args.repeats}")
            print(ratio_line("vectors/s while storing", results, "rate", settings,
                             "{:,.0f}", True))
            print(ratio_line("vectors/s incl. sync()", results, "rate_synced", settings,
                             "{:,.0f}", True))
            for s in settings:
                runs = results[s]
                final = statistics.median(x["final_sync"] for x in runs) * 1000
                line = (f"  interval {s:g} s: ticks per run "
                        f"{[int(x['ticks']) for x in runs]}, sync() after the last batch "
                        f"{final:.0f} ms")
                durations = [d for x in runs for d in x["checkpoints"]]
                if durations:
                    ms = np.array(durations) * 1000
                    line += (f", checkpoint p50 {np.percentile(ms, 50):.0f} ms, "
                             f"p99 {np.percentile(ms, 99):.0f} ms, max {ms.max():.0f} ms "
                             f"over {len(ms)}")
                print(line)


def section_reads(args, base: Path, settings: list[float]) -> None:
    batches = make_batches(args.read_vectors, "w")
    for backend in args.backends:
        results: dict[float, list[dict]] = {s: [] for s in settings}
        for _, s in interleaved(settings, args.repeats):
            results[s].append(run_reads(base, backend, s, batches))
        print(f"{backend}: retrieve latency (us) from {READ_SET:,} synced vectors while a "
              f"thread stores {args.read_vectors:,}, median of {args.repeats}")
        print(ratio_line("retrieve p50", results, "p50", settings, "{:.2f}", False))
        print(ratio_line("retrieve p99", results, "p99", settings, "{:.2f}", False))
        for s in settings:
            runs = results[s]
            print(f"  interval {s:g} s: max {[round(x['max']) for x in runs]} us, calls "
                  f"{[int(x['calls']) for x in runs]}, ticks {[int(x['ticks']) for x in runs]}")


IDLE_CHILD = textwrap.dedent("""
    import logging, sys, time
    import numpy as np
    import jadevec

    path, backend, tick = sys.argv[1], sys.argv[2], float(sys.argv[3])
    extra = {"lmdb_sync": False} if backend == "lmdb" else {}
    logging.getLogger("jadevec").setLevel(logging.ERROR)  # the first tick's "took" warning
    store = jadevec.open(path, backend=backend, flush_interval=tick, **extra)
    rng = np.random.default_rng(0)
    for d in range(3):
        db = store.create_database(f"db{d}", 128, "l2")
        db.batch_store([f"v{i}" for i in range(1000)],
                       rng.standard_normal((1000, 128)).astype(np.float32),
                       [{"i": i} for i in range(1000)])
    backend_ = store._backend
    def ticks():
        c = getattr(backend_, "_checkpointer", None)
        return c.runs if c is not None else backend_._ticks
    start = ticks()
    while ticks() < start + 2:  # the first commits the writes, the second finds nothing
        time.sleep(tick / 10)
    start = ticks()
    print("idle", flush=True)
    sys.stdin.readline()
    print(ticks() - start, flush=True)
    store.close()
""")


def file_states(root: Path) -> dict[str, tuple[int, int, str]]:
    states = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            st = path.stat()
            states[str(path.relative_to(root))] = (
                st.st_mtime_ns, st.st_size, hashlib.sha256(path.read_bytes()).hexdigest())
    return states


def proc_io(pid: int) -> dict[str, int]:
    with open(f"/proc/{pid}/io") as f:
        return {k: int(v) for k, v in (line.split(": ") for line in f)}


def strace_counts(text: str) -> dict[str, int]:
    """``strace -c`` summary lines -> {syscall: calls}."""
    counts = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[0][0].isdigit() and not line.startswith("100.00"):
            counts[fields[-1]] = int(fields[3])
    return counts


def run_idle(base: Path, backend: str, seconds: float) -> dict:
    path = Path(tempfile.mkdtemp(prefix="idle-", dir=base)) / "store"
    child = subprocess.Popen([sys.executable, "-c", IDLE_CHILD, str(path), backend,
                              str(IDLE_TICK)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    tracer = trace_out = None
    try:
        if child.stdout.readline().strip() != "idle":
            raise RuntimeError(f"the {backend} child failed")
        states = file_states(path)
        io_before = proc_io(child.pid)
        if shutil.which("strace"):
            trace_out = path.parent / "strace.txt"
            trace_log = open(path.parent / "strace.log", "w")  # noqa: SIM115 - closed below
            tracer = subprocess.Popen(["strace", "-f", "-c", "-o", str(trace_out),
                                       "-p", str(child.pid)], stderr=trace_log)
            time.sleep(0.5)  # attached to every thread before the window starts
            io_before = proc_io(child.pid)
        time.sleep(seconds)
        io_after = proc_io(child.pid)
        if tracer is not None:
            tracer.send_signal(signal.SIGINT)  # detaches and writes the summary
            tracer.wait(30)
            trace_log.close()
        changed = sorted(name for name, state in file_states(path).items()
                         if states.get(name) != state)
        child.stdin.write("\n")
        child.stdin.flush()
        ticks = int(child.stdout.readline())
        child.wait(60)
        calls = None
        if tracer is not None and "attached" in (path.parent / "strace.log").read_text():
            calls = strace_counts(trace_out.read_text()) if trace_out.exists() else {}
        return {"ticks": ticks,
                "write_bytes": io_after["write_bytes"] - io_before["write_bytes"],
                "syscw": io_after["syscw"] - io_before["syscw"],
                "changed": changed, "calls": calls}
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        shutil.rmtree(path.parent, ignore_errors=True)


def section_idle(args, base: Path) -> None:
    backends = list(args.backends)
    try:
        import jadevec_lmdb  # noqa: F401
        backends.append("lmdb")
    except ImportError:
        pass
    print(f"idle store, interval {IDLE_TICK} s, {args.idle_seconds} s idle after 3 x 1,000 "
          f"writes and two ticks (target: 0 bytes, no write or sync calls)")
    for backend in backends:
        r = run_idle(base, backend, args.idle_seconds)
        io: dict[str, int] = {}
        if r["calls"] is None:
            traced = "strace: not available"
        else:
            io = {k: v for k, v in r["calls"].items() if k in IO_CALLS}
            traced = (f"write/sync calls (strace): {sum(io.values())} {io or ''}; all calls: "
                      f"{dict(sorted(r['calls'].items(), key=lambda kv: -kv[1]))}")
        quiet = not r["write_bytes"] and not r["changed"] and not (r["calls"] and io)
        print(f"  {backend + (' (lmdb_sync=False)' if backend == 'lmdb' else ''):<24} "
              f"ticks {r['ticks']:3d}   write_bytes {r['write_bytes']:,}   syscw {r['syscw']}   "
              f"files changed {r['changed'] or 'none'}   {'ok' if quiet else 'MISSED'}")
        print(f"    {traced}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--backends", default="hybrid,mmap")
    parser.add_argument("--intervals", default="5.0,0.5")
    parser.add_argument("--vectors", type=int, default=3_000_000)
    parser.add_argument("--read-vectors", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--idle-seconds", type=float, default=3.0)
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--skip-reads", action="store_true")
    parser.add_argument("--skip-idle", action="store_true")
    args = parser.parse_args()
    # The durations are read from the log; its warnings ("checkpoint took ...
    # s") would only interleave with the figures.
    logging.getLogger("jadevec").addHandler(logging.NullHandler())
    args.backends = args.backends.split(",")
    settings = [0.0] + [float(s) for s in args.intervals.split(",")]
    base = Path(tempfile.mkdtemp(prefix="jadevec-flush-", dir=args.dir))
    print(f"jadevec {jadevec.__version__}, {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    try:
        if not args.skip_ingest:
            section_ingest(args, base, settings)
        if not args.skip_reads:
            section_reads(args, base, settings)
        if not args.skip_idle:
            section_idle(args, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"load average at the end {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
