"""Search indexes on faiss, named by compact specs (Flat, HNSW32, int8, binary+rescore:200, funnel:64/256/768).

A spec parses once into an index kind (`repspace.index.kinds`, one module per kind, registered in `KINDS`)
that builds, searches, sizes and saves itself; `Index` holds a space (and adaptor) and delegates to it.
"""

from typing import TYPE_CHECKING

from repspace.index.kinds import KINDS
from repspace.index.spec import SPEC_HELP, SPEC_USAGE, IndexSpec, parse_spec

if TYPE_CHECKING:
    from repspace.index.index import Index


def __getattr__(name: str):
    """`Index` on first use: a process that only parses specs (a cold `collection search` on a store's own index)
    does not import the spaces layer (~0.1 s)."""
    if name == "Index":
        from repspace.index.index import Index

        return Index
    raise AttributeError(f"module 'repspace.index' has no attribute {name!r}")


__all__ = ["KINDS", "SPEC_HELP", "SPEC_USAGE", "Index", "IndexSpec", "parse_spec"]
