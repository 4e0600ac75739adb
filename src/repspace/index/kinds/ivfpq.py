"""`IVFn,PQm[+refine:F]`: an inverted file of n lists over product-quantised codes of m sub-vectors (faiss
`IVFn,PQm`, inner product), the nearest k·F re-ranked with the float vectors — and, in a LanceDB collection, LanceDB's
own on-disk `IVF_PQ` index with `refine_factor` F (`collections/lance_store.py`).

`nprobe` lists are searched per query (n/8, at least 8): recall against exact depends on it and on F. Training a
quantiser needs data: below `MIN_TRAIN_PER_LIST` points per list (and 256 in all, one per PQ centroid) the structure is
not built and the vectors are searched exactly; the spec still names what will be built once the collection is large
enough.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from repspace.errors import DimensionMismatchError, InvalidInputError
from repspace.index.kinds.base import FaissFactoryKind, rescore
from repspace.ops.search import topk_rows

MIN_TRAIN_PER_LIST = 39  # faiss's own warning threshold for k-means


@dataclass(frozen=True)
class IVFPQ(FaissFactoryKind, name="ivfpq", pattern=r"ivf(\d+),pq(\d+)(?:\+refine:(\d+))?",
            usage="IVFn,PQm[+refine:F]", examples="IVF256,PQ48+refine:4"):
    """`IVF1024,PQ48+refine:4`: compact and disk-friendly; refine F re-ranks k·F candidates exactly."""

    nlist: int = 256
    pq_m: int = 48
    refine: int = 1

    @classmethod
    def from_match(cls, m: re.Match[str], text: str) -> IVFPQ:
        nlist, pq_m, refine = int(m.group(1)), int(m.group(2)), int(m.group(3) or 1)
        if nlist < 1 or pq_m < 1 or refine < 1:
            raise InvalidInputError(f"IVFn,PQm needs n, m (and refine) >= 1, got {text!r}", param="spec")
        return cls(nlist=nlist, pq_m=pq_m, refine=refine)

    def __str__(self) -> str:
        return f"IVF{self.nlist},PQ{self.pq_m}" + (f"+refine:{self.refine}" if self.refine > 1 else "")

    @property
    def nprobe(self) -> int:
        return min(self.nlist, max(8, self.nlist // 8))

    def check_dim(self, dim: int) -> None:
        if dim % self.pq_m:
            raise DimensionMismatchError(f"{self} splits vectors into {self.pq_m} sub-vectors: the dimension {dim} "
                                         f"is not a multiple of {self.pq_m}", param="spec")

    def factory(self) -> str:
        return f"IVF{self.nlist},PQ{self.pq_m}"

    def trainable(self, n: int) -> bool:
        return n >= max(256, self.nlist * MIN_TRAIN_PER_LIST)

    def build(self, base: np.ndarray) -> Any:
        self.check_dim(base.shape[1])
        return super().build(base) if self.trainable(len(base)) else None  # None: searched exactly

    def search(self, state: Any, base: np.ndarray, q: np.ndarray, k: int, ef_search: int) -> tuple[np.ndarray, np.ndarray]:
        if state is None:
            s = q @ base.T
            return topk_rows(s, k)
        state.nprobe = self.nprobe
        _, cand = state.search(q, min(len(base), k * self.refine))
        return rescore(q, base, cand.astype(np.int64), k)

    def save(self, state: Any, base: Any, path) -> None:
        if state is not None:
            super().save(state, base, path)

    def load(self, path, n: int, dim: int, encode):
        if not (path / "faiss.index.npy").is_file():
            return encode(), None
        return super().load(path, n, dim, encode)

    def first_stage_bytes(self, n: int, dim: int) -> int:
        return n * self.pq_m + self.nlist * dim * 4 + n * 8  # codes, coarse centroids, ids
