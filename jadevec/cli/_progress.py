"""A progress bar on stderr when it is a terminal, nothing otherwise.

tqdm is optional (the ``cli`` extra): without it, or when stderr is a pipe or
a file, :func:`progress` returns a bar that does nothing, so scripts and logs
stay clean.
"""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["progress"]


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass


def progress(total: int | None, description: str, unit: str = "rows",
             enabled: bool = True) -> Any:
    """A context manager with ``update(n)``: a tqdm bar on a terminal, else silent."""
    if not enabled or not sys.stderr.isatty():
        return _Silent()
    try:
        from tqdm import tqdm
    except ImportError:
        return _Silent()
    try:
        width = os.get_terminal_size(sys.stderr.fileno()).columns
    except OSError:
        width = 0
    # A terminal that reports no size (a bare pty) has 0 rows, and tqdm shows
    # no bar below the last row: give it a classic 80 x 24.
    sized = width > 0
    return tqdm(total=total, desc=description, unit=f" {unit}", unit_scale=True,
                file=sys.stderr, leave=False, dynamic_ncols=sized,
                ncols=None if sized else 80, nrows=None if sized else 24)
