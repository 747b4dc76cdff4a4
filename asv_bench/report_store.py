"""Print the vector store's figures from one run, beside their targets.

    python asv_bench/report_store.py [--dir DIR]

Temporary files go under DIR (default: the system temp folder); the 1M x 768
file needs about 3.5 GB. RssAnon is read from /proc/self/status in a fresh
subprocess, after opening the file and 1,000 random retrieves.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from jadevec.backends._vector_store import MemoryMappedVectorStore

RSS_CHILD = """
import sys, numpy as np
from jadevec.backends._vector_store import MemoryMappedVectorStore
def anon():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
before = anon()
store = MemoryMappedVectorStore(sys.argv[1])
store.open_vector_file("db")
rng = np.random.default_rng(9)
for i in rng.integers(0, int(sys.argv[2]), 1000):
    assert store.retrieve_vector("db", f"vec-{i}") is not None
print(before, anon())
"""


def fill(store, n, d, batch=100_000, seed=0):
    rng = np.random.default_rng(seed)
    for start in range(0, n, batch):
        m = min(batch, n - start)
        store.batch_store("db", [f"vec-{i}" for i in range(start, start + m)],
                          rng.standard_normal((m, d)).astype(np.float32))


def batch_rate(base, d, n=200_000, repeats=3):
    best = 0.0
    ids = [f"vec-{i}" for i in range(n)]
    data = np.random.default_rng(1).standard_normal((n, d)).astype(np.float32)
    for r in range(repeats):
        root = base / f"batch{d}-{r}"
        with MemoryMappedVectorStore(root) as store:
            store.create_vector_file("db", d, initial_capacity=n)
            store.store_vector("db", "warm", data[0])
            t = time.perf_counter()
            store.batch_store("db", ids, data)
            best = max(best, n / (time.perf_counter() - t))
        shutil.rmtree(root)
    return best


def single_rate(base, d=128, n=50_000):
    root = base / "single"
    data = np.random.default_rng(2).standard_normal((n, d)).astype(np.float32)
    ids = [f"vec-{i}" for i in range(n)]
    with MemoryMappedVectorStore(root) as store:
        store.create_vector_file("db", d, initial_capacity=n)
        put = store.store_vector
        t = time.perf_counter()
        for vector_id, row in zip(ids, data, strict=True):
            put("db", vector_id, row)
        rate = n / (time.perf_counter() - t)
    shutil.rmtree(root)
    return rate


def retrieve_latency(base, d=128, n=100_000):
    root = base / "get"
    with MemoryMappedVectorStore(root) as store:
        store.create_vector_file("db", d, initial_capacity=n)
        fill(store, n, d)
        rng = np.random.default_rng(3)
        keys = [f"vec-{i}" for i in rng.integers(0, n, 20_000)]
        get = store.retrieve_vector
        for key in keys[:2000]:
            get("db", key)
        times = []
        clock = time.perf_counter_ns
        for key in keys:
            t = clock()
            get("db", key)
            times.append(clock() - t)
        batches = [[f"vec-{i}" for i in rng.integers(0, n, 100)] for _ in range(2000)]
        btimes = []
        for ids in batches:
            t = clock()
            store.batch_retrieve("db", ids)
            btimes.append(clock() - t)
    shutil.rmtree(root)
    us = np.array(times) / 1000
    return np.percentile(us, 50), np.percentile(us, 95), np.median(btimes) / 1000


def open_time(base, n=1_000_000, d=128):
    root = base / "open"
    with MemoryMappedVectorStore(root) as store:
        store.create_vector_file("db", d, initial_capacity=n)
        fill(store, n, d)
    times = []
    for _ in range(10):
        store = MemoryMappedVectorStore(root)
        t = time.perf_counter()
        store.open_vector_file("db")
        assert store.retrieve_vector("db", "vec-123456") is not None
        times.append((time.perf_counter() - t) * 1000)
        store.close()
    shutil.rmtree(root)
    return min(times), float(np.median(times))


def rss_anon(base, n=1_000_000, d=768):
    root = base / "rss"
    with MemoryMappedVectorStore(root) as store:
        store.create_vector_file("db", d, initial_capacity=n)
        fill(store, n, d)
    out = subprocess.run([sys.executable, "-c", RSS_CHILD, str(root), str(n)],
                         capture_output=True, text=True, check=True)
    before, after = map(int, out.stdout.split())
    shutil.rmtree(root)
    data = n * d * 4
    return after / data * 100, (after - before) / data * 100, after


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=None)
    parser.add_argument("--skip-rss", action="store_true", help="skip the 3 GB file")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="jadevec-report-", dir=args.dir))
    try:
        rows = []
        rate128 = batch_rate(base, 128)
        rows.append(("batch store d=128 (vectors/s)", f"{rate128:,.0f}", ">= 1,000,000"))
        rate768 = batch_rate(base, 768)
        rows.append(("batch store d=768 (vectors/s)", f"{rate768:,.0f}", ">= 200,000"))
        single = single_rate(base)
        rows.append(("single store d=128 (vectors/s)", f"{single:,.0f}", ">= 100,000"))
        rows.append(("batch / single per vector", f"{rate128 / single:.1f}x", ">= 10x"))
        p50, p95, b100 = retrieve_latency(base)
        rows.append(("single retrieve p50 (us)", f"{p50:.2f}", ""))
        rows.append(("single retrieve p95 (us)", f"{p95:.2f}", "< 10"))
        rows.append(("batch retrieve of 100, median (us)", f"{b100:.1f}", "< 100"))
        best, median = open_time(base)
        rows.append(("open 1M x 128 + first retrieve (ms), best / median",
                     f"{best:.2f} / {median:.2f}", "< 10"))
        if not args.skip_rss:
            pct, delta, after = rss_anon(base)
            rows.append(("RssAnon after open 1M x 768 + 1,000 retrieves (% of data)",
                         f"{pct:.2f}% ({after / 2**20:.0f} MiB; +{delta:.3f}% from jadevec)",
                         "< 5%"))
        width = max(len(r[0]) for r in rows)
        print(f"python {sys.version.split()[0]}, numpy {np.__version__}, "
              f"{os.cpu_count()} CPUs, temp dir {base}")
        for name, value, target in rows:
            print(f"{name:<{width}}  {value:>34}  {target}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
