"""Stopping a batch-insert: Ctrl-C and SIGTERM stop cleanly, kill -9 leaves a valid store.

A batch-insert of many small batches is started in a process; once it has
used enough CPU time to be well into storing (read from /proc, which is
steadier than wall time on a busy machine), the signal is sent. Whatever the signal,
what is stored afterwards is a prefix of whole batches of the file, and
running the same command again completes the database.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

import jadevec

from .conftest import command, environment

ROWS, DIMENSION, BATCH = 300_000, 8, 2
# Start-up and the checking pass take well under this; storing everything takes
# several times it (about 3.5 s of CPU on a 2-core VM in 2026-12).
STORING_AFTER_CPU_S = 1.5

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture
def started(jv, store_dir, tmp_path):
    """A running batch-insert of ROWS rows in batches of BATCH, already storing."""
    vectors = np.random.default_rng(3).standard_normal((ROWS, DIMENSION)).astype(np.float32)
    np.save(tmp_path / "rows.npy", vectors)
    assert jv("create", "--database", "big", "--dimension", DIMENSION).returncode == 0
    argv = command(store_dir, "batch-insert", "--database", "big", "--file",
                   tmp_path / "rows.npy", "--batch-size", BATCH)
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=environment())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if cpu_seconds(process.pid) >= STORING_AFTER_CPU_S:
            break
        time.sleep(0.02)
    assert process.poll() is None, "the insert finished before it could be interrupted"
    yield process, vectors, argv
    if process.poll() is None:
        process.kill()
        process.wait()


def stored_prefix(store_dir, vectors) -> int:
    """The number of rows stored, checked to be whole batches from the start, bit-exact."""
    with jadevec.open(store_dir, read_only=True) as store:
        db = store.get_database("big")
        ids = db.list_vectors()
        count = len(ids)
        assert sorted(int(i) for i in ids) == list(range(count))
        assert count % BATCH == 0
        if count:
            read = np.stack(db.batch_retrieve([str(i) for i in range(count)]))
            assert read.tobytes() == vectors[:count].tobytes()
    return count


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_batch_insert_cleanly_and_says_what_was_stored(
        started, jv, store_dir, signum, code):
    process, vectors, argv = started
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)
    assert process.returncode == code, (out, err)
    assert "Traceback" not in err
    said = re.search(r"interrupted by (\w+): stored (\d+) of (\d+) rows", err)
    assert said, err
    assert said.group(1) == signal.Signals(signum).name and int(said.group(3)) == ROWS
    assert stored_prefix(store_dir, vectors) == int(said.group(2)) > 0
    assert jv("verify").returncode == 0
    if signum != signal.SIGINT:
        return
    rerun = subprocess.run(argv, capture_output=True, text=True, env=environment(), timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert jv("count", "--database", "big").stdout == f"{ROWS}\n"


def test_kill_9_during_batch_insert_leaves_a_verifiable_prefix(started, jv, store_dir):
    process, vectors, _argv = started
    time.sleep(0.2)
    process.kill()
    process.wait(timeout=60)
    done = jv("verify", "--json")
    assert done.returncode == 0, (done.stdout, done.stderr)
    report = json.loads(done.stdout)
    assert report["ok"] and report["recovered"], report  # verify recovered the unclean exit
    assert stored_prefix(store_dir, vectors) == report["vectors"] > 0


def test_a_signal_ignored_by_the_parent_stays_ignored():
    """A shell's background job ignores SIGINT; the command must not undo that."""
    from jadevec.cli._signals import Interrupts

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with Interrupts():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
