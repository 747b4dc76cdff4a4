"""SIMD kernels and exact top-k search (dot, cosine, l2)."""

from typing import Any

import numpy as np
import numpy.typing as npt

# metric is one of "dot", "cosine", "l2".

__all__ = [
    "available_levels",
    "cosine",
    "dot",
    "l2",
    "scores",
    "scores_many",
    "set_level",
    "simd_info",
    "squared_norm",
    "topk",
]

def available_levels() -> list[str]: ...
def set_level(name: str) -> None: ...
def simd_info() -> dict[str, Any]: ...
def dot(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float: ...
def squared_norm(a: npt.NDArray[np.float32]) -> float: ...
def cosine(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float: ...
def l2(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float: ...
def scores(
    matrix: npt.NDArray[np.float32],
    query: npt.NDArray[np.float32],
    metric: str,
    out: npt.NDArray[np.float32] | None = None,
) -> npt.NDArray[np.float32]: ...
def scores_many(
    matrix: npt.NDArray[np.float32], queries: npt.NDArray[np.float32], metric: str
) -> npt.NDArray[np.float32]: ...
def topk(
    matrix: npt.NDArray[np.float32],
    queries: npt.NDArray[np.float32],
    k: int,
    metric: str,
    skip: npt.NDArray[np.uint8] | npt.NDArray[np.bool_] | None = None,
    threads: int = 0,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]: ...
def _repeat(
    metric: str, a: npt.NDArray[np.float32], b: npt.NDArray[np.float32], reps: int
) -> float: ...
def _read_sum(a: npt.NDArray[np.float32], threads: int = 0) -> float: ...
