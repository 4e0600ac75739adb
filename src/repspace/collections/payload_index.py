"""Payload indexes and the plan of a filtered search (issue 26 item 5).

A collection may *declare* payload keys to index (`Collection.create(..., payload_index=["category"])`,
`Collection.index_payload(["category"])`); the keys are kept in the metadata (`payload_index`) and each store
builds what it has for them:

- PostgreSQL: a btree expression index on ``(payload->>'key')`` per key (then ``ANALYZE``, so the planner knows
  how selective a value is);
- LanceDB: the payload is one JSON string column, which no scalar index can serve, so each declared key is
  materialised into a string column ``p_<key>`` (its value's text form, the same text `payload.matches` and
  PostgreSQL's ``->>`` compare; null where the item has no such key), written by every upsert, with a BITMAP
  scalar index (BTREE where the key has many distinct values).

A filtered search is then planned by the number of items that match (counted with the index, bounded by
`EXACT_ROWS`): few → an exact scan over just the matching rows (recall 1.0, cost proportional to the matches);
many → the slot's ANN index with the filter applied while it walks (pgvector's iterative scan, LanceDB's
index-assisted pre-filter), which finds k matches quickly when they are common. A Flat slot is always exact.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Sequence

from repspace.errors import InvalidInputError

if TYPE_CHECKING:
    from repspace.collections.collection import Collection

# at most this many matching items: search them exactly (counting stops here); more: the ANN index, filtered.
# PostgreSQL reads a matching row through the payload index at ~1 µs (10,000 rows: 9-23 ms, benchmarks/filtered.py)
EXACT_ROWS = 20_000
KEY = re.compile(r"[A-Za-z0-9_-]{1,60}")
COLUMN_PREFIX = "p_"  # LanceDB: the column a declared key is materialised into


def check_keys(keys: Sequence[str] | str | None) -> tuple[str, ...]:
    """Declared payload keys, checked: letters, digits, '_' or '-', at most 60 characters; duplicates dropped."""
    if keys is None:
        return ()
    keys = [keys] if isinstance(keys, str) else list(keys)
    for k in keys:
        if not isinstance(k, str) or not KEY.fullmatch(k):
            raise InvalidInputError(f"payload index key {k!r} must be 1-60 letters, digits, '_' or '-'",
                                    param="payload_index")
    return tuple(dict.fromkeys(keys))


def column_of(key: str) -> str:
    return COLUMN_PREFIX + key


def is_payload_column(name: str) -> bool:
    return name.startswith(COLUMN_PREFIX)


def key_of(column: str) -> str:
    return column[len(COLUMN_PREFIX):]


def values_of(payloads: Sequence[str | None], key: str) -> list[str | None]:
    """The text form of `key`'s value in each JSON payload (None where absent or null): what `payload.matches`
    compares a filter value with, and PostgreSQL's ``payload->>'key'``."""
    import json

    from repspace.collections.payload import text_form

    out: list[str | None] = []
    for p in payloads:
        v = json.loads(p).get(key) if p and p != "{}" else None
        out.append(None if v is None else text_form(v))
    return out


def exact_plan(matching: int, limit: int | None = None) -> bool:
    """True: search the matching rows exactly; False: the ANN index with the filter (many rows match). `limit`: the
    backend's own bound (LanceDB's is lower: `lance_filter.EXACT_ROWS`)."""
    return matching <= (EXACT_ROWS if limit is None else limit)


def index_payload(collection: "Collection", keys: Sequence[str] | str) -> list[str]:
    """Declare payload keys to index (one compare-and-set of the metadata) and build the store's indexes for every
    declared key; returns the declared keys."""
    keys = check_keys(keys)
    if not keys:
        raise InvalidInputError("give at least one payload key to index", param="payload_index")
    if collection.meta.attached is not None:
        from repspace.errors import CollectionError

        raise CollectionError(f"collection {collection.name!r} is an attached table: its payload columns are the "
                              "application's, index them in the database itself", param="payload_index")
    meta = collection.transition(lambda m: m.with_payload_index(keys))
    collection.store.index_payload(list(meta.payload_index))
    return list(meta.payload_index)


def declared(meta: Any) -> tuple[str, ...]:
    return tuple(getattr(meta, "payload_index", ()) or ())
