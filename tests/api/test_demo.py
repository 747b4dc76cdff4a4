"""`python -m jadevec.demo`, the README's main job, runs end to end."""

import subprocess
import sys

import numpy as np
import pytest

import jadevec
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


def test_an_unknown_backend_lists_the_installed_ones(capsys):
    assert demo.main(["--backend", "nosuch", "--count", "10"]) == 1
    err = capsys.readouterr().err
    assert "nosuch" in err and "available backends: " in err and "memory" in err


def test_a_named_persistent_backend_is_passed_to_the_second_process(tmp_path, capfd):
    folder = tmp_path / "demo"
    assert demo.main(["--backend", "mmap", "--dir", str(folder), "--count", "300",
                      "--dimension", "16"]) == 0
    assert "1. vec-42" in capfd.readouterr().out
    with jadevec.open(folder, backend="mmap", read_only=True) as store:
        assert len(store.get_database(demo.DATABASE)) == 300


def test_the_search_step_fails_loudly_when_the_target_is_missing_or_not_first(tmp_path):
    with jadevec.open(tmp_path / "s") as store:
        demo.populate(store, 10, 16, seed=7)  # vec-0 .. vec-9: no vec-42
    with pytest.raises(SystemExit, match="'vec-42' is missing after the restart"):
        demo.main(["--search-only", "--dir", str(tmp_path / "s"), "--count", "300"])

    seed, dimension = 7, 16
    base = np.ones(dimension, np.float32)
    noise = np.random.default_rng(seed + 1).standard_normal(dimension, dtype=np.float32)
    with jadevec.open(tmp_path / "t") as store:
        db = store.create_database(demo.DATABASE, dimension)
        db.batch_store(["vec-42", "the query itself"], np.stack([base, base + 0.1 * noise]))
    with pytest.raises(SystemExit, match="expected 'vec-42' first, got 'the query itself'"):
        demo.main(["--search-only", "--dir", str(tmp_path / "t"), "--count", "300",
                   "--seed", str(seed)])
