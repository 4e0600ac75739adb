"""The storage interface a collection backend implements (LanceDB, PostgreSQL + pgvector).

A store holds one table of items — ``id`` (unique string), ``text`` (the text or image path the
vectors were made from, or null), ``payload`` (a JSON object) and one vector column per slot
(``v_0``, ``v_1``, …; null where an item has no vector of that slot yet) — plus the collection's
metadata (slots, active slot, spec, upgrade state). Rows travel as pyarrow tables.

Every write is one atomic commit (a Lance table version, a PostgreSQL transaction), acknowledged
only once it is durable; readers see whole commits.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Iterator, Sequence

import numpy as np
import pyarrow as pa

from repspace.collections.choices import BACKENDS

BASE_COLUMNS = ("id", "text", "payload")


def vector_type(dim: int) -> pa.DataType:
    return pa.list_(pa.float32(), dim)


def vector_array(vectors: np.ndarray | None, dim: int, n: int) -> pa.Array:
    """(n, dim) float32 -> fixed-size-list array; None -> n nulls."""
    if vectors is None:
        return pa.nulls(n, type=vector_type(dim))
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, dim)


def vectors_of(column: pa.ChunkedArray | pa.Array, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """A vector column -> (rows with a vector: bool (n,), their vectors (m, dim) float32)."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    valid = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    present = arr.filter(pa.array(valid)) if not valid.all() else arr
    if len(present) == 0:
        return valid, np.zeros((0, dim), np.float32)
    flat = present.flatten().to_numpy(zero_copy_only=False)
    return valid, np.asarray(flat, dtype=np.float32).reshape(-1, dim)


