"""Named points where a test can make the process die, as a crash would.

Storage code calls :func:`crash_point` at the steps between which a crash
leaves a distinct state on disk (inside a file set's creation, between a
catalog change and the files it describes, ...). It does nothing unless the
environment variable ``JADEVEC_CRASH_AT`` names that point, in which case
the process ends at once with ``os._exit(137)``: no ``finally`` blocks, no
``atexit``, no buffers flushed, like ``kill -9``. The crash tests run a child
process with the variable set and check what the parent then opens.

``JADEVEC_CRASH_AT`` is read at each call (these points sit on lifecycle
paths, never on a per-vector path), so a test may set it in a child process
after import.
"""

from __future__ import annotations

import os

__all__ = ["crash_point"]


def crash_point(name: str) -> None:
    """Die here (exit status 137) if ``JADEVEC_CRASH_AT`` equals ``name``."""
    if os.environ.get("JADEVEC_CRASH_AT") == name:
        os._exit(137)
