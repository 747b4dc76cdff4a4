"""Shutdown: stores left open are closed at exit, signals close them when asked, a
forked child's exit leaves its parent's stores alone.

Every scenario runs in a child process; the parent reopens the store and
checks that it opens without recovery work (``recovery_report is None``) and
holds every vector the child acknowledged.
"""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import jadevec

BACKENDS = ["mmap", "hybrid"]

PRELUDE = textwrap.dedent("""
    import os, signal, sys, time
    import numpy as np
    import jadevec

    path, backend = sys.argv[1], sys.argv[2]
    store = jadevec.open(path, backend=backend, flush_interval=0.05)
    db = store.create_database("docs", 8, "l2")
    vectors = np.arange(80, dtype=np.float32).reshape(10, 8)
    db.batch_store([f"v{i}" for i in range(10)], vectors, [{"i": i} for i in range(10)])
""")


def _run(script: str, path, backend: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(script),
                           str(path), backend], capture_output=True, text=True, timeout=120,
                          **kwargs)


def _check_clean(path, backend: str) -> None:
    with jadevec.open(path, backend=backend) as store:
        assert store.recovery_report is None
        db = store.get_database("docs")
        vectors = np.arange(80, dtype=np.float32).reshape(10, 8)
        for i in range(10):
            assert np.array_equal(db.retrieve(f"v{i}"), vectors[i])
            assert db.get_metadata(f"v{i}") == {"i": i}
        assert store.verify().ok


