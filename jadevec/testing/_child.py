"""Run a function in a forked child process and say how the child ended.

The damage and crash tests of every backend (built-in or plugin) run code
that may crash the process running it, hang it or leak an error: they run
that code in a forked child, so that the test process survives to report it.
"""

from __future__ import annotations

import json
import os
import select
import signal
import time
from collections.abc import Callable
from typing import Any, Literal

__all__ = ["ChildOutcome", "ForkedChild", "run_in_child"]

#: How a child ended, and what goes with it:
#:
#: * ``("ok", result)``: ``body()`` returned; ``result`` is its value passed
#:   through JSON (a value JSON cannot hold arrives as its ``repr``);
#: * ``("died", detail)``: ``body()`` raised (``detail`` is
#:   ``"TypeName: message"``), or the child exited before reporting, say with
#:   ``os._exit`` (``detail`` names the exit status);
#: * ``("signal", name)``: a signal killed it (``"SIGSEGV"``, ``"SIGBUS"``...);
#: * ``("hang", None)``: it was still running at the timeout and was killed.
ChildOutcome = tuple[Literal["ok", "died", "signal", "hang"], Any]


class ForkedChild:
    """``body()`` running in a forked child process, started by the constructor.

    The child ends with ``os._exit`` (no ``atexit``, no finaliser), after
    writing its result or error to a pipe; what ``body`` returned stays
    referenced until then, so a store it returns ends as after ``kill -9``. Call
    :meth:`outcome` to wait for it or :meth:`kill` to end it, exactly once.
    """

    def __init__(self, body: Callable[[], Any]) -> None:
        read, write = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - the child
            os.close(read)
            code = 0
            result = None  # referenced until os._exit: a returned store is never closed
            try:
                result = body()
                text = json.dumps({"ok": result}, default=repr)
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                text = json.dumps({"error": f"{type(exc).__name__}: {exc}"})
                code = 1
            with os.fdopen(write, "w") as out:
                out.write(text)
            os._exit(code)
        os.close(write)
        self._read = read

    def outcome(self, timeout: float) -> ChildOutcome:
        """Wait up to ``timeout`` seconds for the child to end; how it ended
        (see :data:`ChildOutcome`). A child still running then is killed."""
        chunks = []
        deadline = time.monotonic() + timeout
        with os.fdopen(self._read, "rb") as got:
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([got], [], [], left)[0]:
                    os.kill(self.pid, signal.SIGKILL)
                    os.waitpid(self.pid, 0)
                    return "hang", None
                chunk = os.read(got.fileno(), 1 << 16)
                if not chunk:  # the child closed the pipe: it has ended
                    break
                chunks.append(chunk)
        _, status = os.waitpid(self.pid, 0)
        if os.WIFSIGNALED(status):
            return "signal", signal.Signals(os.WTERMSIG(status)).name
        text = b"".join(chunks).decode()
        if not text:
            return "died", f"exit status {os.waitstatus_to_exitcode(status)}, no report"
        result = json.loads(text)
        return ("ok", result["ok"]) if "ok" in result else ("died", result["error"])

    def kill(self) -> bool:
        """End the child now with ``SIGKILL`` (as a crash would), and reap it.

        Return whether the signal ended it: False if it had already ended by
        itself (returned, raised or crashed)."""
        os.close(self._read)
        os.kill(self.pid, signal.SIGKILL)  # an ended child stays a zombie until reaped
        _, status = os.waitpid(self.pid, 0)
        return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def run_in_child(body: Callable[[], Any], timeout: float) -> ChildOutcome:
    """Run ``body()`` in a forked child and wait up to ``timeout`` seconds.

    Returns how the child ended (see :data:`ChildOutcome`): a crash, a hang or
    an error in ``body`` is reported, never felt by the calling process::

        status, result = run_in_child(lambda: open_and_read(path), 60)
        assert status == "ok", (status, result)
    """
    return ForkedChild(body).outcome(timeout)
