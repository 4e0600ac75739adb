"""`Collection`: a live, changing set of items with vectors of one or more models, in a real store.

    from repspace.collections import Collection
    c = Collection.create("docs", model="minilm-l6", spec="Flat")          # LanceDB directory
    c = Collection.create("postgresql://postgres@/postgres?host=/tmp/s&collection=docs", model="minilm-l6")
    c.upsert(["a", "b"], texts=["first text", "second"], payloads=[{"label": "x"}, {}])
    c.search(texts=["a query"], k=10, filter={"label": "x"})              # [[{"id", "score", "payload"}, ...]]

An item is an id, its text (or image path) when known — kept so the collection can be re-encoded by a new model
later — a JSON payload, and one vector per *slot*. A slot is one model's vectors (model name + version + dimension);
one slot is *active* for search. A model upgrade adds a slot for the new model, fills it, and switches the active slot
(`repspace.collections.upgrade`). Slots of models repspace does not know hold bring-your-own vectors.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pyarrow as pa

from repspace.collections.cache import SlotCache, hits_of, keep_in_step
from repspace.collections.choices import check_strategy_without_upgrade
from repspace.collections.meta import CollectionMeta, Slot
from repspace.collections.payload import check_filter, check_items, query_texts
from repspace.collections.scan_search import scan_search
from repspace.collections.slots import (CALL_OPTIONS, call_options, check_spec_fits, collection_spec, describe_model,
                                       fit_spec, slot_encoder)
from repspace.collections.store import Store, open_store, vector_array
from repspace.collections.uri import CollectionURI, parse_uri
from repspace.errors import ConcurrentChangeError, DimensionMismatchError, InvalidInputError, InvalidVectorsError
from repspace.index.spec import IndexSpec, parse_spec
from repspace.spaces.space import check_finite, check_ids

class Collection:
    """A collection in LanceDB (a directory) or PostgreSQL + pgvector (a DSN with ?collection=NAME)."""

    def __init__(self, store: Store, uri: CollectionURI, device: str = "cpu", backend: str | None = None,
                 threads: int | None = None) -> None:
        self.store, self.uri, self.device = store, uri, device
        self.encoder_backend, self.threads = backend, threads  # encoder backend (None: each slot's own), its threads
        self.meta = self._read_meta()
        self._encoders: dict[str, Any] = {}
        self._caches: dict[str, SlotCache] = {}
        self._memo: dict[str, tuple[Any, Any]] = {}  # per-version artefacts of the upgrade (adapter, row maps)
        self._options: dict[str, int] = {}  # search options over the spec's own (`tuned`)
        self.lock = threading.RLock()  # guards the in-memory layer (caches, memo, encoders): searches may run at once

    # ------------------------------------------------------------ opening
    @classmethod
    def create(cls, uri: str | Path, model: str, spec: str = "Flat", *, dim: int | None = None,
               model_version: str | None = None, device: str = "cpu", backend: str = "torch",
               threads: int | None = None, payload_index: Sequence[str] = ()) -> "Collection":
        """Create a collection whose first (active) slot holds `model`'s vectors, searched with `spec`;
        `payload_index`: payload keys to index for filtered search (`index_payload`)."""
        from repspace.collections.meta import now, slot_name_for
        from repspace.collections.payload_index import check_keys

        parsed = parse_uri(uri)
        ispec = collection_spec(spec)
        info = describe_model(model, dim, model_version, device, backend, threads)
        check_spec_fits(ispec, info["dim"])
        keys = check_keys(payload_index)
        first = Slot(name=slot_name_for(info["model"], info["model_version"], ()), column="v_0", created=now(), **info)
        meta = CollectionMeta.new(parsed.name, str(ispec), first)
        store = open_store(parsed)
        store.create({**meta.to_dict(), **({"payload_index": list(keys)} if keys else {})}, {"v_0": info["dim"]})
        store.prepare_spec("v_0", info["dim"], ispec)
        if keys:
            store.index_payload(list(keys))
        return cls(store, parsed, device, threads=threads)

    @classmethod
    def open(cls, uri: str | Path, device: str = "cpu", backend: str | None = None,
             threads: int | None = None) -> "Collection":
        """backend: encode texts with this encoder backend (default: the one each slot recorded; another than a
        slot's is refused for that slot: moving a slot to another backend is an upgrade)."""
        parsed = parse_uri(uri)
        return cls(open_store(parsed), parsed, device, backend, threads)

    @staticmethod
    def is_collection(target: str | Path) -> bool:
        """True for a PostgreSQL collection URI or a directory holding a LanceDB collection (without opening it)."""
        from repspace.collections.lance_store import LanceStore
        from repspace.collections.uri import is_pg

        return is_pg(str(target)) or LanceStore(target).exists()

    @classmethod
    def open_if_exists(cls, uri: str | Path, device: str = "cpu") -> "Collection | None":
        """The collection at `uri`, or None where there is none."""
        parsed = parse_uri(uri)
        store = open_store(parsed)
        if store.exists():
            return cls(store, parsed, device)
        store.close()
        return None

    @classmethod
    def open_or_create(cls, uri: str | Path, model: str | None = None, spec: str = "Flat", *, dim: int | None = None,
                       device: str = "cpu") -> "Collection":
        parsed = parse_uri(uri)
        store = open_store(parsed)
        if store.exists():
            return cls(store, parsed, device)
        if model is None:
            raise InvalidInputError(f"no collection at {parsed}; give a model to create it", param="model")
        return cls.create(uri, model, spec, dim=dim, device=device)

    def close(self) -> None:
        self.store.close()

    def one_off(self) -> "Collection":
        """For a one-off process (a CLI search): slots are searched by the store where it can, nothing loaded."""
        self.store.search_in_store = True
        return self

    def drop(self) -> None:
        """Delete the collection: its items, its metadata and its artefacts."""
        self.store.drop()
        self.close()

    def optimize(self, rebuild: bool = False, max_segments: int | None = None) -> dict[str, str]:
        """Housekeeping after bulk writes, readers undisturbed (LanceDB: merge small files, build, update or retrain —
        `rebuild`, or past `max_segments` delta segments — the vector indexes; payload indexes too); what each slot has."""
        done = self.store.optimize(rebuild, max_segments) or {}
        meta = self.reload()
        if meta.payload_index and meta.attached is None:
            self.store.index_payload(list(meta.payload_index))
        return {s.name: done[s.column] for s in meta.slots if s.column in done}

    def index_payload(self, keys: Sequence[str] | str) -> list[str]:
        """Declare payload keys to index (kept in the metadata) and build the store's indexes on every declared key
        (PostgreSQL: expression indexes; LanceDB: a column per key + a scalar index); returns the declared keys."""
        from repspace.collections.payload_index import index_payload

        return index_payload(self, keys)

    def __enter__(self) -> "Collection":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Collection({str(self.uri)!r}, backend={self.backend!r}, active={self.active!r})"

    # ------------------------------------------------------------ metadata
    def _read_meta(self) -> CollectionMeta:
        return CollectionMeta.from_dict(self.store.read_meta(), str(self.uri))

    def reload(self) -> CollectionMeta:
        """Re-read the metadata (another process may have switched the active slot)."""
        self.meta = self._read_meta()
        return self.meta

    def commit(self, read: CollectionMeta, new: CollectionMeta) -> CollectionMeta:
        """Write `new` if the stored metadata is still the revision `read` was (compare-and-set); else raise
        `ConcurrentChangeError` with nothing written."""
        doc = self.store.write_meta(new.to_dict(), read.revision)
        self.meta = CollectionMeta.from_dict(doc, str(self.uri))
        return self.meta

    def transition(self, change: Callable[[CollectionMeta], CollectionMeta]) -> CollectionMeta:
        """Read the metadata, apply one transition to it, write it by compare-and-set."""
        read = self.reload()
        return self.commit(read, change(read))

    # ------------------------------------------------------------ slots
    @property
    def backend(self) -> str:
        return self.store.backend

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def spec(self) -> IndexSpec:  # with the search options set by `tuned`, and the running search call's, if any
        return parse_spec(self.meta.spec).with_options({**self._options, **CALL_OPTIONS.get()})

    def tuned(self, **options: int | None) -> "Collection":
        """This handle's searches with other options of its spec (`.tuned(nprobe=256, refine=200)`; None: the spec's)."""
        given = {k: v for k, v in options.items() if v is not None}
        parse_spec(self.meta.spec).with_options(given)  # an option the spec has not, or < 1: refused here
        self._options = given
        return self

    @property
    def active(self) -> str:
        return self.meta.active

    @property
    def slots(self) -> list[Slot]:
        return list(self.meta.slots)

    @property
    def upgrade(self):
        """The open upgrade's state (`UpgradeState`), or None."""
        return self.meta.upgrade

    def slot(self, name: str | None = None) -> Slot:
        return self.meta.slot(name)

    def create_column(self, slot: Slot) -> None:
        """Make `slot`'s (already claimed) vector column and the spec's structures for it."""
        self.store.drop_vector_column(slot.column)  # a leftover of a crashed claim, if any
        self.store.add_vector_column(slot.column, slot.dim)
        self.store.prepare_spec(slot.column, slot.dim, fit_spec(self.spec, slot.dim))

    def add_slot(self, model: str, *, dim: int | None = None, model_version: str | None = None) -> Slot:
        """Add an empty slot for another model (vectors filled later by upserts or a backfill). The slot and its
        column name are claimed by one compare-and-set first: a crash leaves an empty slot, never a reused column."""
        read = self.reload()
        meta, slot = read.with_slot(describe_model(model, dim, model_version, self.device))
        self.commit(read, meta)
        self.create_column(slot)
        return slot

    def set_active(self, name: str) -> None:
        self.transition(lambda m: m.with_active(name))

    def drop_slot(self, name: str) -> None:
        s = self.slot(name)
        self.transition(lambda m: m.without_slot(name))
        self.drop_column(s)

    def drop_column(self, slot: Slot, *, drop_old: bool = False) -> None:
        """Drop a slot that the metadata no longer lists: its vectors and its cache (an attached table's own vector
        column only with `drop_old`)."""
        self.store.drop_vector_column(slot.column, **({"drop_old": True} if drop_old else {}))
        with self.lock:
            self._caches.pop(slot.name, None)

    def memo(self, key: str, version: Any, build: Callable[[], Any]) -> Any:
        """`build()`, kept under `key` until `version` changes (the upgrade's adapter, row maps, blocks)."""
        hit = self._memo.get(key)
        if hit is None or hit[0] != version:
            hit = self._memo[key] = (version, build())
        return hit[1]

    # ---------------------------------------------------------- encoding
    def encoder(self, slot: str | Slot | None = None):
        s = slot if isinstance(slot, Slot) else self.slot(slot)
        if not s.encodes:
            raise InvalidInputError(f"slot {s.name!r} holds vectors of an external model ({s.model!r}); "
                                    "repspace cannot encode for it: upsert vectors instead of texts", param="texts")
        with self.lock:
            return self._encoders.get(f"{s.name}@{s.model_version}") or self._load_encoder(s)

    def _load_encoder(self, s: Slot):
        key = f"{s.name}@{s.model_version}"  # by version: a compatible upgrade changes it in place
        if key not in self._encoders:
            self._encoders[key] = slot_encoder(s, self.device, self.encoder_backend, self.threads)
        return self._encoders[key]

    def encode(self, data: Sequence[Any], slot: str | Slot | None = None, batch_size: int = 64) -> np.ndarray:
        """Encode texts (or image paths / arrays) with a slot's model."""
        enc = self.encoder(slot)
        if len(data) == 0:
            return np.zeros((0, enc.dim), np.float32)
        out = [np.asarray(enc.encode_batch(data[s : s + batch_size]), np.float32) for s in range(0, len(data), batch_size)]
        return np.concatenate(out)

    # ------------------------------------------------------------ writes
    def _check_vectors(self, vectors: Any, n: int, slot: Slot) -> np.ndarray:
        v = np.asarray(vectors)
        if v.ndim != 2 or v.shape[0] != n:
            raise InvalidVectorsError(f"vectors must have shape ({n}, {slot.dim}); got {v.shape}", param="vectors")
        if not np.issubdtype(v.dtype, np.number):
            raise InvalidVectorsError(f"vectors must be numeric; got dtype {v.dtype}", param="vectors")
        if v.shape[1] != slot.dim:
            raise DimensionMismatchError(f"vectors are {v.shape[1]}-d but slot {slot.name!r} ({slot.model}) "
                                         f"holds {slot.dim}-d vectors", param="vectors")
        v = v.astype(np.float32, copy=False)
        check_finite(v)
        return v

    def upsert(self, ids: Sequence[str], texts: Sequence[str | None] | None = None, vectors: Any = None,
               payloads: Sequence[Mapping[str, Any] | None] | None = None, *, slot: str | None = None,
               model: str | None = None, data: Sequence[Any] | None = None) -> dict[str, int]:
        """Insert or replace items (one atomic write). With texts, every slot whose model repspace has encodes
        them; `vectors` (bring your own) fill `slot` (default: the active one) — `model` names their model, which
        must be the slot's. Slots left without a vector stay empty for those items (a backfill fills them).
        `data` encodes other inputs (image arrays) without storing them as text."""
        read = self.reload()
        self.store.check_writable()
        ids = check_ids(ids)
        if not ids:
            return {"upserted": 0}
        texts, pl = check_items(ids, texts, payloads)
        n = len(ids)
        target = self.slot(slot)
        vecs: dict[str, np.ndarray] = {}
        if vectors is not None:
            if model is not None and model != target.model:
                raise InvalidVectorsError(f"vectors of model {model!r} cannot go into slot {target.name!r}, which "
                                          f"holds {target.model!r} vectors", param="model")
            vecs[target.name] = self._check_vectors(vectors, n, target)
        source = data if data is not None else texts
        if source is None and vectors is None:
            raise InvalidInputError("upsert needs texts or vectors", param="texts")
        gaps = source is texts and texts is not None and any(t is None for t in texts)
        if gaps and vectors is None:
            raise InvalidInputError("every item needs a text when no vectors are given", param="texts")
        if source is not None and not gaps:  # every slot whose model repspace has encodes the items
            for s in read.slots:
                if s.encodes and s.name not in vecs:
                    vecs[s.name] = self.encode(list(source), s.name)
        if not vecs:
            raise InvalidInputError(f"no slot can hold these items: slot {target.name!r} needs vectors "
                                    f"({target.model} is not a repspace model)", param="vectors")
        cols = {"id": pa.array(ids, pa.string()), "text": pa.array(texts if texts is not None else [None] * n, pa.string()),
                "payload": pa.array(pl, pa.string())}
        by_name = {s.name: s for s in read.slots}
        for name, v in vecs.items():
            cols[by_name[name].column] = vector_array(v, by_name[name].dim, n)
        before = self._versions()
        self._write(read, lambda: self.store.upsert(pa.table(cols)))
        self._after_write(before, lambda c, name: c.apply_upsert(ids, vecs.get(name), pl))
        return {"upserted": n}

    def update_vectors(self, slot: str, ids: Sequence[str], vectors: Any, *, texts: Sequence[str] | None = None) -> None:
        """Fill one slot's vectors of existing items (the backfill's write). With `texts` (what the vectors were
        made from), items whose text changed meanwhile are left alone: a newer upsert already encoded them."""
        s = self.slot(slot)
        ids = check_ids(ids)
        v = self._check_vectors(vectors, len(ids), s)
        before = self._versions()
        self._write(self.meta, lambda: self.store.update_vectors(s.column, ids, v, texts=texts))
        if texts is not None:  # which rows matched is the store's secret: reload the caches
            with self.lock:
                for c in self._caches.values():
                    c.version = object()
            return

        def apply(c: SlotCache, name: str) -> None:
            if name == s.name:
                other = next((x for x in self._caches.values() if x is not c), None)
                c.apply_vectors(ids, v, lambda x: [a or b for a, b in zip(
                    c.payloads_of(x), other.payloads_of(x) if other else [None] * len(x))])

        self._after_write(before, apply)

    def delete(self, ids: Sequence[str]) -> dict[str, int]:
        ids = [str(i) for i in ids]
        self.store.check_writable()
        before = self._versions()
        n = self.store.delete(list(dict.fromkeys(ids)))
        self._after_write(before, lambda c, name: c.apply_delete(ids))
        return {"deleted": int(n)}

    def _write(self, read: CollectionMeta, write: Callable[[], None]) -> None:
        """One store write planned from the metadata `read`. If it fails because another command changed the
        collection meanwhile (a slot dropped by a finish or a rollback), the caller is told so, not given the
        store's own message; a write is one transaction (PostgreSQL) or one table version (LanceDB), so nothing
        of it is half-written either way."""
        try:
            write()
        except Exception:
            try:
                now = self._read_meta()
            except Exception:  # noqa: BLE001 - the write's own error is the one to report
                now = read
            if now.revision != read.revision:
                raise ConcurrentChangeError(f"collection {self.name!r} changed while this write was prepared "
                                            f"(revision {read.revision}, now {now.revision}: slots "
                                            f"{', '.join(s.name for s in now.slots)}); nothing was written, retry "
                                            "it") from None
            raise

    def _versions(self) -> Any:
        return self.store.version() if self._caches else None

    def _after_write(self, before: Any, apply: Callable[[SlotCache, str], None]) -> None:
        with self.lock:
            keep_in_step(self._caches, self.store, before, apply)

    # ------------------------------------------------------------- reads
    def count(self, slot: str | None = None) -> int:
        """Live items (after deletes); with `slot`, those holding a vector of that slot."""
        return self.store.count(None if slot is None else self.slot(slot).column)

    def ids(self, filter: Mapping[str, Any] | None = None) -> list[str]:
        """Every live item's id (with `filter`: those whose payload matches it), in the store's order."""
        from repspace.collections.ingest import ids_of

        return ids_of(self.store, check_filter(filter))

    def get(self, ids: Sequence[str], *, vectors: bool = False, slot: str | None = None) -> list[dict[str, Any]]:
        """Items in the order asked (missing ids are left out): {id, text, payload[, vector]}."""
        from repspace.collections.ingest import get_items

        self.reload()
        return get_items(self.store, [str(i) for i in ids], self.slot(slot) if vectors else None)

    def cache(self, slot: str | Slot | None = None, version: Any = None) -> SlotCache:
        """The in-memory search layer of a slot (a name, or the `Slot` of a metadata snapshot), in step with the store
        (`version`: a token just read, to check several slots against one read)."""
        s = slot if isinstance(slot, Slot) else self.slot(slot)
        c, spec = self._caches.get(s.name), fit_spec(self.spec, s.dim)
        if c is None or c.column != s.column:
            c = self._caches[s.name] = SlotCache(s.column, s.dim, spec, s.model)
        elif c.spec != spec:  # the same structure searched with other options (`tuned` after the first search)
            c.retune(spec)
        if version is None:
            c.sync(self.store)
        elif version != c.version:
            c.load(self.store)
        return c

    def vectors_for(self, slot: str | Slot, ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(has (n,) bool, the slot's unit vectors of the ids (n, dim), zero rows for none), from the search layer (from
        the store where nothing is cached: `Store.live`)."""
        if self.store.native_fused(self.spec):  # the store serves searches: read vectors from it, load nothing
            from repspace.collections.store import fetch_unit_vectors

            return fetch_unit_vectors(self.store, slot if isinstance(slot, Slot) else self.slot(slot), ids)
        with self.lock:
            return self.cache(slot).vectors_for(ids)

    def query_vectors(self, texts: Sequence[str] | None, vectors: Any, slot: dict[str, Any]) -> np.ndarray:
        if (texts is None) == (vectors is None):
            raise InvalidInputError("search needs exactly one of texts or vectors")
        if texts is not None:
            return self.encode(query_texts(texts), slot)
        v = np.asarray(vectors)
        if v.ndim == 1:
            v = v[None, :]
        return self._check_vectors(v, v.shape[0], slot)

    def search(self, texts: Sequence[str] | str | None = None, vectors: Any = None, k: int = 10,
               filter: Mapping[str, Any] | None = None, *, slot: str | None = None,
               strategy: str | None = None, vectors_new: Any = None,
               options: Mapping[str, int | None] | None = None) -> list[list[dict[str, Any]]]:
        """Nearest items by cosine, per query: [[{"id", "score", "payload"}, …], …].

        During an upgrade that serves, `strategy` (`choices.SEARCH_STRATEGIES`; default fused) picks how the
        old and new slots are combined — see `repspace.collections.upgrade.search`; queries are texts, or vectors of
        both models (`vectors`: the old's, `vectors_new`: the new's) where the collection cannot encode texts;
        `options`: this call's search options over the spec's (`{"nprobe": 256}`; `tuned` sets them for a handle)."""
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise InvalidInputError(f"k must be a positive integer, got {k!r}", param="k")
        flt = check_filter(filter)
        with call_options(self.meta.spec, options):
            read = self.reload()
            try:
                return self._search(read, texts, (vectors, vectors_new), k, flt, slot, strategy)
            except Exception:
                if self._read_meta().revision == read.revision:
                    raise
                # another command switched, finished or rolled back meanwhile: once more, on what it is now
                return self._search(self.reload(), texts, (vectors, vectors_new), k, flt, slot, strategy)

    def _search(self, meta: CollectionMeta, texts, vectors, k: int, flt: dict[str, str], slot: str | None,
                strategy: str | None) -> list[list[dict[str, Any]]]:
        """One search on the metadata `meta` (a snapshot: concurrent commands may replace `self.meta`); `vectors`: the
        query vectors of the old and of the new model (either may be None)."""
        vectors, vectors_new = vectors
        if slot is None and meta.upgrade is not None and meta.upgrade.serving and strategy != "active":
            from repspace.collections.upgrade import upgrade_search

            return upgrade_search(self, meta, texts, vectors, k, flt, strategy, vectors_new=vectors_new)
        if vectors_new is not None:
            raise InvalidInputError("vectors_new are the new model's query vectors: only during an upgrade that "
                                    "serves", param="vectors_new")
        check_strategy_without_upgrade(strategy)
        s = meta.slot(slot)
        q = self.query_vectors(texts, vectors, s)
        return self.search_slot(s, q, k, flt)

    def search_slot(self, s: Slot, q: np.ndarray, k: int, flt: dict[str, str]) -> list[list[dict[str, Any]]]:
        spec = fit_spec(self.spec, s.dim)
        native = self.store.native_search(s.column, s.dim, q, k, flt, spec)
        if native is not None:
            return [[{"id": i, "score": sc, "payload": p} for i, sc, p in row] for row in native]
        if self.store.search_in_store and not flt and s.name not in self._caches:  # one-off: stream, load nothing
            return scan_search(self.store, s.column, s.dim, q, k)
        with self.lock:
            return hits_of(self.cache(s).search(q, k, flt))

    # ------------------------------------------------------- import/export
    def export(self, out: str | Path | None = None, *, slot: str | None = None, label_key: str = "label"):
        """The slot's vectors as a `Space` (items without a vector of the slot are left out); saved to `out`."""
        from repspace.collections.ingest import export_space

        return export_space(self, out, slot=slot, label_key=label_key)

    # -------------------------------------------------------------- info
    def info(self) -> dict[str, Any]:
        m = self.reload()
        slots = [s.summary(self.count(s.name)) for s in m.slots]
        return {"name": self.name, "uri": str(self.uri), "backend": self.backend, "count": self.count(),
                "spec": m.spec, "active": self.active, "slots": slots,
                "upgrade": m.upgrade.to_dict() if m.upgrade else None, "created": m.created,
                **({"attached": m.attached} if m.attached else {}),
                **({"payload_index": list(m.payload_index)} if m.payload_index else {})}

