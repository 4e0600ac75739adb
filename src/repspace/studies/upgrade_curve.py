"""The never-lose curve: quality of every serving strategy against the backfill fraction, through the real
collection path (a LanceDB collection, the upgrade's own start, backfill and search)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

FRACTIONS = (0.0, 0.10, 0.25, 0.50, 0.75, 1.0)


def curve(old_corpus, new_corpus, texts: dict[str, str], q_old: np.ndarray, q_new: np.ndarray,
          relevant: Sequence[str | Sequence[str]], *, work: str | Path, sample: int = 1000, order: str = "random",
          fractions: Sequence[float] = FRACTIONS, method: str = "procrustes", seed: int = 0,
          sample_ids: Sequence[str] | None = None,
          fit_queries: Sequence[tuple[str, str]] | None = None, collection: Any = None,
          before_step: Callable[[float], None] | None = None, backend: str = "torch") -> dict[str, Any]:
    """A LanceDB collection under `work` gets the corpus (`old_corpus` vectors + `texts`) — or `collection` is one that
    holds it already (an application's attached table) —; the upgrade is started from a sample of `sample` items
    (their `new_corpus` vectors fit the adapter and the fusion, and are not kept), then backfilled in `order` to each
    fraction with the precomputed new vectors (`new_corpus` must cover every item, those written meanwhile too), and
    every strategy is scored on the queries (`q_old`/`q_new`: the same queries in both models; `relevant[j]`: id(s)
    relevant to query j). `before_step(fraction)` runs before each step (e.g. the application writing rows).
    `backend`: the encoder backend both slots record (and encode pseudo-queries with): the one the vectors were
    encoded with."""
    from repspace.collections import Collection
    from repspace.collections import upgrade as up

    new_pos = {i: r for r, i in enumerate(new_corpus.ids)}
    new_vecs = np.asarray(new_corpus.vectors)

    def new_vectors(ids, _texts=None):
        return new_vecs[[new_pos[i] for i in ids]]

    c = collection
    if c is None:
        c = Collection.create(Path(work), model=old_corpus.model, backend=backend)  # pseudo-queries are encoded
        step = 4096
        ov = np.asarray(old_corpus.vectors)
        for s in range(0, old_corpus.count, step):
            ids = old_corpus.ids[s : s + step]
            c.upsert(ids, texts=[texts.get(i) for i in ids], vectors=ov[s : s + step])
    if sample_ids is None:
        rng = np.random.default_rng(seed)
        sample_ids = [old_corpus.ids[r] for r in rng.permutation(old_corpus.count)[:sample]]
    t0 = time.perf_counter()
    up.start_from(c, c.reload(), new_corpus.model, list(sample_ids), new_vectors, method=method, seed=seed,
                  keep=False, fit_queries=fit_queries, evaluate_gate=False, backend=backend)
    start_s = time.perf_counter() - t0
    rows = []
    for f in fractions:
        if before_step is not None:
            before_step(f)
        n, done = c.count(), c.count(c.meta.upgrade.new)
        want = int(round(f * n))
        if want > done:
            up.backfill(c, order=order, batch_size=4096, limit=want - done, new_vectors=new_vectors)
        m = up.evaluate_encoded(c, q_old, q_new, relevant)
        rows.append({"fraction": f, "actual": up.fraction(c), **m})
    return {"old": old_corpus.model, "new": new_corpus.model, "order": order, "items": c.count(), "queries": len(relevant),
            "sample": len(sample_ids), "start_s": start_s, "rows": rows, "fusion": c.meta.upgrade.fusion,
            "area": {s: area(rows, s) for s in up.STRATEGIES}, "never_loses": never_loses(rows), "collection": c}


def never_loses(rows: Sequence[dict[str, Any]], strategy: str = "fused") -> bool:
    return all(r[strategy][k] >= r["old"][k] - r["old"][f"{k}_se"] for r in rows for k in ("recall@10", "ndcg@10"))


def area(rows: Sequence[dict[str, Any]], strategy: str, key: str = "recall@10") -> float:
    """Area under the quality-vs-fraction curve (trapezoids over the measured fractions)."""
    xs = np.asarray([r["fraction"] for r in rows])
    ys = np.asarray([r[strategy][key] for r in rows])
    return float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2))
