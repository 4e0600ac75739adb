"""`Collection`: a live, changing set of items with vectors of one or more models, in a real store.

    from repspace.collections import Collection
    c = Collection.create("docs", model="minilm-l6", spec="Flat")          # LanceDB directory
    c = Collection.create("postgresql://postgres@/postgres?host=/tmp/s&collection=docs", model="minilm-l6")
    c.upsert(["a", "b"], texts=["first text", "second"], payloads=[{"label": "x"}, {}])
    c.search(texts=["a query"], k=10, filter={"label": "x"})              # [[{"id", "score", "payload"}, ...]]

An item is an id, its text (or image path) when known — kept so the collection can be re-encoded
by a new model later — a JSON payload, and one vector per *slot*. A slot is one model's vectors
(model name + version + dimension); one slot is *active* for search. A model upgrade adds a slot
for the new model, fills it, and switches the active slot (see `repspace.collections.upgrade`).
Slots of models repspace does not know hold bring-your-own vectors (`upsert(vectors=...)`).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pyarrow as pa

from repspace.collections.cache import SlotCache
from repspace.collections.payload import check_filter, check_payload, dumps
from repspace.collections.store import Store, vector_array, vectors_of
from repspace.collections.uri import CollectionURI, parse_uri
from repspace.errors import (CollectionError, DimensionMismatchError, InvalidInputError, InvalidVectorsError,
                             UnknownNameError)
from repspace.index.spec import IndexSpec, parse_spec
from repspace.spaces.space import check_finite, check_ids

FORMAT = "repspace.collection"
MAX_ID_CHARS = 65536


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def open_store(uri: CollectionURI) -> Store:
    if uri.backend == "lancedb":
        from repspace.collections.lance_store import LanceStore

        return LanceStore(uri.path)
    from repspace.collections.pg_store import PgStore

    return PgStore(uri.dsn, uri.name)


def describe_model(model: str, dim: int | None, model_version: str | None, device: str = "cpu") -> dict[str, Any]:
    """A slot's model record: a repspace model (name or directory) is loaded to read its dim and version;
    any other name is an external model whose vectors the user brings (then `dim` is required)."""
    from repspace.encoders import MODELS

    known = model in MODELS or Path(model).is_dir()
    if known:
        from repspace.encoders import get_encoder

        enc = get_encoder(model, device=device)
        if dim is not None and dim != enc.dim:
            raise DimensionMismatchError(f"model {model!r} makes {enc.dim}-d vectors, not {dim}")
        return {"model": enc.name if model in MODELS else model, "model_version": enc.version, "dim": int(enc.dim),
                "modality": enc.modality, "normalized": bool(enc.normalized), "encodes": True}
    if dim is None or dim < 1:
        from repspace.encoders import MODELS as M

        raise UnknownNameError(f"model {model!r} is not a repspace model (built-in: {', '.join(M)}, or a model "
                               "directory); for vectors from another model, give its dimension (dim=… / --dim D) "
                               "and upsert vectors")
    return {"model": model, "model_version": model_version or "", "dim": int(dim), "modality": "external",
            "normalized": False, "encodes": False}


def slot_name_for(info: dict[str, Any], taken: Iterable[str]) -> str:
    base = Path(info["model"]).name if Path(info["model"]).is_dir() else info["model"]
    name = base if base not in taken else f"{base}@{(info['model_version'] or 'v')[:8]}"
    n = 2
    while name in taken:
        name, n = f"{base}#{n}", n + 1
    return name


class Collection:
    """A collection in LanceDB (a directory) or PostgreSQL + pgvector (a DSN with ?collection=NAME)."""

    def __init__(self, store: Store, uri: CollectionURI, device: str = "cpu") -> None:
        self.store, self.uri, self.device = store, uri, device
        self.meta = store.read_meta()
        if self.meta.get("format") != FORMAT:
            raise CollectionError(f"{uri} is not a repspace collection")
        self._encoders: dict[str, Any] = {}
        self._caches: dict[str, SlotCache] = {}

    # ------------------------------------------------------------ opening
    @classmethod
    def create(cls, uri: str | Path, model: str, spec: str = "Flat", *, dim: int | None = None,
               model_version: str | None = None, device: str = "cpu") -> "Collection":
        """Create a collection whose first (active) slot holds `model`'s vectors, searched with `spec`."""
        parsed = parse_uri(uri)
        ispec = _collection_spec(spec)
        info = describe_model(model, dim, model_version, device)
        _check_spec_fits(ispec, info["dim"])
        name = slot_name_for(info, ())
        slot = {"name": name, "column": "v_0", "created": _now(), **info}
        meta = {"format": FORMAT, "format_version": 1, "name": parsed.name, "spec": str(ispec), "active": name,
                "slots": [slot], "next_column": 1, "upgrade": None, "created": _now()}
        store = open_store(parsed)
        store.create(meta, {"v_0": info["dim"]})
        store.prepare_spec("v_0", info["dim"], ispec)
        return cls(store, parsed, device)

    @classmethod
    def open(cls, uri: str | Path, device: str = "cpu") -> "Collection":
        parsed = parse_uri(uri)
        return cls(open_store(parsed), parsed, device)

    @classmethod
    def open_or_create(cls, uri: str | Path, model: str | None = None, spec: str = "Flat", *, dim: int | None = None,
                       device: str = "cpu") -> "Collection":
        parsed = parse_uri(uri)
        store = open_store(parsed)
        if store.exists():
            return cls(store, parsed, device)
        if model is None:
            raise InvalidInputError(f"no collection at {parsed}; give a model to create it")
        return cls.create(uri, model, spec, dim=dim, device=device)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "Collection":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Collection({str(self.uri)!r}, backend={self.backend!r}, active={self.active!r})"

    # ------------------------------------------------------------ slots
    @property
    def backend(self) -> str:
        return self.store.backend

    @property
    def name(self) -> str:
        return self.meta["name"]

    @property
    def spec(self) -> IndexSpec:
        return parse_spec(self.meta["spec"])

    @property
    def active(self) -> str:
        return self.meta["active"]

    @property
    def slots(self) -> list[dict[str, Any]]:
        return list(self.meta["slots"])

    def reload(self) -> None:
        """Re-read the metadata (another process may have switched the active slot)."""
        self.meta = self.store.read_meta()

    def slot(self, name: str | None = None) -> dict[str, Any]:
        name = name or self.active
        for s in self.meta["slots"]:
            if s["name"] == name:
                return s
        raise UnknownNameError(f"collection {self.name!r} has no slot {name!r}; slots: "
                               f"{', '.join(s['name'] for s in self.meta['slots'])}")

    def add_slot(self, model: str, *, dim: int | None = None, model_version: str | None = None) -> dict[str, Any]:
        """Add an empty slot for another model (vectors filled later by upserts or a backfill)."""
        self.reload()
        info = describe_model(model, dim, model_version, self.device)
        for s in self.meta["slots"]:
            if s["model"] == info["model"] and s["model_version"] == info["model_version"]:
                raise CollectionError(f"collection {self.name!r} already has a slot for {info['model']!r} ({s['name']!r})")
        column = f"v_{self.meta['next_column']}"
        slot = {"name": slot_name_for(info, [s["name"] for s in self.meta["slots"]]), "column": column,
                "created": _now(), **info}
        self.meta["next_column"] += 1  # claim the column first: a crash leaves an unused name, never a reused one
        self.store.write_meta(self.meta)
        self.store.drop_vector_column(column)  # a leftover of a crashed add_slot, if any
        self.store.add_vector_column(column, info["dim"])
        self.meta["slots"].append(slot)
        self.store.write_meta(self.meta)
        _check_spec_fits(self.spec, info["dim"], strict=False)
        self.store.prepare_spec(column, info["dim"], _fit_spec(self.spec, info["dim"]))
        return slot

    def set_active(self, name: str) -> None:
        self.reload()
        self.slot(name)
        self.meta["active"] = name
        self.store.write_meta(self.meta)

    def drop_slot(self, name: str) -> None:
        self.reload()
        s = self.slot(name)
        if name == self.active:
            raise CollectionError(f"slot {name!r} is active; switch to another slot before dropping it")
        self.meta["slots"] = [x for x in self.meta["slots"] if x["name"] != name]
        self.store.write_meta(self.meta)
        self.store.drop_vector_column(s["column"])
        self._caches.pop(name, None)

    def update_meta(self, **changes: Any) -> None:
        self.reload()
        self.meta.update(changes)
        self.store.write_meta(self.meta)

    # ---------------------------------------------------------- encoding
    def encoder(self, slot: str | None = None):
        s = self.slot(slot)
        if not s.get("encodes"):
            raise InvalidInputError(f"slot {s['name']!r} holds vectors of an external model ({s['model']!r}); "
                                    "repspace cannot encode for it: upsert vectors instead of texts")
        if s["name"] not in self._encoders:
            from repspace.encoders import get_encoder

            enc = get_encoder(s["model"], device=self.device)
            if enc.version != s["model_version"]:
                raise CollectionError(f"model {s['model']!r} here is version {enc.version}, the slot {s['name']!r} holds "
                                      f"version {s['model_version']}: its vectors would not be comparable")
            self._encoders[s["name"]] = enc
        return self._encoders[s["name"]]

    def encode(self, data: Sequence[Any], slot: str | None = None, batch_size: int = 64) -> np.ndarray:
        """Encode texts (or image paths / arrays) with a slot's model."""
        enc = self.encoder(slot)
        if len(data) == 0:
            return np.zeros((0, enc.dim), np.float32)
        out = [np.asarray(enc.encode_batch(data[s : s + batch_size]), np.float32) for s in range(0, len(data), batch_size)]
        return np.concatenate(out)

    # ------------------------------------------------------------ writes
    def _check_vectors(self, vectors: Any, n: int, slot: dict[str, Any]) -> np.ndarray:
        v = np.asarray(vectors)
        if v.ndim != 2 or v.shape[0] != n:
            raise InvalidVectorsError(f"vectors must have shape ({n}, {slot['dim']}); got {v.shape}")
        if not np.issubdtype(v.dtype, np.number):
            raise InvalidVectorsError(f"vectors must be numeric; got dtype {v.dtype}")
        if v.shape[1] != slot["dim"]:
            raise DimensionMismatchError(f"vectors are {v.shape[1]}-d but slot {slot['name']!r} ({slot['model']}) "
                                         f"holds {slot['dim']}-d vectors")
        v = v.astype(np.float32)
        check_finite(v)
        return v

    def upsert(self, ids: Sequence[str], texts: Sequence[str | None] | None = None, vectors: Any = None,
               payloads: Sequence[Mapping[str, Any] | None] | None = None, *, slot: str | None = None,
               model: str | None = None, data: Sequence[Any] | None = None) -> dict[str, int]:
        """Insert or replace items (one atomic write). With texts, every slot whose model repspace has encodes
        them; `vectors` (bring your own) fill `slot` (default: the active one) — `model` names their model, which
        must be the slot's. Slots left without a vector stay empty for those items (a backfill fills them).
        `data` encodes other inputs (image arrays) without storing them as text."""
        self.reload()
        ids = check_ids(ids)
        n = len(ids)
        if n == 0:
            return {"upserted": 0}
        if any(len(i) > MAX_ID_CHARS for i in ids):
            raise InvalidInputError(f"ids must be at most {MAX_ID_CHARS} characters")
        _check_utf8(ids, "id")
        if texts is not None:
            texts = list(texts)
            if len(texts) != n:
                raise InvalidInputError(f"{len(texts)} texts for {n} ids")
            if any(t is not None and not isinstance(t, str) for t in texts):
                raise InvalidInputError("texts must be strings (or None)")
            _check_utf8([t for t in texts if t is not None], "text")
        if payloads is not None and len(payloads) != n:
            raise InvalidInputError(f"{len(payloads)} payloads for {n} ids")
        pl = (["{}"] * n if payloads is None or all(p is None or p == {} for p in payloads)
              else [dumps(check_payload(p, i)) for i, p in zip(ids, payloads)])
        target = self.slot(slot)
        vecs: dict[str, np.ndarray] = {}
        if vectors is not None:
            if model is not None and model != target["model"]:
                raise InvalidVectorsError(f"vectors of model {model!r} cannot go into slot {target['name']!r}, which "
                                          f"holds {target['model']!r} vectors")
            vecs[target["name"]] = self._check_vectors(vectors, n, target)
        source = data if data is not None else texts
        if source is None and vectors is None:
            raise InvalidInputError("upsert needs texts or vectors")
        gaps = source is texts and texts is not None and any(t is None for t in texts)
        if gaps and vectors is None:
            raise InvalidInputError("every item needs a text when no vectors are given")
        if source is not None and not gaps:  # every slot whose model repspace has encodes the items
            for s in self.meta["slots"]:
                if s.get("encodes") and s["name"] not in vecs:
                    vecs[s["name"]] = self.encode(list(source), s["name"])
        if not vecs:
            raise InvalidInputError(f"no slot can hold these items: slot {target['name']!r} needs vectors "
                                    f"({target['model']} is not a repspace model)")
        cols = {"id": pa.array(ids, pa.string()), "text": pa.array(texts if texts is not None else [None] * n, pa.string()),
                "payload": pa.array(pl, pa.string())}
        by_name = {s["name"]: s for s in self.meta["slots"]}
        for name, v in vecs.items():
            cols[by_name[name]["column"]] = vector_array(v, by_name[name]["dim"], n)
        before = self._versions()
        self.store.upsert(pa.table(cols))
        self._after_write(before, lambda c, name: c.apply_upsert(ids, vecs.get(name), pl))
        return {"upserted": n}

    def update_vectors(self, slot: str, ids: Sequence[str], vectors: Any, *, texts: Sequence[str] | None = None) -> None:
        """Fill one slot's vectors of existing items (the backfill's write). With `texts` (what the vectors were
        made from), items whose text changed meanwhile are left alone: a newer upsert already encoded them."""
        s = self.slot(slot)
        ids = check_ids(ids)
        v = self._check_vectors(vectors, len(ids), s)
        before = self._versions()
        self.store.update_vectors(s["column"], ids, v, texts=texts)
        if texts is not None:  # which rows matched is the store's secret: reload the caches
            for c in self._caches.values():
                c.version = object()
            return

        def apply(c: SlotCache, name: str) -> None:
            if name == s["name"]:
                other = next((x for x in self._caches.values() if x is not c), None)
                c.apply_vectors(ids, v, lambda i: c.payload_of(i) or (other.payload_of(i) if other else None))

        self._after_write(before, apply)

    def delete(self, ids: Sequence[str]) -> dict[str, int]:
        ids = [str(i) for i in ids]
        before = self._versions()
        n = self.store.delete(list(dict.fromkeys(ids)))
        self._after_write(before, lambda c, name: c.apply_delete(ids))
        return {"deleted": int(n)}

    def _versions(self) -> Any:
        return self.store.version() if self._caches else None

    def _after_write(self, before: Any, apply) -> None:
        """Keep loaded caches in step with our own committed write; reload if anyone else wrote meanwhile."""
        if not self._caches:
            return
        after = self.store.version()
        ours = _next_version(before, after)
        for name, c in list(self._caches.items()):
            if not ours or c.version != before:
                c.version = object()  # someone else wrote too: reload on next search
                continue
            apply(c, name)
            if c.version == before:  # apply may have given up (then the next search reloads)
                c.advance(after)

    # ------------------------------------------------------------- reads
    def count(self, slot: str | None = None) -> int:
        """Live items (after deletes); with `slot`, those holding a vector of that slot."""
        return self.store.count(None if slot is None else self.slot(slot)["column"])

    def get(self, ids: Sequence[str], *, vectors: bool = False, slot: str | None = None) -> list[dict[str, Any]]:
        """Items in the order asked (missing ids are left out): {id, text, payload[, vector]}."""
        self.reload()
        ids = [str(i) for i in ids]
        s = self.slot(slot) if vectors else None
        cols = ["id", "text", "payload"] + ([s["column"]] if s else [])
        t = self.store.fetch(list(dict.fromkeys(ids)), cols)
        rows = {}
        vec_valid = vec_rows = None
        if s:
            vec_valid, vec_rows = vectors_of(t.column(s["column"]), s["dim"])
            pos = np.cumsum(vec_valid) - 1
        for j, (i, text, p) in enumerate(zip(t.column("id").to_pylist(), t.column("text").to_pylist(),
                                             t.column("payload").to_pylist())):
            row = {"id": i, "text": text, "payload": json.loads(p) if p else {}}
            if s:
                row["vector"] = vec_rows[pos[j]].tolist() if vec_valid[j] else None
            rows[i] = row
        return [rows[i] for i in dict.fromkeys(ids) if i in rows]

    def cache(self, slot: str | None = None, version: Any = None) -> SlotCache:
        """The in-memory search layer of a slot, in step with the store (`version`: a token just read, to
        check several slots against one read)."""
        s = self.slot(slot)
        c = self._caches.get(s["name"])
        if c is None:
            c = self._caches[s["name"]] = SlotCache(s["column"], s["dim"], _fit_spec(self.spec, s["dim"]), s["model"])
        if version is None:
            c.sync(self.store)
        elif version != c.version:
            c.load(self.store)
        return c

    def query_vectors(self, texts: Sequence[str] | None, vectors: Any, slot: dict[str, Any]) -> np.ndarray:
        if (texts is None) == (vectors is None):
            raise InvalidInputError("search needs exactly one of texts or vectors")
        if texts is not None:
            return self.encode(query_texts(texts), slot["name"])
        v = np.asarray(vectors)
        if v.ndim == 1:
            v = v[None, :]
        return self._check_vectors(v, v.shape[0], slot)

    def search(self, texts: Sequence[str] | str | None = None, vectors: Any = None, k: int = 10,
               filter: Mapping[str, Any] | None = None, *, slot: str | None = None,
               strategy: str | None = None) -> list[list[dict[str, Any]]]:
        """Nearest items by cosine, per query: [[{"id", "score", "payload"}, …], …].

        During an open upgrade, `strategy` (old | adapted | mixed | fused; default fused) picks how the
        old and new slots are combined — see `repspace.collections.upgrade`."""
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise InvalidInputError(f"k must be a positive integer, got {k!r}")
        flt = check_filter(filter)
        self.reload()
        if slot is None and self.meta.get("upgrade") and strategy != "active":
            from repspace.collections.upgrade import upgrade_search

            return upgrade_search(self, texts, vectors, k, flt, strategy)
        if strategy not in (None, "active", "old"):
            raise InvalidInputError(f"strategy {strategy!r} needs an open upgrade (repspace upgrade start)")
        s = self.slot(slot)
        q = self.query_vectors(texts, vectors, s)
        return self.search_slot(s, q, k, flt)

    def search_slot(self, s: dict[str, Any], q: np.ndarray, k: int, flt: dict[str, str]) -> list[list[dict[str, Any]]]:
        spec = _fit_spec(self.spec, s["dim"])
        native = self.store.native_search(s["column"], s["dim"], q, k, flt, spec)
        if native is not None:
            return [[{"id": i, "score": sc, "payload": p} for i, sc, p in row] for row in native]
        hits = self.cache(s["name"]).search(q, k, flt)
        return [[{"id": i, "score": sc, "payload": json.loads(p)} for i, sc, p in row] for row in hits]

    # ------------------------------------------------------- import/export
    def export(self, out: str | Path | None = None, *, slot: str | None = None, label_key: str = "label"):
        """The slot's vectors as a `Space` (items without a vector of the slot are left out); saved to `out`."""
        from repspace.spaces import Space

        s = self.slot(slot)
        ids, labels, blocks = [], [], []
        for batch in self.store.scan(["id", "payload", s["column"]]):
            valid, v = vectors_of(batch.column(s["column"]), s["dim"])
            keep = np.flatnonzero(valid)
            bid, bp = batch.column("id").to_pylist(), batch.column("payload").to_pylist()
            ids += [bid[j] for j in keep]
            for j in keep:
                val = json.loads(bp[j] or "{}").get(label_key)
                labels.append(None if val is None else str(val))
            blocks.append(v)
        if not ids:
            raise CollectionError(f"slot {s['name']!r} of collection {self.name!r} holds no vectors to export")
        vectors = np.concatenate(blocks)
        order = np.argsort(np.asarray(ids, dtype=object), kind="stable")
        ids = [ids[j] for j in order]
        has_labels = any(lab is not None for lab in labels)
        space = Space(vectors[order], ids, [labels[j] for j in order] if has_labels else None, model=s["model"],
                      model_version=s["model_version"], extra={"collection": self.name, "slot": s["name"]})
        if out is not None:
            space.save(out)
        return space

    def import_space(self, space, *, slot: str | None = None, batch_size: int = 4096, resume: bool = True,
                     progress: bool = False) -> dict[str, Any]:
        """Upsert a Space's vectors into a slot (its model must be the slot's; labels go to the payload)."""
        from repspace.collections.ingest import upsert_space

        return upsert_space(self, space, slot=slot, batch_size=batch_size, resume=resume, progress=progress)

    # -------------------------------------------------------------- info
    def info(self) -> dict[str, Any]:
        self.reload()
        slots = [{"name": s["name"], "model": s["model"], "model_version": s["model_version"], "dim": s["dim"],
                  "count": self.count(s["name"]), "encodes": bool(s.get("encodes"))} for s in self.meta["slots"]]
        return {"name": self.name, "uri": str(self.uri), "backend": self.backend, "count": self.count(),
                "spec": self.meta["spec"], "active": self.active, "slots": slots,
                "upgrade": self.meta.get("upgrade"), "created": self.meta.get("created")}


