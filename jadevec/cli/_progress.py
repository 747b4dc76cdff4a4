"""A progress bar on stderr when it is a terminal, nothing otherwise.

tqdm is optional (the ``cli`` extra): without it, or when stderr is a pipe or
a file, :func:`progress` returns a bar that does nothing, so scripts and logs
stay clean.
"""

from __future__ import annotations

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
    return tqdm(total=total, desc=description, unit=f" {unit}", unit_scale=True,
                file=sys.stderr, leave=False, dynamic_ncols=True)
