"""Closing every open store at exit and on SIGTERM/SIGINT. Private; the public
name is :func:`jadevec.install_signal_handlers`.

At interpreter exit, stores still open are closed by their ``weakref.finalize``
(see :mod:`jadevec._api`): the registry of open stores holds them weakly, so
it keeps no store alive, and a forked child's inherited stores are skipped,
so a child's exit never writes the parent's files.

Signals are opt-in: importing jadevec installs nothing. After
:func:`install_signal_handlers`, a SIGTERM or SIGINT runs this sequence:

1. The Python-level handler (always in the main thread, between two
   bytecodes) only starts a closer thread and returns. It must not close
   anything itself: the main thread may be interrupted inside a store call,
   holding a pin or a table lock that ``close()`` waits for, and would wait
   for itself forever.
2. The closer thread closes every open store. ``close()`` waits for calls in
   flight (the interrupted main thread finishes its call meanwhile), refuses
   new ones, checkpoints and marks each store clean. Calls made meanwhile
   get ``StoreClosedError``; should one reach the top of the main thread
   uncaught, the exception hook waits for the signal's action rather than
   let the program end by that traceback just before the signal ends it.
3. The closer sends the same signal to the main thread again; the handler,
   seeing the close done, hands the signal to what was there before: the
   default action (the handler is restored and the signal re-raised, so the
   process dies by it, as it would have without jadevec) or a previous Python
   handler (for SIGINT normally ``KeyboardInterrupt``), which is called.

A second signal while the close is still running skips the wait and takes
the previous action at once. A signal that was ignored (``SIG_IGN``) when the
handlers were installed stays ignored.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

from jadevec import _api
from jadevec.errors import StoreClosedError, UnsupportedError

__all__ = ["install_signal_handlers", "close_open_stores"]

log = logging.getLogger("jadevec")

_SIGNALS = (signal.SIGTERM, signal.SIGINT)

_lock = threading.Lock()
# signal number -> the disposition found when our handler was installed
_previous: dict[int, Any] = {}
# idle -> closing (closer thread running) -> idle once the previous action ran;
# closing -> skipped when a second signal takes the previous action before the
# closer is done (its own signal, when it comes, is then swallowed).
_IDLE, _CLOSING, _SKIPPED = "idle", "closing", "skipped"
_state = _IDLE
_closed = threading.Event()
# Set from the start of a close on a signal until its previous action was taken.
_closing = threading.Event()
_released = threading.Event()
_hooked = False


def close_open_stores() -> None:
    """Close every store of this process that is still open (errors are logged)."""
    for store in list(_api._open_stores):
        try:
            store.close()
        except Exception:
            log.exception("closing %r failed", store)


def _close_then_signal(signum: int, main_ident: int) -> None:
    _released.clear()
    _closing.set()
    try:
        close_open_stores()
    finally:
        _closed.set()
        signal.pthread_kill(main_ident, signum)


def _handler(signum: int, frame: FrameType | None) -> None:
    global _state
    with _lock:
        start = _state == _IDLE
        if start:
            _state = _CLOSING
            _closed.clear()
    if start:
        # Started outside the lock: the closer's signal may run this handler
        # again, nested, before start() returns.
        threading.Thread(target=_close_then_signal, args=(signum, threading.get_ident()),
                         name="jadevec-close-on-signal", daemon=True).start()
        return
    with _lock:
        if _state == _SKIPPED and _closed.is_set():
            _state = _IDLE  # the closer's own signal after an impatient one
            return
        # The closer is done (this is its signal), or the user is impatient.
        _state = _IDLE if _closed.is_set() else _SKIPPED
    previous = _previous.get(signum, signal.SIG_DFL)
    if callable(previous):
        _closing.clear()
        _released.set()
        previous(signum, frame)
        return
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _excepthook(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
    if _closing.is_set() and issubclass(exc_type, StoreClosedError):
        # Woken by the signal's action: the end of the process, or the
        # previous handler (which sets _released); the timeout is a backstop.
        _released.wait(timeout=10)
    _previous_excepthook(exc_type, exc, tb)


_previous_excepthook = sys.excepthook


def install_signal_handlers() -> None:
    """Close every open store cleanly on SIGTERM and SIGINT, then act as before.

    The handlers close every store of the process (as :meth:`Store.close`
    does: calls in flight finish, a checkpoint is written, the store is
    marked clean), then hand the signal to what handled it before: the
    default action (the process dies by the signal) or the previous Python
    handler (for SIGINT, ``KeyboardInterrupt`` is raised). A signal that was
    ignored stays ignored. Importing jadevec installs nothing; call this once
    from the main thread of an application (a command line tool or a server,
    at start). Calling it again changes nothing.

    Raises
    ------
    UnsupportedError
        Called from a thread other than the main thread (Python runs signal
        handlers only there).
    """
    if threading.current_thread() is not threading.main_thread():
        raise UnsupportedError(
            "install_signal_handlers() must be called from the main thread, got "
            f"{threading.current_thread().name!r}")
    global _hooked, _previous_excepthook
    with _lock:
        if not _hooked:
            _previous_excepthook, sys.excepthook = sys.excepthook, _excepthook
            _hooked = True
        for signum in _SIGNALS:
            current: Any = signal.getsignal(signum)
            if current is _handler or current == signal.SIG_IGN:
                continue
            _previous[signum] = current if current is not None else signal.SIG_DFL
            signal.signal(signum, _handler)

