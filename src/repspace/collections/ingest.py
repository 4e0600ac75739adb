"""Streaming, resumable upserts of many items: `upsert_items` (texts/images) and `upsert_space` (vectors); and
`export_space`, a slot back to a Space.

Input is cut into fixed batches by position; each batch is one atomic write. A re-run of the same
job skips every batch whose items are all stored already with the same text, payload and a vector
in the slot, and redoes any other batch whole — so after a kill the collection ends with every
item exactly once and with vectors equal to an uninterrupted run (a batch is always encoded with
the same companions). Memory is bounded by one batch plus the input itself (a `.npy` stays mapped).
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable, Sequence

import numpy as np

from typing import TYPE_CHECKING
from repspace.collections.payload import check_payload, dumps
from repspace.collections.store import vectors_of

if TYPE_CHECKING:  # pragma: no cover - annotations only (ingest works on any Collection; no import cycle)
    from repspace.collections.collection import Collection
    from repspace.collections.meta import Slot


def _payloads(labels: Any, n: int, start: int) -> list[dict]:
    if labels is None:
        return [{} for _ in range(n)]
    return [{"label": str(labels[start + j])} for j in range(n)]


def batch_done(coll: Collection, ids: Sequence[str], texts: Sequence[str | None] | None, payloads: Sequence[dict],
               slot: "Slot", vectors: np.ndarray | None = None) -> bool:
    """True when every item of the batch is stored with this text, payload and a vector in `slot`."""
    t = coll.store.fetch(list(ids), ["id", "text", "payload", slot.column])
    if t.num_rows != len(ids):
        return False
    valid, vecs = vectors_of(t.column(slot.column), slot.dim)
    if not valid.all():
        return False
    pos = {i: j for j, i in enumerate(t.column("id").to_pylist())}
    stored_text, stored_pl = t.column("text").to_pylist(), t.column("payload").to_pylist()
    for j, i in enumerate(ids):
        r = pos[i]
        if texts is not None and stored_text[r] != texts[j]:
            return False
        if stored_pl[r] != dumps(check_payload(payloads[j], i)) and json.loads(stored_pl[r] or "{}") != payloads[j]:
            return False
        if vectors is not None and not np.array_equal(vecs[r], np.asarray(vectors[j], np.float32)):
            return False
    return True


def _vectors_done(coll: Collection, ids: Sequence[str], slot: "Slot", vectors: np.ndarray) -> bool:
    t = coll.store.fetch(list(ids), ["id", slot.column])
    valid, vecs = vectors_of(t.column(slot.column), slot.dim)
    if t.num_rows != len(ids) or not valid.all():
        return False
    pos = {i: j for j, i in enumerate(t.column("id").to_pylist())}
    return all(np.array_equal(vecs[pos[i]], vectors[j]) for j, i in enumerate(ids))


def _run(coll: Collection, n: int, batch_size: int, progress: bool, label: str,
         one: Callable[[int, int], tuple[int, int]]) -> dict[str, Any]:
    from repspace.ops.progress import progress_bar

    if batch_size < 1:
        from repspace.errors import InvalidInputError

        raise InvalidInputError(f"batch_size must be positive, got {batch_size}", param="batch_size")
    written = skipped = 0
    t0 = time.perf_counter()
    with progress_bar(progress) as bar:
        task = bar.add_task(label, total=n, rate="")
        for start in range(0, n, batch_size):
            stop = min(n, start + batch_size)
            w, s = one(start, stop)
            written, skipped = written + w, skipped + s
            rate = (written + skipped) / max(time.perf_counter() - t0, 1e-9)
            bar.update(task, advance=stop - start, rate=f"{rate:,.0f} items/s")
    coll.optimize()
    return {"upserted": written, "skipped": skipped, "count": coll.count(), "seconds": round(time.perf_counter() - t0, 3)}


def upsert_items(coll: Collection, items, *, batch_size: int = 256, encode_batch: int = 32, resume: bool = True,
                 progress: bool = False, engine: str = "local", workers: int | None = None,
                 address: str | None = None) -> dict[str, Any]:
    """Upsert `repspace.datasets.Items`: texts (or image paths) are stored and encoded by every slot's model;
    in-memory images are encoded without storing a text. Labels go to the payload as {"label": …}.

    Items are cut into the encode job's shards (longest first, `batch_size` items per atomic write, encoded in
    batches of `encode_batch`), so both engines form the same batches: `engine="ray"` encodes the active slot's
    shards on a Ray actor pool (`repspace.scale.ray_encode`) and upserts each in the driver, with vectors identical
    to the local engine's. Other slots that encode (during an upgrade) are encoded in the driver."""
    from repspace.errors import InvalidInputError
    from repspace.scale import check_engine, plan_shards

    check_engine(engine)
    for name, value in (("encode_batch", encode_batch), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidInputError(f"{name} must be a positive integer; got {value!r}", param=name)
    slot = coll.slot()
    enc = coll.encoder()
    stores_text = items.modality == "text" or not isinstance(items.data, np.ndarray)
    plan = plan_shards(enc, items, encode_batch, batch_size)

    def shard(s: int):
        pos = plan.positions(s)
        ids = [items.ids[p] for p in pos]
        data = items.data[pos] if isinstance(items.data, np.ndarray) else [items.data[p] for p in pos]
        texts = [str(x) for x in data] if stores_text else None
        pls = [({"label": str(items.labels[p])} if items.labels is not None else {}) for p in pos]
        return ids, data, texts, pls

    def write(s: int, vectors: np.ndarray) -> None:
        ids, _, texts, pls = shard(s)
        coll.upsert(ids, texts=texts, payloads=pls, vectors=vectors, slot=slot.name,
                    data=None if stores_text else items.data[plan.positions(s)])

    t0 = time.perf_counter()
    done = [s for s in range(plan.n_shards) if resume and batch_done(coll, *_done_args(shard(s)), slot)]
    skipped = sum(len(plan.positions(s)) for s in done)
    todo = [s for s in range(plan.n_shards) if s not in set(done)]
    if engine == "ray":
        from repspace.scale import ray_encode

        ray_encode(slot.model, items, batch_size=encode_batch, workers=workers, shard_items=plan.shard_items,
                   skip=done, encoder=enc, address=address, progress=progress,
                   on_shard=lambda s, ids, v: write(s, v))
    else:
        from repspace.ops.progress import progress_bar

        with progress_bar(progress) as bar:
            task = bar.add_task("upsert", total=len(items), completed=skipped, rate="")
            for s in todo:
                _, data, _, _ = shard(s)
                vecs = np.concatenate([np.asarray(enc.encode_batch(data[b : b + encode_batch]), np.float32)
                                       for b in range(0, len(data), encode_batch)])
                write(s, vecs)
                bar.update(task, advance=len(data),
                           rate=f"{(bar.tasks[0].completed - skipped) / max(time.perf_counter() - t0, 1e-9):,.0f} items/s")
    coll.optimize()
    return {"upserted": len(items) - skipped, "skipped": skipped, "count": coll.count(),
            "seconds": round(time.perf_counter() - t0, 3)}


def _done_args(parts):
    ids, _, texts, pls = parts
    return ids, texts, pls


def upsert_space(coll: Collection, space, *, slot: str | None = None, batch_size: int = 4096, resume: bool = True,
                 progress: bool = False, check_model: bool = True) -> dict[str, Any]:
    """Upsert a Space's vectors into a slot (bring your own vectors); its labels go to the payload. Into a slot that
    is not the active one, only that slot's vectors of existing items are filled (texts, payloads and the other
    slots stay; ids the collection does not hold are skipped)."""
    s = coll.slot(slot)
    if space.dim != s.dim:  # refuse before any write or progress output
        from repspace.errors import DimensionMismatchError

        raise DimensionMismatchError(f"vectors are {space.dim}-d but slot {s.name!r} ({s.model}) holds {s.dim}-d vectors")
    if check_model and space.model != s.model:
        from repspace.errors import InvalidVectorsError

        raise InvalidVectorsError(f"vectors of model {space.model!r} cannot go into slot {s.name!r}, which holds "
                                  f"{s.model!r} vectors")

    fill_only = s.name != coll.active  # another slot: fill its vectors, keep texts, payloads and other slots

    def one(start: int, stop: int) -> tuple[int, int]:
        ids = space.ids[start:stop]
        vecs = np.asarray(space.vectors[start:stop], np.float32)
        if fill_only:
            if resume and _vectors_done(coll, ids, s, vecs):
                return 0, stop - start
            coll.update_vectors(s.name, ids, vecs)
            return stop - start, 0
        pls = _payloads(space.labels, stop - start, start)
        if resume and batch_done(coll, ids, None, pls, s, vecs):
            return 0, stop - start
        coll.upsert(ids, vectors=vecs, payloads=pls, slot=s.name, model=space.model if check_model else None)
        return stop - start, 0

    return _run(coll, space.count, batch_size, progress, "upsert", one)


def export_space(coll: "Collection", out=None, *, slot: str | None = None, label_key: str = "label"):
    """A slot's vectors as a `Space` sorted by id (items without a vector of the slot are left out; labels from the
    payload's `label_key`); saved to `out` when given."""
    from repspace.errors import CollectionError
    from repspace.spaces import Space

    s = coll.slot(slot)
    ids, labels, blocks = [], [], []
    for batch in coll.store.scan(["id", "payload", s.column]):
        valid, v = vectors_of(batch.column(s.column), s.dim)
        keep = np.flatnonzero(valid)
        bid, bp = batch.column("id").to_pylist(), batch.column("payload").to_pylist()
        ids += [bid[j] for j in keep]
        for j in keep:
            val = json.loads(bp[j] or "{}").get(label_key)
            labels.append(None if val is None else str(val))
        blocks.append(v)
    if not ids:
        raise CollectionError(f"slot {s.name!r} of collection {coll.name!r} holds no vectors to export")
    vectors = np.concatenate(blocks)
    order = np.argsort(np.asarray(ids, dtype=object), kind="stable")
    ids = [ids[j] for j in order]
    has_labels = any(lab is not None for lab in labels)
    space = Space(vectors[order], ids, [labels[j] for j in order] if has_labels else None, model=s.model,
                  model_version=s.model_version, extra={"collection": coll.name, "slot": s.name})
    if out is not None:
        space.save(out)
    return space


def ids_of(store, flt: dict[str, str]) -> list[str]:
    """Every live item's id in the store's order (with a filter: those whose payload matches it)."""
    import json

    from repspace.collections.payload import matches

    out: list[str] = []
    for batch in store.scan(["id", "payload"] if flt else ["id"]):
        ids = batch.column("id").to_pylist()
        if flt:
            pl = batch.column("payload").to_pylist()
            ids = [i for i, p in zip(ids, pl) if matches(json.loads(p or "{}"), flt)]
        out += ids
    return out


def get_items(store, ids: list[str], s: "Slot | None") -> list[dict[str, Any]]:
    """`Collection.get`: items in the order asked (missing ids are left out): {id, text, payload[, vector of slot s]}."""
    cols = ["id", "text", "payload"] + ([s.column] if s else [])
    t = store.fetch(list(dict.fromkeys(ids)), cols)
    rows = {}
    vec_valid = vec_rows = None
    if s:
        vec_valid, vec_rows = vectors_of(t.column(s.column), s.dim)
        pos = np.cumsum(vec_valid) - 1
    for j, (i, text, p) in enumerate(zip(t.column("id").to_pylist(), t.column("text").to_pylist(),
                                         t.column("payload").to_pylist())):
        row = {"id": i, "text": text, "payload": json.loads(p) if p else {}}
        if s:
            row["vector"] = vec_rows[pos[j]].tolist() if vec_valid[j] else None
        rows[i] = row
    return [rows[i] for i in dict.fromkeys(ids) if i in rows]
