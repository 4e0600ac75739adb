"""An application's own PostgreSQL table, attached as a collection: nothing copied, nothing of it rewritten.

repspace reads the table through a view of its own, ``rs_<name>``, that renames the application's columns to a
collection's (``id`` as text, ``text``, ``payload`` as a JSON object of the payload columns, ``v_0`` = the app's
vector column) and keeps the typed key as ``_key``. PostgreSQL inlines a simple view into every query, so a search
``ORDER BY v_0 <=> q`` is the application's own ``ORDER BY embedding <=> q`` (its own indexes included), and every
row the application inserts, updates or deletes with its own SQL is seen by the next search: nothing is cached.

An upgrade's new model gets a new nullable column of the app's table (``<vector>_v_<n>``, marked as repspace's by a
column comment, so only such columns are ever dropped) or, with a side table, a column of ``rs_<name>_side``
keyed by the app's id. The app's own vector column is never dropped unless the caller asks (``drop_old``).
Rows are the application's: `upsert` and `delete` are refused.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import numpy as np
import psycopg
from psycopg import sql

from repspace.collections.pg_codec import null_field, text_field, vector_field
from repspace.collections.pg_index import index_name
from repspace.collections.pg_store import _SQL, PgStore
from repspace.errors import (CollectionError, DimensionMismatchError, InvalidInputError, OutputExistsError,
                             UnknownNameError)

OWNER_MARK = "repspace:"  # column comment of a column repspace added to an application's table
SIDE_KEY = "_key"
_INT_TYPES = {"smallint": 2**15, "integer": 2**31, "bigint": 2**63}  # key type -> the bound of its values

_CATALOG = {
    "relation": sql.SQL("SELECT c.oid, n.nspname, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n "
                        "ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)"),
    "columns": sql.SQL("SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typname, a.atttypmod, "
                       "col_description(a.attrelid, a.attnum) FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
                       "WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"),
    "unique": sql.SQL("SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = "
                      "i.indkey[0] WHERE i.indrelid = %s AND i.indisunique AND i.indnatts = 1 AND i.indpred IS NULL "
                      "AND a.attname = %s"),
    "indexes_on": sql.SQL("SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                          "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                          "WHERE i.indrelid = %s AND a.attname = %s"),
}


def _columns(conn, oid: int) -> dict[str, tuple[str, str, int, str | None]]:
    """column -> (SQL type as written, type name, typmod, comment)."""
    return {r[0]: (r[1], r[2], int(r[3]), r[4]) for r in conn.execute(_CATALOG["columns"], (oid,)).fetchall()}


def _qualified(parts: Sequence[str]) -> str:
    """schema.name, each part quoted as SQL quotes identifiers (for `to_regclass`)."""
    return ".".join('"' + p.replace('"', '""') + '"' for p in parts)


def resolve_table(conn, table: str) -> tuple[int, str, str]:
    """(oid, schema, name) of a table named as SQL writes it (`docs`, `app.docs`, `"My Docs"`), parsed by PostgreSQL
    itself; refuses what is not a table."""
    try:
        with conn.transaction():
            row = conn.execute(_CATALOG["relation"], (table,)).fetchone()
    except psycopg.Error:
        row = None
    if row is None:
        raise UnknownNameError(f"no table {table!r} in this database (name it as SQL would: docs, app.docs, "
                               '"My Docs")', param="table")
    if row[3] not in ("r", "p"):
        raise InvalidInputError(f"{table!r} is not a table (a view or another relation); attach its table",
                                param="table")
    return int(row[0]), row[1], row[2]


class AttachedPgStore(PgStore):
    """A collection over an application's table (see the module docstring); `attached`: the metadata's record of
    the attachment (table, column names)."""

    live = True

    def __init__(self, dsn: str, name: str, attached: dict[str, Any], **pool: Any) -> None:
        super().__init__(dsn, name, **pool)
        self._attach_to(attached)

    @classmethod
    def over(cls, store: PgStore, attached: dict[str, Any]) -> "AttachedPgStore":
        """The attached view of an opened plain store (its connection pool reused)."""
        obj = cls.__new__(cls)
        obj.__dict__.update(store.__dict__)
        obj._attach_to(attached)
        return obj

    def _attach_to(self, attached: dict[str, Any]) -> None:
        self.attached = attached
        schema, table = attached["table"]
        self.base = sql.Identifier(schema, table)
        self.side = sql.Identifier(schema, f"rs_{self.name}_side")
        self.src = sql.Identifier(schema, f"rs_{self.name}_src")  # which text each new vector was made from (md5)
        self.view = sql.Identifier(schema, self.table_name)

    def _t(self):
        return self.view

    @property
    def _key_col(self) -> sql.Identifier:
        return sql.Identifier(self.attached["id"])

    # ------------------------------------------------------------ attaching
    @staticmethod
    def inspect(conn, table: str, *, id: str, vector: str, text: str | None, payload: Sequence[str],
                dim: int | None) -> dict[str, Any]:
        """Check the app's table and return the attachment's record (nothing is written)."""
        oid, schema, name = resolve_table(conn, table)
        cols = _columns(conn, oid)

        def need(col: str | None, param: str) -> None:
            if col is not None and col not in cols:
                raise UnknownNameError(f"table {table!r} has no column {col!r}; its columns: {', '.join(cols)}",
                                       param=param)

        for col, param in ((id, "id"), (vector, "vector"), (text, "text")):
            need(col, param)
        for col in payload:
            need(col, "payload")
        sqltype, typname, typmod, _ = cols[vector]
        if typname != "vector":
            raise InvalidInputError(f"column {vector!r} is {sqltype}, not a pgvector vector column", param="vector")
        vdim = typmod if typmod > 0 else None
        if vdim is None:  # an untyped `vector` column: its rows tell
            got = conn.execute(sql.SQL("SELECT DISTINCT vector_dims({c}) FROM {t} WHERE {c} IS NOT NULL LIMIT 2").format(
                c=sql.Identifier(vector), t=sql.Identifier(schema, name))).fetchall()
            if len(got) > 1:
                raise DimensionMismatchError(f"column {vector!r} holds vectors of several dimensions", param="vector")
            vdim = int(got[0][0]) if got else dim
            if vdim is None:
                raise InvalidInputError(f"column {vector!r} has no dimension and no rows; give the dimension",
                                        param="dim")
        if dim is not None and dim != vdim:
            raise DimensionMismatchError(f"column {vector!r} holds {vdim}-d vectors, not {dim}-d", param="dim")
        if not conn.execute(_CATALOG["unique"], (oid, id)).fetchone():
            dup, nulls = conn.execute(sql.SQL("SELECT count(*) - count(DISTINCT {c}), count(*) - count({c}) FROM {t}")
                                      .format(c=sql.Identifier(id), t=sql.Identifier(schema, name))).fetchone()
            if dup or nulls:
                raise InvalidInputError(f"column {id!r} does not identify rows: {int(dup) - int(nulls)} duplicate and "
                                        f"{int(nulls)} NULL value(s); attach with a unique key column", param="id")
        return {"table": [schema, name], "id": id, "id_type": cols[id][0], "text": text, "payload": list(payload),
                "vector": vector, "dim": int(vdim), "side_table": False}

    def attach(self, meta: dict[str, Any]) -> None:
        """Record the collection (metadata at revision 1) and create its view, in one transaction."""
        import json

        with self._conn() as conn:
            conn.execute(_SQL["lock_name"], (f"repspace:{self.name}",))
            if conn.execute(_SQL["exists"], (self.name,)).fetchone():
                raise OutputExistsError(f"a collection named {self.name!r} already exists in this database")
            if conn.execute(sql.SQL("SELECT to_regclass({})").format(sql.Literal(_qualified(
                    (self.attached["table"][0], self.table_name))))).fetchone()[0]:
                raise OutputExistsError(f"a relation {self.table_name!r} exists already; choose another collection "
                                        "name")
            conn.execute(_SQL["insert_meta"], (self.name, json.dumps({**meta, "revision": 1})))
            self._make_view(conn)
        meta["revision"] = 1
        self._forget_catalog()

    # ------------------------------------------------------------ the view
    def _added(self, conn) -> tuple[dict[str, str], list[str]]:
        """The vector columns repspace added: {slot column: app table column} in place, and side-table columns."""
        mark = f"{OWNER_MARK}{self.name}:"
        inplace = {c[len(mark):]: name for name, c in ((n, v[3]) for n, v in self._base_columns(conn).items())
                   if c and c.startswith(mark)}
        side_oid = conn.execute(sql.SQL("SELECT to_regclass({})::oid").format(sql.Literal(self._side_name()))).fetchone()[0]
        side = [n for n in (_columns(conn, int(side_oid)) if side_oid else {}) if re.fullmatch(r"v_\d+", n)]
        return inplace, side

    def _base_columns(self, conn) -> dict[str, tuple[str, str, int, str | None]]:
        return _columns(conn, resolve_table(conn, _qualified(self.attached["table"]))[0])

    def _side_name(self) -> str:
        return _qualified((self.attached["table"][0], f"rs_{self.name}_side"))

    def check_drop_old(self) -> None:
        """Refuse dropping the app's vector column while an index of the app's is on it (naming the index)."""
        with self._conn(tx=False) as conn:
            self._refuse_indexed(conn)

    def _refuse_indexed(self, conn) -> None:
        oid = resolve_table(conn, _qualified(self.attached["table"]))[0]
        idx = [r[0] for r in conn.execute(_CATALOG["indexes_on"], (oid, self.attached["vector"])).fetchall()]
        if idx:
            raise CollectionError(f"the application's index {', '.join(idx)} is on column {self.attached['vector']!r}: "
                                  "drop it first (DROP INDEX CONCURRENTLY …), then drop the old column", param="drop_old")

    def _make_view(self, conn) -> None:
        a = self.attached
        b = sql.Identifier("b")
        key = sql.SQL("b.{}").format(self._key_col)
        text = sql.SQL("b.{}::text").format(sql.Identifier(a["text"])) if a.get("text") else sql.SQL("NULL::text")
        if a["payload"]:
            payload = sql.SQL("jsonb_build_object({})").format(sql.SQL(", ").join(
                sql.SQL("{}, b.{}").format(sql.Literal(c), sql.Identifier(c)) for c in a["payload"]))
        else:
            payload = sql.SQL("'{}'::jsonb")
        cols = [sql.SQL("{}::text AS id").format(key), sql.SQL("{} AS {}").format(key, sql.Identifier(SIDE_KEY)),
                sql.SQL("{} AS text").format(text), sql.SQL("{} AS payload").format(payload)]
        if a["vector"] in self._base_columns(conn):  # gone once a finish dropped it (drop_old)
            cols.append(sql.SQL("b.{} AS v_0").format(sql.Identifier(a["vector"])))
        inplace, side = self._added(conn)
        cols += [sql.SQL("b.{} AS {}").format(sql.Identifier(c), sql.Identifier(s)) for s, c in sorted(inplace.items())]
        cols += [sql.SQL("s.{} AS {}").format(sql.Identifier(s), sql.Identifier(s)) for s in side]
        join = (sql.SQL(" LEFT JOIN {} s ON s.{} = b.{}").format(self.side, sql.Identifier(SIDE_KEY), self._key_col)
                if side else sql.SQL(""))
        conn.execute(sql.SQL("DROP VIEW IF EXISTS {}").format(self.view))
        conn.execute(sql.SQL("CREATE VIEW {} AS SELECT {} FROM {} {}{}").format(
            self.view, sql.SQL(", ").join(cols), self.base, b, join))

    # ------------------------------------------------------------ columns
    def _uses_side(self) -> bool:
        return bool(self.read_meta().get("attached", {}).get("side_table"))

    def add_vector_column(self, column: str, dim: int) -> None:
        with self._conn() as conn:
            conn.execute(_SQL["lock_name"], (f"repspace:{self.name}",))
            conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} ({} {} NOT NULL, col text NOT NULL, h text, "
                                 "PRIMARY KEY ({}, col))").format(self.src, sql.Identifier(SIDE_KEY),
                                                                  sql.SQL(self.attached["id_type"]), sql.Identifier(SIDE_KEY)))
            if self._uses_side():
                conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} ({} {} PRIMARY KEY)").format(
                    self.side, sql.Identifier(SIDE_KEY), sql.SQL(self.attached["id_type"])))
                conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} vector({})").format(
                    self.side, sql.Identifier(column), sql.Literal(int(dim))))
            else:
                target = self.inplace_column(column)
                conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} vector({})").format(
                    self.base, sql.Identifier(target), sql.Literal(int(dim))))
                conn.execute(sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(
                    self.base, sql.Identifier(target), sql.Literal(f"{OWNER_MARK}{self.name}:{column}")))
            self._make_view(conn)
            self._bump(conn)
        self._forget_catalog()

    def inplace_column(self, column: str) -> str:
        """The app table's column for slot column `column` (`v_0`: the app's own vector column)."""
        return self.attached["vector"] if column == "v_0" else f"{self.attached['vector']}_{column}"

    def drop_vector_column(self, column: str, *, drop_old: bool = False) -> None:
        """Stop exposing a slot's column and drop it where repspace made it; the app's own column (`v_0`) only with
        `drop_old`, refused while an index of the app's is on it."""
        with self._conn() as conn:
            conn.execute(_SQL["lock_name"], (f"repspace:{self.name}",))
            inplace, side = self._added(conn)
            if column == "v_0":
                if not drop_old:
                    return  # the application's column: kept
                self._refuse_indexed(conn)
                table, target = self.base, self.attached["vector"]
            elif column in inplace:
                table, target = self.base, inplace[column]
            elif column in side:
                table, target = self.side, column
            else:
                return
            conn.execute(sql.SQL("DROP VIEW IF EXISTS {}").format(self.view))  # it depends on the column
            conn.execute(sql.SQL("ALTER TABLE {} DROP COLUMN IF EXISTS {}").format(table, sql.Identifier(target)))
            self._make_view(conn)
            self._bump(conn)
        self._forget_catalog()

    # ------------------------------------------------------------ writes
    def check_writable(self) -> None:
        raise CollectionError(f"collection {self.name!r} is an attached table: the application writes its rows with "
                              "its own SQL (repspace sees them at once); repspace writes only the vectors of an "
                              "upgrade's new model", param="ids")

    def upsert(self, rows) -> None:
        self.check_writable()

    def delete(self, ids: Sequence[str]) -> int:
        self.check_writable()
        return 0

    def _keys(self, ids: Sequence[str]) -> list[str]:
        """The ids that can be values of the key column (a text id 'abc' is no bigint: no such row)."""
        t = self.attached["id_type"]
        if t in _INT_TYPES:
            bound = _INT_TYPES[t]
            return [i for i in ids if re.fullmatch(r"-?\d{1,19}", i) and -bound <= int(i) < bound]
        if t == "uuid":
            import uuid

            out = []
            for i in ids:
                try:
                    uuid.UUID(i)
                    out.append(i)
                except ValueError:
                    pass
            return out
        return list(ids)

    def _key_array(self) -> sql.Composable:
        return sql.SQL("CAST(%s AS {}[])").format(sql.SQL(self.attached["id_type"]))

    def update_vectors(self, column: str, ids: Sequence[str], vectors: np.ndarray,
                       texts: Sequence[str] | None = None) -> None:
        keep = set(self._keys([str(i) for i in ids]))
        rows = [r for r, i in enumerate(ids) if str(i) in keep]
        if not rows:
            return
        v = np.asarray(vectors, np.float32)[rows]
        dim = int(v.shape[1])
        ids_in = text_field([str(ids[r]) for r in rows])
        tx = text_field([texts[r] for r in rows]) if texts is not None else null_field(len(rows))
        tmp = sql.Identifier("_rs_vec")
        with self._conn() as conn:
            inplace, side = self._added(conn)
            conn.execute(sql.SQL("CREATE TEMP TABLE {} (id text, v vector({}), t text) ON COMMIT DROP").format(
                tmp, sql.Literal(dim)))
            self._copy_rows(conn, tmp, ["id", "v", "t"], [ids_in, vector_field(np.ones(len(v), bool), v, dim), tx])
            key_t = sql.SQL(self.attached["id_type"])
            same = (sql.SQL(" AND b.{}::text IS NOT DISTINCT FROM u.t").format(sql.Identifier(self.attached["text"]))
                    if texts is not None and self.attached.get("text") else sql.SQL(""))
            if column in side:
                conn.execute(sql.SQL("INSERT INTO {side} ({k}, {c}) SELECT b.{key}, u.v FROM {tmp} u JOIN {base} b "
                                     "ON b.{key} = u.id::{kt}{same} ON CONFLICT ({k}) DO UPDATE SET {c} = EXCLUDED.{c}")
                             .format(side=self.side, k=sql.Identifier(SIDE_KEY), c=sql.Identifier(column), key=self._key_col,
                                     tmp=tmp, base=self.base, kt=key_t, same=same))
            else:
                target = inplace.get(column) or self.inplace_column(column)
                conn.execute(sql.SQL("UPDATE {base} b SET {c} = u.v FROM {tmp} u WHERE b.{key} = u.id::{kt}{same}")
                             .format(base=self.base, c=sql.Identifier(target), tmp=tmp, key=self._key_col, kt=key_t,
                                     same=same))
            if texts is not None and self.attached.get("text"):  # what the vectors were made from, for `stale`
                conn.execute(sql.SQL("INSERT INTO {src} ({k}, col, h) SELECT b.{key}, {c}, md5(u.t) FROM {tmp} u "
                                     "JOIN {base} b ON b.{key} = u.id::{kt}{same} ON CONFLICT ({k}, col) DO UPDATE "
                                     "SET h = EXCLUDED.h").format(src=self.src, k=sql.Identifier(SIDE_KEY),
                                                                  c=sql.Literal(column), key=self._key_col, tmp=tmp,
                                                                  base=self.base, kt=key_t, same=same))
            after = self._bump(conn)
        self._advance_catalog(after - 1, after)

    def stale(self, column: str) -> list[str]:
        """Ids whose `column` vector was made from a text the application has changed since."""
        if not self.attached.get("text"):
            return []
        with self._conn(tx=False) as conn:
            rows = conn.execute(sql.SQL("SELECT v.id FROM {v} v JOIN {src} s ON s.{k} = v.{k} AND s.col = %s WHERE "
                                        "v.{c} IS NOT NULL AND v.text IS NOT NULL AND s.h IS DISTINCT FROM md5(v.text)")
                                .format(v=self.view, src=self.src, k=sql.Identifier(SIDE_KEY), c=sql.Identifier(column)),
                                (column,)).fetchall()
        return [r[0] for r in rows]

    # ------------------------------------------------------------ reads
    def fetch(self, ids: Sequence[str], columns: Sequence[str]):
        keys = self._keys([str(i) for i in ids])
        with self._conn(tx=False) as conn:
            rows = (conn.cursor(binary=True).execute(
                sql.SQL("SELECT {} FROM {} WHERE {} = ANY({})").format(
                    self._select(columns), self.view, sql.Identifier(SIDE_KEY), self._key_array()),
                (keys,)).fetchall() if keys else [])
            return self._to_arrow(rows, columns, conn)

    _hit_payload = sql.SQL("'{}'::jsonb")
    _hit_id = sql.SQL("_key")  # the typed key (as text in Python: not a cast per scanned row)

    def native_search(self, column: str, dim: int, queries: np.ndarray, k: int, filter: dict[str, str],
                      spec: Any) -> list[list[tuple[str, float, dict]]] | None:
        """The store's search; the payloads (a JSON object built from the app's columns) of the top k only."""
        out = super().native_search(column, dim, queries, k, filter, spec)
        if out is None or filter or spec.kind not in ("flat", "hnsw", "ivfflat") or not self.attached["payload"]:
            return out
        import json

        got = self.fetch(list({i for row in out for i, _, _ in row}), ["id", "payload"])
        pl = dict(zip(got.column("id").to_pylist(), got.column("payload").to_pylist()))
        return [[(i, sc, json.loads(pl[i]) if pl.get(i) else {}) for i, sc, _ in row] for row in out]

    def version(self) -> Any:
        return None  # the application writes without telling: never cache (`live`)

    def optimize(self, rebuild: bool = False, max_segments: int | None = None) -> dict[str, str]:
        return {}  # the application's table is its own: the added columns' indexes come with them (`prepare_spec`)

    def prepare_spec(self, column: str, dim: int, spec: Any) -> None:
        """An HNSW index for a column repspace added (built CONCURRENTLY: the app keeps writing); never on the app's
        own column (its own indexes serve it as they are). An IVF list index needs the column filled to train its
        lists, so an added column with an `IVFn,Flat` spec is searched exactly (the answers a full probe gives)."""
        if column == "v_0" or spec.kind != "hnsw":
            return
        with self._conn(tx=False) as conn:
            inplace, side = self._added(conn)
            table, col = (self.side, column) if column in side else (self.base, inplace.get(column))
            if col is None:
                return
            conn.execute(sql.SQL("CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON {} USING hnsw ({} vector_cosine_ops) "
                                 "WITH (m = {})").format(sql.Identifier(index_name(self, column, "hnsw")), table,
                                                         sql.Identifier(col), sql.Literal(int(spec.hnsw_m))))

    def app_sql(self, column: str) -> str:
        """The SQL the application runs to search a slot's column itself."""
        with self._conn(tx=False) as conn:
            inplace, side = self._added(conn)
        schema, table = self.attached["table"]
        q = lambda s: '"' + s.replace('"', '""') + '"'  # noqa: E731
        key = q(self.attached["id"])
        if column in side:
            return (f"SELECT b.* FROM {q(schema)}.{q(table)} b JOIN {q(schema)}.{q('rs_' + self.name + '_side')} s "
                    f"ON s.{q(SIDE_KEY)} = b.{key} ORDER BY s.{q(column)} <=> $1 LIMIT $2")
        col = self.attached["vector"] if column == "v_0" else inplace.get(column, self.inplace_column(column))
        return f"SELECT * FROM {q(schema)}.{q(table)} ORDER BY {q(col)} <=> $1 LIMIT $2"

    def drop(self) -> None:
        """Forget the attachment: the view, the side table, repspace's own added columns (except the active slot's,
        which the application may query now), the metadata. The app's table and its rows stay."""
        meta = self.read_meta()
        active = next((s["column"] for s in meta.get("slots", []) if s["name"] == meta.get("active")), "v_0")
        with self._conn() as conn:
            conn.execute(_SQL["lock_name"], (f"repspace:{self.name}",))
            inplace, _ = self._added(conn)
            conn.execute(sql.SQL("DROP VIEW IF EXISTS {}").format(self.view))
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self.side))
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self.src))
            for slot_col, col in inplace.items():
                if slot_col != active:
                    conn.execute(sql.SQL("ALTER TABLE {} DROP COLUMN IF EXISTS {}").format(self.base, sql.Identifier(col)))
            conn.execute(_SQL["delete_blobs"], (self.name,))
            conn.execute(_SQL["delete_meta"], (self.name,))
        self._forget_catalog()
