"""Streaming, resumable upserts of many items: `upsert_items` (texts/images) and `upsert_space` (vectors).

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

from repspace.collections.collection import Collection
from repspace.collections.payload import check_payload, dumps
from repspace.collections.store import vectors_of


def _payloads(labels: Any, n: int, start: int) -> list[dict]:
    if labels is None:
        return [{} for _ in range(n)]
    return [{"label": str(labels[start + j])} for j in range(n)]


def batch_done(coll: Collection, ids: Sequence[str], texts: Sequence[str | None] | None, payloads: Sequence[dict],
               slot: dict[str, Any], vectors: np.ndarray | None = None) -> bool:
    """True when every item of the batch is stored with this text, payload and a vector in `slot`."""
    t = coll.store.fetch(list(ids), ["id", "text", "payload", slot["column"]])
    if t.num_rows != len(ids):
        return False
    valid, vecs = vectors_of(t.column(slot["column"]), slot["dim"])
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


def _run(coll: Collection, n: int, batch_size: int, progress: bool, label: str,
         one: Callable[[int, int], tuple[int, int]]) -> dict[str, Any]:
    from repspace.encoders.job import progress_bar

    if batch_size < 1:
        from repspace.errors import InvalidInputError

        raise InvalidInputError(f"--batch-size must be positive, got {batch_size}")
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
    return {"upserted": written, "skipped": skipped, "count": coll.count(), "seconds": round(time.perf_counter() - t0, 3)}


def upsert_items(coll: Collection, items, *, batch_size: int = 256, resume: bool = True, progress: bool = False) -> dict[str, Any]:
    """Upsert `repspace.datasets.Items`: texts (or image paths) are stored and encoded by every slot's model;
    in-memory images are encoded without storing a text. Labels go to the payload as {"label": …}."""
    slot = coll.slot()
    stores_text = items.modality == "text" or not isinstance(items.data, np.ndarray)

    def one(start: int, stop: int) -> tuple[int, int]:
        ids = items.ids[start:stop]
        data = items.data[start:stop]
        texts = [str(x) for x in data] if stores_text else None
        pls = _payloads(items.labels, stop - start, start)
        if resume and batch_done(coll, ids, texts, pls, slot):
            return 0, stop - start
        coll.upsert(ids, texts=texts, payloads=pls, data=None if stores_text else data)
        return stop - start, 0

    return _run(coll, len(items), batch_size, progress, "upsert", one)


def upsert_space(coll: Collection, space, *, slot: str | None = None, batch_size: int = 4096, resume: bool = True,
                 progress: bool = False, check_model: bool = True) -> dict[str, Any]:
    """Upsert a Space's vectors into a slot (bring your own vectors); its labels go to the payload."""
    s = coll.slot(slot)
    if space.dim != s["dim"]:  # refuse before any write or progress output
        from repspace.errors import DimensionMismatchError

        raise DimensionMismatchError(f"vectors are {space.dim}-d but slot {s['name']!r} ({s['model']}) holds {s['dim']}-d vectors")
    if check_model and space.model != s["model"]:
        from repspace.errors import InvalidVectorsError

        raise InvalidVectorsError(f"vectors of model {space.model!r} cannot go into slot {s['name']!r}, which holds "
                                  f"{s['model']!r} vectors")

    def one(start: int, stop: int) -> tuple[int, int]:
        ids = space.ids[start:stop]
        vecs = np.asarray(space.vectors[start:stop], np.float32)
        pls = _payloads(space.labels, stop - start, start)
        if resume and batch_done(coll, ids, None, pls, s, vecs):
            return 0, stop - start
        coll.upsert(ids, vectors=vecs, payloads=pls, slot=s["name"], model=space.model if check_model else None)
        return stop - start, 0

    return _run(coll, space.count, batch_size, progress, "upsert", one)
