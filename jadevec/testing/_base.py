"""Shared pieces of the conformance suite: constants, the numpy reference,
the hooks and fixtures every part of :class:`~jadevec.testing.BackendTests` uses."""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

import jadevec
from jadevec.backends.base import Backend

__all__ = ["SuiteBase", "DIM", "METRICS", "reference_scores", "reference_topk",
           "assert_same_ranking", "snapshot", "all_retrievable", "file_states"]

DIM = 8
METRICS = ("cosine", "dot", "l2")


def reference_scores(matrix: np.ndarray, query: np.ndarray, metric: str) -> np.ndarray:
    """Scores of every row against ``query`` in float64, as the API document defines them."""
    m = matrix.astype(np.float64)
    q = query.astype(np.float64)
    if metric == "dot":
        return m @ q
    if metric == "cosine":
        return (m @ q) / (np.linalg.norm(m, axis=1) * np.linalg.norm(q))
    return np.sqrt(((m - q) ** 2).sum(axis=1))


def reference_topk(ids: list[str], matrix: np.ndarray, query: np.ndarray, metric: str,
                   k: int) -> list[tuple[str, float]]:
    scores = reference_scores(matrix, query, metric)
    order = np.argsort(scores if metric == "l2" else -scores, kind="stable")[:k]
    return [(ids[i], float(scores[i])) for i in order]


def assert_same_ranking(got: list[tuple[str, float]], want: list[tuple[str, float]],
                        metric: str, all_scores: dict[str, float]) -> None:
    """Equal up to float32 rounding: same length, same scores rank by rank, each
    returned id really has the score it claims, best first."""
    assert len(got) == len(want), (got, want)
    for (gid, gscore), (_, wscore) in zip(got, want, strict=True):
        assert isinstance(gid, str) and isinstance(gscore, float)
        assert math.isclose(gscore, wscore, rel_tol=1e-4, abs_tol=1e-4), (got, want)
        assert math.isclose(gscore, all_scores[gid], rel_tol=1e-4, abs_tol=1e-4)
    scores = [s for _, s in got]
    ordered = sorted(scores) if metric == "l2" else sorted(scores, reverse=True)
    assert np.allclose(scores, ordered, rtol=1e-5, atol=1e-6)


class SuiteBase:
    """The hooks and fixtures of the suite (documented in :mod:`jadevec.testing.backend_tests`)."""

    #: The backend under test: an entry-point name or a Backend subclass.
    backend: ClassVar[str | type[Backend]] = "memory"
    #: Whether data must survive close() and a new process.
    persistent: ClassVar[bool] = False
    #: Whether the backend stores per-vector metadata.
    supports_metadata: ClassVar[bool] = True

    # ----------------------------------------------------------------- hooks

    def store_path(self, tmp_path: Path) -> Path | None:
        """The store's folder under ``tmp_path`` (``None`` for a non-persistent backend)."""
        return tmp_path / "store" if self.persistent else None

    def make_store(self, tmp_path: Path, **options: Any) -> jadevec.Store:
        """Open the store under test; called again with the same ``tmp_path`` to reopen."""
        return jadevec.open(self.store_path(tmp_path), backend=self.backend, **options)

    def reopen_source(self, tmp_path: Path) -> str:
        """A Python expression reopening the store in a new process (after ``import jadevec``)."""
        if not isinstance(self.backend, str):
            pytest.skip("reopening in a new process needs a registered backend name")
        return f"jadevec.open({str(self.store_path(tmp_path))!r}, backend={self.backend!r})"

    def raw_vector(self, store: jadevec.Store, database: str, vector_id: str) -> np.ndarray | None:
        """Read a vector behind the backend's read path; override to enable raw-state checks."""
        raise NotImplementedError

    # -------------------------------------------------------------- fixtures

    @pytest.fixture
    def store(self, tmp_path: Path):
        store = self.make_store(tmp_path)
        yield store
        store.close()

    @pytest.fixture
    def db(self, store: jadevec.Store):
        return store.create_database("vectors", DIM)

    @pytest.fixture
    def gen(self) -> np.random.Generator:
        return np.random.default_rng(20260521)

    def vectors(self, gen: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
        return gen.standard_normal((n, dim)).astype(np.float32)

    def meta(self, **values: Any) -> dict[str, Any] | None:
        """``values`` as metadata where supported, else ``None`` (so data tests run everywhere)."""
        return dict(values) if self.supports_metadata else None


def all_retrievable(db: jadevec.Database) -> bool:
    """Whether every live id of ``db`` retrieves a vector (a cheap consistency probe)."""
    return all(db.retrieve(i) is not None for i in db.list_vectors())


def snapshot(store: jadevec.Store, query: np.ndarray) -> dict[str, Any]:
    """Everything a store holds, as JSON-ready data (vectors as exact float32 bytes)."""
    out: dict[str, Any] = {}
    for name in store.list_databases():
        db = store.get_database(name)
        ids = sorted(db.list_vectors())
        vectors = db.batch_retrieve(ids)
        out[name] = {
            "info": [db.name, db.dimension, db.metric, len(db)],
            "vectors": {i: None if v is None else v.tobytes().hex()
                        for i, v in zip(ids, vectors, strict=True)},
            "metadata": {i: db.get_metadata(i) for i in ids},
            "search": db.search(query[: db.dimension] if db.dimension <= len(query)
                                else np.resize(query, db.dimension), k=5),
        }
    return out


def file_states(root: str | os.PathLike[str]) -> dict[str, tuple[int, int, str]]:
    """Every file under ``root`` by relative path: modification time (ns), size
    and a SHA-256 of its bytes. Two equal results mean no file was written,
    resized, touched, created or removed in between."""
    root = Path(root)
    states = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            st = path.stat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            states[str(path.relative_to(root))] = (st.st_mtime_ns, st.st_size, digest)
    return states
