"""Search indexes on faiss, named by compact specs (Flat, HNSW32, int8, binary+rescore:200, funnel:64/256/768).

A spec parses once into an index kind (`repspace.index.kinds`, one module per kind, registered in `KINDS`)
that builds, searches, sizes and saves itself; `Index` holds a space (and adaptor) and delegates to it.
"""

from repspace.index.index import Index
from repspace.index.kinds import KINDS
from repspace.index.spec import SPEC_HELP, SPEC_USAGE, IndexSpec, parse_spec

__all__ = ["KINDS", "SPEC_HELP", "SPEC_USAGE", "Index", "IndexSpec", "parse_spec"]
