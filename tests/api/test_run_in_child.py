"""``jadevec.testing.run_in_child``: the one forked-child runner of the damage and
crash tests (built-in and plugin) says how the child ended, whatever it did."""

import os
import signal
import time

import pytest

import jadevec
import jadevec.testing
from jadevec.testing import ForkedChild, run_in_child


def test_a_returned_value_comes_back_through_json():
    status, got = run_in_child(lambda: {"n": [1, 2], "in_child": os.getpid()}, 30)
    assert status == "ok" and got["n"] == [1, 2] and got["in_child"] != os.getpid()
    assert run_in_child(lambda: {1, 2}, 30) == ("ok", "{1, 2}")  # not JSON: its repr


def test_an_error_is_died_with_its_type_and_message():
    def body():
        raise KeyError("lost")

    assert run_in_child(body, 30) == ("died", "KeyError: 'lost'")


def test_an_exit_before_reporting_is_died_with_its_status():
    assert run_in_child(lambda: os._exit(7), 30) == ("died", "exit status 7, no report")


def test_a_signal_is_named():
    assert run_in_child(lambda: os.kill(os.getpid(), signal.SIGSEGV), 30) == ("signal", "SIGSEGV")


def test_a_hang_is_killed_at_the_timeout():
    started = time.monotonic()
    assert run_in_child(lambda: time.sleep(120), 0.5) == ("hang", None)
    assert time.monotonic() - started < 60  # killed, not waited for


def test_a_forked_child_can_be_killed_while_it_works(tmp_path):
    flag = tmp_path / "started"

    def body():
        flag.touch()
        time.sleep(120)

    child = ForkedChild(body)
    deadline = time.monotonic() + 30
    while not flag.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert flag.exists()
    child.kill()
    with pytest.raises(ChildProcessError):  # killed and reaped: no such child is left
        os.waitpid(child.pid, os.WNOHANG)


def test_the_runner_is_public():
    assert {"run_in_child", "ForkedChild", "ChildOutcome"} <= set(jadevec.testing.__all__)


def test_a_returned_store_is_never_closed(tmp_path):
    """What ``body`` returns stays referenced until the child exits: a store it
    returns ends as after ``kill -9``, which the next open reports."""

    def body():
        store = jadevec.open(tmp_path, backend="mmap", flush_interval=0)
        store.create_database("docs", 2).store("a", [1.0, 2.0])
        return store

    assert run_in_child(body, 60)[0] == "ok"
    with jadevec.open(tmp_path, backend="mmap") as store:
        assert store.recovery_report is not None
        assert store.get_database("docs").retrieve("a").tolist() == [1.0, 2.0]
