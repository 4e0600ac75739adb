"""PostgreSQL: pgvector's index of a slot, built by ``optimize()`` once the rows are in (issue 26 item 2).

pgvector's own advice is to load first and index after: inserting row by row into an HNSW index cost 8.3 ms an item
here (100k rows: 826 s), while ``CREATE INDEX`` over loaded rows builds the graph in memory with parallel maintenance
workers. So a collection's vector index is made by ``optimize()``, as on LanceDB, and a slot searches exactly until
then (the same answers, slower). ``maintenance_work_mem`` is sized to the graph (rows × bytes per element, capped at
``MAX_MAINTENANCE_MB``: past it pgvector goes on building on disk, slower); the workers are this machine's cores
less one (at most 7).

Kinds: ``HNSWm`` = HNSW on the vectors (cosine); ``IVFn,Flat`` = pgvector's ``ivfflat`` with n lists (k-means over
the rows there are: built once the slot holds enough vectors to train n lists, `IVF.trainable`); ``binary`` = HNSW on ``binary_quantize(v)::bit(d)`` (Hamming);
``funnel:a/…`` = HNSW on the prefix ``subvector(v, 1, a)::halfvec(a)`` (half precision: the 64-d prefix index of
100k × 768 vectors is 41 instead of 54 MiB, and the shortlist is re-ranked by longer prefixes anyway). Others have no
pgvector index.
"""

from __future__ import annotations

import os
from typing import Any

from psycopg import sql

from repspace.errors import InvalidInputError

IVFFLAT_MAX_LISTS = 32768  # pgvector's limit on ivfflat's lists
MAX_MAINTENANCE_MB = 4096
MIN_MAINTENANCE_MB = 64
WORKERS = max(1, min(7, (os.cpu_count() or 2) - 1))

# the planner's own estimate (estimate_rel_size): the last ANALYZE's rows per page times the pages there are now;
# NULL before any ANALYZE. reltuples alone can be far behind: autovacuum analysed a table partway through loading
# 1M rows, the graph's memory was sized for that, and pgvector went on on disk after ~400k rows, ~10x slower.
_ESTIMATE = sql.SQL("SELECT (c.reltuples / c.relpages * (pg_relation_size(c.oid) / current_setting('block_size')::int))"
                    "::bigint FROM pg_class c WHERE c.oid = quote_ident(%s)::regclass AND c.relpages > 0 "
                    "AND c.reltuples >= 0")


def index_name(store: Any, column: str, kind: str) -> str:
    return f"rs_{store.name}_{column}_{kind}"[:63]


def index_expr(column: str, dim: int, spec: Any) -> tuple[sql.Composable, int] | None:
    """`USING …` of the spec's index on `column` and the bytes of one indexed value; None = no pgvector index."""
    col = sql.Identifier(column)
    if spec.kind == "hnsw":
        return sql.SQL("USING hnsw ({} vector_cosine_ops) WITH (m = {}, ef_construction = 100)").format(
            col, sql.Literal(int(spec.hnsw_m))), 4 * dim
    if spec.kind == "ivfflat":
        if int(spec.nlist) > IVFFLAT_MAX_LISTS:
            raise InvalidInputError(f"{spec}: pgvector's ivfflat index takes at most {IVFFLAT_MAX_LISTS:,} lists; "
                                    f"use IVF{IVFFLAT_MAX_LISTS},Flat or fewer (about sqrt(rows) lists)", param="spec")
        return sql.SQL("USING ivfflat ({} vector_cosine_ops) WITH (lists = {})").format(
            col, sql.Literal(int(spec.nlist))), 4 * dim
    if spec.kind == "binary":
        return sql.SQL("USING hnsw ((binary_quantize({})::bit({})) bit_hamming_ops)").format(
            col, sql.Literal(int(dim))), dim // 8 + 8
    if spec.kind == "funnel":  # the prefix in half precision: half the graph's vectors (the shortlist is re-ranked)
        a = int(spec.stages[0])
        return sql.SQL("USING hnsw ((subvector({}, 1, {})::halfvec({})) halfvec_cosine_ops)").format(
            col, sql.Literal(a), sql.Literal(a)), 2 * a
    return None


def index_kind(spec: Any) -> str:
    """The index's name suffix: a funnel's half-precision prefix index is `funnel_half` (an index named `funnel`,
    on the float prefix, was made before 2026-12-07 and is still searched where it is the only one)."""
    return "funnel_half" if spec.kind == "funnel" else spec.kind


