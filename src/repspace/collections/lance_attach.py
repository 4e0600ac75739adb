"""An application's own LanceDB table, attached as a collection: nothing copied, nothing of it rewritten.

The collection directory holds repspace's state only (``collection.json``, blobs, ``added.json``: the columns
repspace added, and the side table ``side.lance``); the rows stay in the application's table, named
``DBDIR::TABLE`` or as a ``.lance`` dataset path. Every read opens the table's latest version
(``read_consistency_interval=0``), so a row the application adds, updates or deletes through its own lancedb
client is seen by the next search; searches are LanceDB's own (``table.search``, exact for ``Flat``).

An upgrade's new model gets a new nullable column of the app's table (``<vector>_v_<n>``, listed in
``added.json``: only those are ever dropped) or, with a side table, a column of ``side.lance`` keyed by the
app's id. Rows are the application's: `upsert` and `delete` are refused.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from repspace._io import write_json
from repspace.collections.lance_store import META, LanceStore
from repspace.collections.store import vector_array, vector_type
from repspace.collections.upgrade.backfill import item_hash
from repspace.errors import (CollectionError, DimensionMismatchError, InvalidInputError, OutputExistsError,
                             UnknownNameError)

ADDED = "added.json"
SIDE = "side"
SOURCES = "sources"  # column + id -> hash of the text each new vector was made from


def split_table(table: str) -> tuple[Path, str]:
    """`DBDIR::TABLE` or a `.lance` dataset path -> (database directory, table name)."""
    if "::" in table:
        db, _, name = table.rpartition("::")
        return Path(db), name
    p = Path(table)
    if p.suffix == ".lance":
        return p.parent, p.stem
    raise InvalidInputError(f"name a LanceDB table as DBDIR::TABLE or a .lance dataset path, not {table!r}",
                            param="table")


def _sql_name(col: str) -> str:
    return "`" + col.replace("`", "``") + "`"


def _sql_value(v: str) -> str:
    return "'" + str(v).replace("'", "''") + "'"


class AttachedLanceStore(LanceStore):
    live = True

    def __init__(self, path: str | Path, attached: dict[str, Any]) -> None:
        super().__init__(path)
        self.attached = attached
        self._app = None

    @classmethod
    def over(cls, store: LanceStore, attached: dict[str, Any]) -> "AttachedLanceStore":
        return cls(store.path, attached)

    @classmethod
    def inspect(cls, table: str, *, id: str, vector: str, text: str | None, payload: Sequence[str],
                dim: int | None) -> dict[str, Any]:
        import lancedb

        db, name = split_table(table)
        try:
            t = lancedb.connect(db).open_table(name)
        except Exception:  # noqa: BLE001 - lancedb raises several kinds for "no such table"
            raise UnknownNameError(f"no LanceDB table {name!r} in {db}", param="table") from None
        schema = t.schema
        for col, param in [(id, "id"), (vector, "vector"), (text, "text")] + [(c, "payload") for c in payload]:
            if col is not None and col not in schema.names:
                raise UnknownNameError(f"table {name!r} has no column {col!r}; its columns: {', '.join(schema.names)}",
                                       param=param)
        vt = schema.field(vector).type
        if not pa.types.is_fixed_size_list(vt) or not pa.types.is_floating(vt.value_type):
            raise InvalidInputError(f"column {vector!r} is {vt}, not a vector column (a fixed-size list of floats)",
                                    param="vector")
        if dim is not None and dim != vt.list_size:
            raise DimensionMismatchError(f"column {vector!r} holds {vt.list_size}-d vectors, not {dim}-d", param="dim")
        ids = t.to_lance().to_table(columns=[id]).column(id)
        if ids.null_count or pc.count_distinct(ids).as_py() != len(ids):
            raise InvalidInputError(f"column {id!r} does not identify rows ({len(ids) - pc.count_distinct(ids).as_py()} "
                                    f"duplicate value(s), {ids.null_count} null); attach with a unique key column",
                                    param="id")
        return {"table": [str(db.resolve()), name], "id": id, "id_type": str(schema.field(id).type), "text": text,
                "payload": list(payload), "vector": vector, "dim": int(vt.list_size), "side_table": False}

    def attach(self, meta: dict[str, Any]) -> None:
        if self.exists():
            raise OutputExistsError(f"a collection already exists at {self.path}")
        if self.path.exists() and any(self.path.iterdir()):
            raise OutputExistsError(f"{self.path} exists and is not an empty directory; choose a new path")
        self.path.mkdir(parents=True, exist_ok=True)
        write_json(self.path / META, {**meta, "revision": 1})
        meta["revision"] = 1

    # ------------------------------------------------------------ plumbing
    def app(self):
        if self._app is None:
            import lancedb

            db, name = self.attached["table"]
            try:
                self._app = lancedb.connect(db, read_consistency_interval=timedelta(0)).open_table(name)
            except Exception as e:  # noqa: BLE001
                raise CollectionError(f"the attached table {name!r} in {db} cannot be opened: {e}") from None
        return self._app

    def _side(self, create_dim: dict[str, int] | None = None):
        db = self._connect()
        if (self.path / f"{SIDE}.lance").is_dir():
            t = db.open_table(SIDE)
            for c, d in (create_dim or {}).items():
                if c not in t.schema.names:
                    t.add_columns(pa.field(c, vector_type(d)))
            return t
        if not create_dim:
            return None
        fields = [pa.field("id", pa.string(), nullable=False)] + [pa.field(c, vector_type(d)) for c, d in create_dim.items()]
        return db.create_table(SIDE, schema=pa.schema(fields))

    def _added(self) -> dict[str, str]:
        p = self.path / ADDED
        return json.loads(p.read_text()) if p.is_file() else {}

    def _side_columns(self) -> list[str]:
        t = self._side()
        return [c for c in t.schema.names if c != "id"] if t is not None else []

    def _source(self, column: str) -> str | None:
        """The app table's column holding slot column `column` (None: it lives in the side table)."""
        if column == "v_0":
            return self.attached["vector"]
        return self._added().get(column)

    def _ids(self, ids: Sequence[str]) -> pa.Array:
        """Ids as values of the app's key column (ids that cannot be one are left out)."""
        typ = self.app().schema.field(self.attached["id"]).type
        out = []
        for i in ids:
            try:
                out.append(pa.scalar(str(i)).cast(typ).as_py())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
        return pa.array(out, typ)

    def _shape(self, t: pa.Table, columns: Sequence[str]) -> pa.Table:
        """App rows -> the collection's columns."""
        a = self.attached
        out = {}
        n = t.num_rows
        side_cols = [c for c in columns if c.startswith("v_") and self._source(c) is None]
        side = {}
        if side_cols:
            st = self._side()
            ids = pc.cast(t.column(a["id"]), pa.string())
            if st is not None:
                have = [c for c in side_cols if c in st.schema.names]
                rows = st.to_lance().to_table(columns=["id", *have], filter=pc.field("id").isin(ids))
                pos = {v: r for r, v in enumerate(rows.column("id").to_pylist())}
                take = pa.array([pos.get(i) for i in ids.to_pylist()], pa.int64())
                side = {c: rows.column(c).take(take) for c in have}
        for c in columns:
            if c == "id":
                out[c] = pc.cast(t.column(a["id"]), pa.string())
            elif c == "text":
                out[c] = pc.cast(t.column(a["text"]), pa.string()) if a.get("text") else pa.nulls(n, pa.string())
            elif c == "payload":
                cols = {p: t.column(p).to_pylist() for p in a["payload"]}
                out[c] = pa.array([json.dumps({p: cols[p][r] for p in cols}, default=str) for r in range(n)], pa.string())
            else:
                src = self._source(c)
                dim = self._dim(c)
                if src is not None:
                    out[c] = t.column(src).cast(vector_type(dim))
                else:
                    out[c] = side[c].cast(vector_type(dim)) if c in side else vector_array(None, dim, n)
        return pa.table(out) if out else pa.table({})

    def _dim(self, column: str) -> int:
        src = self._source(column)
        if src is not None:
            return self.app().schema.field(src).type.list_size
        return self._side().schema.field(column).type.list_size

    def _app_columns(self, columns: Sequence[str]) -> list[str]:
        a = self.attached
        need = {a["id"]}
        for c in columns:
            if c == "text" and a.get("text"):
                need.add(a["text"])
            elif c == "payload":
                need.update(a["payload"])
            elif c.startswith("v_") and self._source(c) is not None:
                need.add(self._source(c))
        return sorted(need)

    # ------------------------------------------------------------ columns
    def columns(self) -> list[str]:
        names = self.app().schema.names
        cols = ["v_0"] if self.attached["vector"] in names else []
        cols += [c for c, src in self._added().items() if src in names]
        return sorted(cols + self._side_columns())

    def add_vector_column(self, column: str, dim: int) -> None:
        if self.read_meta().get("attached", {}).get("side_table"):
            self._side({column: dim})
            return
        target = f"{self.attached['vector']}_{column}"
        added = self._added()
        if target in self.app().schema.names and added.get(column) != target:
            raise OutputExistsError(f"the attached table already has a column {target!r} that repspace did not add")
        write_json(self.path / ADDED, {**added, column: target})  # first: a crash leaves it listed, never unowned
        if target not in self.app().schema.names:
            self.app().add_columns(pa.field(target, vector_type(dim)))

    def check_drop_old(self) -> None:
        """Refuse dropping the app's vector column while an index of the app's is on it (naming the index)."""
        vec = self.attached["vector"]
        idx = [getattr(i, "name", str(i)) for i in self.app().list_indices() if vec in getattr(i, "columns", [])]
        if idx:
            raise CollectionError(f"the application's index {', '.join(idx)} is on column {vec!r}: drop it first "
                                  "(table.drop_index), then drop the old column", param="drop_old")

    def drop_vector_column(self, column: str, *, drop_old: bool = False) -> None:
        if column == "v_0":
            if drop_old and self.attached["vector"] in self.app().schema.names:
                self.check_drop_old()
                self.app().drop_columns([self.attached["vector"]])
            return
        added = self._added()
        if column in added:
            if added[column] in self.app().schema.names:
                self.app().drop_columns([added[column]])
            write_json(self.path / ADDED, {c: s for c, s in added.items() if c != column})
        elif column in self._side_columns():
            self._side().drop_columns([column])

    # ------------------------------------------------------------ writes
    def check_writable(self) -> None:
        raise CollectionError(f"{self.path} is an attached table: the application writes its rows with its own "
                              "lancedb client (repspace sees them at once); repspace writes only the vectors of an "
                              "upgrade's new model", param="ids")

    def upsert(self, rows: pa.Table) -> None:
        self.check_writable()

    def delete(self, ids: Sequence[str]) -> int:
        self.check_writable()
        return 0

    def update_vectors(self, column: str, ids: Sequence[str], vectors: np.ndarray,
                       texts: Sequence[str] | None = None) -> None:
        if len(ids) == 0:
            return
        a = self.attached
        v = np.asarray(vectors, np.float32)
        ids = [str(i) for i in ids]
        if texts is not None and a.get("text"):  # only rows whose text is still the one the vectors were made from
            now = self.fetch(ids, ["id", "text"])
            cur = dict(zip(now.column("id").to_pylist(), now.column("text").to_pylist()))
            keep = [r for r, i in enumerate(ids) if i in cur and cur[i] == texts[r]]
        else:
            keep = list(range(len(ids)))
        if not keep:
            return
        ids, v = [ids[r] for r in keep], v[keep]
        if texts is not None and a.get("text"):  # what the vectors were made from, for `stale`
            self._record_sources(column, ids, [texts[r] for r in keep])
        src = self._source(column)
        if src is None:
            (self._side().merge_insert("id").when_matched_update_all().when_not_matched_insert_all()
             .execute(pa.table({"id": pa.array(ids, pa.string()), column: vector_array(v, v.shape[1], len(ids))})))
            return
        key = self._ids(ids)
        (self.app().merge_insert(a["id"]).when_matched_update_all()
         .execute(pa.table({a["id"]: key, src: vector_array(v, v.shape[1], len(ids))}), on_bad_vectors="null"))

    def _record_sources(self, column: str, ids: list[str], texts: list[str]) -> None:
        rows = pa.table({"key": [f"{column}\x00{i}" for i in ids], "h": [item_hash(t) for t in texts]})
        db = self._connect()
        if not (self.path / f"{SOURCES}.lance").is_dir():
            db.create_table(SOURCES, data=rows)
            return
        db.open_table(SOURCES).merge_insert("key").when_matched_update_all().when_not_matched_insert_all().execute(rows)

    def stale(self, column: str) -> list[str]:
        """Ids whose `column` vector was made from a text the application has changed since."""
        if not self.attached.get("text") or not (self.path / f"{SOURCES}.lance").is_dir():
            return []
        src = self._connect().open_table(SOURCES).to_arrow()
        made = dict(zip(src.column("key").to_pylist(), src.column("h").to_pylist()))
        out = []
        for b in self.scan(["id", "text", column]):
            valid = b.column(column).is_valid().to_pylist()
            for i, t, v in zip(b.column("id").to_pylist(), b.column("text").to_pylist(), valid):
                h = made.get(f"{column}\x00{i}")
                if v and t is not None and h is not None and h != item_hash(t):
                    out.append(i)
        return out

    # ------------------------------------------------------------ reads
    def fetch(self, ids: Sequence[str], columns: Sequence[str]) -> pa.Table:
        key = self._ids(ids)
        t = self.app().to_lance().to_table(columns=self._app_columns(columns),
                                           filter=pc.field(self.attached["id"]).isin(key))
        return self._shape(t, columns)

    def count(self, column: str | None = None) -> int:
        if column is None:
            return self.app().count_rows()
        src = self._source(column)
        if src is not None:
            return self.app().count_rows(f"{_sql_name(src)} IS NOT NULL")
        st = self._side()
        if st is None or column not in st.schema.names:
            return 0
        have = st.to_lance().to_table(columns=["id"], filter=f"{_sql_name(column)} IS NOT NULL").column("id")
        return len(self.fetch(have.to_pylist(), ["id"])) if len(have) else 0

    def count_without_text(self) -> int:
        text = self.attached.get("text")
        return self.app().count_rows(f"{_sql_name(text)} IS NULL") if text else self.app().count_rows()

    def scan(self, columns: Sequence[str], batch_rows: int = 65536) -> Iterator[pa.RecordBatch]:
        for b in self.app().to_lance().to_batches(columns=self._app_columns(columns), batch_size=batch_rows):
            yield from self._shape(pa.Table.from_batches([b]), columns).to_batches()

    def version(self) -> Any:
        return None  # the application writes without telling: never cache (`live`)

    def optimize(self, rebuild: bool = False, max_segments: int | None = None) -> dict[str, str]:
        return {}  # never compacts the application's table

    def drop(self) -> None:
        """Forget the attachment: repspace's directory and the columns it added (except the active slot's)."""
        import shutil

        meta = self.read_meta()
        active = next((s["column"] for s in meta.get("slots", []) if s["name"] == meta.get("active")), "v_0")
        for column in list(self._added()):
            if column != active:
                self.drop_vector_column(column)
        shutil.rmtree(self.path, ignore_errors=True)

    # ------------------------------------------------------------ search
    def candidates(self, *args: Any, **kw: Any) -> None:
        return None  # the app's table and the side table are searched apart: the union's vectors are fetched

    def native_search(self, column: str, dim: int, queries: np.ndarray, k: int, filter: dict[str, str],
                      spec: Any) -> list[list[tuple[str, float, dict]]]:
        a = self.attached
        src = self._source(column)
        if filter and any(key not in a["payload"] for key in filter):
            return [[] for _ in queries]  # a key no item has
        where = " AND ".join(f"CAST({_sql_name(key)} AS STRING) = {_sql_value(v)}" for key, v in filter.items())
        out = []
        for q in np.asarray(queries, np.float32):
            if src is None:  # the side table's column: its nearest, then the app's rows that still exist
                st = self._side()
                if st is None or column not in st.schema.names:
                    out.append([])
                    continue
                hits = (st.search(q, vector_column_name=column).distance_type("cosine").bypass_vector_index()
                        .where(f"{_sql_name(column)} IS NOT NULL").limit(max(4 * k, k + 16)).select(["id", "_distance"]).to_arrow())
                rows = self.fetch(hits.column("id").to_pylist(), ["id", "payload"])
                if filter:
                    rows = rows.filter(pa.array([all(str(json.loads(p).get(key)) == v for key, v in filter.items())
                                                 for p in rows.column("payload").to_pylist()]))
                alive = dict(zip(rows.column("id").to_pylist(), rows.column("payload").to_pylist()))
                row = [(i, 1.0 - float(d), json.loads(alive[i]))
                       for i, d in zip(hits.column("id").to_pylist(), hits.column("_distance").to_pylist()) if i in alive]
                out.append(row[:k])
                continue
            qb = self.app().search(q, vector_column_name=src).distance_type("cosine")
            if spec.kind == "flat":
                qb = qb.bypass_vector_index()
            qb = qb.where(f"{_sql_name(src)} IS NOT NULL" + (f" AND {where}" if where else ""), prefilter=True)
            t = qb.limit(k).select([*self._app_columns(["id", "payload"]), "_distance"]).to_arrow()
            shaped = self._shape(t, ["id", "payload"])
            out.append([(i, 1.0 - float(d), json.loads(p)) for i, p, d in zip(
                shaped.column("id").to_pylist(), shaped.column("payload").to_pylist(),
                t.column("_distance").to_pylist())])
        return out

    def app_sql(self, column: str) -> str:
        """How the application searches a slot's column itself (lancedb's Python API)."""
        src = self._source(column)
        db, name = self.attached["table"]
        if src is None:
            return (f"lancedb.connect({str(self.path)!r}).open_table({SIDE!r}).search(q, vector_column_name="
                    f"{column!r}).distance_type('cosine').limit(k)  # then join on id with {name!r} in {db}")
        return f"lancedb.connect({db!r}).open_table({name!r}).search(q, vector_column_name={src!r}).distance_type('cosine').limit(k)"
