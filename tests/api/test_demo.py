"""`python -m jadevec.demo`, the README's main job, runs end to end."""

import subprocess
import sys

from jadevec import demo


def test_demo_in_process_on_memory(capsys):
    assert demo.main(["--backend", "memory", "--count", "300", "--dimension", "16"]) == 0
    out = capsys.readouterr().out
    assert "1. vec-42" in out and "simd_info" in out


def test_demo_on_the_default_backend_reopens_in_a_new_process(tmp_path):
    folder = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "jadevec.demo", "--dir", str(folder), "--count", "500"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "reopen in a new process" in done.stdout and "1. vec-42" in done.stdout
    assert folder.exists()  # --dir keeps the store
