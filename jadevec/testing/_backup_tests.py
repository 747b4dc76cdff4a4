"""Conformance tests (part of ``BackendTests``): ``Store.backup`` of a persistent store.

A backend that keeps nothing on disk (``persistent = False``) is skipped; one
that is persistent must support backups. The copy is checked by opening it
as a store of the same backend: ``verify()`` is ok, it needs no recovery,
and every database holds, bit-exact, every vector acknowledged before
``backup()`` began, while a writer thread kept writing during the copy. A
full disk while copying is ``StorageFullError`` naming a path, and leaves
nothing at or beside the destination.
"""

from __future__ import annotations

import resource
import signal
import threading
from pathlib import Path

import numpy as np
import pytest

import jadevec
from jadevec.errors import InvalidInputError, StorageFullError, UnsupportedError
from jadevec.testing._base import DIM, SuiteBase
from jadevec.testing._lifecycle_tests import in_child

__all__ = ["BackupTests"]


class BackupTests(SuiteBase):
    """``Store.backup``: a consistent copy while writers go on; the destination is new."""

    def _open_copy(self, dest: Path) -> jadevec.Store:
        return jadevec.open(dest, backend=self.backend)

    def test_backup_unsupported_without_persistence(self, tmp_path):
        if self.persistent:
            pytest.skip("a persistent backend makes backups")
        store = self.make_store(tmp_path)
        try:
            with pytest.raises(UnsupportedError):
                store.backup(tmp_path / "copy")
            assert not (tmp_path / "copy").exists()
        finally:
            store.close()

    def test_backup_while_a_writer_goes_on(self, tmp_path, gen):
        if not self.persistent:
            pytest.skip("a backend that keeps nothing on disk has nothing to back up")
        store = self.make_store(tmp_path / "src", flush_interval=0.05)
        try:
            acked: dict[str, dict[str, np.ndarray]] = {}
            metas: dict[str, dict[str, object]] = {}
            for d in range(3):
                name = f"db{d}"
                db = store.create_database(name, DIM, metric="l2")
                vectors = self.vectors(gen, 300)
                ids = [f"{name}-{i}" for i in range(300)]
                db.batch_store(ids, vectors, [self.meta(i=i) for i in range(300)])
                acked[name] = dict(zip(ids, vectors, strict=True))
                metas[name] = {vid: self.meta(i=i) for i, vid in enumerate(ids)}
            store.get_database("db1").delete("db1-7")
            del acked["db1"]["db1-7"]
            stop = threading.Event()
            errors: list[BaseException] = []
            written = [0]

            def writer() -> None:
                wgen = np.random.default_rng(99)
                dbs = [store.get_database(f"db{d}") for d in range(3)]
                try:
                    while not stop.is_set():
                        i = written[0]
                        db = dbs[i % 3]
                        db.store(f"late-{i}", wgen.standard_normal(DIM).astype(np.float32),
                                 self.meta(late=i))
                        if i % 5 == 0:
                            db.batch_store([f"lateb-{i}-{j}" for j in range(20)],
                                           wgen.standard_normal((20, DIM)).astype(np.float32))
                        written[0] += 1
                except BaseException as exc:  # noqa: BLE001 - reported by the test
                    errors.append(exc)

            thread = threading.Thread(target=writer)
            thread.start()
            try:
                while written[0] < 20 and thread.is_alive():
                    stop.wait(0.001)
                store.backup(tmp_path / "copy")
            finally:
                stop.set()
                thread.join()
            assert not errors, errors
            assert written[0] >= 20
        finally:
            store.close()
        with self._open_copy(tmp_path / "copy") as copy:
            assert copy.recovery_report is None
            report = copy.verify()
            assert report.ok, report.problems
            assert copy.list_databases() == ["db0", "db1", "db2"]
            for name, vectors in acked.items():
                db = copy.get_database(name)
                assert db.dimension == DIM and db.metric == "l2"
                got = db.batch_retrieve(list(vectors))
                for (vid, want), have in zip(vectors.items(), got, strict=True):
                    assert have is not None and np.array_equal(have, want), vid
                    if self.supports_metadata:
                        assert db.get_metadata(vid) == metas[name][vid]
                assert db.retrieve("db1-7") is None
                # What the writer added is there whole or not at all, paired.
                for vid in db.list_vectors():
                    if vid.startswith("late-") and self.supports_metadata:
                        assert db.get_metadata(vid) == {"late": int(vid.split("-")[1])}
            # The copy is a store of its own: writable, and apart from the source.
            copy.get_database("db0").store("new", np.ones(DIM, np.float32))
        with self.make_store(tmp_path / "src") as source:
            assert source.get_database("db0").retrieve("new") is None

    def test_backup_refuses_an_existing_destination(self, tmp_path):
        if not self.persistent:
            pytest.skip("a backend that keeps nothing on disk has nothing to back up")
        with self.make_store(tmp_path / "src") as store:
            store.create_database("docs", DIM).store("a", np.ones(DIM, np.float32))
            (tmp_path / "taken").mkdir()
            with pytest.raises(InvalidInputError, match="must not exist"):
                store.backup(tmp_path / "taken")
            assert list((tmp_path / "taken").iterdir()) == []
            (tmp_path / "file").write_bytes(b"x")
            with pytest.raises(InvalidInputError):
                store.backup(tmp_path / "file")
            assert (tmp_path / "file").read_bytes() == b"x"
            # Nothing is left beside the destinations either.
            assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "src", "taken"]
            store.backup(tmp_path / "deep" / "copy")
            with self._open_copy(tmp_path / "deep" / "copy") as copy:
                assert np.array_equal(copy.get_database("docs").retrieve("a"),
                                      np.ones(DIM, np.float32))

    def test_a_full_disk_during_backup_is_storage_full_naming_a_path(self, tmp_path):
        if not self.persistent:
            pytest.skip("a backend that keeps nothing on disk has nothing to back up")
        src = tmp_path / "src"
        vectors = np.arange(4000 * DIM, dtype=np.float32).reshape(4000, DIM)
        with self.make_store(src, flush_interval=0) as store:
            store.create_database("docs", DIM).batch_store(
                [f"v{i}" for i in range(4000)], vectors)
        largest = max(p.stat().st_size for p in src.rglob("*") if p.is_file())
        dest = tmp_path / "copy"

        def attempt() -> list[object]:
            with self.make_store(src, flush_interval=0) as store:
                # Once the source is open, a file-size limit below its largest
                # file: the copy of that file cannot be written.
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                before = resource.getrlimit(resource.RLIMIT_FSIZE)
                resource.setrlimit(resource.RLIMIT_FSIZE, (largest // 2, before[1]))
                try:
                    store.backup(dest)
                except StorageFullError as exc:
                    return ["full", exc.filename, str(exc)]
                finally:
                    resource.setrlimit(resource.RLIMIT_FSIZE, before)
                return ["fitted"]

        outcome = in_child(attempt)
        assert outcome[0] == "full", outcome
        assert isinstance(outcome[1], str) and outcome[1].startswith(str(tmp_path)), outcome
        # Nothing is left at the destination or beside it; the source is whole.
        assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]
        with self.make_store(src, flush_interval=0) as store:
            assert store.verify().ok
            assert np.array_equal(store.get_database("docs").retrieve("v3999"), vectors[3999])
            store.backup(dest)
        with self._open_copy(dest) as copy:
            assert len(copy.get_database("docs")) == 4000
