"""`IVFn,RaBitQ[+nprobe:P][+refine:F]`: an inverted file of n lists of 1-bit RaBitQ codes ("RaBitQ: Quantizing
High-Dimensional Vectors with a Theoretical Error Bound", Gao & Long 2024: each vector's residual rotated at random and
kept as its signs, with the two scalars that make the inner-product estimate unbiased) — in a LanceDB collection
LanceDB's own on-disk `IVF_RQ` index, in repspace's in-memory layer faiss `IVFn,RaBitQ`; P lists probed per query, the
best k·F re-ranked with the float vectors.

The codes are 1/32 of the floats (a 1M × 384 index: 62 MiB against IVF_HNSW_SQ's 551 MiB), so a one-off process
reads little before its first answer and the index trains in a fraction of the time (`benchmarks/scale.py`, 1M × 384:
39.6 s against 335 s). The estimate is coarse: the re-rank does the ranking, so F is larger than for 8-bit codes
(recall@10 0.98 at nprobe 128 of 256, refine 50 on the 1M synthetic set).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from repspace.index.kinds.ivfpq import IVF, OPTIONS


@dataclass(frozen=True)
class IVFRQ(IVF, name="ivfrq", pattern=r"ivf(\d+),(?:rabitq|rq)" + OPTIONS,
            usage="IVFn,RaBitQ[+nprobe:P][+refine:F]", examples="IVF256,RaBitQ+nprobe:128+refine:50"):
    """`IVF256,RaBitQ+nprobe:128+refine:50`: 1-bit codes in n lists; refine F re-ranks k·F candidates exactly."""

    label: ClassVar[str] = "RaBitQ"

    def factory(self) -> str:
        return f"IVF{self.nlist},RaBitQ"

    def first_stage_bytes(self, n: int, dim: int) -> int:
        return n * (dim // 8 + 8) + self.nlist * dim * 4 + n * 8  # sign bits and two factors, centroids, ids