def query_texts(texts: Sequence[str] | str) -> list[str]:
    """Query texts as a non-empty list of strings (one string is one query)."""
    texts = [texts] if isinstance(texts, str) else list(texts)
    if not texts or any(not isinstance(t, str) for t in texts):
        raise InvalidInputError("query texts must be a non-empty list of strings")
    return texts


def _check_utf8(values: Sequence[str], what: str) -> None:
    for v in values:
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInputError(f"a {what} holds a lone surrogate ({v[:40]!r}…); it is not valid Unicode text") from None


def _next_version(before: Any, after: Any) -> bool:
    """True when exactly one commit happened between the tokens (ours)."""
    try:
        return int(after) - int(before) == 1
    except (TypeError, ValueError):
        return False


def _collection_spec(text: str) -> IndexSpec:
    from repspace.index import KINDS

    spec = parse_spec(text) if isinstance(text, str) else text
    if spec.static_only:
        live = [k.usage for k in KINDS.values() if not k.static_only]
        raise InvalidInputError(f"spec {str(spec)!r} is for static indexes; collections take "
                                f"{', '.join(live[:-1])} or {live[-1]}")
    return spec


def _check_spec_fits(spec: IndexSpec, dim: int, strict: bool = True) -> None:
    if spec.kind == "funnel" and spec.stages[-1] != dim and strict:
        raise DimensionMismatchError(f"funnel {spec} must end at the model's dimension {dim} "
                                     f"(e.g. funnel:{min(64, dim)}/{dim})")


def _fit_spec(spec: IndexSpec, dim: int) -> IndexSpec:
    """A funnel written for one slot's dimension, adapted to another slot's (prefixes kept where they fit)."""
    if spec.kind != "funnel" or spec.stages[-1] == dim:
        return spec
    stages = tuple(d for d in spec.stages if d < dim) + (dim,)
    if len(stages) < 2:
        return IndexSpec("flat")
    return IndexSpec("funnel", stages=stages, shortlist=spec.shortlist)
