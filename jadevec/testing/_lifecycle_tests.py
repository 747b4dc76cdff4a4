"""Conformance tests (part of ``BackendTests``): the unhappy paths of a store's life.

A failed call leaves nothing behind, every error tells the truth, and a store
stays bound to its folder: a relative path survives ``os.chdir``, a create
that failed on a full disk can be retried, a forked child cannot touch its
parent's store, a full disk while writing metadata is ``StorageFullError``
and all-or-nothing, a create racing ``close()`` is ``StoreClosedError``, a
folder without write permission is a ``PermissionError`` naming it, and a
store dropped without ``close()`` is closed when collected.

Full disks are a file-size limit (``RLIMIT_FSIZE``) in a forked child, which
reports back through a pipe; the parent then checks the store it left.
"""

from __future__ import annotations

import gc
import os
import resource
import signal
import stat
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import jadevec
from jadevec.errors import StorageFullError, StoreClosedError
from jadevec.testing._base import DIM, SuiteBase
from jadevec.testing._child import run_in_child

__all__ = ["LifecycleTests", "in_child"]

#: Seconds a child may run before it counts as hung.
_CHILD_TIMEOUT = 300.0


def in_child(body: Callable[[], Any], limit: int | None = None) -> Any:
    """Run ``body()`` in a forked child (under a file-size limit of ``limit`` bytes)
    and return what it returned, or raise ``AssertionError`` with what it raised.

    The child ends with ``os._exit``, so what ``body`` returns (a store, say) is
    never closed: the child ends as after ``kill -9``."""

    def limited() -> Any:  # pragma: no cover - the child
        if limit is not None:
            # A write past the limit fails with EFBIG instead of killing the child.
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE,
                               (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
        return body()

    status, result = run_in_child(limited, _CHILD_TIMEOUT)
    assert status == "ok", f"the child {status}: {result}"
    return result


class LifecycleTests(SuiteBase):
    """A failed call leaves nothing behind; errors tell the truth; a store keeps its folder."""

    def _persistent_only(self) -> None:
        if not self.persistent:
            pytest.skip("backend is not persistent")

    # ------------------------------------------------------------ bound to a folder

    def test_a_relative_path_survives_chdir(self, tmp_path: Path) -> None:
        self._persistent_only()
        if not isinstance(self.backend, str):
            pytest.skip("opens by path and backend name")
        (tmp_path / "here").mkdir()
        (tmp_path / "elsewhere").mkdir()
        cwd = os.getcwd()
        os.chdir(tmp_path / "here")
        try:
            store = jadevec.open("store", backend=self.backend, flush_interval=0)
            os.chdir(tmp_path / "elsewhere")
            db = store.create_database("docs", DIM)
            db.store("a", np.ones(DIM), metadata=self.meta(a=1))
            store.close()
            assert not (tmp_path / "elsewhere" / "store").exists()
        finally:
            os.chdir(cwd)
        with jadevec.open(tmp_path / "here" / "store", backend=self.backend) as store:
            db = store.get_database("docs")
            assert db.retrieve("a").tolist() == [1.0] * DIM
            assert db.get_metadata("a") == self.meta(a=1)

    # --------------------------------------------------------- a failed call is undone

    def test_a_create_that_failed_on_a_full_disk_can_be_retried(self, tmp_path: Path) -> None:
        self._persistent_only()
        with self.make_store(tmp_path, flush_interval=0) as store:
            store.create_database("small", 2).store("a", [1.0, 2.0])

        def attempt() -> str:
            with self.make_store(tmp_path, flush_interval=0) as store:
                try:
                    db = store.create_database("big", 65536)
                    db.batch_store([f"v{i}" for i in range(64)], np.ones((64, 65536)))
                except StorageFullError as exc:
                    return f"StorageFullError: {exc}"
                return "fitted"

        outcome = in_child(attempt, limit=1 << 20)
        assert outcome.startswith("StorageFullError") or outcome == "fitted", outcome
        for read_only in (True, False):
            with self.make_store(tmp_path, flush_interval=0, read_only=read_only) as store:
                assert store.verify().ok
                names = store.list_databases()
                assert names in (["small"], ["big", "small"])
        with self.make_store(tmp_path, flush_interval=0) as store:
            if "big" not in store:
                store.create_database("big", 65536).store("x", np.ones(65536))
            else:
                store.get_database("big").store("x", np.ones(65536))
        with self.make_store(tmp_path, flush_interval=0, read_only=True) as store:
            assert sorted(store.list_databases()) == ["big", "small"]
            assert store.get_database("big").retrieve("x")[0] == 1.0
            assert store.verify().ok

    def test_a_full_disk_while_storing_metadata_is_storage_full_and_all_or_nothing(
            self, tmp_path: Path) -> None:
        self._persistent_only()
        if not self.supports_metadata:
            pytest.skip("backend stores no metadata")
        with self.make_store(tmp_path, flush_interval=0) as store:
            db = store.create_database("docs", DIM, metric="l2")
            db.store("kept", np.ones(DIM), metadata={"k": 1})
        text = "x" * 4000

        def fill() -> dict[str, Any]:
            stored = []
            with self.make_store(tmp_path, flush_interval=0) as store:
                db = store.get_database("docs")
                for i in range(2000):
                    ids = [f"b{i}-{j}" for j in range(20)]
                    try:
                        db.batch_store(ids, np.full((20, DIM), float(i)),
                                       metadatas=[{"t": text, "i": i}] * 20)
                    except StorageFullError as exc:
                        return {"stored": stored, "error": str(exc),
                                "filename": exc.filename}
                    stored.append(i)
            return {"stored": stored, "error": None}

        result = in_child(fill, limit=2 << 20)
        assert result["error"] is not None, "the limit was never reached"
        assert result["filename"], "a full disk must name the file"
        stored = set(result["stored"])
        with self.make_store(tmp_path, flush_interval=0) as store:
            report = store.verify()
            assert report.ok, report.problems
            db = store.get_database("docs")
            assert db.get_metadata("kept") == {"k": 1}
            for vid in db.list_vectors():
                if vid == "kept":
                    continue
                batch = int(vid[1:].split("-")[0])
                assert batch in stored  # the batch that failed stored nothing
                assert db.get_metadata(vid) == {"t": text, "i": batch}
            assert len(db) == 1 + 20 * len(stored)

    def test_create_racing_close_is_store_closed(self, tmp_path: Path) -> None:
        def create(store: jadevec.Store, go: threading.Barrier,
                   errors: list[BaseException]) -> None:
            go.wait()
            try:
                for i in range(20):
                    store.create_database(f"d{i}", 2)
            except StoreClosedError:
                pass
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        for attempt in range(20):
            store = self.make_store(tmp_path / str(attempt), flush_interval=0)
            errors: list[BaseException] = []
            go = threading.Barrier(2)
            t = threading.Thread(target=create, args=(store, go, errors))
            t.start()
            go.wait()
            store.close()
            t.join()
            assert not errors, errors
            if self.persistent:
                with self.make_store(tmp_path / str(attempt), flush_interval=0) as again:
                    assert again.verify().ok
                    assert again.recovery_report is None

    # ------------------------------------------------------------------- fork

    def test_a_forked_child_cannot_use_or_close_its_parents_store(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path, flush_interval=0)
        db = store.create_database("docs", DIM, metric="l2")
        db.batch_store([f"v{i}" for i in range(10)], np.arange(10.0 * DIM).reshape(10, DIM),
                       metadatas=[self.meta(i=i) for i in range(10)])

        def child() -> list[str]:
            refused = []
            for name, call in [("retrieve", lambda: db.retrieve("v1")),
                               ("store", lambda: db.store("child", np.ones(DIM))),
                               ("search", lambda: db.search(np.ones(DIM), k=1)),
                               ("list", store.list_databases),
                               ("create", lambda: store.create_database("c", 2)),
                               ("sync", store.sync)]:
                try:
                    call()
                except StoreClosedError as exc:
                    assert "fork" in str(exc), exc
                    refused.append(name)
            store.close()  # must not touch the parent's files
            return refused

        assert in_child(child) == ["retrieve", "store", "search", "list", "create", "sync"]
        db.store("parent", np.full(DIM, 7.0), metadata=self.meta(p=1))
        assert db.retrieve("v3").tolist() == list(np.arange(3.0 * DIM, 4.0 * DIM))
        store.close()
        if self.persistent:
            with self.make_store(tmp_path, flush_interval=0) as again:
                assert again.recovery_report is None and again.verify().ok
                db = again.get_database("docs")
                assert sorted(db.list_vectors()) == sorted(
                    [f"v{i}" for i in range(10)] + ["parent"])
                assert db.get_metadata("parent") == self.meta(p=1)

    # -------------------------------------------------------------- permissions

    def test_a_folder_without_write_permission_is_a_permission_error(self) -> None:
        self._persistent_only()
        base = Path(tempfile.mkdtemp())
        try:
            os.chmod(base, 0o755)
            store = self.make_store(base, flush_interval=0)
            store.create_database("docs", DIM).store("a", np.ones(DIM))
            store.close()
            path = self.store_path(base)
            modes = {p: p.stat().st_mode for p in [path, *path.rglob("*")]}
            for p in modes:
                p.chmod(0o555 if p.is_dir() else 0o444)

            def open_for_writing() -> str:
                if os.geteuid() == 0:  # root ignores permissions: be nobody
                    os.setgid(65534)
                    os.setuid(65534)
                try:
                    self.make_store(base, flush_interval=0).close()
                except PermissionError as exc:
                    return f"PermissionError {exc.filename}"
                except Exception as exc:  # noqa: BLE001 - the wrong error
                    return f"{type(exc).__name__}: {exc}"
                return "opened"

            outcome = in_child(open_for_writing)
            assert outcome.startswith("PermissionError"), outcome
            assert str(path) in outcome or str(base) in outcome
        finally:
            for p in [base, *base.rglob("*")]:
                try:
                    p.chmod(stat.S_IRWXU | (stat.S_IRGRP | stat.S_IXGRP if p.is_dir() else 0))
                except OSError:
                    pass
            import shutil

            shutil.rmtree(base, ignore_errors=True)

    # -------------------------------------------------------------- lifetime

    def test_a_dropped_store_is_closed_and_its_folder_reopens(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path)  # the default checkpoint interval: a thread runs
        store.create_database("docs", DIM).store("a", np.ones(DIM))
        del store
        gc.collect()
        if self.persistent:
            with self.make_store(tmp_path, flush_interval=0) as again:  # not locked by itself
                assert again.get_database("docs").retrieve("a").tolist() == [1.0] * DIM
                assert again.recovery_report is None  # it was closed cleanly
