"""PostgreSQL + pgvector backend: one table per collection, metadata in ``repspace_collections``.

Every statement is parameterised (values travel as bind parameters or binary ``COPY``; table and
column names are composed with ``psycopg.sql.Identifier`` from validated names). Each write is one
transaction that also bumps the collection's version counter, so readers see whole commits and
caches know when to refresh.

PostgreSQL ``text``/``jsonb`` cannot hold NUL characters; ids, texts and payload strings are stored
with a reversible escape (``\\`` -> ``\\\\``, NUL -> ``\\0``), applied to filter values too, so every
value round-trips unchanged and filters still compare exactly.

Index specs are pushed down where pgvector can: ``HNSWm`` = an HNSW index (cosine), ``binary+rescore:R``
= an HNSW index on ``binary_quantize(v)::bit(d)`` (Hamming) with an exact re-rank of the top R,
``funnel:a/…/d[:K]`` = an HNSW index on the normalised prefix ``subvector(v, 1, a)`` for the shortlist
of K, re-ranked by each longer prefix and finally the whole vector. ``Flat`` is an exact scan.
``int8`` has no pgvector type and goes through repspace's faiss layer.
"""

from __future__ import annotations

import json
import re
import threading
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import numpy as np
import pyarrow as pa

from repspace.collections.store import Store, vector_array, vectors_of
from repspace.collections.uri import password_of, redact
from repspace.errors import CollectionNotFoundError, ConcurrentChangeError, OutputExistsError, StoreUnavailableError

META_TABLE = "repspace_collections"
BLOB_TABLE = "repspace_blobs"
_ESC = re.compile(r"\\\\|\\0")


def esc(s: str | None) -> str | None:
    if s is None:
        return None
    return s.replace("\\", "\\\\").replace("\x00", "\\0") if ("\\" in s or "\x00" in s) else s


def unesc(s: str | None) -> str | None:
    if s is None or "\\" not in s:
        return s
    return _ESC.sub(lambda m: "\\" if m.group(0) == "\\\\" else "\x00", s)


def _map_strings(x: Any, f) -> Any:
    """`f` applied to every string (keys too) of a JSON value."""
    if isinstance(x, str):
        return f(x)
    if isinstance(x, dict):
        return {f(k): _map_strings(v, f) for k, v in x.items()}
    if isinstance(x, list):
        return [_map_strings(v, f) for v in x]
    return x


def esc_json(x: Any) -> Any:
    return _map_strings(x, esc)


def unesc_json(x: Any) -> Any:
    return _map_strings(x, unesc)


def _jsonb(text: str):
    """A payload's JSON text as a jsonb parameter: as it is unless it holds a backslash (then NUL or a backslash
    may be inside a string, which the reversible escape must rewrite)."""
    from psycopg.types.json import Jsonb

    if "\\" not in text:
        return Jsonb(None, dumps=lambda _o, t=text: t)
    return Jsonb(esc_json(json.loads(text)))


