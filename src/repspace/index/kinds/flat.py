"""`Flat`: exact inner product over the unit vectors (faiss IndexFlatIP semantics, blocked faiss.knn)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from repspace.index.kinds.base import IndexSpec
from repspace.ops.search import topk


@dataclass(frozen=True)
class Flat(IndexSpec, name="flat", pattern=r"(?a)flat",  # ASCII case-folding, as str.lower() == "flat"
           usage="Flat", examples="Flat"):
    """`Flat`: every corpus row scored exactly; the reference the other kinds are measured against."""

    def __str__(self) -> str:
        return "Flat"

    def search(self, state: Any, base: np.ndarray, q: np.ndarray, k: int, ef_search: int) -> tuple[np.ndarray, np.ndarray]:
        return topk(q, base, k)

    def first_stage_bytes(self, n: int, dim: int) -> int:
        return n * dim * 4
