import os
from typing import Any

from jadevec.errors import StoreClosedError

__all__ = ["FILE_NAMES", "FORMAT_VERSION", "FileSetMoved", "crc32c", "mark_moved",
           "swap_folders"]

FILE_NAMES: tuple[str, str, str, str, str]
FORMAT_VERSION: int

class FileSetMoved(StoreClosedError): ...

def crc32c(data: Any, crc: int = ...) -> int: ...
def _crc32c_force_software(force: bool) -> bool: ...
def mark_moved(path: str | os.PathLike[str]) -> None: ...
def swap_folders(
    new: str | os.PathLike[str], folder: str | os.PathLike[str], old: str | os.PathLike[str]
) -> None: ...
