"""The backfill job: fill the open upgrade's new slot for every item with a text, in resumable atomic writes.

Each write is `write_items` items of the order (whole batches; the texts of one write encoded longest first, so its
batches pad little). A killed backfill re-run with the same settings does only what is missing, each item once, with
identical vectors (writes and batches are fixed by the order, which is deterministic). `uncertainty` re-embeds first the items the adapter is predicted to explain
worst (the `ResidualRidge` fitted at start on the sample's adapter residuals).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Callable, Sequence

import numpy as np

from repspace.collections.choices import ORDERS
from repspace.collections.store import vectors_of
from repspace.errors import CollectionError, InvalidInputError


def item_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def texts_of(coll, ids: Sequence[str]) -> dict[str, str]:
    """id -> stored text of the ids that exist and have one."""
    return {g["id"]: g["text"] for g in coll.get(ids) if g["text"] is not None}


def scan_texts(coll, column: str) -> tuple[list[str], list[bool], list[bool]]:
    """ids, has-text flags and has-vector-in-`column` flags of every item."""
    ids, has_text, has_vec = [], [], []
    for batch in coll.store.scan(["id", "text", column]):
        ids += batch.column("id").to_pylist()
        has_text += [t is not None for t in batch.column("text").to_pylist()]
        valid, _ = vectors_of(batch.column(column), batch.schema.field(column).type.list_size)
        has_vec += valid.tolist()
    return ids, has_text, has_vec


def serving_upgrade(coll):
    """The open upgrade, once it serves (its adapter and fusion fitted)."""
    up = coll.reload().open_upgrade()
    if not up.serving:
        raise CollectionError(f"the upgrade of {coll.name!r} is still starting (or its start was interrupted: roll "
                              "it back and start again)")
    return up


def progress(coll, up) -> tuple[int, int, float]:
    """(live items, those holding a vector of the upgrade `up`'s new slot, their share)."""
    n, done = coll.count(), coll.count(up.new)
    return n, done, float(done / n) if n else 1.0


SHARE_REFRESH_S = 5.0  # a search recounts the backfilled share at most this often (it is two counts of the store)


def backfilled_share(coll, up, version: Any) -> float:
    """The share of live items backfilled, as a search sees it (the fused search's fade, `fusion.served`): counted
    again when the collection's `version` moved (an application's table, which has none: always a candidate) and
    the last count is at least `SHARE_REFRESH_S` old — counting a slot's vectors reads its column on LanceDB (1.2–1.5
    s at 1M), and a backfill moves the version every write. A backfill in this process records its final share
    (`remember_share`); one in another process is seen within SHARE_REFRESH_S of a new version."""
    rec = _share_record(coll, up)
    if rec["share"] is None or ((version is None or version != rec["version"])
                                and time.monotonic() - rec["at"] >= SHARE_REFRESH_S):
        rec.update(share=progress(coll, up)[2], at=time.monotonic(), version=version)
    return rec["share"]


def _share_record(coll, up) -> dict[str, Any]:
    """The collection's record of the upgrade's last counted share: {version, at (monotonic s), share}."""
    return coll.memo("backfilled_share", up.new, lambda: {"version": None, "at": -np.inf, "share": None})


def remember_share(coll, up, share: float) -> None:
    """Record a share just counted (the end of a backfill) for the searches of the collection's current version."""
    rec = _share_record(coll, up)
    rec.update(share=float(share), at=time.monotonic(), version=coll.store.version())


def fraction(coll) -> float:
    """The share of live items that hold a vector of the open upgrade's new slot."""
    return progress(coll, coll.reload().open_upgrade())[2]


def backfill_order(coll, order: str = "random") -> tuple[list[str], int]:
    """The items the backfill will re-embed, in its order, and how many items lack a text (skipped)."""
    if order not in ORDERS:
        raise InvalidInputError(f"unknown order {order!r}; choose from {', '.join(ORDERS)}", param="order")
    up = serving_upgrade(coll)
    new = coll.slot(up.new)
    ids, has_text, has_vec = scan_texts(coll, new.column)
    todo = [i for i, t, v in zip(ids, has_text, has_vec) if t and not v]
    without_text = sum(1 for t, v in zip(has_text, has_vec) if not t and not v)
    if not todo and without_text and not any(has_vec):
        raise CollectionError("no item stores a text: vectors alone cannot be re-encoded by the new model; upsert "
                              "the items with their texts first")
    keys = {i: item_hash(f"backfill:{up.seed}:{i}") for i in todo}
    if order == "random":
        todo.sort(key=keys.__getitem__)
    else:
        from repspace.collections.upgrade.fusion import ResidualRidge

        has, v_old = coll.vectors_for(up.old, todo)
        pred = ResidualRidge.from_list(up.uncertainty["w"] + [up.uncertainty["b"]]).decision_function(v_old)
        pred = pred.astype(np.float64)
        pred[~has] = np.inf
        todo = [todo[r] for r in np.lexsort((np.asarray([keys[i] for i in todo], dtype=object), -pred))]
    return todo, without_text


REINDEX_ROWS = 100_000  # a long backfill runs `optimize` after every this many rows written
WRITE_ITEMS = 1024  # a backfill writes this many items at once (whole batches; a Ray shard), one atomic write


SETTLED_SEGMENTS = 2  # a long backfill's last optimize retrains an index left with more segments than this


def settle(coll) -> None:
    """A backfill's last `optimize`: indexes take the last rows in, and an index that the periodic optimizes left in
    many delta segments is retrained (at 1M rows, 6 segments made each search 3.5x slower; a retrain took ~6 min)."""
    coll.optimize(max_segments=SETTLED_SEGMENTS)


def _longest_first(enc, texts: Sequence[str]) -> np.ndarray:
    """Positions of one write's texts, longest first (the encoder's sort key; ties in order): a backfill's order is
    random, and batches of like lengths pad less (on gcide, 65-80 texts/s in random order against 165 sorted)."""
    return np.argsort(np.asarray([-enc.sort_key(t) for t in texts], np.int64), kind="stable")


def reindex_after(coll, before: int, after: int) -> None:
    """`optimize` when a backfill's count of written rows crosses a multiple of REINDEX_ROWS: a store's ANN indexes
    take the rewritten rows back in (LanceDB: else searched exactly until the end; `Store.reindex_during_backfill`)."""
    if after // REINDEX_ROWS != before // REINDEX_ROWS and coll.store.reindex_during_backfill:
        coll.optimize()


def backfill(coll, *, order: str = "random", batch_size: int = 64, limit: int | None = None,
             progress: bool = False, new_vectors: Callable[[list[str]], np.ndarray] | None = None,
             engine: str = "local", workers: int | None = None, address: str | None = None,
             write_items: int = WRITE_ITEMS) -> dict[str, Any]:
    """Fill the new slot for every item with a text (see the module docstring). `new_vectors`: precomputed new-model
    vectors for a list of ids instead of encoding. engine="ray": the batches (same order, same composition, so the
    same vectors) are encoded on a Ray actor pool. `write_items`: items per atomic write (whole batches; what a kill
    can lose)."""
    from repspace.ops.progress import progress_bar
    from repspace.scale import check_engine

    check_engine(engine)
    if batch_size < 1:
        raise InvalidInputError("batch_size must be positive", param="batch_size")
    if isinstance(write_items, bool) or not isinstance(write_items, int) or write_items < 1:
        raise InvalidInputError(f"write_items must be a positive integer; got {write_items!r}", param="write_items")
    todo, without_text = backfill_order(coll, order)
    new = coll.slot(coll.meta.upgrade.new)
    if limit is not None:
        todo = todo[:limit]
    t0, done = time.perf_counter(), 0

    def result(n: int) -> dict[str, Any]:
        share = fraction(coll)
        remember_share(coll, coll.meta.open_upgrade(), share)
        return {"backfilled": n, "fraction": share, "without_text": without_text,
                "seconds": round(time.perf_counter() - t0, 3)}

    from repspace.encoders.job import whole_batches

    group = whole_batches(batch_size, write_items)  # items per write: whole batches, as the Ray engine's shards
    enc = coll.encoder(new.name) if new_vectors is None and todo else None
    if engine == "ray" and todo and new_vectors is None:
        from repspace.datasets import Items
        from repspace.scale import ray_encode

        texts = texts_of(coll, todo)
        todo = [i for i in todo if i in texts]
        items = Items(list(todo), [texts[i] for i in todo], "text")
        order = np.concatenate([s + _longest_first(enc, [texts[i] for i in todo[s : s + group]])
                                for s in range(0, len(todo), group)])

        def write(_s: int, ids: list[str], vectors: np.ndarray) -> None:
            nonlocal done
            coll.update_vectors(new.name, ids, vectors, texts=[texts[i] for i in ids])
            done += len(ids)
            reindex_after(coll, done - len(ids), done)

        # shards = the local engine's writes, batches in the same order (so the same vectors), one write each
        ray_encode(new.model, items, batch_size=batch_size, workers=workers, shard_items=group, encoder=enc,
                   address=address, progress=progress, order=order, on_shard=write)
        settle(coll)
        return result(done)
    from concurrent.futures import ThreadPoolExecutor

    def encode(s: int) -> tuple[list[str], dict[str, str], np.ndarray | None]:
        texts = texts_of(coll, todo[s : s + group])
        part = [i for i in todo[s : s + group] if i in texts]  # deleted meanwhile: left out
        if not part:
            return [], texts, None
        if new_vectors is not None:
            return part, texts, np.asarray(new_vectors(part), np.float32)
        part = [part[j] for j in _longest_first(enc, [texts[i] for i in part])]
        return part, texts, np.concatenate([coll.encode([texts[i] for i in part[b : b + batch_size]], new.name,
                                                        batch_size=batch_size) for b in range(0, len(part), batch_size)])

    # a pipeline one group deep: group g+1 is read and encoded while group g is written (writes stay in order, one
    # atomic write per group of batches: a killed backfill loses at most the groups in flight, which a re-run redoes;
    # LanceDB rewrites rows to fill a column, so 64-row writes left a fragment each and ran at half the speed)
    with progress_bar(progress) as bar, ThreadPoolExecutor(1) as pool:
        task = bar.add_task("backfill", total=len(todo), rate="")
        starts = list(range(0, len(todo), group))
        ahead = pool.submit(encode, starts[0]) if starts else None
        for j in range(len(starts)):
            part, texts, vecs = ahead.result()
            ahead = pool.submit(encode, starts[j + 1]) if j + 1 < len(starts) else None
            if part:
                coll.update_vectors(new.name, part, vecs, texts=[texts[i] for i in part])
            done += len(part)
            reindex_after(coll, done - len(part), done)
            bar.update(task, advance=min(group, len(todo) - starts[j]),
                       rate=f"{done / max(time.perf_counter() - t0, 1e-9):,.0f} items/s")
    settle(coll)
    return result(done)


def follow(coll, *, interval: float = 2.0, stop: Any = None, rounds: int | None = None, batch_size: int = 64,
           order: str = "random", progress: bool = False) -> dict[str, Any]:
    """Keep the new slot filled while the application writes: each round re-encodes the items whose text changed
    since their new vector was made (`Store.stale`) and backfills the items that have none; when a round finds
    nothing it waits `interval` seconds. Runs until `stop` (a `threading.Event`, set e.g. by a SIGTERM handler) is
    set — the batch in flight is finished first, each batch is one atomic write — or after `rounds` rounds."""
    import threading

    stop = stop if stop is not None else threading.Event()
    total = n = 0
    while not stop.is_set() and (rounds is None or n < rounds):
        up = serving_upgrade(coll)
        new = coll.slot(up.new)
        changed = coll.store.stale(new.column)
        for s in range(0, len(changed), batch_size):
            texts = texts_of(coll, changed[s : s + batch_size])
            part = list(texts)
            if part:
                coll.update_vectors(new.name, part, coll.encode([texts[i] for i in part], new.name),
                                    texts=[texts[i] for i in part])
        done = backfill(coll, order=order, batch_size=batch_size, progress=progress)["backfilled"]
        total, n = total + done + len(changed), n + 1
        if not done and not changed:
            stop.wait(interval)
    return {"backfilled": total, "rounds": n, "fraction": fraction(coll), "stopped": stop.is_set()}