def fetch_unit_vectors(store: "Store", slot: Any, ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(has (n,) bool, the unit vectors of `slot` (a `meta.Slot`) of the ids, zero rows for none), read from the store."""
    from repspace.ops.search import normalize_rows

    t = store.fetch(list(dict.fromkeys(ids)), ["id", slot.column])
    valid, v = vectors_of(t.column(slot.column), slot.dim)
    at = {i: r for r, i in enumerate(np.asarray(t.column("id").to_pylist(), dtype=object)[valid])}
    rows = np.asarray([at.get(i, -1) for i in ids], np.int64)
    out = np.zeros((len(ids), slot.dim), np.float32)
    if len(v):
        out[rows >= 0] = normalize_rows(v)[rows[rows >= 0]]
    return rows >= 0, out


class Store(ABC):
    backend: str  # its name in `choices.BACKENDS` (and in `collection.STORES`)
    # True for an application's attached table: its rows change without `version()` moving, so nothing of it is
    # cached — every search is the store's own (`native_search`), every vector read a `fetch`
    live = False
    search_in_store = False  # set by `Collection.one_off()`: search through the store where it can, load nothing
    # a long backfill `optimize`s every `backfill.REINDEX_ROWS` rows (LanceDB: its indexes take the rewritten rows in,
    # else they are searched exactly until the end); False: only at the end (PostgreSQL: pgvector keeps its indexes up
    # to date itself, and a new slot's index built midway would take every later row one insert at a time)
    reindex_during_backfill = True

    @classmethod
    @abstractmethod
    def from_uri(cls, uri: Any) -> "Store":
        """The store a parsed `CollectionURI` names."""

    @abstractmethod
    def exists(self) -> bool: ...

    @abstractmethod
    def create(self, meta: dict[str, Any], columns: dict[str, int]) -> None:
        """Create the items table with vector columns {column: dim} and store `meta` (revision 1); refuse if it
        exists."""

    @abstractmethod
    def read_meta(self) -> dict[str, Any]:
        """The metadata document, with its `revision` (0 for collections written before revisions)."""

    @abstractmethod
    def write_meta(self, meta: dict[str, Any], expected: int) -> dict[str, Any]:
        """Compare-and-set: replace the metadata atomically with `meta` at revision `expected + 1`, only if the
        stored revision is still `expected`; else raise `ConcurrentChangeError` and write nothing. Returns the
        document written."""

    @abstractmethod
    def add_vector_column(self, column: str, dim: int) -> None: ...

    @abstractmethod
    def drop_vector_column(self, column: str) -> None: ...

    @abstractmethod
    def upsert(self, rows: pa.Table) -> None:
        """Insert or replace whole rows by id (vector columns missing from `rows` become null)."""

    @abstractmethod
    def update_vectors(self, column: str, ids: Sequence[str], vectors: np.ndarray,
                       texts: Sequence[str] | None = None) -> None:
        """Set one vector column of existing rows (ids that no longer exist are skipped). With `texts`, only rows
        whose stored text is still that text (a backfill must not overwrite a newer upsert's vector)."""

    @abstractmethod
    def delete(self, ids: Sequence[str]) -> int:
        """Delete rows by id; returns how many existed."""

    @abstractmethod
    def fetch(self, ids: Sequence[str], columns: Sequence[str]) -> pa.Table:
        """Rows of the ids that exist (any order), with `columns`."""

    @abstractmethod
    def count(self, column: str | None = None) -> int:
        """Live rows, or rows with a non-null `column`."""

    @abstractmethod
    def scan(self, columns: Sequence[str], batch_rows: int = 65536) -> Iterator[pa.RecordBatch]:
        """Every row, in batches, with `columns`."""

    @abstractmethod
    def version(self) -> Any:
        """A token that changes with every committed write (for cache invalidation)."""

    @abstractmethod
    def drop(self) -> None:
        """Delete the collection and its metadata."""

    @abstractmethod
    def put_blob(self, name: str, data: bytes) -> None:
        """Store a named artefact of the collection (e.g. an upgrade's adapter) atomically."""

    @abstractmethod
    def get_blob(self, name: str) -> bytes | None: ...

    @abstractmethod
    def columns(self) -> list[str]:
        """The vector columns the items table has now (one per slot the metadata lists)."""

    def attached_record(self) -> dict[str, Any] | None:
        """The metadata's record of an application's attached table (`collections.attach`), or None."""
        return self.read_meta().get("attached") if self.exists() else None

    def count_without_text(self) -> int:
        """Live rows without a text (they cannot be re-embedded by a new model)."""
        return sum(b.column("text").null_count for b in self.scan(["text"]))

    def stale(self, column: str) -> list[str]:
        """Ids whose `column` vector was made from a text that changed since (an attached table the application
        writes; repspace's own upserts re-encode every slot, so none)."""
        return []

    def check_writable(self) -> None:  # noqa: B027 - optional
        """Refuse (a `CollectionError`) where repspace does not write rows (an application's attached table)."""

    def check_drop_old(self) -> None:  # noqa: B027 - optional
        """Refuse dropping an attached table's own vector column where the application still needs it."""

    def optimize(self, rebuild: bool = False, max_segments: int | None = None) -> dict[str, str]:  # noqa: B027
        """Housekeeping after bulk writes (LanceDB: compact small files, build the spec's vector indexes); what each
        vector column has now, by column (empty: nothing to say). `rebuild`: retrain the vector indexes;
        `max_segments`: retrain an index that has more delta segments than this (default: the store's own limit)."""
        return {}

    def close(self) -> None:  # noqa: B027 - optional
        pass

    # optional: a native search's hits with the vectors of `columns` (one table per query: id, payload, the
    # columns), so a caller scoring them exactly (the fused upgrade search) needs no second read; None = cannot
    def candidates(self, column: str, dim: int, queries: np.ndarray, k: int, filter: dict[str, str], spec: Any,
                   columns: Sequence[str]) -> list[pa.Table] | None:
        return None

    # optional: native search (pgvector); None = use repspace's faiss layer
    def native_search(self, column: str, dim: int, queries: np.ndarray, k: int, filter: dict[str, str],
                      spec: Any) -> list[list[tuple[str, float, dict]]] | None:
        return None

    def native_fused(self, spec: Any) -> bool:
        """Whether an upgrade's fused search takes each slot's candidates from `native_search` (its cost bounded by
        the store's ANN search; nothing loaded into memory) rather than from repspace's in-memory layer."""
        return self.live

    def prepare_spec(self, column: str, dim: int, spec: Any) -> None:  # noqa: B027 - optional
        """Create the backend's own index structures for `spec` on `column` (if it has any)."""

    def index_payload(self, keys: Sequence[str]) -> None:
        """Build the backend's indexes on the declared payload keys (`PAYLOAD_INDEXES`; `collections/payload_index.py`)."""
        import importlib

        module, name = PAYLOAD_INDEXES[self.backend]
        getattr(importlib.import_module(module), name)(self, keys)


# backend name (`choices.BACKENDS`, what `parse_uri` says) -> the module and class of its store, loaded on first use
STORES = {"lancedb": ("repspace.collections.lance_store", "LanceStore"),
          "pgvector": ("repspace.collections.pg_store", "PgStore")}
# ... and of its store over an application's attached table (`collections.attach`; `cls.over(store, record)`)
ATTACHED = {"lancedb": ("repspace.collections.lance_attach", "AttachedLanceStore"),
            "pgvector": ("repspace.collections.pg_attach", "AttachedPgStore")}
# ... and the function building its payload indexes, `(store, keys)` (`collections/payload_index.py`)
PAYLOAD_INDEXES = {"lancedb": ("repspace.collections.lance_filter", "index_payload"),
                   "pgvector": ("repspace.collections.pg_filter", "index_payload")}
assert tuple(STORES) == BACKENDS == tuple(ATTACHED) == tuple(PAYLOAD_INDEXES)


def open_store(uri: Any) -> Store:
    """The store of a parsed `CollectionURI` (over an application's table where the collection is attached)."""
    import importlib

    module, name = STORES[uri.backend]
    store = getattr(importlib.import_module(module), name).from_uri(uri)
    record = store.attached_record()
    if not record:
        return store
    module, name = ATTACHED[uri.backend]
    return getattr(importlib.import_module(module), name).over(store, record)