class PgStore(Store):
    backend = "pgvector"

    def __init__(self, dsn: str, name: str) -> None:
        self.dsn, self.name = dsn, name
        self._conn = None
        self._lock = threading.RLock()
        self.table_name = f"rs_{name}"

    # ----------------------------------------------------------- plumbing
    def _scrub(self, text: str) -> str:
        pw = password_of(self.dsn)
        text = redact(text)
        return text.replace(pw, "***") if pw else text

    def _connect(self):
        if self._conn is None or self._conn.closed:
            import psycopg
            from pgvector.psycopg import register_vector

            try:
                conn = psycopg.connect(self.dsn, connect_timeout=10)
            except Exception as e:  # noqa: BLE001 - connection failures of every kind
                raise StoreUnavailableError(f"cannot connect to PostgreSQL at {redact(self.dsn)}: "
                                            f"{self._scrub(str(e)).strip()}") from None
            try:
                with conn.transaction():
                    has = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone()
                    if not has:
                        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                    conn.execute(f"CREATE TABLE IF NOT EXISTS {META_TABLE} (name text PRIMARY KEY, meta jsonb NOT NULL, "
                                 "version bigint NOT NULL DEFAULT 0)")
                    conn.execute(f"CREATE TABLE IF NOT EXISTS {BLOB_TABLE} (collection text, name text, data bytea NOT NULL, "
                                 "PRIMARY KEY (collection, name))")
                register_vector(conn)
            except Exception as e:  # noqa: BLE001
                conn.close()
                raise StoreUnavailableError(f"PostgreSQL at {redact(self.dsn)} cannot host collections (the pgvector "
                                            f"extension is needed): {self._scrub(str(e)).strip()}") from None
            self._conn = conn
        return self._conn

    @contextmanager
    def _tx(self):
        with self._lock:
            conn = self._connect()
            with conn.transaction():
                yield conn

    def _t(self):
        from psycopg import sql

        return sql.Identifier(self.table_name)

    def _bump(self, conn) -> None:
        conn.execute(f"UPDATE {META_TABLE} SET version = version + 1 WHERE name = %s", (self.name,))

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # ------------------------------------------------------------ metadata
    def exists(self) -> bool:
        with self._tx() as conn:
            return conn.execute(f"SELECT 1 FROM {META_TABLE} WHERE name = %s", (self.name,)).fetchone() is not None

    def create(self, meta: dict[str, Any], columns: dict[str, int]) -> None:
        from psycopg import sql

        with self._tx() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"repspace:{self.name}",))
            if conn.execute(f"SELECT 1 FROM {META_TABLE} WHERE name = %s", (self.name,)).fetchone():
                raise OutputExistsError(f"a collection named {self.name!r} already exists in this database")
            cols = [sql.SQL("id text PRIMARY KEY"), sql.SQL("text text"), sql.SQL("payload jsonb NOT NULL DEFAULT '{}'")]
            cols += [sql.SQL("{} vector({})").format(sql.Identifier(c), sql.Literal(int(d))) for c, d in columns.items()]
            if conn.execute("SELECT to_regclass(quote_ident(%s))", (self.table_name,)).fetchone()[0] is not None:
                raise OutputExistsError(f"table {self.table_name!r} exists in this database but is no repspace "
                                        "collection; choose another name")
            conn.execute(sql.SQL("CREATE TABLE {} ({})").format(self._t(), sql.SQL(", ").join(cols)))
            conn.execute(f"INSERT INTO {META_TABLE} (name, meta) VALUES (%s, %s)",
                         (self.name, json.dumps({**meta, "revision": 1})))

    def read_meta(self) -> dict[str, Any]:
        with self._tx() as conn:
            row = conn.execute(f"SELECT meta FROM {META_TABLE} WHERE name = %s", (self.name,)).fetchone()
        if row is None:
            raise CollectionNotFoundError(f"no collection named {self.name!r} in {redact(self.dsn)} "
                                          "(create it with `repspace collection create`)")
        meta = row[0]
        meta["revision"] = int(meta.get("revision") or 0)
        return meta

    def write_meta(self, meta: dict[str, Any], expected: int) -> dict[str, Any]:
        doc = {**meta, "revision": expected + 1}
        with self._tx() as conn:
            cur = conn.execute(f"UPDATE {META_TABLE} SET meta = %s, version = version + 1 WHERE name = %s "
                               "AND COALESCE((meta->>'revision')::bigint, 0) = %s", (json.dumps(doc), self.name, expected))
            if cur.rowcount != 1:
                row = conn.execute(f"SELECT COALESCE((meta->>'revision')::bigint, 0) FROM {META_TABLE} WHERE name = %s",
                                   (self.name,)).fetchone()
                raise ConcurrentChangeError(f"the metadata of collection {self.name!r} changed since it was read "
                                            f"(revision {expected}, now {row[0] if row else 'dropped'}); nothing was "
                                            "written: re-read and retry")
        return doc

    def add_vector_column(self, column: str, dim: int) -> None:
        from psycopg import sql

        with self._tx() as conn:
            conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} vector({})").format(
                self._t(), sql.Identifier(column), sql.Literal(int(dim))))

    def drop_vector_column(self, column: str) -> None:
        from psycopg import sql

        with self._tx() as conn:
            conn.execute(sql.SQL("ALTER TABLE {} DROP COLUMN IF EXISTS {}").format(self._t(), sql.Identifier(column)))
            self._bump(conn)

    def columns(self) -> list[str]:
        with self._tx() as conn:
            return sorted(self._vector_columns(conn))

    def _vector_columns(self, conn) -> dict[str, int]:
        rows = conn.execute(
            "SELECT a.attname, a.atttypmod FROM pg_attribute a JOIN pg_type t ON a.atttypid = t.oid "
            "WHERE a.attrelid = quote_ident(%s)::regclass AND a.attnum > 0 AND NOT a.attisdropped AND t.typname = 'vector'",
            (self.table_name,)).fetchall()
        return {r[0]: int(r[1]) for r in rows}

    # --------------------------------------------------------------- writes
    def _copy_rows(self, conn, tmp: str, names: list[str], types: list[str], rows: Iterator[tuple]) -> None:
        from psycopg import sql

        stmt = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT BINARY)").format(
            sql.Identifier(tmp), sql.SQL(", ").join(map(sql.Identifier, names)))
        with conn.cursor().copy(stmt) as copy:
            copy.set_types(types)
            for r in rows:
                copy.write_row(r)

    def upsert(self, rows: pa.Table) -> None:
        import psycopg
        from psycopg import sql
        from psycopg.types.json import Jsonb

        if rows.num_rows == 0:
            return
        with self._tx() as conn:
            vcols = self._vector_columns(conn)
            given = [c for c in rows.column_names if c in vcols]
            ids = [esc(x) for x in rows.column("id").to_pylist()]
            texts = [esc(x) for x in rows.column("text").to_pylist()] if "text" in rows.column_names else [None] * len(ids)
            empty = Jsonb({})
            payloads = ([_jsonb(p) if p and p != "{}" else empty for p in rows.column("payload").to_pylist()]
                        if "payload" in rows.column_names else [empty] * len(ids))
            vecs = {}
            for c in given:
                valid, v = vectors_of(rows.column(c), vcols[c])
                full: list[Any] = [None] * len(ids)
                for pos, row in zip(np.flatnonzero(valid), v):
                    full[pos] = row
                vecs[c] = full
            names = ["id", "text", "payload"] + given
            types = ["text", "text", "jsonb"] + ["vector"] * len(given)

            def rows():
                return ((ids[i], texts[i], payloads[i], *[vecs[c][i] for c in given]) for i in range(len(ids)))

            # fast path: new ids go straight in by COPY (the primary key refuses any id that exists, inside a
            # savepoint); otherwise COPY to a temporary table and INSERT … ON CONFLICT DO UPDATE
            try:
                with conn.transaction():
                    self._copy_rows(conn, self.table_name, names, types, rows())
                self._bump(conn)
                return
            except psycopg.errors.UniqueViolation:
                pass
            conn.execute(sql.SQL("CREATE TEMP TABLE _rs_up (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP").format(self._t()))
            self._copy_rows(conn, "_rs_up", names, types, rows())
            allc = ["text", "payload"] + list(vcols)
            sets = sql.SQL(", ").join(
                sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c)) for c in allc)
            conn.execute(sql.SQL("INSERT INTO {} SELECT * FROM _rs_up ON CONFLICT (id) DO UPDATE SET {}").format(
                self._t(), sets))
            self._bump(conn)

    def update_vectors(self, column: str, ids: Sequence[str], vectors: np.ndarray,
                       texts: Sequence[str] | None = None) -> None:
        from psycopg import sql

        if len(ids) == 0:
            return
        with self._tx() as conn:
            dim = self._vector_columns(conn)[column]
            conn.execute(sql.SQL("CREATE TEMP TABLE _rs_vec (id text, v vector({}), t text) ON COMMIT DROP").format(
                sql.Literal(dim)))
            tx = list(texts) if texts is not None else [None] * len(ids)
            self._copy_rows(conn, "_rs_vec", ["id", "v", "t"], ["text", "vector", "text"],
                            ((esc(i), np.asarray(v, np.float32), esc(x)) for i, v, x in zip(ids, vectors, tx)))
            cond = sql.SQL(" AND t.text IS NOT DISTINCT FROM u.t") if texts is not None else sql.SQL("")
            conn.execute(sql.SQL("UPDATE {} t SET {} = u.v FROM _rs_vec u WHERE t.id = u.id{}").format(
                self._t(), sql.Identifier(column), cond))
            self._bump(conn)

    def delete(self, ids: Sequence[str]) -> int:
        from psycopg import sql

        if len(ids) == 0:
            return 0
        with self._tx() as conn:
            cur = conn.execute(sql.SQL("DELETE FROM {} WHERE id = ANY(%s)").format(self._t()), ([esc(i) for i in ids],))
            n = cur.rowcount
            self._bump(conn)
        return n

    # ---------------------------------------------------------------- reads
    def _to_arrow(self, rows: list[tuple], columns: Sequence[str], vcols: dict[str, int]) -> pa.Table:
        data = {}
        for j, c in enumerate(columns):
            vals = [r[j] for r in rows]
            if c in vcols:
                valid = np.array([v is not None for v in vals], bool)
                arr = np.zeros((len(vals), vcols[c]), np.float32)
                for pos in np.flatnonzero(valid):
                    arr[pos] = np.asarray(vals[pos].to_numpy() if hasattr(vals[pos], "to_numpy") else vals[pos])
                va = vector_array(arr, vcols[c], len(vals))
                data[c] = pa.FixedSizeListArray.from_arrays(va.values, vcols[c], mask=pa.array(~valid)) if not valid.all() else va
            elif c == "payload":
                data[c] = pa.array([json.dumps(unesc_json(v), ensure_ascii=False, sort_keys=True) for v in vals], pa.string())
            else:
                data[c] = pa.array([unesc(v) for v in vals], pa.string())
        return pa.table(data)

    def _select(self, columns: Sequence[str]):
        from psycopg import sql

        return sql.SQL(", ").join(map(sql.Identifier, columns))

    def fetch(self, ids: Sequence[str], columns: Sequence[str]) -> pa.Table:
        from psycopg import sql

        with self._tx() as conn:
            vcols = self._vector_columns(conn)
            rows = conn.execute(sql.SQL("SELECT {} FROM {} WHERE id = ANY(%s)").format(self._select(columns), self._t()),
                                ([esc(i) for i in ids],)).fetchall() if len(ids) else []
        return self._to_arrow(rows, columns, vcols)

    def count(self, column: str | None = None) -> int:
        from psycopg import sql

        with self._tx() as conn:
            where = sql.SQL("") if column is None else sql.SQL(" WHERE {} IS NOT NULL").format(sql.Identifier(column))
            return int(conn.execute(sql.SQL("SELECT count(*) FROM {}{}").format(self._t(), where)).fetchone()[0])

    def scan(self, columns: Sequence[str], batch_rows: int = 65536) -> Iterator[pa.RecordBatch]:
        from psycopg import sql

        with self._tx() as conn:
            vcols = self._vector_columns(conn)
            with conn.cursor(name="rs_scan") as cur:
                cur.itersize = batch_rows
                cur.execute(sql.SQL("SELECT {} FROM {} ORDER BY id").format(self._select(columns), self._t()))
                while True:
                    rows = cur.fetchmany(batch_rows)
                    if not rows:
                        break
                    yield from self._to_arrow(rows, columns, vcols).to_batches()

    def version(self) -> Any:
        with self._tx() as conn:
            row = conn.execute(f"SELECT version FROM {META_TABLE} WHERE name = %s", (self.name,)).fetchone()
        return None if row is None else int(row[0])

    def put_blob(self, name: str, data: bytes) -> None:
        with self._tx() as conn:
            conn.execute(f"INSERT INTO {BLOB_TABLE} (collection, name, data) VALUES (%s, %s, %s) "
                         "ON CONFLICT (collection, name) DO UPDATE SET data = EXCLUDED.data", (self.name, name, data))

    def get_blob(self, name: str) -> bytes | None:
        with self._tx() as conn:
            row = conn.execute(f"SELECT data FROM {BLOB_TABLE} WHERE collection = %s AND name = %s",
                               (self.name, name)).fetchone()
        return None if row is None else bytes(row[0])

    def drop(self) -> None:
        from psycopg import sql

        with self._tx() as conn:
            conn.execute(f"DELETE FROM {BLOB_TABLE} WHERE collection = %s", (self.name,))
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self._t()))
            conn.execute(f"DELETE FROM {META_TABLE} WHERE name = %s", (self.name,))

    # --------------------------------------------------------- native search
    def _index_name(self, column: str, kind: str) -> str:
        return f"rs_{self.name}_{column}_{kind}"[:63]

    def prepare_spec(self, column: str, dim: int, spec: Any) -> None:
        from psycopg import sql

        col = sql.Identifier(column)
        if spec.kind == "hnsw":
            expr = sql.SQL("USING hnsw ({} vector_cosine_ops) WITH (m = {}, ef_construction = 100)").format(
                col, sql.Literal(int(spec.hnsw_m)))
        elif spec.kind == "binary":
            expr = sql.SQL("USING hnsw ((binary_quantize({})::bit({})) bit_hamming_ops)").format(col, sql.Literal(int(dim)))
        elif spec.kind == "funnel":
            a = int(spec.stages[0])
            expr = sql.SQL("USING hnsw ((subvector({}, 1, {})::vector({})) vector_cosine_ops)").format(
                col, sql.Literal(a), sql.Literal(a))
        else:
            return
        with self._tx() as conn:
            conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
            conn.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} {}").format(
                sql.Identifier(self._index_name(column, spec.kind)), self._t(), expr))

    def native_search(self, column: str, dim: int, queries: np.ndarray, k: int, filter: dict[str, str],
                      spec: Any) -> list[list[tuple[str, float, dict]]] | None:
        from psycopg import sql

        if spec.kind not in ("flat", "hnsw", "binary", "funnel"):
            return None
        col = sql.Identifier(column)
        conds = [sql.SQL("{} IS NOT NULL").format(col)]
        names: dict[str, Any] = {}
        for i, (key, value) in enumerate(filter.items()):
            conds.append(sql.SQL("payload->>{} = {}").format(sql.Placeholder(f"fk{i}"), sql.Placeholder(f"fv{i}")))
            names[f"fk{i}"], names[f"fv{i}"] = esc(key), esc(value)
        where = sql.SQL(" AND ").join(conds)
        full = sql.SQL("{} <=> %(q)s").format(col)
        if spec.kind in ("flat", "hnsw"):
            stmt = sql.SQL("SELECT id, payload, 1 - ({}) AS s FROM {} WHERE {} ORDER BY {} LIMIT %(k)s").format(
                full, self._t(), where, full)
        elif spec.kind == "binary":
            r = max(int(spec.rescore), k)
            ham = sql.SQL("binary_quantize({})::bit({}) <~> binary_quantize(%(q)s)").format(col, sql.Literal(int(dim)))
            stmt = sql.SQL("SELECT id, payload, 1 - ({full}) AS s FROM (SELECT id, payload, {col} FROM {t} WHERE {w} "
                           "ORDER BY {ham} LIMIT {r}) c ORDER BY {full} LIMIT %(k)s").format(
                full=full, col=col, t=self._t(), w=where, ham=ham, r=sql.Literal(r))
        else:  # funnel: shortlist on the first prefix (HNSW expression index), re-rank by longer prefixes
            stages = list(spec.stages)
            keep = max(int(spec.shortlist), k)
            a = stages[0]
            pre = sql.SQL("subvector({}, 1, {})::vector({}) <=> %(q{})s").format(col, sql.Literal(a), sql.Literal(a),
                                                                                 sql.SQL(str(a)))
            inner = sql.SQL("SELECT id, payload, {col} FROM {t} WHERE {w} ORDER BY {pre} LIMIT {n}").format(
                col=col, t=self._t(), w=where, pre=pre, n=sql.Literal(keep))
            for j, d in enumerate(stages[1:-1], start=1):
                keep = max(k, keep // 2)
                dist = sql.SQL("subvector({}, 1, {}) <=> %(q{})s").format(col, sql.Literal(d), sql.SQL(str(d)))
                inner = sql.SQL("SELECT id, payload, {col} FROM ({inner}) c{j} ORDER BY {dist} LIMIT {n}").format(
                    col=col, inner=inner, j=sql.SQL(str(j)), dist=dist, n=sql.Literal(keep))
            stmt = sql.SQL("SELECT id, payload, 1 - ({full}) AS s FROM ({inner}) f ORDER BY {full} LIMIT %(k)s").format(
                full=full, inner=inner)
        from pgvector import Vector

        out = []
        with self._tx() as conn:
            if spec.kind == "hnsw" or spec.kind in ("binary", "funnel"):
                ef = max(128, k, int(getattr(spec, "rescore", 0) or 0), int(getattr(spec, "shortlist", 0) or 0))
                conn.execute(sql.SQL("SET LOCAL hnsw.ef_search = {}").format(sql.Literal(min(ef, 1000))))
                if filter:
                    conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            else:
                conn.execute("SET LOCAL enable_indexscan = off")
            for q in np.asarray(queries, np.float32):
                bind = {"q": Vector(q), "k": int(k), **names}
                if spec.kind == "funnel":
                    for d in spec.stages[:-1]:
                        bind[f"q{d}"] = Vector(q[:d])
                rows = conn.execute(stmt, bind).fetchall()
                out.append([(unesc(r[0]), float(r[2]), unesc_json(r[1])) for r in rows])
        return out
