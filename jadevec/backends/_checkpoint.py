"""The background checkpoint thread of a persistent store. Private.

Every ``flush_interval`` seconds a daemon thread calls the store's
checkpoint (for mmap and hybrid: make SQLite or the manifest durable, then
``MemoryMappedVectorStore.sync``, whose barriers run with the GIL released
in ``_core``). It bounds the window a power loss can take to about the
interval plus one checkpoint's duration; a killed process loses nothing in
any case, since every acknowledged write is already in the page cache.

The thread never runs on a caller's path. A failing checkpoint is logged and
retried at the next tick; the store itself turns a failed barrier into its
sticky failed state. ``stop()`` wakes the thread, waits for a checkpoint in
progress to finish, and returns; ``close()`` calls it before its own final
checkpoint so the two never overlap.

The thread holds its store only weakly (a ``WeakMethod``): a store that its
user dropped without ``close()`` can be collected (and is then closed by its
finaliser), and the thread ends at its next tick.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable

__all__ = ["Checkpointer"]

log = logging.getLogger("jadevec")


class Checkpointer:
    """Run ``checkpoint()`` every ``interval`` seconds in a daemon thread.

    Parameters
    ----------
    interval : float
        Seconds between the end of one checkpoint and the start of the next;
        ``0`` starts no thread.
    checkpoint : callable
        Called with no arguments; exceptions are logged, never raised. A
        bound method is held weakly: once its object is gone the thread stops.
    name : str
        Thread name, shown in debuggers and thread dumps.
    """

    def __init__(self, interval: float, checkpoint: Callable[[], None], name: str) -> None:
        self.interval = float(interval)
        # A bound method is held weakly (a dropped store must not be kept
        # alive by its own thread); a plain function as it is.
        self._checkpoint: Callable[[], Callable[[], None] | None] = (
            weakref.WeakMethod(checkpoint) if hasattr(checkpoint, "__self__")  # type: ignore[arg-type]
            else lambda: checkpoint)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Number of checkpoints run so far (for tests and reports).
        self.runs = 0
        if self.interval > 0:
            self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
            self._thread.start()

    @property
    def running(self) -> bool:
        """Whether the thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            checkpoint = self._checkpoint()
            if checkpoint is None:
                return  # the store was collected
            started = time.perf_counter()
            try:
                checkpoint()
            except Exception:
                log.exception("background checkpoint failed; retrying in %.1f s", self.interval)
                continue
            finally:
                del checkpoint
            self.runs += 1
            took = time.perf_counter() - started
            # The loss window is interval + checkpoint time: say so when the
            # checkpoint itself starts to dominate it.
            if took > self.interval / 2:
                log.warning("checkpoint took %.3f s (interval %.3f s)", took, self.interval)
            else:
                log.debug("checkpoint took %.3f s", took)

    def stop(self) -> None:
        """Stop the thread after any checkpoint in progress. Idempotent."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()
