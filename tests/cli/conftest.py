"""Fixtures of the command-line tests: every command runs as a real process.

``jv(*args)`` runs ``python -m jadevec --data-dir <tmp store> *args`` and
returns the finished process (``returncode``, ``stdout``, ``stderr`` as text);
``write_jsonl`` writes rows in the input format.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest


def command(data_dir: Path, *args: str, backend: str | None = None) -> list[str]:
    """The argv of one ``jadevec`` run on ``data_dir``."""
    line = [sys.executable, "-m", "jadevec", "--data-dir", str(data_dir)]
    if backend:
        line += ["--backend", backend]
    return line + [str(a) for a in args]


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("JADEVEC_DATA_DIR", None)
    return env


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def jv(store_dir: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str, backend: str | None = None, data_dir: Path | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(command(data_dir or store_dir, *args, backend=backend),
                              capture_output=True, text=True, timeout=timeout,
                              env=environment())
    return run


@pytest.fixture
def here(store_dir: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Like ``jv``, but runs ``jadevec.cli.main`` in this process (no interpreter start-up).

    For the many small error cases; ``jv`` covers the real process around them.
    """
    from jadevec.cli import main

    def run(*args: str, backend: str | None = None,
            data_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
        argv = command(data_dir or store_dir, *args, backend=backend)[3:]
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exit_:  # argparse: --help, usage errors
                code = exit_.code if isinstance(exit_.code, int) else 1
        return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())
    return run


def write_jsonl(path: Path, ids: list[str], vectors: np.ndarray,
                metadatas: list[dict | None] | None = None) -> Path:
    """Write rows as JSON lines (float32 values written exactly)."""
    with open(path, "w", encoding="utf-8") as handle:
        for index, vector_id in enumerate(ids):
            row: dict = {"id": vector_id, "values": vectors[index].astype(np.float64).tolist()}
            if metadatas is not None and metadatas[index] is not None:
                row["metadata"] = metadatas[index]
            handle.write(json.dumps(row) + "\n")
    return path


@pytest.fixture
def jsonl() -> Callable[..., Path]:
    return write_jsonl


def read_all(data_dir: Path, database: str, backend: str = "hybrid") -> dict[str, np.ndarray]:
    """Every vector of a database, read through the library in this process (read-only)."""
    import jadevec

    with jadevec.open(data_dir, backend=backend, read_only=True) as store:
        db = store.get_database(database)
        ids = db.list_vectors()
        return dict(zip(ids, db.batch_retrieve(ids), strict=True))


@pytest.fixture
def read_vectors() -> Callable[..., dict[str, np.ndarray]]:
    return read_all
