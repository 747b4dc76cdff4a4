"""Races a direct caller of ``_core`` can set up, each run in a subprocess (a crash
must fail the test, not the test run).

* A list of ids changed by another thread while ``put_batch`` or
  ``get_batch`` runs: the core borrows each id's UTF-8 bytes for a loop that
  runs without the GIL, so it must hold its own copy of the list.
* Buffers exported from a ``MappedFile`` while another thread grows it past
  its reservation (a new mapping): every buffer must describe only bytes of
  the mapping it keeps alive (size and mapping are read together).
"""

import subprocess
import sys
import textwrap


def run(script):
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    return done.stdout


def test_ids_changed_by_another_thread_during_a_batch(tmp_path):
    out = run(f"""
        import threading
        import numpy as np
        from jadevec._core.vector_file import VectorFile

        vf = VectorFile.create({str(tmp_path / "db")!r}, 4)
        n = 200_000
        data = np.ones((n, 4), np.float32)
        stop = threading.Event()
        ids = [f"k{{i}}-{{'x' * 40}}" for i in range(n)]

        def churn():
            while not stop.is_set():
                ids[:] = [f"other{{i}}" for i in range(n)]  # frees the old strings
                ids[:] = [f"k{{i}}-{{'x' * 40}}" for i in range(n)]

        t = threading.Thread(target=churn)
        t.start()
        try:
            for _ in range(10):
                vf.put_batch(ids, data)
                vf.get_batch(ids)
        finally:
            stop.set()
            t.join()
        # Every id stored is one of the two spellings, whole.
        assert all(i.startswith(("k", "other")) for i in vf.ids())
        assert vf.verify() == []
        print("ok")
    """)
    assert out.strip() == "ok"


def test_buffers_exported_while_the_file_grows_past_its_reservation(tmp_path):
    out = run(f"""
        import threading
        from jadevec._core.mapped_file import MappedFile

        f = MappedFile({str(tmp_path / "f")!r}, create=True, size=4096, reserve=8192)
        stop = threading.Event()
        errors = []

        def export():
            while not stop.is_set():
                view = memoryview(f)
                if len(view):
                    view[len(view) - 1]  # touches the last byte it claims to have
                view.release()

        threads = [threading.Thread(target=export) for _ in range(3)]
        for t in threads:
            t.start()
        size = 4096
        for _ in range(200):
            size *= 2 if size < (1 << 24) else 1
            size += 4096
            f.grow(size)  # past the reservation: a new mapping, the old one retired
        stop.set()
        for t in threads:
            t.join()
        f.close()
        print("ok")
    """)
    assert out.strip() == "ok"
