"""Search indexes on faiss, named by compact specs (Flat, HNSW32, int8, binary+rescore:200, funnel:64/256/768)."""

from repspace.index.index import Index
from repspace.index.spec import IndexSpec, parse_spec

__all__ = ["Index", "IndexSpec", "parse_spec"]
