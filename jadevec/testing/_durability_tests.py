"""Conformance tests (part of ``BackendTests``): thread safety against a model, and
restart persistence checked in a new process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import jadevec
from jadevec.errors import (
    VectorNotFoundError,
)
from jadevec.testing._base import (
    DIM,
    SuiteBase,
    snapshot,
)

__all__ = ["DurabilityTests"]


class DurabilityTests(SuiteBase):
    """Thread safety against a model, and restart persistence in a new process."""

    # ----------------------------------------------------------------- threads

    def test_threads_against_a_model(self, store):
        db = store.create_database("threads", DIM, metric="l2")
        models: list[dict[str, np.ndarray]] = [{} for _ in range(6)]
        errors: list[BaseException] = []
        start = threading.Barrier(len(models) + 1)

        def writer(t: int) -> None:
            gen = np.random.default_rng(t)
            model = models[t]
            try:
                start.wait()
                for step in range(300):
                    key = f"t{t}-{int(gen.integers(40))}"
                    action = int(gen.integers(6))
                    v = gen.standard_normal(DIM).astype(np.float32)
                    if action <= 1:
                        db.store(key, v)
                        model[key] = v
                    elif action == 2:
                        if key in model:
                            db.update(key, v)
                            model[key] = v
                        else:
                            with pytest.raises(VectorNotFoundError):
                                db.update(key, v)
                    elif action == 3:
                        assert db.delete(key) is (model.pop(key, None) is not None)
                    elif action == 4:
                        got = db.retrieve(key)
                        want = model.get(key)
                        assert got is None if want is None else np.array_equal(got, want)
                    else:
                        keys = [f"t{t}-b{step}-{j}" for j in range(3)]
                        vs = gen.standard_normal((3, DIM)).astype(np.float32)
                        db.batch_store(keys, vs)
                        model.update(zip(keys, vs, strict=True))
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        def reader() -> None:
            gen = np.random.default_rng(99)
            try:
                start.wait()
                for _ in range(100):
                    hits = db.search(gen.standard_normal(DIM).astype(np.float32), k=5)
                    assert len(hits) <= 5
                    len(db)
                    db.list_vectors()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(t,)) for t in range(len(models))]
        threads.append(threading.Thread(target=reader))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors[0]
        expected = {k: v for model in models for k, v in model.items()}
        assert sorted(db.list_vectors()) == sorted(expected) and len(db) == len(expected)
        for key, v in expected.items():
            assert np.array_equal(db.retrieve(key), v)
        assert store.verify().ok

    def test_threads_creating_databases(self, store):
        errors: list[BaseException] = []

        def work(t: int) -> None:
            try:
                for i in range(10):
                    db = store.create_database(f"t{t}-{i}", 2, metric="l2")
                    db.store("x", [float(t), float(i)])
                    if i % 2:
                        store.delete_database(f"T{t}-{i}")
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors[0]
        names = store.list_databases()
        assert sorted(names) == sorted(f"t{t}-{i}" for t in range(4) for i in range(0, 10, 2))
        assert store.get_database("t3-4").retrieve("x").tolist() == [3.0, 4.0]

    # ------------------------------------------------------- restart persistence

    def _populate(self, store: jadevec.Store, gen: np.random.Generator) -> None:
        docs = store.create_database("Docs", DIM)
        ids = [f"doc-{i}" for i in range(200)] + ["ünï\x00code", "é" * 512]
        vs = self.vectors(gen, len(ids))
        docs.batch_store(ids, vs, metadatas=[self.meta(i=i, tag="t") for i in range(len(ids))])
        for i in range(0, 200, 7):
            docs.delete(f"doc-{i}")
        docs.update("doc-1", self.vectors(gen, 1)[0], metadata=self.meta(updated=True))
        docs.store("doc-2", self.vectors(gen, 1)[0])  # clears its metadata
        l2 = store.create_database("points.L2", 3, metric="l2")
        l2.batch_store(["p", "q"], [[0, 0, 0], [1, 2, 3]])
        store.create_database("empty", 5, metric="dot")
        store.create_database("dropped", 2).store("x", [1.0, 1.0])
        store.delete_database("dropped")

    def test_restart_in_new_process(self, tmp_path, gen):
        if not self.persistent:
            pytest.skip("backend is not persistent")
        query = self.vectors(gen, 1)[0]
        store = self.make_store(tmp_path)
        self._populate(store, gen)
        expected = snapshot(store, query)
        store.close()
        got = self._snapshot_in_new_process(tmp_path, query)
        assert got.keys() == expected.keys()
        for name, want in expected.items():
            have = got[name]
            assert have["info"] == want["info"], name
            assert have["vectors"] == want["vectors"], name
            assert have["metadata"] == want["metadata"], name
            assert [i for i, _ in have["search"]] == [i for i, _ in want["search"]], name
            assert np.allclose([s for _, s in have["search"]], [s for _, s in want["search"]],
                               rtol=1e-5, atol=1e-6)

    def test_reopen_and_keep_writing(self, tmp_path, gen):
        if not self.persistent:
            pytest.skip("backend is not persistent")
        vs = self.vectors(gen, 3)
        with self.make_store(tmp_path) as store:
            store.create_database("a", DIM).batch_store(["x", "y"], vs[:2])
        with self.make_store(tmp_path) as store:
            db = store.get_database("A")
            db.delete("x")
            db.store("z", vs[2])
            store.sync()
        with self.make_store(tmp_path) as store:
            db = store.get_database("a")
            assert sorted(db.list_vectors()) == ["y", "z"]
            assert np.array_equal(db.retrieve("z"), vs[2])
            assert store.verify().ok and store.recovery_report is None

    def _snapshot_in_new_process(self, tmp_path: Path, query: np.ndarray) -> dict[str, Any]:
        script = (
            "import json, sys\n"
            "import numpy as np\n"
            "import jadevec\n"
            "from jadevec.testing._base import snapshot\n"
            f"store = {self.reopen_source(tmp_path)}\n"
            "query = np.array(json.loads(sys.argv[1]), dtype=np.float32)\n"
            "print(json.dumps(snapshot(store, query)))\n"
            "store.close()\n"
        )
        # The child imports the very jadevec (and plugin) this process uses.
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        done = subprocess.run(
            [sys.executable, "-c", script, json.dumps(query.tolist())],
            capture_output=True, text=True, env=env, timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)
