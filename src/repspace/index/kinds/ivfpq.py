"""`IVFn,PQm[+nprobe:P][+refine:F]`: an inverted file of n lists over product-quantised codes of m sub-vectors (faiss
`IVFn,PQm`, inner product), P lists probed per query, the nearest k·F re-ranked with the float vectors — and, in a
LanceDB collection, LanceDB's own on-disk `IVF_PQ` index searched with `nprobes` P and `refine_factor` F
(`collections/lance_store.py`).

`IVF` is the base of the inverted-file kinds (`ivfhnswsq.py` is the other): the list count, the search options and
their grammar, training thresholds, search and storage. Recall against exact depends on P and F (and on the data:
`benchmarks/scale.py` measures it); P defaults to n/8 (at least 8). Training a quantiser needs data: below
`MIN_TRAIN_PER_LIST` points per list (and 256 in all, one per PQ centroid) the structure is not built and the vectors
are searched exactly; the spec still names what will be built once the collection is large enough.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import numpy as np

from repspace.errors import DimensionMismatchError, InvalidInputError
from repspace.index.kinds.base import FaissFactoryKind, rescore
from repspace.ops.search import topk_rows

MIN_TRAIN_PER_LIST = 39  # faiss's own warning threshold for k-means
OPTIONS = r"((?:\+(?:nprobe|refine|ef):\d+)*)"  # the search options an IVF spec may end with, in any order


@dataclass(frozen=True)
class IVF(FaissFactoryKind):
    """The inverted-file kinds: `nlist` lists, `probe` of them searched per query (0: n/8, at least 8), the best k·`refine`
    candidates re-ranked exactly."""

    nlist: int = 256
    probe: int = 0
    refine: int = 1
    options: ClassVar[tuple[str, ...]] = ("nprobe", "refine")
    option_fields: ClassVar[Mapping[str, str]] = {"nprobe": "probe"}
    label: ClassVar[str] = ""  # `IVFn,<label>` of a kind whose only structural parameter is n (HNSW_SQ, RaBitQ)

    @classmethod
    def from_match(cls, m: re.Match[str], text: str) -> IVF:
        """`IVFn,<label>` + options (a kind with more parameters, like `IVFn,PQm`, parses its own)."""
        if int(m.group(1)) < 1:
            raise InvalidInputError(f"IVFn,{cls.label} needs n >= 1, got {text!r}", param="spec")
        return cls(nlist=int(m.group(1)), **cls.parse_options(m.group(2), text))

    def __str__(self) -> str:
        return f"IVF{self.nlist},{self.label}" + self._options_str()

    @property
    def nprobe(self) -> int:
        return min(self.nlist, self.probe or max(8, self.nlist // 8))

    @property
    def min_train(self) -> int:
        """The fewest vectors the lists are trained on (fewer: searched exactly)."""
        return max(256, self.nlist * MIN_TRAIN_PER_LIST)

    def trainable(self, n: int) -> bool:
        return n >= self.min_train

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


@dataclass(frozen=True)
class IVFPQ(IVF, name="ivfpq", pattern=r"ivf(\d+),pq(\d+)" + OPTIONS,
            usage="IVFn,PQm[+nprobe:P][+refine:F]", examples="IVF256,PQ48+refine:4"):
    """`IVF1024,PQ48+nprobe:64+refine:4`: compact and disk-friendly; refine F re-ranks k·F candidates exactly."""

    pq_m: int = 48

    @classmethod
    def from_match(cls, m: re.Match[str], text: str) -> IVFPQ:
        nlist, pq_m = int(m.group(1)), int(m.group(2))
        if nlist < 1 or pq_m < 1:
            raise InvalidInputError(f"IVFn,PQm needs n, m >= 1, got {text!r}", param="spec")
        return cls(nlist=nlist, pq_m=pq_m, **cls.parse_options(m.group(3), text))

    def __str__(self) -> str:
        return f"IVF{self.nlist},PQ{self.pq_m}" + self._options_str()

    def check_dim(self, dim: int) -> None:
        if dim % self.pq_m:
            raise DimensionMismatchError(f"{self} splits vectors into {self.pq_m} sub-vectors: the dimension {dim} "
                                         f"is not a multiple of {self.pq_m}", param="spec")

    def factory(self) -> str:
        return f"IVF{self.nlist},PQ{self.pq_m}"

    def first_stage_bytes(self, n: int, dim: int) -> int:
        return n * self.pq_m + self.nlist * dim * 4 + n * 8  # codes, coarse centroids, ids
