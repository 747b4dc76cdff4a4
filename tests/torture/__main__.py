"""The torture run: every crash, power-loss, fault, corruption and concurrency loop
at one size, with the counts written to one JSON report.

    python -m tests.torture                 # the sizes CI runs (about 15 minutes)
    python -m tests.torture --long          # the long run (hours on 2 cores)
    python -m tests.torture --long --parts T1,T5 --backends mmap --report out.json

Run it from the repository root with the test extras installed (the README's
test command). Each part is a pytest selection or a harness script run in a
subprocess; the tests append their counts to ``JADEVEC_STRESS_REPORT``, which
the report gathers per part with the command, the seconds it took and
whether it passed. The exit status is 1 if any part failed.

Parts:

* ``T1``  a writer killed with SIGKILL at random moments of mixed work, and
  of the database lifecycle; nothing acknowledged lost, failed reopens 0.
* ``T3``  simulated power loss: disk states built from what was synced and
  a random part of what was not; nothing synced lost, no garbage.
* ``T4``  ENOSPC, EIO and EFBIG injected at every file-system call of each
  operation: typed errors, all-or-nothing, nothing earlier lost.
* ``T5``  corruption fuzzing of every file of a store: no signal, no hang,
  only typed errors, no wrong vector (built-in backends).
* ``T6``  threads racing on one store against per-thread models.
* ``T7``  processes: read-only readers beside a writer, a second writer
  refused, a killed writer's lock never stale.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BUILT_IN = ("mmap", "hybrid")
CONFORMANCE = {
    "mmap": "tests/backends/test_mmap.py",
    "hybrid": "tests/backends/test_hybrid.py",
    "lmdb": "plugins/jadevec-lmdb/tests/test_conformance.py",
}
SIZES = {
    #            short   long
    "t1_cycles": (200, 2000),
    "scale": (1, 10),        # JADEVEC_TORTURE_SCALE for the power-loss and fault loops
    "t5_mutants": (2000, 100_000),
    "t6_seeds": (2, 10),
    "t7_cycles": (200, 2000),
}


def _pytest(*selection: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *selection]


def plan(long: bool, backends: list[str], seed: int) -> list[dict[str, Any]]:
    """The parts to run: name, command, extra environment, timeout."""
    size = {k: v[1 if long else 0] for k, v in SIZES.items()}
    files = [CONFORMANCE[b] for b in backends]
    built_in = [b for b in backends if b in BUILT_IN]
    parts: list[dict[str, Any]] = [
        {"part": "T1", "what": "killed during mixed work and during the database lifecycle",
         "cmd": _pytest("-m", "torture or slow", "-k",
                         "killed_during_mixed_work or killed_during_the_database_lifecycle",
                         *files),
         "env": {"JADEVEC_STRESS_CYCLES": str(size["t1_cycles"])}},
        {"part": "T7", "what": "read-only processes beside a writer; the writer lock",
         "cmd": _pytest("-m", "slow or not slow", "-k",
                         "readers_beside_a_writer or test_store_lock",
                         *files, "tests/backends/test_store_lock.py"),
         "env": {"JADEVEC_STRESS_CYCLES": str(size["t7_cycles"])}},
    ]
    for backend in backends:
        scale = {"JADEVEC_TORTURE_SCALE": str(size["scale"])}
        parts.append({"part": "T3", "what": f"simulated power loss: {backend}",
                      "cmd": _pytest("-m", "torture", "-k", "power_loss_short_run",
                                     CONFORMANCE[backend]),
                      "env": scale})
        parts.append({"part": "T4", "what": f"ENOSPC, EIO and EFBIG at every file call: {backend}",
                      "cmd": _pytest("-m", "torture", "-k", "failed_call_anywhere",
                                     CONFORMANCE[backend]),
                      "env": scale})
    if built_in:
        parts.append(
            {"part": "T5", "what": "corruption fuzzing of every file of mmap and hybrid stores",
             "cmd": [sys.executable, "tests/core/fuzz_harness.py", "--seed", str(seed),
                     "--count", str(size["t5_mutants"]), "--jobs", str(os.cpu_count() or 2)],
             "env": {}, "json_stdout": True})
    parts.append({"part": "T6", "what": "16 threads on one store against a model",
                  "cmd": _pytest("-m", "slow", "-k", "sixteen_threads", *files), "env": {}})
    for backend in backends:
        for scenario in ("mixed", "teardown", "evict"):
            for s in range(seed, seed + size["t6_seeds"]):
                parts.append(
                    {"part": "T6", "what": f"threads race: {backend} {scenario} seed {s}",
                     "cmd": [sys.executable, "tests/backends/test_concurrency_stress.py",
                             backend, scenario, str(s), "{tmp}/store",
                             str(3 if long else 1)],
                     "env": {"PYTHONFAULTHANDLER": "1"}})
    return parts


def run(parts: list[dict[str, Any]], report_lines: Path) -> list[dict[str, Any]]:
    results = []
    for part in parts:
        report_lines.write_text("")
        env = dict(os.environ, **part["env"], JADEVEC_STRESS_REPORT=str(report_lines))
        with tempfile.TemporaryDirectory(prefix="jadevec-torture-") as tmp:
            cmd = [c.replace("{tmp}", tmp) for c in part["cmd"]]
            print(f"== {part['part']}: {part['what']}", flush=True)
            started = time.monotonic()
            proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        seconds = round(time.monotonic() - started, 1)
        result: dict[str, Any] = {
            "part": part["part"], "what": part["what"],
            "command": " ".join(f"{k}={v}" for k, v in part["env"].items()) + " "
                       + " ".join(part["cmd"]).replace(sys.executable, "python"),
            "passed": proc.returncode == 0, "seconds": seconds,
            "counts": [json.loads(line) for line in report_lines.read_text().splitlines()],
        }
        if part.get("json_stdout"):
            try:
                summary = json.loads(proc.stdout)
                summary["failures"] = summary.get("failures", [])[:5]
                result["counts"].append(summary)
            except ValueError:
                pass
        if proc.returncode != 0:
            result["output_tail"] = (proc.stdout + proc.stderr)[-4000:]
        print(f"   {'passed' if result['passed'] else 'FAILED'} in {seconds} s", flush=True)
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.torture", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--long", action="store_true", help="the long run's sizes")
    ap.add_argument("--backends", default="mmap,hybrid,lmdb",
                    help="comma-separated (default: mmap,hybrid,lmdb)")
    ap.add_argument("--parts", default="T1,T3,T4,T5,T6,T7", help="comma-separated")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--report", default="torture-report.json")
    args = ap.parse_args(argv)
    backends = [b for b in args.backends.split(",") if b]
    unknown = sorted(set(backends) - set(CONFORMANCE))
    if unknown:
        ap.error(f"unknown backend {unknown[0]!r}; choose from {', '.join(CONFORMANCE)}")
    wanted = set(args.parts.split(","))
    parts = [p for p in plan(args.long, backends, args.seed) if p["part"] in wanted]
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as lines:
        results = run(parts, Path(lines.name))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    report = {"commit": commit, "size": "long" if args.long else "short",
              "machine": f"{os.cpu_count()} cores, {platform.machine()}, {platform.system()}",
              "python": platform.python_version(), "backends": backends, "seed": args.seed,
              "passed": all(r["passed"] for r in results), "parts": results}
    Path(args.report).write_text(json.dumps(report, indent=1) + "\n")
    print(f"report: {args.report} ({'all passed' if report['passed'] else 'FAILURES'})")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
