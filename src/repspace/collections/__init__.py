"""Live collections in real vector stores: LanceDB (embedded, the default) and PostgreSQL + pgvector.

`Collection.create(uri, model=..., spec=...)` / `Collection.open(uri)`; see `collection.py`. The names below load on
first use (PEP 562), so the CLI's help (which reads `collections.choices`) imports neither pyarrow nor a store.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {"Collection": "repspace.collections.collection", "parse_uri": "repspace.collections.uri",
            "with_collection": "repspace.collections.uri"}

if TYPE_CHECKING:  # pragma: no cover
    from repspace.collections.collection import Collection
    from repspace.collections.uri import parse_uri, with_collection


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Collection", "parse_uri", "with_collection"]
