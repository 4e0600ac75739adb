"""PostgreSQL + pgvector backend: one table per collection, metadata in ``repspace_collections``.

Every statement is parameterised (values travel as bind parameters or binary ``COPY``; every table and column name,
the fixed tables' included, is composed with ``psycopg.sql.Identifier``). Each write is one transaction that also
bumps the collection's version counter, so readers see whole commits and caches know when to refresh.

Many callers: a store serves its callers through a bounded connection pool (`pg_pool.py`). Catalog facts
(the vector columns, their dimensions, the indexes) are read once per collection version, not on every
operation. Rows come back in binary, converted per column (`pg_codec.py`, which also escapes NUL).

The metadata carries a ``revision`` (in its JSON; 0 for collections made before revisions existed):
``write_meta(meta, expected)`` is a compare-and-set that writes only while the stored revision is still
``expected`` and raises ``ConcurrentChangeError`` otherwise.

Index specs are pushed down where pgvector can (the indexes are built by ``optimize``: `pg_index.py`): ``HNSWm`` = an
HNSW index (cosine), ``binary+rescore:R`` = an HNSW index on ``binary_quantize(v)::bit(d)`` (Hamming) with an exact
re-rank of the top R, ``funnel:a/…/d[:K]`` = an HNSW index on the half-precision prefix ``subvector(v, 1, a)`` for
the shortlist of K, re-ranked by each longer prefix and finally the whole vector. ``Flat`` is an exact scan. ``int8``
has no pgvector type and goes through repspace's faiss layer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np
import psycopg
import pyarrow as pa
from psycopg import sql

from repspace.collections.pg_codec import (Field, binary_copy, jsonb_field, null_field, payload_of, payloads_out,
                                           strings_in, strings_out, text_field, unesc, vector_field, vectors_out)
from repspace.collections.pg_pool import Connections
from repspace.collections.store import BASE_COLUMNS, Store, vectors_of
from repspace.collections.uri import redact
from repspace.errors import CollectionNotFoundError, ConcurrentChangeError, OutputExistsError

META_TABLE = "repspace_collections"
BLOB_TABLE = "repspace_blobs"

_META = sql.Identifier(META_TABLE)
_BLOBS = sql.Identifier(BLOB_TABLE)
_SQL = {
    "has_vector": sql.SQL("SELECT 1 FROM pg_extension WHERE extname = 'vector'"),
    "create_vector": sql.SQL("CREATE EXTENSION IF NOT EXISTS vector"),
    "create_meta": sql.SQL("CREATE TABLE IF NOT EXISTS {} (name text PRIMARY KEY, meta jsonb NOT NULL, "
                           "version bigint NOT NULL DEFAULT 0)").format(_META),
    "create_blobs": sql.SQL("CREATE TABLE IF NOT EXISTS {} (collection text, name text, data bytea NOT NULL, "
                            "PRIMARY KEY (collection, name))").format(_BLOBS),
    "exists": sql.SQL("SELECT 1 FROM {} WHERE name = %s").format(_META),
    "meta": sql.SQL("SELECT meta, version FROM {} WHERE name = %s").format(_META),
    "version": sql.SQL("SELECT version FROM {} WHERE name = %s").format(_META),
    "revision": sql.SQL("SELECT COALESCE((meta->>'revision')::bigint, 0) FROM {} WHERE name = %s").format(_META),
    "insert_meta": sql.SQL("INSERT INTO {} (name, meta) VALUES (%s, %s)").format(_META),
    "cas_meta": sql.SQL("UPDATE {} SET meta = %s, version = version + 1 WHERE name = %s "
                        "AND COALESCE((meta->>'revision')::bigint, 0) = %s RETURNING version").format(_META),
    "bump": sql.SQL("UPDATE {} SET version = version + 1 WHERE name = %s RETURNING version").format(_META),
    "delete_meta": sql.SQL("DELETE FROM {} WHERE name = %s").format(_META),
    "put_blob": sql.SQL("INSERT INTO {} (collection, name, data) VALUES (%s, %s, %s) "
                        "ON CONFLICT (collection, name) DO UPDATE SET data = EXCLUDED.data").format(_BLOBS),
    "get_blob": sql.SQL("SELECT data FROM {} WHERE collection = %s AND name = %s").format(_BLOBS),
    "delete_blobs": sql.SQL("DELETE FROM {} WHERE collection = %s").format(_BLOBS),
    "lock_name": sql.SQL("SELECT pg_advisory_xact_lock(hashtext(%s))"),
    "regclass": sql.SQL("SELECT to_regclass(quote_ident(%s))"),
    "vector_columns": sql.SQL(
        "SELECT a.attname, a.atttypmod FROM pg_attribute a JOIN pg_type t ON a.atttypid = t.oid "
        "WHERE a.attrelid = quote_ident(%s)::regclass AND a.attnum > 0 AND NOT a.attisdropped "
        "AND t.typname = 'vector'"),
    "indexes": sql.SQL("SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                       "WHERE i.indrelid = quote_ident(%s)::regclass"),
    "iterative_scan": sql.SQL("SET LOCAL hnsw.iterative_scan = relaxed_order"),
    "no_indexscan": sql.SQL("SET LOCAL enable_indexscan = off"),
}


@dataclass
class _Catalog:
    """What PostgreSQL's catalog says about a collection's table (read once per collection version)."""

    columns: dict[str, int]  # vector column -> dimension
    indexes: set[str] = field(default_factory=set)


def _prepare_database(conn) -> None:
    """The pgvector extension and the fixed tables (once per pool)."""
    if not conn.execute(_SQL["has_vector"]).fetchone():
        conn.execute(_SQL["create_vector"])
    conn.execute(_SQL["create_meta"])
    conn.execute(_SQL["create_blobs"])


class PgStore(Store):
    backend = "pgvector"
    reindex_during_backfill = False  # pgvector maintains its indexes; a new slot's is built once, at the end
    _hit_id, _hit_payload = sql.SQL("id"), sql.SQL("payload")  # what a Flat/HNSW search selects per hit (pg_attach)

    @classmethod
    def from_uri(cls, uri) -> "PgStore":
        return cls(uri.dsn, uri.name)

    def attached_record(self) -> dict[str, Any] | None:
        with self._conn(tx=False) as conn:
            row = conn.execute(_SQL["meta"], (self.name,)).fetchone()
        return (row[0] or {}).get("attached") if row else None

    def __init__(self, dsn: str, name: str, *, pool_min: int = 1, pool_max: int | None = None,
                 pool_timeout: float = 30.0) -> None:
        self.dsn, self.name = dsn, name
        self.table_name = f"rs_{name}"
        self.connections = Connections(dsn, name, prepare=_prepare_database, pool_min=pool_min, pool_max=pool_max,
                                 pool_timeout=pool_timeout)
        self._catalog: tuple[int, _Catalog] | None = None  # (collection version it was read at, facts)

    @property
    def pool_max(self) -> int:
        return self.connections.pool_max

    # ----------------------------------------------------------- plumbing
    def _conn(self, tx: bool = True):
        return self.connections.connection(tx)

    def _t(self):
        return sql.Identifier(self.table_name)

    def _bump(self, conn) -> int:
        row = conn.execute(_SQL["bump"], (self.name,)).fetchone()
        return -1 if row is None else int(row[0])

    def close(self) -> None:
        self.connections.close()

    # ------------------------------------------------------------ catalog
    def _catalog_at(self, conn, version: int | None = None) -> _Catalog:
        """The table's vector columns and indexes, read again only when the collection's version moved."""
        if version is None:
            row = conn.execute(_SQL["version"], (self.name,)).fetchone()
            version = -1 if row is None else int(row[0])
        cached = self._catalog
        if cached is not None and cached[0] == version and version >= 0:
            return cached[1]
        cols = {r[0]: int(r[1]) for r in conn.execute(_SQL["vector_columns"], (self.table_name,)).fetchall()}
        idx = {r[0] for r in conn.execute(_SQL["indexes"], (self.table_name,)).fetchall()}
        cat = _Catalog(cols, idx)
        self._catalog = (version, cat)
        return cat

    def _advance_catalog(self, before: int, after: int) -> None:
        """Our own committed write moved the version from `before` to `after` (= before + 1) without touching the
        schema: the catalog facts read at `before` hold at `after` too."""
        cached = self._catalog
        if cached is not None and cached[0] == before and after == before + 1:
            self._catalog = (after, cached[1])

    def _forget_catalog(self) -> None:
        self._catalog = None

    def _dims(self, conn) -> dict[str, int]:
        return self._catalog_at(conn).columns

    # ------------------------------------------------------------ metadata
    def exists(self) -> bool:
        with self._conn(tx=False) as conn:
            return conn.execute(_SQL["exists"], (self.name,)).fetchone() is not None

    def create(self, meta: dict[str, Any], columns: dict[str, int]) -> None:
        """Create the table and store `meta` at revision 1 (set in `meta` too)."""
        stored = {**meta, "revision": 1}
        with self._conn() as conn:
            conn.execute(_SQL["lock_name"], (f"repspace:{self.name}",))
            if conn.execute(_SQL["exists"], (self.name,)).fetchone():
                raise OutputExistsError(f"a collection named {self.name!r} already exists in this database")
            cols = [sql.SQL("id text PRIMARY KEY"), sql.SQL("text text"), sql.SQL("payload jsonb NOT NULL DEFAULT '{}'")]
            cols += [sql.SQL("{} vector({})").format(sql.Identifier(c), sql.Literal(int(d))) for c, d in columns.items()]
            if conn.execute(_SQL["regclass"], (self.table_name,)).fetchone()[0] is not None:
                raise OutputExistsError(f"table {self.table_name!r} exists in this database but is no repspace "
                                        "collection; choose another name")
            conn.execute(sql.SQL("CREATE TABLE {} ({})").format(self._t(), sql.SQL(", ").join(cols)))
            conn.execute(_SQL["insert_meta"], (self.name, json.dumps(stored)))
        meta["revision"] = 1
        self._forget_catalog()

    def _not_found(self) -> CollectionNotFoundError:
        return CollectionNotFoundError(f"no collection named {self.name!r} in {redact(self.dsn)} "
                                       "(create it with `repspace collection create`)")

    def read_meta(self) -> dict[str, Any]:
        """The metadata, with its `revision` (0 for a collection stored before revisions existed)."""
        with self._conn(tx=False) as conn:
            row = conn.execute(_SQL["meta"], (self.name,)).fetchone()
        if row is None:
            raise self._not_found()
        meta = row[0]
        meta.setdefault("revision", 0)
        return meta

    def write_meta(self, meta: dict[str, Any], expected: int) -> dict[str, Any]:
        """Replace the metadata atomically, as revision `expected` + 1, only if the stored revision is still
        `expected` (else ConcurrentChangeError, nothing written). On success `meta["revision"]` is the new revision;
        returns `meta`."""
        new = int(expected) + 1
        with self._conn() as conn:
            row = conn.execute(_SQL["cas_meta"], (json.dumps({**meta, "revision": new}), self.name, int(expected))).fetchone()
            if row is None:
                now = conn.execute(_SQL["revision"], (self.name,)).fetchone()
                if now is None:
                    raise self._not_found()
                raise ConcurrentChangeError(
                    f"the metadata of collection {self.name!r} changed since it was read (revision {int(expected)}, "
                    f"now {int(now[0])}); nothing was written: re-read and retry")
            version = int(row[0])
        self._advance_catalog(version - 1, version)
        meta["revision"] = new
        return meta

    def columns(self) -> list[str]:
        with self._conn(tx=False) as conn:
            return sorted(self._catalog_at(conn).columns)

    def add_vector_column(self, column: str, dim: int) -> None:
        with self._conn() as conn:
            conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} vector({})").format(
                self._t(), sql.Identifier(column), sql.Literal(int(dim))))
            self._bump(conn)  # other stores' catalog facts are keyed by the version
        self._forget_catalog()

    def drop_vector_column(self, column: str) -> None:
        with self._conn() as conn:
            conn.execute(sql.SQL("ALTER TABLE {} DROP COLUMN IF EXISTS {}").format(self._t(), sql.Identifier(column)))
            self._bump(conn)
        self._forget_catalog()

    # --------------------------------------------------------------- writes
    def _copy_rows(self, conn, table: sql.Composable, names: list[str], columns: list[Field]) -> None:
        """A binary COPY of columns already in their wire format (`pg_codec.binary_copy`)."""
        stmt = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT BINARY)").format(
            table, sql.SQL(", ").join(map(sql.Identifier, names)))
        with conn.cursor().copy(stmt) as copy:
            for chunk in binary_copy(columns):
                copy.write(chunk)

    def upsert(self, rows: pa.Table) -> None:
        if rows.num_rows == 0:
            return
        n = rows.num_rows
        ids = text_field(rows.column("id").to_pylist())
        texts = text_field(rows.column("text").to_pylist()) if "text" in rows.column_names else null_field(n)
        payloads = jsonb_field(rows.column("payload").to_pylist() if "payload" in rows.column_names else [None] * n)
        given = [c for c in rows.column_names if c not in BASE_COLUMNS]
        vecs: dict[str, Field] = {}
        for c in given:
            dim = rows.schema.field(c).type.list_size
            valid, v = vectors_of(rows.column(c), dim)
            vecs[c] = vector_field(valid, v, dim)

        def copy_into(conn, table: sql.Composable, cols: list[str]) -> None:
            self._copy_rows(conn, table, ["id", "text", "payload"] + cols,
                            [ids, texts, payloads] + [vecs[c] for c in cols])

        with self._conn() as conn:
            # fast path: new ids go straight in by COPY (the primary key refuses any id that exists, inside a
            # savepoint); otherwise COPY to a temporary table and INSERT … ON CONFLICT DO UPDATE, which must name
            # every vector column (the catalog facts, read once per collection version)
            conflict = True
            try:
                with conn.transaction():
                    copy_into(conn, self._t(), given)
                after = self._bump(conn)
                conflict = False
            except psycopg.errors.UniqueViolation:
                pass
            except psycopg.errors.UndefinedColumn:  # a slot dropped meanwhile: its vectors have nowhere to go
                self._forget_catalog()
                conflict = None
            if conflict is not False:
                vcols = self._dims(conn)
                cols = [c for c in given if c in vcols]
                if conflict is None:
                    try:
                        with conn.transaction():
                            copy_into(conn, self._t(), cols)
                        after = self._bump(conn)
                        conflict = False
                    except psycopg.errors.UniqueViolation:
                        pass
            if conflict is not False:
                tmp = sql.Identifier("_rs_up")
                conn.execute(sql.SQL("CREATE TEMP TABLE {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP").format(
                    tmp, self._t()))
                copy_into(conn, tmp, cols)
                sets = sql.SQL(", ").join(sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c))
                                          for c in ["text", "payload", *vcols])
                conn.execute(sql.SQL("INSERT INTO {} SELECT * FROM {} ON CONFLICT (id) DO UPDATE SET {}").format(
                    self._t(), tmp, sets))
                after = self._bump(conn)
        self._advance_catalog(after - 1, after)

    def update_vectors(self, column: str, ids: Sequence[str], vectors: np.ndarray,
                       texts: Sequence[str] | None = None) -> None:
        if len(ids) == 0:
            return
        v = np.asarray(vectors, np.float32)
        dim = int(v.shape[1])
        tx = text_field(texts) if texts is not None else null_field(len(ids))
        ids_in = text_field(ids)
        blobs = vector_field(np.ones(len(v), bool), v, dim)
        with self._conn() as conn:
            conn.execute(sql.SQL("CREATE TEMP TABLE {} (id text, v vector({}), t text) ON COMMIT DROP").format(
                sql.Identifier("_rs_vec"), sql.Literal(dim)))
            self._copy_rows(conn, sql.Identifier("_rs_vec"), ["id", "v", "t"], [ids_in, blobs, tx])
            cond = sql.SQL(" AND t.text IS NOT DISTINCT FROM u.t") if texts is not None else sql.SQL("")
            conn.execute(sql.SQL("UPDATE {} t SET {} = u.v FROM {} u WHERE t.id = u.id{}").format(
                self._t(), sql.Identifier(column), sql.Identifier("_rs_vec"), cond))
            after = self._bump(conn)
        self._advance_catalog(after - 1, after)

    def delete(self, ids: Sequence[str]) -> int:
        if len(ids) == 0:
            return 0
        with self._conn() as conn:
            cur = conn.execute(sql.SQL("DELETE FROM {} WHERE id = ANY(%s)").format(self._t()), (strings_in(list(ids)),))
            n = cur.rowcount
            after = self._bump(conn)
        self._advance_catalog(after - 1, after)
        return n

    # ---------------------------------------------------------------- reads
    def _select(self, columns: Sequence[str]) -> sql.Composable:
        """Columns in their binary transfer form: vectors as pgvector's wire bytes, payloads as jsonb's text."""
        out = []
        for c in columns:
            if c in ("id", "text"):
                out.append(sql.Identifier(c))
            elif c == "payload":
                out.append(sql.SQL("{}::text").format(sql.Identifier(c)))
            else:
                out.append(sql.SQL("vector_send({})").format(sql.Identifier(c)))
        return sql.SQL(", ").join(out)

    def _to_arrow(self, rows: list[tuple], columns: Sequence[str], conn) -> pa.Table:
        """Rows of `_select(columns)` -> an Arrow table: one list per column handed to Arrow, vectors from one buffer."""
        cols = list(zip(*rows)) if rows else [()] * len(columns)
        data = {}
        for c, vals in zip(columns, cols):
            if c in ("id", "text"):
                data[c] = strings_out(vals)
            elif c == "payload":
                data[c] = payloads_out(vals)
            else:
                data[c] = vectors_out(vals, lambda c=c: self._dims(conn)[c])
        return pa.table(data)

    def fetch(self, ids: Sequence[str], columns: Sequence[str]) -> pa.Table:
        with self._conn(tx=False) as conn:
            rows = (conn.cursor(binary=True).execute(
                sql.SQL("SELECT {} FROM {} WHERE id = ANY(%s)").format(self._select(columns), self._t()),
                (strings_in([str(i) for i in ids]),)).fetchall() if len(ids) else [])
            return self._to_arrow(rows, columns, conn)

    def count(self, column: str | None = None) -> int:
        with self._conn(tx=False) as conn:
            where = sql.SQL("") if column is None else sql.SQL(" WHERE {} IS NOT NULL").format(sql.Identifier(column))
            return int(conn.execute(sql.SQL("SELECT count(*) FROM {}{}").format(self._t(), where)).fetchone()[0])

    def count_without_text(self) -> int:
        return self.count(None) - self.count("text")

    def scan(self, columns: Sequence[str], batch_rows: int = 65536) -> Iterator[pa.RecordBatch]:
        with self._conn() as conn, conn.cursor(name="rs_scan", binary=True) as cur:
            cur.itersize = batch_rows
            cur.execute(sql.SQL("SELECT {} FROM {} ORDER BY id").format(self._select(columns), self._t()))
            while True:
                rows = cur.fetchmany(batch_rows)
                if not rows:
                    break
                yield from self._to_arrow(rows, columns, conn).to_batches()

    def version(self) -> Any:
        with self._conn(tx=False) as conn:
            row = conn.execute(_SQL["version"], (self.name,)).fetchone()
        return None if row is None else int(row[0])

    def put_blob(self, name: str, data: bytes) -> None:
        with self._conn() as conn:
            conn.execute(_SQL["put_blob"], (self.name, name, data))

    def get_blob(self, name: str) -> bytes | None:
        with self._conn(tx=False) as conn:
            row = conn.execute(_SQL["get_blob"], (self.name, name)).fetchone()
        return None if row is None else bytes(row[0])

    def drop(self) -> None:
        with self._conn() as conn:
            conn.execute(_SQL["delete_blobs"], (self.name,))
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self._t()))
            conn.execute(_SQL["delete_meta"], (self.name,))
        self._forget_catalog()

    # --------------------------------------------------------- native search
    def optimize(self, rebuild: bool = False, max_segments: int | None = None) -> dict[str, str]:
        """Build each slot's pgvector index that is missing (`pg_index.py`: after the rows are in, in parallel)."""
        from repspace.collections.pg_index import build
        from repspace.collections.slots import fit_spec
        from repspace.index.spec import parse_spec

        spec = parse_spec(self.read_meta().get("spec") or "Flat")
        with self._conn(tx=False) as conn:
            columns = dict(self._catalog_at(conn).columns)
        return {c: build(self, c, d, fit_spec(spec, d)) for c, d in columns.items()}

    def native_fused(self, spec: Any) -> bool:
        return self.live or spec.kind in ("hnsw", "ivfflat", "binary", "funnel")  # pgvector's index serves each slot

    def _search_statement(self, conn, column: str, dim: int, k: int, spec: Any, where: sql.Composable,
                          filtered: bool) -> sql.Composable:
        """The SQL of one search of `column` by `spec` (`conn`: the search's own, where a funnel's shortlist asks
        which index the slot has)."""
        col = sql.Identifier(column)
        full = sql.SQL("{} <=> %(q)s").format(col)
        if spec.kind in ("flat", "hnsw", "ivfflat"):
            return sql.SQL("SELECT {}, {}, 1 - ({}) AS s FROM {} WHERE {} ORDER BY {} LIMIT %(k)s").format(
                self._hit_id, self._hit_payload if not filtered else sql.SQL("payload"), full, self._t(), where, full)
        elif spec.kind == "binary":
            r = max(int(spec.rescore), k)
            ham = sql.SQL("binary_quantize({})::bit({}) <~> binary_quantize(%(q)s)").format(col, sql.Literal(int(dim)))
            return sql.SQL("SELECT id, payload, 1 - ({full}) AS s FROM (SELECT id, payload, {col} FROM {t} "
                           "WHERE {w} ORDER BY {ham} LIMIT {r}) c ORDER BY {full} LIMIT %(k)s").format(
                full=full, col=col, t=self._t(), w=where, ham=ham, r=sql.Literal(r))
        else:  # funnel: shortlist on the first prefix (HNSW expression index), re-rank by longer prefixes
            stages = list(spec.stages)
            keep = max(int(spec.shortlist), k)
            a = stages[0]
            from repspace.collections.pg_index import funnel_shortlist

            pre = funnel_shortlist(self, conn, column, a)
            inner = sql.SQL("SELECT id, payload, {col} FROM {t} WHERE {w} ORDER BY {pre} LIMIT {n}").format(
                col=col, t=self._t(), w=where, pre=pre, n=sql.Literal(keep))
            for j, d in enumerate(stages[1:-1], start=1):
                keep = max(k, keep // 2)
                dist = sql.SQL("subvector({}, 1, {}) <=> {}").format(col, sql.Literal(d), sql.Placeholder(f"q{d}"))
                inner = sql.SQL("SELECT id, payload, {col} FROM ({inner}) {alias} ORDER BY {dist} LIMIT {n}").format(
                    col=col, inner=inner, alias=sql.Identifier(f"c{j}"), dist=dist, n=sql.Literal(keep))
            return sql.SQL("SELECT id, payload, 1 - ({full}) AS s FROM ({inner}) f ORDER BY {full} "
                           "LIMIT %(k)s").format(full=full, inner=inner)

    def native_search(self, column: str, dim: int, queries: np.ndarray, k: int, filter: dict[str, str],
                      spec: Any) -> list[list[tuple[str, float, dict]]] | None:
        if spec.kind not in ("flat", "hnsw", "ivfflat", "binary", "funnel"):
            return None
        from repspace.collections.pg_filter import CUSTOM_PLAN, ann_filtered, filter_where

        col = sql.Identifier(column)
        where, names = filter_where(col, filter)
        if filter and spec.kind in ("hnsw", "ivfflat"):  # few matches: exact over them; many: the index, iterative
            return ann_filtered(self, col, queries, k, where, names, spec)
        from pgvector import Vector
        from psycopg.types.string import TextLoader

        out = []
        with self._conn() as conn:
            stmt = self._search_statement(conn, column, dim, k, spec, where, bool(filter))
            if spec.kind in ("hnsw", "binary", "funnel"):
                ef = max(getattr(spec, "ef", 0) or 128, k, int(getattr(spec, "rescore", 0) or 0),
                         int(getattr(spec, "shortlist", 0) or 0))
                conn.execute(sql.SQL("SET LOCAL hnsw.ef_search = {}").format(sql.Literal(min(ef, 1000))))
                if filter:
                    conn.execute(_SQL["iterative_scan"])
            elif spec.kind == "ivfflat":  # (filtered: `ann_filtered`)
                conn.execute(sql.SQL("SET LOCAL ivfflat.probes = {}").format(sql.Literal(int(spec.nprobe))))
            else:
                conn.execute(_SQL["no_indexscan"])
            if filter:  # never a generic plan (psycopg prepares repeated statements): 1 % and 50 % need different plans
                conn.execute(CUSTOM_PLAN)
            cur = conn.cursor()
            # payloads come back as jsonb's text (selecting payload::text would convert every row before the sort)
            cur.adapters.register_loader("jsonb", TextLoader)
            for q in np.asarray(queries, np.float32):
                bind = {"q": Vector(q), "k": int(k), **names}
                if spec.kind == "funnel":
                    for d in spec.stages[:-1]:
                        bind[f"q{d}"] = Vector(q[:d])
                rows = cur.execute(stmt, bind).fetchall()
                out.append([(unesc(r[0]) if isinstance(r[0], str) else str(r[0]), float(r[2]), payload_of(r[1]))
                            for r in rows])
        return out
