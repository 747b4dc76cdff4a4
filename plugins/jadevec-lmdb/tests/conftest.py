"""Helpers of the plugin's tests: a forked child whose crash, hang or error is reported."""

from __future__ import annotations

import json
import os
import select
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest


def run_in_child(body: Callable[[], Any], timeout: float) -> tuple[str, Any]:
    """Run ``body()`` in a forked child: ``("ok", its result)``, ``("signal", name)``,
    ``("hang", None)`` or ``("died", detail)``."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        code = 0
        try:
            text = json.dumps({"ok": body()})
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            text = json.dumps({"child_error": f"{type(exc).__name__}: {exc}"})
            code = 3
        with os.fdopen(write, "w") as out:
            out.write(text)
        os._exit(code)
    os.close(write)
    chunks = []
    deadline = time.monotonic() + timeout
    with os.fdopen(read) as got:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([got], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return "hang", None
            chunk = os.read(got.fileno(), 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return "signal", signal.Signals(os.WTERMSIG(status)).name
    text = b"".join(chunks).decode()
    result = json.loads(text) if text else {"child_error": f"no report, status {status}"}
    if "child_error" in result:
        return "died", result["child_error"]
    return "ok", result["ok"]


@pytest.fixture
def forked() -> Callable[[Callable[[], Any], float], tuple[str, Any]]:
    """:func:`run_in_child`: ``forked(body, timeout) -> (status, result)``."""
    return run_in_child
