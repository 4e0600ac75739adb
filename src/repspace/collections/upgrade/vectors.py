"""Bring the new model's vectors yourself: an upgrade started and backfilled from files of vectors made elsewhere
(a batch API, another cluster) — `.parquet`/`.arrow`/`.feather`/`.jsonl` with id + vector, or `.npy` + ids.

Every file is checked whole before anything is written: one dimension (the new slot's), finite values, unique ids,
and no id the collection does not hold. The backfill writes only items still without a new vector, in fixed
batches, so a file re-read after a kill (or a later file) does only what is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from repspace.collections.upgrade.backfill import (REINDEX_ROWS, fraction, item_hash, reindex_after, scan_texts,
                                                  serving_upgrade, settle)
from repspace.errors import DimensionMismatchError, InvalidInputError

MIN_SAMPLE = 20


def read_new_vectors(coll, path: str | Path, *, model: str, dim: int | None, ids_file: str | Path | None = None,
                     live: set[str] | None = None) -> tuple[list[str], np.ndarray]:
    """(ids, vectors) of a file of the new model's vectors, checked against the collection's live ids."""
    from repspace.spaces.external import read_vectors

    space = read_vectors(path, model=model, ids_file=ids_file)
    if dim is not None and space.dim != dim:
        raise DimensionMismatchError(f"{path} holds {space.dim}-d vectors; the new model's are {dim}-d", param="vectors")
    ids = [str(i) for i in space.ids]
    live = live if live is not None else set(coll.ids())
    extra = [i for i in ids if i not in live]
    if extra:
        raise InvalidInputError(f"{path}: {len(extra)} id(s) the collection does not hold (e.g. "
                                f"{', '.join(map(repr, extra[:3]))}); nothing was written", param="vectors")
    return ids, np.asarray(space.vectors, np.float32)


def start_with_vectors(coll, model: str, path: str | Path, *, dim: int, ids_file: str | Path | None = None,
                       sample: int = 1000, method: str = "procrustes", seed: int = 0,
                       side_table: bool = False) -> dict[str, Any]:
    """Start an upgrade to an external `model` from its vectors in `path` (at least `sample` of the collection's
    items, or all it holds): they fill the new slot and fit the adapter; the fusion is the neutral one (there are
    no new-model queries to fit it on) and the gate is not measured (switch with force, or measure your own)."""
    from repspace.collections.upgrade.lifecycle import start_from

    read = coll.reload()
    ids, vecs = read_new_vectors(coll, path, model=model, dim=dim, ids_file=ids_file)
    if len(ids) < min(sample, MIN_SAMPLE):
        raise InvalidInputError(f"{path} holds {len(ids)} item(s); the sample needs at least {MIN_SAMPLE}",
                                param="vectors")
    pos = {i: r for r, i in enumerate(ids)}
    chosen = sorted(ids, key=lambda i: item_hash(f"{seed}:{i}"))[:sample]
    out = start_from(coll, read, model, chosen, lambda order, _texts: vecs[[pos[i] for i in order]], method=method,
                     seed=seed, sample=len(chosen), keep=True, golden=None, evaluate_gate=False,
                     side_table=side_table, dim=dim)
    taken = set(chosen)
    rest = [r for r, i in enumerate(ids) if i not in taken]  # the file's other vectors fill the slot too
    _write(coll, coll.meta.slot(coll.meta.open_upgrade().new).name, ids, vecs, rest)
    return {**out, "from_file": len(ids), "fraction": fraction(coll)}


def _write(coll, slot: str, ids: list[str], vecs: np.ndarray, rows: list[int], batch_size: int = 8192) -> None:
    for s in range(0, len(rows), batch_size):
        part = rows[s : s + batch_size]
        coll.update_vectors(slot, [ids[r] for r in part], vecs[part])
        reindex_after(coll, s, s + len(part))
    if len(rows) >= REINDEX_ROWS:
        settle(coll)


def backfill_from_file(coll, path: str | Path, *, ids_file: str | Path | None = None,
                       batch_size: int = 8192) -> dict[str, Any]:
    """Fill the open upgrade's new slot from a file of the new model's vectors: items that have none yet (resumable:
    re-running with the same or a later file writes only what is still missing)."""
    up = serving_upgrade(coll)
    new = coll.slot(up.new)
    all_ids, _, has_vec = scan_texts(coll, new.column)
    ids, vecs = read_new_vectors(coll, path, model=new.model, dim=new.dim, ids_file=ids_file, live=set(all_ids))
    done = {i for i, v in zip(all_ids, has_vec) if v}
    todo = [r for r, i in enumerate(ids) if i not in done]
    _write(coll, new.name, ids, vecs, todo, batch_size)
    return {"backfilled": len(todo), "already": len(ids) - len(todo), "fraction": fraction(coll)}
