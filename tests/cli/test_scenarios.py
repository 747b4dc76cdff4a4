"""The three end-to-end stories of the command line, each step a new process.

(a) insert from a JSON file, then a new process queries and finds the vectors;
(b) batch-insert 10,000 vectors with ``--batch-size 1000``, then ``count``
    prints 10000;
(c) create 10 databases, insert 1,000 vectors into each, then new processes
    verify every database and read every vector back.
"""

from __future__ import annotations

import json
import subprocess

import numpy as np

from .conftest import command, environment


def test_insert_from_a_json_file_then_a_new_process_queries(jv, tmp_path, rng):
    vectors = rng.standard_normal((50, 16)).astype(np.float32)
    rows = [{"id": f"doc-{i}", "values": vectors[i].astype(float).tolist(),
             "metadata": {"n": i}} for i in range(50)]
    source = tmp_path / "rows.json"
    source.write_text(json.dumps(rows, indent=1))
    assert jv("create", "--database", "docs", "--dimension", "16").returncode == 0
    done = jv("insert", "--database", "docs", "--file", source)
    assert done.returncode == 0, done.stderr
    assert "stored 50 rows" in done.stdout and done.stderr == ""
    for i in (0, 17, 49):
        found = jv("query", "--database", "docs", "--vector",
                   json.dumps(vectors[i].astype(float).tolist()), "-k", "3", "--json")
        assert found.returncode == 0, found.stderr
        hits = json.loads(found.stdout)
        assert len(hits) == 3 and hits[0]["id"] == f"doc-{i}"
        assert abs(hits[0]["score"] - 1.0) < 1e-5
        assert hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"]
    got = json.loads(jv("get", "--database", "docs", "--id", "doc-17", "--json").stdout)
    assert got["metadata"] == {"n": 17}
    assert np.array(got["values"], dtype=np.float32).tobytes() == vectors[17].tobytes()


def test_batch_insert_10000_vectors_then_count_prints_10000(jv, jsonl, tmp_path, rng):
    vectors = rng.standard_normal((10_000, 8)).astype(np.float32)
    source = jsonl(tmp_path / "rows.jsonl", [f"v{i}" for i in range(10_000)], vectors)
    assert jv("create", "--database", "bulk", "--dimension", "8").returncode == 0
    done = jv("batch-insert", "--database", "bulk", "--file", source, "--batch-size", "1000")
    assert done.returncode == 0, done.stderr
    assert "stored 10000 rows into 'bulk' in 10 batches" in done.stdout
    assert done.stderr == ""  # no progress bar in a pipe
    counted = jv("count", "--database", "bulk")
    assert (counted.returncode, counted.stdout) == (0, "10000\n")


def test_ten_databases_of_1000_vectors_verified_by_new_processes(jv, store_dir, tmp_path,
                                                                 rng, read_vectors):
    expected = {}
    for n in range(10):
        name = f"db{n}"
        vectors = rng.standard_normal((1000, 12)).astype(np.float32)
        np.save(tmp_path / f"{name}.npy", vectors)
        expected[name] = vectors
        assert jv("create", "--database", name, "--dimension", "12", "--metric",
                  ("cosine", "dot", "l2")[n % 3]).returncode == 0
        done = jv("insert", "--database", name, "--file", tmp_path / f"{name}.npy")
        assert done.returncode == 0, done.stderr
    listed = jv("list")
    assert listed.stdout.split() == [f"db{n}" for n in range(10)]
    # One verifying process per database, all at once (readers run side by side).
    verifiers = {name: subprocess.Popen(command(store_dir, "verify", "--database", name, "--json"),
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, env=environment())
                 for name in expected}
    for process in verifiers.values():
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        report = json.loads(out)
        assert report == {"ok": True, "problems": [], "databases": 1, "vectors": 1000,
                          "recovered": []}
    # Every vector, read back by yet another process per database, bit for bit.
    exporters = [subprocess.Popen(command(store_dir, "export", "--database", name, "--out",
                                          tmp_path / f"{name}-out.npy"),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=environment())
                 for name in expected]
    for process in exporters:
        _out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    for name, vectors in expected.items():
        ids = (tmp_path / f"{name}-out.ids").read_text().split("\n")[:-1]
        exported = np.load(tmp_path / f"{name}-out.npy")
        order = np.array([int(i) for i in ids])
        assert sorted(order.tolist()) == list(range(1000))
        assert exported.tobytes() == vectors[order].tobytes()
    assert read_vectors(store_dir, "db3")["999"].tobytes() == expected["db3"][999].tobytes()
