"""Index specs: one short string names a whole index (like faiss's factory strings).

    Flat                    exact inner product (faiss IndexFlatIP)
    HNSW32                  HNSW graph, M = 32 (faiss IndexHNSWFlat, inner product)
    int8                    8-bit scalar quantisation (faiss IndexScalarQuantizer QT_8bit)
    int8+rescore:100        int8 shortlist of 100, rescored with float vectors
    binary+rescore:200      1-bit sign codes (faiss IndexBinaryFlat, Hamming), top 200 rescored in float
    funnel:64/256/768       Matryoshka funnel: shortlist with the 64-d prefix, rerank with 256 then 768
    funnel:64/768:200       ... with an explicit first shortlist size (default 200)
    sparse                  sparse codes from a CSR adaptor (`index build --adaptor`), sparse dot products
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from repspace.errors import InvalidInputError

SPEC_HELP = "Flat, HNSW32, int8, int8+rescore:100, binary+rescore:200, funnel:64/256/768[:200], sparse (with a csr adaptor)"


@dataclass(frozen=True)
class IndexSpec:
    kind: str  # flat | hnsw | int8 | binary | funnel | sparse
    hnsw_m: int = 32
    rescore: int = 0  # candidates rescored with float vectors (0 = none)
    stages: tuple[int, ...] = field(default_factory=tuple)  # funnel prefix dims, last = full
    shortlist: int = 200

    def __str__(self) -> str:
        if self.kind == "flat":
            return "Flat"
        if self.kind == "hnsw":
            return f"HNSW{self.hnsw_m}"
        if self.kind == "int8":
            return "int8" + (f"+rescore:{self.rescore}" if self.rescore else "")
        if self.kind == "binary":
            return f"binary+rescore:{self.rescore}"
        if self.kind == "sparse":
            return "sparse"
        return "funnel:" + "/".join(map(str, self.stages)) + f":{self.shortlist}"


def parse_spec(text: str) -> IndexSpec:
    """Parse an index spec; the error names what would parse."""
    s = text.strip()
    if s.lower() == "flat":
        return IndexSpec("flat")
    if s.lower() == "sparse":
        return IndexSpec("sparse")
    if m := re.fullmatch(r"(?i)hnsw(\d+)", s):
        if int(m.group(1)) < 2:
            raise InvalidInputError(f"HNSW needs M >= 2, got {s!r}")
        return IndexSpec("hnsw", hnsw_m=int(m.group(1)))
    if m := re.fullmatch(r"(?i)int8(?:\+rescore:(\d+))?", s):
        return IndexSpec("int8", rescore=int(m.group(1) or 0))
    if m := re.fullmatch(r"(?i)binary\+rescore:(\d+)", s):
        if int(m.group(1)) < 1:
            raise InvalidInputError("binary+rescore needs a positive number of candidates")
        return IndexSpec("binary", rescore=int(m.group(1)))
    if m := re.fullmatch(r"(?i)funnel:(\d+(?:/\d+)+)(?::(\d+))?", s):
        stages = tuple(int(x) for x in m.group(1).split("/"))
        if any(b <= a for a, b in zip(stages, stages[1:])) or stages[0] < 1:
            raise InvalidInputError(f"funnel dims must increase, e.g. funnel:64/256/768; got {s!r}")
        return IndexSpec("funnel", stages=stages, shortlist=int(m.group(2) or 200))
    raise InvalidInputError(f"index spec {text!r} does not parse; use one of: {SPEC_HELP}")
