"""Live collections in real vector stores: LanceDB (embedded, the default) and PostgreSQL + pgvector.

`Collection.create(uri, model=..., spec=...)` / `Collection.open(uri)`; see `collection.py`.
"""

from repspace.collections.collection import Collection
from repspace.collections.uri import parse_uri, with_collection

__all__ = ["Collection", "parse_uri", "with_collection"]
