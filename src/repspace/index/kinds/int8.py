"""`int8[+rescore:R]`: 8-bit scalar quantisation (faiss `SQ8`, inner product), optionally R candidates rescored in float."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from repspace.index.kinds.base import FaissFactoryKind, rescore


@dataclass(frozen=True)
class Int8(FaissFactoryKind, name="int8", pattern=r"int8(?:\+rescore:(\d+))?",
           usage="int8[+rescore:R]", examples="int8, int8+rescore:100"):
    """`int8`: a quarter of the float bytes; `int8+rescore:100` re-ranks a shortlist of 100 exactly."""

    rescore: int = 0  # candidates rescored with float vectors (0 = none)

    @classmethod
    def from_match(cls, m: re.Match[str], text: str) -> Int8:
        return cls(rescore=int(m.group(1) or 0))

    def __str__(self) -> str:
        return "int8" + (f"+rescore:{self.rescore}" if self.rescore else "")

    def factory(self) -> str:
        return "SQ8"

    def search(self, state: Any, base: np.ndarray, q: np.ndarray, k: int, ef_search: int) -> tuple[np.ndarray, np.ndarray]:
        s, i = state.search(q, max(self.rescore, k))
        i = i.astype(np.int64)
        if self.rescore:
            return rescore(q, base, i, k)
        return s[:, :k], i[:, :k]

    def first_stage_bytes(self, n: int, dim: int) -> int:
        return n * dim
