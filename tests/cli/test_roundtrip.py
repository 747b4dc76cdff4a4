"""Moving a database between backends with export and insert keeps every float32 bit.

Also the smaller promises of the output side: ``--json`` forms, the progress
bar only on a terminal, ``python -m jadevec`` and the console script.
"""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest

import jadevec

from .conftest import command, environment


def awkward_vectors(rng, rows: int, dimension: int) -> np.ndarray:
    """Random float32 rows plus the values a text round trip gets wrong most easily."""
    vectors = rng.standard_normal((rows, dimension)).astype(np.float32)
    info = np.finfo(np.float32)
    special = np.array([1.5e18, -3e18, info.tiny, info.smallest_subnormal, -0.0,
                        np.float32(0.1), np.float32(1) / np.float32(3), np.nextafter(
                            np.float32(1), np.float32(2))], dtype=np.float32)
    vectors[0, :len(special)] = special
    vectors[1] = 0.0  # allowed under l2
    return vectors


@pytest.mark.parametrize("target,fmt", [("mmap", "jsonl"), ("lmdb", "npy")])
def test_export_then_insert_into_another_backend_is_bit_exact(jv, jsonl, tmp_path, rng,
                                                              read_vectors, target, fmt):
    if target not in jadevec.available_backends():
        pytest.skip(f"the {target} backend is not installed")
    vectors = awkward_vectors(rng, 3000, 24)
    ids = [f"id-{i}" for i in range(len(vectors))]
    metadatas = [{"n": i, "tag": "é"} if i % 3 else None for i in range(len(vectors))]
    source = jsonl(tmp_path / "in.jsonl", ids, vectors, metadatas)
    assert jv("create", "--database", "src", "--dimension", "24", "--metric", "l2").returncode == 0
    assert jv("insert", "--database", "src", "--file", source).returncode == 0

    out = tmp_path / f"out.{fmt}"
    done = jv("export", "--database", "src", "--out", out, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["exported"] == len(vectors)
    other = tmp_path / "other"
    assert jv("create", "--database", "dst", "--dimension", "24", "--metric", "l2",
              backend=target, data_dir=other).returncode == 0
    extra = ["--ids", tmp_path / "out.ids"] if fmt == "npy" else []
    done = jv("batch-insert", "--database", "dst", "--file", out, "--batch-size", "700", *extra,
              backend=target, data_dir=other)
    assert done.returncode == 0, done.stderr

    moved = read_vectors(other, "dst", backend=target)
    assert sorted(moved) == sorted(ids)
    for index, vector_id in enumerate(ids):
        assert moved[vector_id].tobytes() == vectors[index].tobytes(), vector_id
    with jadevec.open(other, backend=target, read_only=True) as store:
        db = store.get_database("dst")
        for index in (1, 2, 3, 2999):
            expected = metadatas[index] if fmt == "jsonl" else None
            assert db.get_metadata(ids[index]) == expected


def test_json_output_of_every_command(here, tmp_path):
    jv = here  # the output is the same in-process; start-ups would only cost time
    rows = tmp_path / "r.jsonl"
    rows.write_text('{"id": "a", "values": [1, 0], "metadata": {"k": 1}}\n'
                    '{"id": "b", "values": [0, 1]}\n')
    assert json.loads(jv("create", "--database", "d", "--dimension", "2", "--json").stdout) == {
        "database": "d", "dimension": 2, "metric": "cosine"}
    assert json.loads(jv("insert", "--database", "d", "--file", rows, "--json").stdout) == {
        "database": "d", "file": str(rows), "stored": 2, "skipped": 0, "batches": 1}
    assert json.loads(jv("list", "--json").stdout) == [
        {"database": "d", "dimension": 2, "metric": "cosine", "count": 2}]
    info = json.loads(jv("info", "--database", "d", "--json").stdout)
    assert info["count"] == 2 and info["backend"] == "hybrid" and info["store_bytes_on_disk"] > 0
    assert info["simd"] in {"scalar", "avx2", "avx512"} or info["simd"]
    assert json.loads(jv("query", "--database", "d", "--vector", "[1, 0.1]", "-k", "5",
                         "--json").stdout)[0]["id"] == "a"
    assert json.loads(jv("count", "--database", "d", "--json").stdout) == {"database": "d",
                                                                           "count": 2}
    assert jv("delete", "--database", "d", "--id", "b").returncode == 0
    assert jv("count", "--database", "d").stdout == "1\n"
    assert jv("compact", "--database", "d").returncode == 0
    assert jv("drop", "--database", "d").stdout == "dropped database 'd'\n"
    assert jv("list").stdout == ""


def test_progress_bar_on_a_terminal_only(store_dir, tmp_path):
    pytest.importorskip("tqdm")
    np.save(tmp_path / "v.npy", np.ones((5000, 4), dtype=np.float32))
    subprocess.run(command(store_dir, "create", "--database", "d", "--dimension", "4"),
                   check=True, capture_output=True, env=environment())
    leader, follower = pty.openpty()
    seen = bytearray()

    def drain() -> None:
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the terminal closed
                return
            if not data:
                return
            seen.extend(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        done = subprocess.run(command(store_dir, "batch-insert", "--database", "d", "--file",
                                      tmp_path / "v.npy", "--batch-size", "100"),
                              stdout=subprocess.PIPE, stderr=follower, env=environment(),
                              timeout=120)
    finally:
        os.close(follower)
        reader.join(timeout=10)
        os.close(leader)
    assert done.returncode == 0
    assert b"rows/s" in seen or b"storing into d" in seen, seen


def test_python_dash_m_and_the_console_script(jv, store_dir):
    assert jv("--version").stdout == f"jadevec {jadevec.__version__}\n"
    script = shutil.which("jadevec", path=os.path.dirname(sys.executable))
    if script is None:
        pytest.skip("the console script is not installed next to this interpreter")
    done = subprocess.run([script, "--data-dir", str(store_dir), "list"], capture_output=True,
                          text=True, env=environment(), timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_without_tqdm_there_is_no_bar_and_no_error(monkeypatch, capsys):
    from jadevec.cli._progress import progress

    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm now fails
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    with progress(10, "storing") as bar:
        bar.update(10)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("backend", ["hybrid", "mmap"])
def test_backup_copies_every_database_and_verifies(jv, jsonl, tmp_path, rng, read_vectors,
                                                   backend):
    vectors = rng.standard_normal((500, 8)).astype(np.float32)
    ids = [f"v{i}" for i in range(len(vectors))]
    source = jsonl(tmp_path / "in.jsonl", ids, vectors, [{"i": i} for i in range(len(ids))])
    for name in ("a", "b"):
        assert jv("create", "--database", name, "--dimension", "8",
                  backend=backend).returncode == 0
        assert jv("insert", "--database", name, "--file", source,
                  backend=backend).returncode == 0
    dest = tmp_path / "copy"
    done = jv("backup", dest, "--json", backend=backend)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"backup": str(dest), "databases": 2}
    done = jv("verify", backend=backend, data_dir=dest)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("a", "b"):
        copied = read_vectors(dest, name, backend=backend)
        assert {k: v.tobytes() for k, v in copied.items()} == \
            {i: v.tobytes() for i, v in zip(ids, vectors, strict=True)}

    again = jv("backup", dest, backend=backend)
    assert again.returncode == 1
    assert "must not exist" in again.stderr and "Traceback" not in again.stderr
    unsupported = jv("backup", tmp_path / "nowhere", backend="memory")
    assert unsupported.returncode == 1
    assert "does not support backup" in unsupported.stderr
