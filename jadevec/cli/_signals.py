"""Stopping long work cleanly on Ctrl-C (SIGINT) or SIGTERM.

While :class:`Interrupts` is active, both signals only set a flag; the work
loop calls :meth:`Interrupts.check` between batches, which raises
:class:`Interrupted`. So a signal never lands in the middle of a batch being
stored: the batch in flight finishes, the caller closes the store in a
``finally`` and reports how many rows were stored. A second signal of the
same kind while the first is pending takes the default action at once (the
user insisted).

The exit status follows the shell's convention, 128 plus the signal number:
130 for SIGINT, 143 for SIGTERM.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

__all__ = ["Interrupted", "Interrupts"]


class Interrupted(BaseException):
    """Raised at a safe point after SIGINT or SIGTERM; ``exit_code`` is 128 + the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.exit_code = 128 + signum
        self.name = signal.Signals(signum).name


class Interrupts:
    """A context manager that defers SIGINT and SIGTERM to :meth:`check`."""

    _SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.pending: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.pending == signum:  # asked twice: stop now, the default way
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)
            return
        self.pending = signum

    def check(self) -> None:
        """Raise :class:`Interrupted` if a signal arrived since the work began."""
        if self.pending is not None:
            raise Interrupted(self.pending)

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            for signum in self._SIGNALS:
                # A signal ignored by whoever started us (a shell's background job
                # ignores SIGINT, nohup SIGHUP) stays ignored.
                if signal.getsignal(signum) is not signal.SIG_IGN:
                    self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