@pytest.mark.parametrize("backend", BACKENDS)
def test_exit_without_close_reopens_clean(tmp_path, backend):
    done = _run("print('written')", tmp_path / "s", backend)
    assert done.returncode == 0, done.stderr
    _check_clean(tmp_path / "s", backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_unhandled_exception_still_closes(tmp_path, backend):
    done = _run("raise SystemExit(3)", tmp_path / "s", backend)
    assert done.returncode == 3, done.stderr
    _check_clean(tmp_path / "s", backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigterm_after_install_closes_then_dies_by_it(tmp_path, backend):
    script = """
        jadevec.install_signal_handlers()
        jadevec.install_signal_handlers()  # idempotent
        print("ready", flush=True)
        while True:
            db.store("busy", np.ones(8, np.float32))  # the main thread inside store calls
    """
    proc = subprocess.Popen([sys.executable, "-c", PRELUDE + textwrap.dedent(script),
                             str(tmp_path / "s"), backend],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGTERM, err
    _check_clean(tmp_path / "s", backend)


def test_sigint_after_install_closes_then_raises_keyboardinterrupt(tmp_path):
    script = """
        jadevec.install_signal_handlers()
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(30)
        except KeyboardInterrupt:
            print("interrupted", store.closed, flush=True)
        os._exit(0)  # no exit handlers: only the signal closed the store
    """
    done = _run(script, tmp_path / "s", "hybrid")
    assert done.stdout.split() == ["interrupted", "True"], done.stderr
    _check_clean(tmp_path / "s", "hybrid")


def test_without_install_sigterm_is_the_default(tmp_path):
    script = """
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
    """
    done = _run(script, tmp_path / "s", "mmap")
    assert done.returncode == -signal.SIGTERM, done.stderr
    with jadevec.open(tmp_path / "s", backend="mmap") as store:
        assert store.recovery_report is not None  # killed: nothing closed it


def test_ignored_signal_stays_ignored(tmp_path):
    script = """
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        jadevec.install_signal_handlers()
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)
        print(store.closed, flush=True)
    """
    done = _run(script, tmp_path / "s", "mmap")
    assert done.returncode == 0 and done.stdout.split() == ["False"], done.stderr


def test_install_refused_off_the_main_thread():
    import threading

    caught = []

    def run():
        try:
            jadevec.install_signal_handlers()
        except jadevec.UnsupportedError as exc:
            caught.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert caught and "main thread" in str(caught[0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_fork_child_exit_leaves_the_parents_store(tmp_path, backend):
    # The child exits normally (running its exit handlers) and by a signal
    # after install_signal_handlers; neither may write the parent's files,
    # which the parent keeps using.
    script = """
        jadevec.install_signal_handlers()
        for how in ("exit", "sigterm"):
            pid = os.fork()
            if pid == 0:
                if how == "sigterm":
                    os.kill(os.getpid(), signal.SIGTERM)
                    time.sleep(30)
                sys.exit(0)
            _, status = os.waitpid(pid, 0)
            print(how, status, flush=True)
            db.store(f"after-{how}", np.full(8, 2, np.float32))
        assert not store.closed
        store.close()
    """
    done = _run(script, tmp_path / "s", backend)
    assert done.returncode == 0, done.stderr
    lines = dict(line.split() for line in done.stdout.splitlines())
    assert os.WEXITSTATUS(int(lines["exit"])) == 0
    assert os.WTERMSIG(int(lines["sigterm"])) == signal.SIGTERM
    _check_clean(tmp_path / "s", backend)
    with jadevec.open(tmp_path / "s", backend=backend) as store:
        db = store.get_database("docs")
        assert db.retrieve("after-sigterm") is not None


def test_an_impatient_signal_and_a_python_previous_handler(tmp_path):
    # The previous SIGTERM handler is a Python function that returns: the
    # process lives on, so each step can be looked at. A close that fails is
    # logged and the other stores are closed all the same.
    script = """
        import logging, threading
        from jadevec import _shutdown
        calls = []
        signal.signal(signal.SIGTERM, lambda signum, frame: calls.append(signum))
        jadevec.install_signal_handlers()
        jadevec.install_signal_handlers()  # changes nothing

        def settle(done):
            deadline = time.monotonic() + 60
            while not done() and time.monotonic() < deadline:
                time.sleep(0.01)

        # 1. A second signal while the close is still running: the previous
        #    handler runs at once; the closer's own signal is then swallowed.
        release = threading.Event()
        real_close = _shutdown.close_open_stores
        _shutdown.close_open_stores = lambda: (release.wait(60), real_close())
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)
        print("impatient", calls, store.closed, flush=True)
        release.set()
        settle(lambda: store.closed and _shutdown._state == "idle")
        print("closed", calls, store.closed, flush=True)

        # 2. One signal: every store closed (one close fails, and is logged),
        #    then the previous handler runs.
        _shutdown.close_open_stores = real_close
        again = jadevec.open(path, backend=backend)
        broken = jadevec.open(path + "-other", backend=backend)
        real_backend_close = broken._backend.close

        def fails():
            real_backend_close()
            raise OSError(5, "Input/output error")
        broken._backend.close = fails
        os.kill(os.getpid(), signal.SIGTERM)
        settle(lambda: len(calls) == 2)
        print("patient", calls, again.closed, broken.closed, flush=True)

        # 3. A StoreClosedError reaching the top while a signal's close runs
        #    waits for the signal's action, then is reported as before.
        _shutdown._closing.set()
        _shutdown._released.set()
        sys.excepthook(jadevec.StoreClosedError, jadevec.StoreClosedError("late call"), None)
    """
    done = _run(script, tmp_path / "s", "hybrid")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "impatient [15] False", "closed [15] True", "patient [15, 15] True True"]
    assert "closing <jadevec.Store" in done.stderr and "failed" in done.stderr
    assert "StoreClosedError: late call" in done.stderr
    _check_clean(tmp_path / "s", "hybrid")


def test_the_default_action_is_taken_by_restoring_it_and_signalling_again(monkeypatch):
    from jadevec import _shutdown

    sent = []
    previous = signal.getsignal(signal.SIGINT)
    monkeypatch.setattr(_shutdown, "_state", _shutdown._CLOSING)
    monkeypatch.setattr(_shutdown, "_previous", {})
    monkeypatch.setattr(os, "kill", lambda pid, signum: sent.append((pid, signum)))
    _shutdown._closed.set()
    try:
        _shutdown._handler(signal.SIGINT, None)  # the closer's signal, the close done
        assert signal.getsignal(signal.SIGINT) == signal.SIG_DFL
    finally:
        signal.signal(signal.SIGINT, previous)
        _shutdown._closed.clear()
    assert sent == [(os.getpid(), signal.SIGINT)]
    assert _shutdown._state == _shutdown._IDLE


def test_a_dropped_store_whose_close_fails_is_logged(tmp_path, caplog):
    import gc

    store = jadevec.open(tmp_path / "s")
    backend = store._backend
    real_close = backend.close

    def fails():
        real_close()
        raise OSError(5, "Input/output error")
    backend.close = fails
    del store
    gc.collect()
    assert "closing a store that was not closed failed" in caplog.text
    with jadevec.open(tmp_path / "s") as store:  # the lock went with the close
        assert store.list_databases() == []


@pytest.mark.parametrize("path", ["", type("BytesPath", (), {"__fspath__": lambda self: b"x"})()])
def test_an_empty_or_bytes_path_is_refused(tmp_path, path):
    with pytest.raises(jadevec.InvalidInputError, match="non-empty str or path-like"):
        jadevec.open(path)
