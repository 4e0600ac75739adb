"""LanceDB backend: a collection is a directory holding a Lance table and ``collection.json``.

Writes use Lance's data-driven operations (``merge_insert`` keyed on ``id``: update-or-insert,
partial-column update, ``when_matched_delete``) and pyarrow filter expressions, so no id, text or
payload value is ever spliced into a SQL string. Each write is one new table version.
"""

from __future__ import annotations

import json
import os
import re
from concurrent.futures import wait as futures_wait
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from repspace._io import write_json
from repspace.collections.payload_index import is_payload_column, key_of, values_of
from repspace.collections.store import BASE_COLUMNS, Store, vector_array, vector_type
from repspace.errors import CollectionNotFoundError, ConcurrentChangeError, OutputExistsError, SpaceFormatError, StoreUnavailableError
from repspace.ops.idset import IdHashSet, id_hashes
from repspace.ops.pools import shared_pool

os.environ.setdefault("LANCE_LOG", "error")  # lance logs a WARN line for every new table otherwise
os.environ.setdefault("LANCEDB_LOG", "error")

META = "collection.json"
META_LOCK = ".collection.lock"
WRITE_LOCK = ".write.lock"
TABLE = "items"
MAX_SEGMENTS = 8  # `optimize` retrains an index that has grown more delta segments than this
QUERY_THREADS = 4  # a batch of queries to LanceDB runs this many at once
REBUILD_SHARE = 0.25  # `optimize` retrains an index rather than adding a delta when this share of its rows is new
COMPACT_ROWS = 65536  # `optimize` merges fragments smaller than this (when more than 16 of them)
#: `optimize` deletes the table's versions older than this, and the data and index files only they use (an index
#: retrained at 1M left 2.1 GiB of old index files beside 0.8 GiB live); every reader here reads the latest version
KEEP_VERSIONS = timedelta(hours=1)
HASH_IDS_FROM = 10_000  # a write of this many ids makes its writer keep the table's id hashes (`_all_new`)
FETCH_BY_FILTER = 1000  # more ids than this are looked up by hash over the id column, not by an IN-list filter
#: index kind -> (LanceDB's own vector index for it, its `create_index` config)
LANCE_INDEX = {
    "ivfpq": lambda spec: ("IVF_PQ", _lance_index().IvfPq(distance_type="cosine", num_partitions=spec.nlist,
                                                          num_sub_vectors=spec.pq_m)),
    "ivfhnswsq": lambda spec: ("IVF_HNSW_SQ", _lance_index().IvfHnswSq(distance_type="cosine", num_partitions=spec.nlist)),
    "ivfrq": lambda spec: ("IVF_RQ", _lance_index().IvfRq(distance_type="cosine", num_partitions=spec.nlist, num_bits=1)),
    "ivfflat": lambda spec: ("IVF_FLAT", _lance_index().IvfFlat(distance_type="cosine", num_partitions=spec.nlist)),
}


@contextmanager
def _disk_errors(path: Path, what: str) -> Iterator[None]:
    """A full disk (ENOSPC from Lance's writer or our own files) as one clear error: Lance commits a version only
    once every file of it is written, so nothing of the failed write is visible and every earlier one is intact."""
    try:
        yield
    except (OSError, RuntimeError) as e:
        if getattr(e, "errno", None) == 28 or "No space left on device" in str(e) or "os error 28" in str(e):
            raise StoreUnavailableError(f"no space left on the device holding {path} while {what}: nothing of this "
                                        "write was committed, everything written before is intact; free space and "
                                        "retry") from None
        raise


def _lance_index():
    from lancedb import index

    return index


