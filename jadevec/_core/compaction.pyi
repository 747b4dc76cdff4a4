import os

from jadevec._core.vector_file import VectorFile

__all__ = ["compact_into"]

def compact_into(vf: VectorFile, dest: str | os.PathLike[str]) -> None: ...
