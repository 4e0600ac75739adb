"""`IVFn,HNSW_SQ[+nprobe:P][+ef:E][+refine:F]`: an inverted file of n lists of 8-bit scalar-quantised vectors — in a
LanceDB collection LanceDB's own on-disk `IVF_HNSW_SQ` index (an HNSW graph inside each list, searched with `ef` E),
searched with `nprobes` P and `refine_factor` F (`collections/lance_store.py`); in repspace's in-memory layer faiss
`IVFn,SQ8` (each probed list scanned whole, so `ef` has no effect there), the best k·F re-ranked with the floats.

Where IVF_PQ's codes are too coarse to rank (`benchmarks/scale.py`: 200k × 384 synthetic vectors, IVF_PQ reached
recall@10 0.85 with every list probed and refine 50), SQ8 keeps 4× less than float and ranks nearly like it (0.96 at
32 of 64 lists, refine 4, ef 100).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from repspace.index.kinds.ivfpq import IVF, OPTIONS

EF = 100  # LanceDB's HNSW `ef` when the spec names none (at least k·refine)


@dataclass(frozen=True)
class IVFHNSWSQ(IVF, name="ivfhnswsq", pattern=r"ivf(\d+),hnsw_?sq8?" + OPTIONS,
                usage="IVFn,HNSW_SQ[+nprobe:P][+ef:E][+refine:F]", examples="IVF64,HNSW_SQ+nprobe:32+refine:4"):
    """`IVF64,HNSW_SQ+nprobe:32+refine:4`: 8-bit vectors in n lists, HNSW inside each list (LanceDB)."""

    ef: int = EF
    options: ClassVar[tuple[str, ...]] = ("nprobe", "ef", "refine")
    label: ClassVar[str] = "HNSW_SQ"

    def factory(self) -> str:
        return f"IVF{self.nlist},SQ8"

    def for_candidates(self) -> IVFHNSWSQ:
        # 8-bit vectors rank nearly like the floats, and the union is scored exactly anyway: the candidates skip the
        # re-rank (1M, 40 per slot: 1.72x a plain search at recall 0.982, against 2.14-2.52x at 0.985 with refine 4)
        return replace(self, refine=1)

    def first_stage_bytes(self, n: int, dim: int) -> int:
        return n * dim + self.nlist * dim * 4 + n * 8  # 8-bit codes, coarse centroids, ids