class LanceStore(Store):
    backend = "lancedb"

    @classmethod
    def from_uri(cls, uri) -> "LanceStore":
        return cls(uri.path)

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db = None
        self._table = None
        self._known_ids: tuple[int, IdHashSet] | None = None  # (table version, hashes of its ids): `_all_new`

    # ----------------------------------------------------------- plumbing
    def _connect(self):
        if self._db is None:
            import lancedb

            try:
                self._db = lancedb.connect(self.path, read_consistency_interval=timedelta(0))
            except Exception as e:  # noqa: BLE001 - any I/O failure of the store
                raise StoreUnavailableError(f"cannot open LanceDB collection at {self.path}: {e}") from None
        return self._db

    def table(self):
        if self._table is None:
            self._require_exists()
            try:
                self._table = self._connect().open_table(TABLE)
            except Exception as e:  # noqa: BLE001
                raise SpaceFormatError(f"{self.path}: the collection's table cannot be opened: {e}") from None
        return self._table

    def dataset(self):
        """The table as a pylance dataset at its latest version. A one-off process (`search_in_store`) that has not
        opened the table through LanceDB opens the dataset directly, once: `import lance` instead of `import lancedb`
        (~2 s of its generated clients), the one-off search's reads need nothing more."""
        if self._reads_pylance:
            if getattr(self, "_ds", None) is None:
                self._require_exists()
                import lance

                try:
                    self._ds = lance.dataset(str(self.path / f"{TABLE}.lance"))
                except Exception as e:  # noqa: BLE001
                    raise SpaceFormatError(f"{self.path}: the collection's table cannot be opened: {e}") from None
            return self._ds
        # in a process that has the table open: one dataset moved to each new version with `checkout_version`, which
        # keeps its caches (the index pages a search read); `to_lance()` opens a dataset with empty caches each time.
        # Searched through pylance directly, a query costs ~1.3 ms less than through LanceDB's query builder (at 1M,
        # IVF256,RaBitQ, alternating: 21.9 against 23.2 ms a query, benchmarks/RESULTS.md)
        t = self.table()
        version, at = t.version, getattr(self, "_ds_at", None)
        if at is None or at[0] != version:  # a lower version: the table was dropped and made again meanwhile
            at = self._ds_at = (version, t.to_lance() if at is None or version < at[0] else
                                at[1].checkout_version(version))
        return at[1]

    def exists(self) -> bool:
        return (self.path / META).is_file()

    def _require_exists(self) -> None:
        if not self.exists():
            raise CollectionNotFoundError(f"no collection at {self.path} (create it with `repspace collection create`)")

    @property
    def _reads_pylance(self) -> bool:
        """A one-off process (`search_in_store`) that has not opened the table through LanceDB (for a write) reads
        through pylance (`dataset()`)."""
        return self._table is None and self.search_in_store

    # ------------------------------------------------------------ metadata
    def create(self, meta: dict[str, Any], columns: dict[str, int]) -> None:
        if self.exists():
            raise OutputExistsError(f"a collection already exists at {self.path}")
        if self.path.exists() and any(self.path.iterdir()):
            raise OutputExistsError(f"{self.path} exists and is not an empty directory; choose a new path")
        self.path.mkdir(parents=True, exist_ok=True)
        fields = [pa.field("id", pa.string(), nullable=False), pa.field("text", pa.string()), pa.field("payload", pa.string())]
        fields += [pa.field(c, vector_type(d)) for c, d in columns.items()]
        db = self._connect()
        self._table = db.create_table(TABLE, schema=pa.schema(fields), mode="overwrite")
        write_json(self.path / META, {**meta, "revision": 1})  # last: a collection exists once its metadata does

    def read_meta(self, fresh: bool = False) -> dict[str, Any]:
        self._require_exists()
        try:
            st = (self.path / META).stat()
            key = (st.st_ino, st.st_mtime_ns, st.st_size)  # a write replaces the file (a new inode): read it again
            if fresh or getattr(self, "_meta_at", (None,))[0] != key:
                meta = json.loads((self.path / META).read_text())
                meta["revision"] = int(meta.get("revision") or 0)
                self._meta_at = (key, json.dumps(meta))
            return json.loads(self._meta_at[1])  # a fresh copy each time: callers may change theirs
        except (OSError, ValueError) as e:
            raise SpaceFormatError(f"{self.path}/{META} is unreadable or corrupt: {e}") from None

    @contextmanager
    def _meta_lock(self) -> Iterator[None]:
        """An exclusive lock on the metadata for one compare-and-set (an flock: processes and threads alike)."""
        import fcntl

        fd = os.open(self.path / META_LOCK, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def write_meta(self, meta: dict[str, Any], expected: int) -> dict[str, Any]:
        with self._meta_lock():
            now = self.read_meta(fresh=True)["revision"]  # never a cached copy under the lock
            if now != expected:
                raise ConcurrentChangeError(f"the metadata of collection {meta.get('name')!r} changed since it was "
                                            f"read (revision {expected}, now {now}); nothing was written: re-read "
                                            "and retry")
            doc = {**meta, "revision": expected + 1}
            with _disk_errors(self.path, "writing the collection's metadata"):
                write_json(self.path / META, doc)  # atomic: a temporary file renamed over the old one
        return doc

    def add_vector_column(self, column: str, dim: int) -> None:
        t = self.table()
        if column not in t.schema.names:
            t.add_columns(pa.field(column, vector_type(dim)))

    def drop_vector_column(self, column: str) -> None:
        t = self.table()
        if column in t.schema.names:
            t.drop_columns([column])

    # --------------------------------------------------------------- writes
    def _full_rows(self, rows: pa.Table) -> pa.Table:
        schema = self.table().schema
        cols = []
        for f in schema:
            if f.name in rows.column_names:
                cols.append(rows.column(f.name).cast(f.type))
            elif is_payload_column(f.name):  # a declared payload key's column (`lance_filter.py`)
                cols.append(pa.array(values_of(rows.column("payload").to_pylist(), key_of(f.name)), pa.string()))
            else:
                cols.append(vector_array(None, f.type.list_size, rows.num_rows) if pa.types.is_fixed_size_list(f.type)
                            else pa.nulls(rows.num_rows, f.type))
        return pa.table(cols, schema=schema)

    @contextmanager
    def _write_lock(self) -> Iterator[None]:
        """Row writes one at a time (processes and threads): an upsert's "are these ids new?" and its append are one
        step (two appends of one new id would both commit)."""
        import fcntl

        fd = os.open(self.path / WRITE_LOCK, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def upsert(self, rows: pa.Table) -> None:
        if rows.num_rows == 0:
            return
        # vectors were validated (finite, one dimension) before; a slot without a vector is null on purpose, which
        # lancedb's own check would call a "bad vector"
        t = self.table()
        with self._write_lock(), _disk_errors(self.path, "writing items"):
            t.checkout_latest()
            full = self._full_rows(rows)  # in the lock: a payload column added meanwhile is written too
            nulls = any(full.column(f.name).null_count for f in full.schema if pa.types.is_fixed_size_list(f.type))
            bad = "null" if nulls else "error"  # LanceDB's own default where every row has every vector (its fast path)
            hashes = id_hashes(rows.column("id"))
            new = self._all_new(t, rows.column("id"), hashes)
            known, self._known_ids = self._known_ids, None  # until this write is known to have committed
            # the writer's id set takes these ids while LanceDB writes them (numpy's sort and LanceDB's write both
            # release the GIL: ~30 ms of a 100k-row write hidden); if the write fails the set is dropped
            merged = shared_pool("ids", 1).submit(known[1].add, hashes) if known is not None else None
            try:
                if new:  # bulk path: append (LanceDB's own `add`)
                    t.add(full, on_bad_vectors=bad)
                else:
                    t.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(
                        full, on_bad_vectors=bad)
            finally:  # the write's own error, if any, is the one raised; the set is not touched after this
                if merged is not None:
                    futures_wait([merged])
            if merged is not None and merged.exception() is None:  # the table holds these ids too, at this version
                self._known_ids = (t.version, known[1])

    def _all_new(self, t: Any, ids: pa.ChunkedArray | pa.Array, hashes: np.ndarray) -> bool:
        """Whether none of `ids` is in the table (in the write lock, at the latest version): by the hashes of the ids
        this writer knows the table holds (`ops/idset.py`; built from one scan of the id column by a large write when
        the table moved since, e.g. another writer's write), the few hash hits checked exactly."""
        version = t.version
        if self._known_ids is None or self._known_ids[0] != version:
            if len(ids) < HASH_IDS_FROM:  # a small write: one streamed check (hashing every id costs more)
                self._known_ids = None
                return not self._any_exists(ids)
            known = IdHashSet(id_hashes(b.column("id")) for b in t.to_lance().to_batches(columns=["id"],
                                                                                        batch_size=1 << 20))
            self._known_ids = (version, known)
        maybe = self._known_ids[1].maybe_contains(hashes)
        return not maybe.any() or not self._any_exists(pc.filter(ids, pa.array(maybe)))

    @staticmethod
    def _id_matches(ds: Any, ids: pa.ChunkedArray | pa.Array, row_ids: bool = False) -> Iterator[tuple[Any, Any]]:
        """(batch, mask of its rows whose id is in `ids`) over the dataset's id column, streamed through Arrow's hash
        lookup: a filter with an IN list of many ids is evaluated row by row (seconds for 100k ids at 100k rows)."""
        value_set = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
        for b in ds.to_batches(columns=["id"], with_row_id=row_ids, batch_size=1 << 20):
            yield b, pc.is_in(b.column("id"), value_set=value_set)

    def _any_exists(self, ids: pa.ChunkedArray | pa.Array) -> bool:
        """Whether any of `ids` is in the table."""
        return any(pc.any(m).as_py() for _, m in self._id_matches(self.table().to_lance(), ids))

    def update_vectors(self, column: str, ids: Sequence[str], vectors: np.ndarray,
                       texts: Sequence[str] | None = None) -> None:
        if len(ids) == 0:
            return
        dim = self.table().schema.field(column).type.list_size
        cols = {"id": pa.array(list(ids), pa.string()), column: vector_array(vectors, dim, len(ids))}
        if texts is None:
            with _disk_errors(self.path, "writing vectors"):
                self.table().merge_insert("id").when_matched_update_all().execute(pa.table(cols), on_bad_vectors="null")
            return
        cols["text"] = pa.array(list(texts), pa.string())
        with _disk_errors(self.path, "writing vectors"):
            (self.table().merge_insert("id").when_matched_update_all(where="target.text = source.text")
             .execute(pa.table(cols), on_bad_vectors="null"))

    def delete(self, ids: Sequence[str]) -> int:
        if len(ids) == 0:
            return 0
        t = self.table()
        before = t.count_rows()
        ds = t.to_lance()
        ds.merge_insert("id").when_matched_delete().execute(pa.table({"id": pa.array(list(ids), pa.string())}))
        t.checkout_latest()
        return before - t.count_rows()

    # ---------------------------------------------------------------- reads
    def fetch(self, ids: Sequence[str], columns: Sequence[str]) -> pa.Table:
        ds = self.dataset()
        value_set = pa.array(list(ids), pa.string())
        if len(ids) == 0:
            return ds.to_table(columns=list(columns), limit=0)
        if len(ids) <= FETCH_BY_FILTER:
            return ds.to_table(columns=list(columns), filter=pc.field("id").isin(value_set))
        # many ids: matched by hash over the id column, the rows taken by row id
        rows = [pc.filter(b.column("_rowid"), m).to_numpy() for b, m in self._id_matches(ds, value_set, row_ids=True)]
        return ds._take_rows(np.concatenate(rows).tolist(), columns=list(columns))

    def count(self, column: str | None = None) -> int:
        t = self.table()
        if column is None:
            return t.count_rows()
        if not re.fullmatch(r"v_\d+", column):  # our own column names only: nothing user-given reaches SQL
            raise ValueError(f"not a vector column: {column!r}")
        return t.count_rows(f"{column} IS NOT NULL")

    def count_without_text(self) -> int:
        return self.table().count_rows("text IS NULL")

    def scan(self, columns: Sequence[str], batch_rows: int = 65536) -> Iterator[pa.RecordBatch]:
        if self._reads_pylance:  # a one-off process (lancedb unimported): little read ahead (at 1M × 384, peak RSS
            # 1,004 MiB with lance's defaults, 814 with these)
            yield from self.dataset().to_batches(columns=list(columns), batch_size=batch_rows, batch_readahead=2,
                                                 fragment_readahead=1)
            return
        yield from self.table().to_lance().to_batches(columns=list(columns), batch_size=batch_rows)

    def version(self) -> Any:
        t = self.table()
        return t.version

    def drop(self) -> None:
        import shutil

        if self.exists():
            (self.path / META).unlink()
            shutil.rmtree(self.path, ignore_errors=True)
        # nothing of the dropped table is read again (a table made at this path later starts at version 1)
        self._table = self._ds = self._ds_at = self._indexed_at = self._known_ids = None

    def optimize(self, rebuild: bool = False, max_segments: int | None = None) -> dict[str, str]:
        most = MAX_SEGMENTS if max_segments is None else max_segments
        t = self.table()
        ds = t.to_lance()
        if sum(f.physical_rows < COMPACT_ROWS for f in ds.get_fragments()) > 16:
            # merge the small fragments many small writes leave (large ones stay: a whole-table rewrite at 1M rows
            # took longer than the index); LanceDB remaps the indexes' row addresses
            ds.optimize.compact_files(target_rows_per_fragment=COMPACT_ROWS)
        t.checkout_latest()
        stale = {c for i in t.list_indices() for c in i.columns if rebuild or i.num_segments > most
                 or i.num_unindexed_rows > REBUILD_SHARE * max(1, i.num_indexed_rows)}
        if self._unindexed() > 0 and len(stale) < len(t.list_indices()):
            # the rows written since become a new delta segment of each index: no retrain, and no merge (merging a
            # 100k-row delta into a 1M-row IVF_HNSW_SQ index took ~30 min here; a search reads every segment)
            t.to_lance().optimize.optimize_indices(num_indices_to_merge=0)
        from repspace.index.spec import parse_spec

        spec = parse_spec(self.read_meta().get("spec") or "Flat")
        # an index for each slot that has grown large enough to train one (again, where a large share of its rows
        # came after it: partitions trained on the current data, not a delta over half the table)
        report = {c: self.prepare_spec(c, t.schema.field(c).type.list_size, spec, rebuild=c in stale)
                  for c in self.columns()} if spec.kind in LANCE_INDEX else {}
        self.table().to_lance().cleanup_old_versions(older_than=KEEP_VERSIONS)
        return report

    # ------------------------------------------------------------ LanceDB's own vector indexes (`IVFn,...`)
    def _indexed(self, ds: Any = None) -> set[str]:
        """The vector columns LanceDB has an index on (read again only when the table's version moved); `ds`: the
        dataset a caller already has (`dataset()` asks the store for its latest version: ~0.5 ms)."""
        ds = self.dataset() if ds is None else ds
        at = getattr(self, "_indexed_at", None)
        if at is None or at[0] != ds.version:  # (a local: threads searching other versions set their own)
            listed = ([f for i in ds.describe_indices() for f in i.field_names] if hasattr(ds, "describe_indices")
                      else [f for i in ds.list_indices() for f in i["fields"]])  # (pylance before describe_indices)
            at = self._indexed_at = (ds.version, {c for c in listed if not is_payload_column(c)})  # vector indexes
        return at[1]

    def _unindexed(self) -> int:
        """Rows written since the vector indexes were built (LanceDB searches them exactly until `optimize`)."""
        t = self.table()
        return max([i.num_unindexed_rows for i in t.list_indices() if set(i.columns) & set(self.columns())] or [0])

    def prepare_spec(self, column: str, dim: int, spec: Any, rebuild: bool = False) -> str:
        """`IVFn,PQm` / `IVFn,HNSW_SQ`: LanceDB's on-disk index of that kind on the column, once it holds enough vectors
        to train it (until then, and for rows written since, LanceDB searches exactly). Says what the column has."""
        if spec.kind not in LANCE_INDEX:
            return "searched by repspace"
        kind, config = LANCE_INDEX[spec.kind](spec)
        if column in self._indexed() and not rebuild:
            return f"{kind} index (rows written since the last optimize: {self._unindexed():,}, searched exactly)"
        spec.check_dim(dim)
        n = self.count(column)
        if not spec.trainable(n):
            return (f"no index yet, searched exactly: {spec} trains on at least {spec.min_train:,} vectors, the slot "
                    f"holds {n:,}; it is built by the first optimize after that (or use fewer lists: "
                    f"IVF{max(1, n // 39)} trains now)" if n >= 256 else
                    f"no index yet, searched exactly: {spec} trains on at least {spec.min_train:,} vectors, the slot "
                    f"holds {n:,} (exact search is fast at this size)")
        self.table().create_index(column, replace=True, config=config)
        return f"{kind} index built over {n:,} vectors"

    def native_fused(self, spec: Any) -> bool:
        return self.live or (spec.kind == "flat" and self.search_in_store) or spec.kind in LANCE_INDEX

    def _ann(self, column: str, queries: np.ndarray, k: int, filter: dict[str, str], spec: Any,
             select: list[str]) -> list[pa.Table] | None:
        """LanceDB's own search of the column, one hits table per query (None: repspace's layer answers)."""
        ivf = spec.kind in LANCE_INDEX
        if filter or not (ivf or (spec.kind == "flat" and self.search_in_store)):
            return None
        from repspace.collections.lance_filter import nearest

        ds = self.dataset()
        exact = not ivf or column not in self._indexed(ds)

        def one(q: np.ndarray) -> pa.Table:
            # rows without this slot's vector (a slot being backfilled): Lance's kNN, exact or through the index,
            # leaves null vectors out by itself (tested: `test_a_partly_filled_slot_returns_only_rows_with_vectors`);
            # an `IS NOT NULL` post-filter cost 0.7 ms a query at 1M (RESULTS). A hit without a distance would be such
            # a row: dropped here should a Lance version return one
            hits = ds.to_table(columns=select, nearest=nearest(column, q, k, spec, not exact))
            return hits.filter(pc.is_valid(hits.column("_distance"))) if hits.column("_distance").null_count else hits

        queries = np.asarray(queries, np.float32)
        if len(queries) < 2:
            return [one(q) for q in queries]
        # a batch's queries at once: each waits on reading index pages (a cold 1M search: 147 -> 50 ms a query)
        return list(shared_pool("queries", QUERY_THREADS).map(one, queries))

    def native_search(self, column: str, dim: int, queries: np.ndarray, k: int, filter: dict[str, str],
                      spec: Any) -> list[list[tuple[str, float, dict]]] | None:
        """A slot of an IVF spec is searched by LanceDB (memory: the index's, not the slot's) — with its index once
        built, exactly before that — and so is a Flat slot in a one-off process (`search_in_store`: LanceDB's exact
        scan streams the column); payload filters go through `lance_filter.py`; the rest through repspace's layer."""
        if filter:  # payload indexes, an exact or an index plan by the number of matches: `lance_filter.py`
            from repspace.collections.lance_filter import filtered_search

            return filtered_search(self, column, dim, queries, k, filter, spec)
        got = self._ann(column, queries, k, filter, spec, ["id", "payload", "_distance"])
        return None if got is None else [
            [(i, 1.0 - float(d), json.loads(p or "{}")) for i, p, d in zip(
                h.column("id").to_pylist(), h.column("payload").to_pylist(), h.column("_distance").to_pylist())]
            for h in got]

    def candidates(self, column: str, dim: int, queries: np.ndarray, k: int, filter: dict[str, str], spec: Any,
                   columns: Sequence[str]) -> list[pa.Table] | None:
        return self._ann(column, queries, k, filter, spec, ["id", "payload", "_distance", *dict.fromkeys(columns)])

    def put_blob(self, name: str, data: bytes) -> None:
        from repspace._io import atomic_file

        with atomic_file(self.path / "blobs" / name, "wb") as fh:
            fh.write(data)

    def get_blob(self, name: str) -> bytes | None:
        p = self.path / "blobs" / name
        return p.read_bytes() if p.is_file() else None

    def columns(self) -> list[str]:
        return [c for c in self.table().schema.names if c not in BASE_COLUMNS and not is_payload_column(c)]
