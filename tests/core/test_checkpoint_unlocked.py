"""A checkpoint syncs the data files without the writer lock; what it commits stays put.

``VectorFile.checkpoint`` holds the file set's writer lock only to build its
commit and to write the commit record. While its syncs run, writes go on:
they must finish long before the checkpoint, and nothing they do (new
vectors, replacements, deletions that free slots, growth that moves the
mappings, index rebuilds) may change what the pending commit names. A reader
process sees exactly a committed state after each checkpoint, and a commit
written while writes ran is exact after the writer is killed.
"""

import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np

from jadevec._core.vector_file import VectorFile


def test_writes_go_on_during_the_syncs(tmp_path):
    dim = 256
    vf = VectorFile.create(tmp_path / "set", dim, capacity=1024)
    rng = np.random.default_rng(5)
    n = 100_000  # about 100 MB of rows to sync
    vf.put_batch([f"v{i}" for i in range(n)], rng.standard_normal((n, dim)).astype(np.float32))
    took = []

    def checkpoint():
        started = time.perf_counter()
        vf.checkpoint()
        took.append(time.perf_counter() - started)

    thread = threading.Thread(target=checkpoint)
    puts = []
    one = np.ones(dim, np.float32)
    thread.start()
    while thread.is_alive():
        started = time.perf_counter()
        vf.put(f"during{len(puts)}", one)
        puts.append(time.perf_counter() - started)
    thread.join()
    vf.close()
    # Writes completed while the checkpoint ran, each far quicker than it.
    assert len(puts) > 1, (took, puts)
    assert max(puts[1:]) < took[0] / 2 or took[0] < 0.05, (took, max(puts))


READER = textwrap.dedent("""
    import sys
    import numpy as np
    from jadevec._core.vector_file import VectorFile
    vf = VectorFile.open(sys.argv[1], read_only=True)
    for line in sys.stdin:
        count, generation = map(int, line.split())
        ids = vf.ids()
        rows, found = vf.get_batch(ids)
        want = np.array([float(i.split("-")[1]) for i in ids], np.float32).reshape(-1, 1)
        bad = int(np.count_nonzero(~np.all(rows == want, axis=1))) if ids else 0
        print(len(ids), vf.generation, bad, flush=True)
""")


def test_commits_during_writes_are_exact(tmp_path):
    # A writer thread stores, replaces and deletes while the main thread
    # checkpoints; after each checkpoint a reader process must find a
    # committed state with every row intact (each row holds its value), and
    # after SIGKILL the store must reopen with every acknowledged vector.
    folder = tmp_path / "set"
    dim = 32
    vf = VectorFile.create(folder, dim, capacity=64)
    stop = threading.Event()
    acked: dict[str, float] = {}
    lock = threading.Lock()
    errors = []

    def writer():
        rng = np.random.default_rng(11)
        i = 0
        try:
            while not stop.is_set():
                key = f"k{int(rng.integers(3000))}-{i}"
                value = float(i)
                if i % 7 == 0 and acked:
                    with lock:
                        victim = next(iter(acked))
                        vf.delete(victim)
                        del acked[victim]
                elif i % 5 == 0:
                    keys = [f"b{i}_{j}-{i}" for j in range(50)]
                    vf.put_batch(keys, np.full((50, dim), value, np.float32))
                    with lock:
                        acked.update(dict.fromkeys(keys, value))
                else:
                    vf.put(key, np.full(dim, value, np.float32))
                    with lock:
                        acked[key] = value
                i += 1
                time.sleep(0.0002)  # a steady stream, not a flood the reader cannot check
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    reader = subprocess.Popen([sys.executable, "-c", READER, str(folder)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        generations = []
        for _ in range(25):
            time.sleep(0.02)
            vf.checkpoint()
            generations.append(vf.generation)
            reader.stdin.write(f"{len(acked)} {vf.generation}\n")
            reader.stdin.flush()
            count, generation, bad = map(int, reader.stdout.readline().split())
            assert bad == 0
            assert generation >= generations[-1]
    finally:
        stop.set()
        thread.join()
        reader.stdin.close()
        reader.wait(30)
    assert not errors, errors
    assert generations == sorted(generations) and len(set(generations)) > 10
    vf.checkpoint()
    final = dict(acked)
    # Killed after the last commit: a new writer finds exactly the acknowledged set.
    code = textwrap.dedent(f"""
        import os, sys
        from jadevec._core.vector_file import VectorFile
        vf = VectorFile.open(sys.argv[1])
        vf.put("after-commit-0", [1.0] * {dim})
        os.kill(os.getpid(), 9)
    """)
    vf.close()
    done = subprocess.run([sys.executable, "-c", code, str(folder)])
    assert done.returncode == -signal.SIGKILL
    vf = VectorFile.open(folder)
    try:
        assert vf.verify() == []
        ids = set(vf.ids())
        assert ids == set(final) | {"after-commit-0"}
        rows, found = vf.get_batch(sorted(final))
        for key, row in zip(sorted(final), rows, strict=True):
            assert np.all(row == final[key]), key
    finally:
        vf.close()
