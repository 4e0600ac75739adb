"""`HNSWm[+ef:E]`: an HNSW graph with M links per node over the float vectors (faiss `HNSWm,Flat`, inner product;
PostgreSQL: pgvector's HNSW index); `ef`: the search's candidate list (default: the caller's, at least k)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from repspace.errors import InvalidInputError
from repspace.index.kinds.base import FaissFactoryKind

EF_CONSTRUCTION = 100


@dataclass(frozen=True)
class HNSW(FaissFactoryKind, name="hnsw", pattern=r"hnsw(\d+)((?:\+ef:\d+)*)",
           usage="HNSW32[+ef:E]", examples="HNSW32"):
    """`HNSW32`: approximate search; `ef` (at least k) trades recall for speed."""

    hnsw_m: int = 32
    ef: int = 0  # 0: the caller's default
    options: ClassVar[tuple[str, ...]] = ("ef",)

    @classmethod
    def from_match(cls, m: re.Match[str], text: str) -> HNSW:
        if int(m.group(1)) < 2:
            raise InvalidInputError(f"HNSW needs M >= 2, got {text!r}", param="spec")
        return cls(hnsw_m=int(m.group(1)), **cls.parse_options(m.group(2), text))

    def __str__(self) -> str:
        return f"HNSW{self.hnsw_m}" + self._options_str()

    def factory(self) -> str:
        return f"HNSW{self.hnsw_m},Flat"

    def configure(self, idx: Any) -> None:
        idx.hnsw.efConstruction = EF_CONSTRUCTION

    def search(self, state: Any, base: np.ndarray, q: np.ndarray, k: int, ef_search: int) -> tuple[np.ndarray, np.ndarray]:
        state.hnsw.efSearch = max(self.ef or ef_search, k)
        s, i = state.search(q, k)
        return s, i.astype(np.int64)

    def first_stage_bytes(self, n: int, dim: int) -> int:
        return n * dim * 4 + n * self.hnsw_m * 2 * 4
