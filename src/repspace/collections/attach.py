"""Attach an application's existing table as a collection (`pg_attach.py`, `lance_attach.py`): nothing is copied
and nothing of the table is rewritten; repspace keeps its own state in its own metadata.

    from repspace.collections import attach
    c = attach("postgresql://app@db/app?collection=docs", table="public.documents", id="id", vector="embedding",
               text="content", payload=["meta"], model="openai:text-embedding-3-small@https://api.openai.com/v1")
    c.search(texts=["a query"], k=10)          # the app's own rows, as they are now
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from repspace.errors import DimensionMismatchError, InvalidInputError

# spec kinds each backend searches natively (an attached table is never copied into repspace's faiss layer)
NATIVE_KINDS = {"pgvector": ("flat", "hnsw", "ivfflat", "binary", "funnel"), "lancedb": ("flat",)}


def attach(uri: str | Path, table: str, *, id: str, vector: str, model: str, text: str | None = None,
           payload: Sequence[str] = (), dim: int | None = None, spec: str = "Flat", model_version: str | None = None,
           device: str = "cpu"):
    """Attach `table` (PostgreSQL: a table name as SQL writes it; LanceDB: `DBDIR::TABLE` or a `.lance` path) as the
    collection at `uri`, its `vector` column the first slot, holding `model`'s vectors."""
    from repspace.collections.collection import Collection
    from repspace.collections.meta import CollectionMeta, Slot, now, slot_name_for
    from repspace.collections.slots import check_spec_fits, collection_spec, describe_model
    from repspace.collections.uri import parse_uri

    parsed = parse_uri(uri)
    ispec = collection_spec(spec)
    if ispec.kind not in NATIVE_KINDS[parsed.backend]:
        raise InvalidInputError(f"an attached {parsed.backend} table is searched by the store itself, which serves "
                                f"{', '.join(NATIVE_KINDS[parsed.backend])} specs, not {str(ispec)!r}", param="spec")
    payload = [p for p in (payload or ()) if p]
    if parsed.backend == "pgvector":
        from repspace.collections.pg_attach import AttachedPgStore
        from repspace.collections.pg_store import PgStore

        probe = PgStore(parsed.dsn, parsed.name)  # a plain store: a connection to inspect the table
        try:
            with probe._conn() as conn:
                record = AttachedPgStore.inspect(conn, table, id=id, vector=vector, text=text, payload=payload, dim=dim)
        finally:
            probe.close()
        store = AttachedPgStore(parsed.dsn, parsed.name, record)
    else:
        from repspace.collections.lance_attach import AttachedLanceStore

        record = AttachedLanceStore.inspect(table, id=id, vector=vector, text=text, payload=payload, dim=dim)
        store = AttachedLanceStore(parsed.path, record)
    try:
        from repspace.encoders import is_model

        info = describe_model(model, None if is_model(model) else record["dim"], model_version, device)
        if info["dim"] != record["dim"]:
            raise DimensionMismatchError(f"model {model!r} makes {info['dim']}-d vectors; column {vector!r} holds "
                                         f"{record['dim']}-d ones", param="model")
        check_spec_fits(ispec, info["dim"])
        first = Slot(name=slot_name_for(info["model"], info["model_version"], ()), column="v_0", created=now(), **info)
        meta = CollectionMeta.new(parsed.name, str(ispec), first).to_dict()
        store.attach({**meta, "attached": record})
    except BaseException:
        store.close()
        raise
    return Collection(store, parsed, device)