def funnel_shortlist(store: Any, conn: Any, column: str, a: int) -> sql.Composable:
    """`ORDER BY` of a funnel's shortlist, written as the slot's index is, so PostgreSQL walks it (%(qA)s: the
    query's first A dimensions); `conn`: the search's connection (the catalog, read once per collection version)."""
    names = store._catalog_at(conn).indexes
    typ = "vector" if (index_name(store, column, "funnel") in names
                       and index_name(store, column, "funnel_half") not in names) else "halfvec"
    return sql.SQL("subvector({col}, 1, {a})::{t}({a}) <=> {q}::{t}({a})").format(
        col=sql.Identifier(column), a=sql.Literal(int(a)), t=sql.SQL(typ), q=sql.Placeholder(f"q{a}"))


def graph_bytes(rows: int, value_bytes: int, m: int = 16) -> int:
    """What pgvector's in-memory HNSW graph takes: each element's value, its layer-0 neighbour list (2m candidates
    of 16 bytes) and ~200 bytes of bookkeeping and upper layers. Measured (pgvector 0.8, m = 16, serial build): the
    graph stops fitting after 17,700 elements of vector(768) in 64 MB and 39,773 of halfvec(64) in 32 MB, i.e. 3,791
    and 844 bytes an element = the value (3,080 / 136) + 711 / 708 (tested). The estimate before, 2m × 8 + 128,
    overflowed a 1M × halfvec(64) build at 71 % and slowed its rest ~10×."""
    return rows * (value_bytes + 2 * m * 16 + 200)


def maintenance_mb(rows: int, value_bytes: int, m: int = 16) -> int:
    """`maintenance_work_mem` for building the graph in memory: `graph_bytes`, a quarter more for slack, within
    [MIN_MAINTENANCE_MB, MAX_MAINTENANCE_MB]."""
    return int(min(MAX_MAINTENANCE_MB, max(MIN_MAINTENANCE_MB, graph_bytes(rows, value_bytes, m) * 1.25 / 2**20)))


def estimated_rows(conn: Any, store: Any) -> int:
    """The slot's table's rows as the planner would estimate them now; counted if it was never analysed."""
    row = conn.execute(_ESTIMATE, (store.table_name,)).fetchone()
    if row and row[0]:
        return int(row[0])
    return int(conn.execute(sql.SQL("SELECT count(*) FROM {}").format(store._t())).fetchone()[0])


def build(store: Any, column: str, dim: int, spec: Any) -> str:
    """Make the spec's index on `column` unless it has one (pgvector's HNSW needs no retraining: rows written after
    it are inserted into it); what the column has now. Readers go on meanwhile; writers wait for the build."""
    made = index_expr(column, dim, spec)
    if made is None:
        return "exact scan" if spec.kind == "flat" else f"{spec}: repspace's in-memory layer (no pgvector index)"
    expr, value_bytes = made
    name = index_name(store, column, index_kind(spec))
    with store._conn() as conn:
        if name in store._catalog_at(conn).indexes:  # IF NOT EXISTS would still wait for writers
            return f"{spec.kind} index kept"
        rows = estimated_rows(conn, store)
        if hasattr(spec, "trainable"):  # lists are trained on the rows there are: too few, and they are poor
            n = conn.execute(sql.SQL("SELECT count({}) FROM {}").format(sql.Identifier(column), store._t())).fetchone()[0]
            if not spec.trainable(n):
                return (f"no index yet, searched exactly: {spec} trains on at least {spec.min_train:,} vectors, the "
                        f"slot holds {n:,}; the first optimize after that builds it")
        mem = maintenance_mb(int(rows), value_bytes, int(getattr(spec, "hnsw_m", 16) or 16))
        conn.execute(sql.SQL("SET LOCAL maintenance_work_mem = {}; SET LOCAL max_parallel_maintenance_workers = {}")
                     .format(sql.Literal(f"{mem}MB"), sql.Literal(WORKERS)))
        conn.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} {}").format(sql.Identifier(name), store._t(), expr))
        store._bump(conn)  # the catalog changed: every handle re-reads it
    return f"{spec.kind} index built ({WORKERS} parallel workers, maintenance_work_mem {mem}MB)"
