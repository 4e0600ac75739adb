"""Index specs: one short string names a whole index (like faiss's factory strings), parsed once into a kind.

    Flat                    exact inner product (faiss IndexFlatIP)
    HNSW32                  HNSW graph, M = 32 (faiss "HNSW32,Flat", inner product)
    int8                    8-bit scalar quantisation (faiss "SQ8")
    int8+rescore:100        int8 shortlist of 100, rescored with float vectors
    binary+rescore:200      1-bit sign codes (faiss "BFlat", Hamming), top 200 rescored in float
    funnel:64/256/768       Matryoshka funnel: shortlist with the 64-d prefix, rerank with 256 then 768
    funnel:64/768:200       ... with an explicit first shortlist size (default 200)
    IVF256,PQ48+refine:4    inverted file of product-quantised codes (LanceDB: its IVF_PQ index)
    IVF64,HNSW_SQ+nprobe:32 inverted file of 8-bit vectors, HNSW in each list (LanceDB: IVF_HNSW_SQ)
    IVF256,RaBitQ+refine:50 inverted file of 1-bit RaBitQ codes, re-ranked in float (LanceDB: IVF_RQ)
    sparse                  sparse codes from a CSR adaptor, sparse dot products

Each kind is a class in `repspace.index.kinds` (one module each), registered by name in `KINDS`.
"""

from __future__ import annotations

import re

from repspace.errors import InvalidInputError
from repspace.index.kinds import KINDS
from repspace.index.kinds.base import IndexSpec

#: the specs named when one does not parse (and in `repspace collection` help texts)
SPEC_HELP = ", ".join(kind.examples for kind in KINDS.values())
#: the spec grammar for `--spec` help texts
SPEC_USAGE = " | ".join(kind.usage for kind in KINDS.values())


def parse_spec(text: str) -> IndexSpec:
    """Parse an index spec; the error names what would parse."""
    s = text.strip()
    for kind in KINDS.values():
        if m := re.fullmatch(kind.pattern, s, re.IGNORECASE):
            return kind.from_match(m, s)
    raise InvalidInputError(f"index spec {text!r} does not parse; use one of: {SPEC_HELP}")


__all__ = ["SPEC_HELP", "SPEC_USAGE", "IndexSpec", "parse_spec"]
