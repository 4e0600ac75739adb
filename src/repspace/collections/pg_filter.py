"""PostgreSQL: payload indexes and filtered search through an HNSW slot (`payload_index.py` has the plan).

A declared key gets a btree expression index on ``(payload->>'key')``; the filter compares the same expression, so
the planner uses the index (a bitmap scan over the matching rows) wherever the value is selective. An indexable
key (letters, digits, '_', '-': `payload_index.KEY`) is composed by psycopg as a quoted literal (`sql.Literal`: it
is part of the expression the index is matched on, which a bind parameter would hide from the planner); any other
key, and every compared value, travels as a bind parameter; table and column names as `sql.Identifier`.

An HNSW slot with a filter: the matching rows are counted first (with the index, stopping at `EXACT_ROWS` + 1);
few → an exact scan over just those rows (recall 1.0: index scans off, so the payload index is read by a bitmap
scan and the HNSW index cannot take the ORDER BY); many → the HNSW index with pgvector's iterative scan
(``hnsw.iterative_scan = strict_order``): it keeps walking the graph until k rows pass the filter.
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

import numpy as np
from psycopg import sql

from repspace.collections.payload_index import EXACT_ROWS, KEY, exact_plan
from repspace.collections.pg_codec import esc, payload_of, unesc


# never a generic plan for a filtered statement (psycopg prepares a statement run 5 times, PostgreSQL may then plan
# it for any value): the value decides between the payload index and a scan (1 % and 50 % need different plans)
CUSTOM_PLAN = sql.SQL("SET LOCAL plan_cache_mode = force_custom_plan")


def payload_expr(key: str) -> sql.Composable:
    """``(payload->>'key')`` for a key an index can have (`payload_index.KEY`: letters, digits, '_', '-'): the
    expression the index is built on and a filter compares."""
    assert KEY.fullmatch(key), key
    return sql.SQL("(payload->>{})").format(sql.Literal(key))


def filter_where(col: sql.Composable, filter: dict[str, str]) -> tuple[sql.Composable, dict[str, Any]]:
    """``col IS NOT NULL AND (payload->>'k') = %(fv0)s AND …`` and its parameters (any other key, which no index
    can have, travels as a parameter too)."""
    conds: list[sql.Composable] = [sql.SQL("{} IS NOT NULL").format(col)]
    names: dict[str, Any] = {}
    for i, (key, value) in enumerate(filter.items()):
        expr = payload_expr(key) if KEY.fullmatch(key) else sql.SQL("(payload->>{})").format(sql.Placeholder(f"fk{i}"))
        if not KEY.fullmatch(key):
            names[f"fk{i}"] = esc(key)
        conds.append(sql.SQL("{} = {}").format(expr, sql.Placeholder(f"fv{i}")))
        names[f"fv{i}"] = esc(value)
    return sql.SQL(" AND ").join(conds), names


def index_name(store: Any, key: str) -> str:
    name = f"rs_{store.name}_p_{key}"
    return name if len(name) <= 63 else f"{name[:50]}_{hashlib.sha1(name.encode()).hexdigest()[:12]}"


def index_payload(store: Any, keys: Sequence[str]) -> None:
    """A btree expression index per key (those that exist are kept), then ANALYZE: the planner's statistics on the
    indexed expressions tell it how selective each value is."""
    with store._conn() as conn:
        new = [k for k in keys if index_name(store, k) not in store._catalog_at(conn).indexes]
        for key in new:
            conn.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
                sql.Identifier(index_name(store, key)), store._t(), payload_expr(key)))
        if new:
            store._bump(conn)  # the catalog (its indexes) changed: every store re-reads it
    with store._conn(tx=False) as conn:
        conn.execute(sql.SQL("ANALYZE {}").format(store._t()))
    store._forget_catalog()


def matching(conn: Any, store: Any, where: sql.Composable, names: dict[str, Any], limit: int) -> int:
    """How many rows pass `where`, counted up to `limit` (with the payload index where there is one)."""
    stmt = sql.SQL("SELECT count(*) FROM (SELECT 1 FROM {} WHERE {} LIMIT %(lim)s) m").format(store._t(), where)
    return int(conn.execute(stmt, {**names, "lim": int(limit)}).fetchone()[0])


def ann_filtered(store: Any, col: sql.Composable, queries: np.ndarray, k: int, where: sql.Composable,
                 names: dict[str, Any], spec: Any) -> list[list[tuple[str, float, dict]]]:
    """A filtered search of an HNSW or IVF-Flat slot: exact over the matching rows when few match, else the index
    walked with an iterative scan (HNSW in strict order; ivfflat has only the relaxed one: its hits are sorted here)."""
    from pgvector import Vector
    from psycopg.types.string import TextLoader

    dist = sql.SQL("{} <=> %(q)s").format(col)
    out = []
    with store._conn() as conn:
        conn.execute(CUSTOM_PLAN)
        exact = exact_plan(matching(conn, store, where, names, EXACT_ROWS + 1))
        if exact:  # no index scans: the vector index cannot take the ORDER BY; the payload index is a bitmap scan
            conn.execute(sql.SQL("SET LOCAL enable_indexscan = off"))
        elif spec.kind == "ivfflat":
            conn.execute(sql.SQL("SET LOCAL ivfflat.probes = {}").format(sql.Literal(int(spec.nprobe))))
            conn.execute(sql.SQL("SET LOCAL ivfflat.iterative_scan = relaxed_order"))
        else:
            ef = min(max(spec.ef or 128, 2 * k), 1000)
            conn.execute(sql.SQL("SET LOCAL hnsw.ef_search = {}").format(sql.Literal(ef)))
            conn.execute(sql.SQL("SET LOCAL hnsw.iterative_scan = strict_order"))
        stmt = sql.SQL("SELECT {}, payload, 1 - ({}) AS s FROM {} WHERE {} ORDER BY {} LIMIT %(k)s").format(
            store._hit_id, dist, store._t(), where, dist)
        cur = conn.cursor()
        cur.adapters.register_loader("jsonb", TextLoader)
        for q in np.asarray(queries, np.float32):
            rows = cur.execute(stmt, {"q": Vector(q), "k": int(k), **names}).fetchall()
            hits = [(unesc(r[0]) if isinstance(r[0], str) else str(r[0]), float(r[2]), payload_of(r[1])) for r in rows]
            out.append(sorted(hits, key=lambda h: (-h[1], h[0])))  # relaxed order re-sorted; ties: the lower id first
    return out
