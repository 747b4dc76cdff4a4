"""Large inputs stream: a JSON-lines file far bigger than a batch needs no more memory.

Slow (a few hundred MB of text are written and read twice): ``pytest -m slow``.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from .conftest import command, environment

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc"),
]


def anonymous_bytes(pid: int) -> int:
    """RssAnon of a process: its heap, not the store's mapped files."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def peak_while_running(argv: list[str]) -> tuple[subprocess.CompletedProcess[str], int]:
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=environment())
    peak = 0
    while process.poll() is None:
        peak = max(peak, anonymous_bytes(process.pid))
        time.sleep(0.05)
    out, err = process.communicate()
    return subprocess.CompletedProcess(argv, process.returncode, out, err), peak


def test_a_json_lines_file_is_stored_in_bounded_memory(store_dir, tmp_path, jv):
    rows, dimension = 300_000, 64
    rng = np.random.default_rng(11)
    path = tmp_path / "big.jsonl"
    with open(path, "w", encoding="utf-8") as handle:
        for start in range(0, rows, 10_000):
            block = rng.standard_normal((10_000, dimension)).round(5).tolist()
            handle.writelines(f'{{"id": "r{start + i}", "values": {row}}}\n'
                              for i, row in enumerate(block))
    text_bytes = path.stat().st_size
    assert jv("create", "--database", "big", "--dimension", dimension).returncode == 0
    done, peak = peak_while_running(command(store_dir, "batch-insert", "--database", "big",
                                            "--file", path, "--batch-size", "5000"))
    assert done.returncode == 0, done.stderr
    assert jv("count", "--database", "big").stdout == f"{rows}\n"
    # The interpreter, numpy and the library take about 50 MB. Holding the rows
    # would add at least rows x dimension x 4 bytes as float32 (77 MB), and
    # several times the text as Python objects; streaming adds about a batch.
    assert peak < 100 * 2**20, (peak, text_bytes)
