"""Index kinds, one module each. `KINDS` maps a kind's name to its class: one line per kind, in the order
specs are tried and listed in help texts (`repspace.index.spec.SPEC_HELP`)."""

from __future__ import annotations

from repspace.index.kinds import binary, flat, funnel, hnsw, int8, ivfflat, ivfhnswsq, ivfpq, ivfrq, sparse
from repspace.index.kinds.base import IndexSpec

KINDS: dict[str, type[IndexSpec]] = {kind.name: kind for kind in [
    flat.Flat,
    hnsw.HNSW,
    int8.Int8,
    binary.Binary,
    funnel.Funnel,
    ivfflat.IVFFlat,
    ivfpq.IVFPQ,
    ivfhnswsq.IVFHNSWSQ,
    ivfrq.IVFRQ,
    sparse.Sparse,
]}

__all__ = ["KINDS", "IndexSpec"]
