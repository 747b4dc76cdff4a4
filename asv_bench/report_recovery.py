"""Print the time from ``jadevec.open()`` after a SIGKILL to the first correct search result.

    python asv_bench/report_recovery.py [--dir DIR] [--backends hybrid,mmap,lmdb]
                                        [--layouts 1m,1000dbs] [--repeats 3]

Target: < 1 s. Layouts: ``1m`` is one database of 1,000,000 x 128 float32
(about 0.5 GB), ``1000dbs`` is 1,000 databases of 5 x 128 vectors with
metadata. Each store is written once by a child process (background
checkpoint off) and then:

* ``killed``: SIGKILLed right after its writes, nothing committed since the
  databases were created, so recovery replays every write;
* ``synced``: ``sync()`` after the writes, 1,000 more vectors, then SIGKILL
  (what the default background checkpoint leaves: a short tail to replay);
* ``closed``: closed cleanly (no recovery; the comparison).

Every repeat opens a fresh byte copy of the built store, so each one
recovers the same state; the page cache is warm, as after a process crash.
Printed per case (median of ``--repeats``, in ms): ``open()``, the first
search (top-1 of a stored vector in the middle database, which must come
back as that vector's id), their sum (the figure the target is about), a
second search (what a search costs once everything is open) and the
recovery time the store itself reports (``recovery_report.seconds``).
``lmdb`` is included when the plugin is installed. Temporary files go under
DIR (default: the system temp folder) and are removed.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import tempfile
from pathlib import Path

from benchmarks.recovery import LAYOUTS, STATES, build_store, copy_store, open_and_search

import jadevec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--backends", default="hybrid,mmap,lmdb")
    parser.add_argument("--layouts", default=",".join(LAYOUTS))
    parser.add_argument("--states", default=",".join(STATES))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    # Recovery logs a warning per store; the figures are what this prints.
    logging.getLogger("jadevec").addHandler(logging.NullHandler())
    backends = args.backends.split(",")
    if "lmdb" in backends and "lmdb" not in jadevec.available_backends():
        backends.remove("lmdb")
    base = Path(tempfile.mkdtemp(prefix="jadevec-recovery-", dir=args.dir))
    print(f"jadevec {jadevec.__version__}, {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}; ms, median of {args.repeats}")
    print(f"{'backend':<8}{'layout':<9}{'state':<8}{'open':>9}{'1st search':>12}"
          f"{'open+1st':>10}{'(max)':>9}{'2nd search':>12}{'recovery':>10}  target < 1 s")
    try:
        for layout in args.layouts.split(","):
            for backend in backends:
                for state in args.states.split(","):
                    built = base / "built"
                    build_store(built, backend, layout, state)
                    runs = []
                    for r in range(args.repeats):
                        copy = base / f"copy{r}"
                        copy_store(built, copy)
                        try:
                            runs.append(open_and_search(copy, backend, layout))
                        finally:
                            shutil.rmtree(copy, ignore_errors=True)
                    shutil.rmtree(built, ignore_errors=True)
                    med = {k: statistics.median(x[k] for x in runs) * 1000
                           for k in ("open", "first", "total", "again", "recovery_seconds")}
                    worst = max(x["total"] for x in runs) * 1000
                    recovered = all(x["recovered"] for x in runs)
                    if recovered != (state != "closed"):
                        print(f"  note: recovery_report is "
                              f"{'set' if recovered else 'None'} after {state}")
                    print(f"{backend:<8}{layout:<9}{state:<8}{med['open']:9.1f}"
                          f"{med['first']:12.1f}{med['total']:10.1f}{worst:9.1f}"
                          f"{med['again']:12.1f}{med['recovery_seconds']:10.1f}  "
                          f"{'ok' if med['total'] < 1000 else 'MISSED'}")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"load average at the end {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
