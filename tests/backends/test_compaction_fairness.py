"""A thread that calls ``compact()`` back to back does not shut a database's writers out.

``compact()`` holds the database's write lock for the whole rewrite. A plain
lock is not fair: the compacting thread, taking it again a few microseconds
after releasing it, often won it back before the woken writer ran, so one
``store`` could wait through many compactions in a row. Now a compaction lets
a writer that queued behind the previous one go first.

Counts, not timings: each store notes how many compactions ended while it was
in flight. A store that queued at most overlaps the compaction it met and,
when it lost a race while queueing, the one after.
"""

import threading

import numpy as np
import pytest

import jadevec

#: Compactions to watch, and a generous bound on the whole run.
COMPACTIONS = 20
DEADLINE_S = 120


@pytest.mark.parametrize("backend", ["mmap", "hybrid"])
def test_a_writer_gets_in_between_back_to_back_compactions(tmp_path, backend):
    with jadevec.open(tmp_path / "store", backend=backend, flush_interval=0) as store:
        db = store.create_database("docs", 8, metric="l2")
        db.batch_store([f"v{i}" for i in range(20)], np.ones((20, 8), np.float32))
        ended = [0]  # compactions done
        overlaps: list[int] = []  # per store: compactions that ended while it ran
        stop = threading.Event()
        errors: list[BaseException] = []

        def compactor() -> None:
            try:
                while ended[0] < COMPACTIONS and not stop.is_set():
                    db.compact()
                    ended[0] += 1
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                errors.append(exc)
            finally:
                stop.set()

        def writer() -> None:
            vector = np.full(8, 2.0, np.float32)
            try:
                i = 0
                while not stop.is_set():
                    before = ended[0]
                    db.store(f"w{i % 50}", vector)
                    overlaps.append(ended[0] - before)
                    i += 1
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                errors.append(exc)

        threads = [threading.Thread(target=compactor), threading.Thread(target=writer)]
        for t in threads:
            t.start()
        threads[0].join(DEADLINE_S)
        stop.set()
        for t in threads:
            t.join(DEADLINE_S)
        assert not errors, errors
        assert ended[0] == COMPACTIONS, f"only {ended[0]} compactions in {DEADLINE_S} s"
        assert len(overlaps) >= COMPACTIONS - 1  # progress: about a store per compaction
        assert max(overlaps) <= 2, (
            f"a store waited through {max(overlaps)} compactions in a row "
            f"(overlaps of the slowest stores: {sorted(overlaps)[-5:]})")
        assert store.verify().ok
