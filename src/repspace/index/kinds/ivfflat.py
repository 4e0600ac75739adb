"""`IVFn,Flat[+nprobe:P]`: an inverted file of n lists of the float vectors themselves, P lists probed per query and
every vector in them scored exactly — in a PostgreSQL collection pgvector's own `ivfflat` index (`lists` n,
`ivfflat.probes` P), in a LanceDB collection LanceDB's on-disk `IVF_FLAT` (`nprobes` P), in repspace's in-memory layer
faiss `IVFn,Flat`.

No quantisation: recall depends on P alone (the share of the lists read), and the index is the vectors plus n
centroids. It is the kind to use where a graph does not reach the recall wanted: on the 1M × 384 synthetic set
pgvector's HNSW (m 16, ef_construction 100) stops at recall@10 0.861 at its largest ef_search, 1000
(`benchmarks/scale_pg.py`), while probing enough lists reaches any recall, at a cost proportional to P.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from repspace.index.kinds.ivfpq import IVF, OPTIONS


@dataclass(frozen=True)
class IVFFlat(IVF, name="ivfflat", pattern=r"ivf(\d+),flat" + OPTIONS,
              usage="IVFn,Flat[+nprobe:P]", examples="IVF1000,Flat+nprobe:100"):
    """`IVF1000,Flat+nprobe:100`: the float vectors in n lists; P lists searched exactly per query."""

    label: ClassVar[str] = "Flat"
    options: ClassVar[tuple[str, ...]] = ("nprobe",)  # the scores are exact: nothing to re-rank

    def factory(self) -> str:
        return f"IVF{self.nlist},Flat"

    def first_stage_bytes(self, n: int, dim: int) -> int:
        return n * dim * 4 + self.nlist * dim * 4 + n * 8  # the vectors, the centroids, ids
