"""LanceDB: payload indexes (declared keys materialised as ``p_<key>`` columns) and filtered search.

The payload is one JSON string column, which no scalar index can serve: each declared key gets a string column
``p_<key>`` holding its value's text form (null where the item has none), filled for the rows already there by
Lance's ``add_columns`` (a new column file per fragment: nothing rewritten) and by every later upsert
(`LanceStore._full_rows`), with a BITMAP scalar index (BTREE where the key has many distinct values). Filters
travel as pyarrow expressions (``pc.field('p_key') == value``): no value is spliced into SQL text.

A filtered search in the store (a slot with LanceDB's own IVF_PQ index, or a Flat slot in a one-off process):
the filter is always a pre-filter (the scalar index makes the mask of matching rows before any vector is read:
a post-filter on the k nearest finds almost nothing at 1 %). A Flat slot: LanceDB's exact kNN over the matching
rows. An `IVFn,PQm` / `IVFn,HNSW_SQ` slot with its index built: count the matches with the scalar index; at most `EXACT_ROWS` (2,000: LanceDB reads a
matching row's vector at ~10 µs, so more would cost many times the index search) → the same exact kNN over just
those rows (recall 1.0); more → the IVF index searched with the mask (its nprobes, refine, ef): LanceDB's
pre-filter keeps the index's own recall at any selectivity (measured), at the index's latency. A filter on a key that is not declared
returns None here: repspace's in-memory layer then filters exactly (`cache.py`).
"""

from __future__ import annotations

import json
import operator
from functools import reduce
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from repspace.collections.payload_index import column_of, exact_plan, values_of

BITMAP_MAX_VALUES = 1000  # more distinct values than this: a BTREE index
# the exact plan reads each matching row's vector by a random take, ~10-14 µs a row here (benchmarks/filtered.py:
# 1,000 rows 20 ms, 10,000 rows 100-140 ms, where an IVF_PQ search takes ~8 ms): beyond this, the pre-filtered index
EXACT_ROWS = 2_000


def index_payload(store: Any, keys: Sequence[str]) -> None:
    """Materialise each key into its column (rows there now; upserts write it from then on) and (re)build its scalar
    index."""
    import lance
    from lancedb.index import BTree, Bitmap

    t = store.table()
    with store._write_lock():  # no upsert between reading the schema and adding the columns
        t.checkout_latest()
        new = [k for k in keys if column_of(k) not in t.schema.names]
        if new:
            schema = pa.schema([pa.field(column_of(k), pa.string()) for k in new])

            @lance.batch_udf(output_schema=schema)
            def materialise(batch: pa.RecordBatch) -> pa.RecordBatch:
                payloads = batch.column("payload").to_pylist()
                return pa.record_batch([pa.array(values_of(payloads, k), pa.string()) for k in new], schema=schema)

            t.to_lance().add_columns(materialise, read_columns=["payload"])
            t.checkout_latest()
    if not t.count_rows():
        return  # nothing to index yet: the first `optimize()` after a load builds the indexes
    have = {tuple(i.columns): i for i in t.list_indices()}
    for k in keys:
        col = column_of(k)
        idx = have.get((col,))
        if idx is None:
            distinct = pc.count_distinct(t.to_lance().to_table(columns=[col]).column(col)).as_py()
            t.create_index(col, config=Bitmap() if distinct <= BITMAP_MAX_VALUES else BTree(), replace=True)
        elif idx.num_unindexed_rows:  # rows written since: merged into the index (the rest is kept)
            t.to_lance().optimize.optimize_indices(index_names=[idx.name])
    t.checkout_latest()


def expression(filter: dict[str, str]) -> pc.Expression:
    return reduce(operator.and_, [pc.field(column_of(k)) == pa.scalar(v, pa.string()) for k, v in filter.items()])


def filtered_search(store: Any, column: str, dim: int, queries: np.ndarray, k: int, filter: dict[str, str],
                    spec: Any) -> list[list[tuple[str, float, dict]]] | None:
    """The store's filtered search (see the module's docstring), or None for repspace's in-memory layer."""
    if not store.native_fused(spec):  # the slot is not searched by LanceDB (an IVF kind, or Flat in a one-off process)
        return None  # the in-memory layer serves this slot, filters included
    ds = store.dataset()
    ann = column in store._indexed(ds)  # LanceDB's vector index on the slot (scalar indexes are not listed there)
    if any(column_of(key) not in ds.schema.names for key in filter):
        return None  # a key with no payload index: filtered in memory
    expr = expression(filter)
    use_index = ann and not exact_plan(ds.count_rows(filter=expr), EXACT_ROWS)  # few: exact kNN over just those
    out = []
    for q in np.asarray(queries, np.float32):
        hits = ds.to_table(columns=["id", "payload", "_distance"], nearest=nearest(column, q, k, spec, use_index),
                           filter=expr, prefilter=True)
        out.append([(i, 1.0 - float(d), json.loads(p or "{}")) for i, p, d in zip(
            hits.column("id").to_pylist(), hits.column("payload").to_pylist(), hits.column("_distance").to_pylist())
            if d is not None])
    return out


def nearest(column: str, q: np.ndarray, k: int, spec: Any, use_index: bool) -> dict[str, Any]:
    """Lance's `nearest` argument for one query: the slot's index searched with the spec's nprobes, refine and ef —
    or, `use_index` False, an exact kNN."""
    near = {"column": column, "q": q, "k": k, "metric": "cosine", "use_index": use_index}
    if use_index:
        near.update(nprobes=spec.nprobe, refine_factor=spec.refine)
        if hasattr(spec, "ef"):  # IVFn,HNSW_SQ
            near["ef"] = max(spec.ef, k * spec.refine)
    return near
