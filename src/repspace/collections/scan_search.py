"""An exact search that streams a slot from the store: how a one-off process (`Collection.one_off()`, a CLI search)
answers for a spec the store has no index of its own for (HNSW, int8, binary, funnel… on LanceDB; int8, IVF-PQ… on
PostgreSQL), instead of loading the whole slot into repspace's in-memory layer and building its structure (at 1M
× 384: 1.5 GB resident and, for HNSW32, minutes of graph building before the first answer).

One pass over the slot in the store's batches, every query at once: each batch's vectors normalised and scored by one
matrix product, each query's best k kept (ties: the lower id first, as the in-memory layer ranks, among the rows a
batch keeps); memory is one batch of rows (fewer rows a batch the more queries: ≤ 64 MiB of scores) and k candidates
a query, whatever the collection's size. The answers are the exact ones, so at least as good as the
spec's index would give; the payloads of the hits are fetched at the end.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from repspace.collections.store import Store, vectors_of
from repspace.ops.search import normalize_rows

SCORES = 1 << 24  # floats of query × row scores held at once (64 MiB)


def scan_search(store: Store, column: str, dim: int, queries: np.ndarray, k: int,
                batch_rows: int = 65536) -> list[list[dict[str, Any]]]:
    """[[{"id", "score", "payload"}, …], …] of each query's k nearest items by cosine, over every row of `column`."""
    q = normalize_rows(np.asarray(queries, np.float32))
    best: list[list[tuple[float, str]]] = [[] for _ in range(len(q))]
    rows = max(1024, min(batch_rows, SCORES // max(1, len(q))))  # a batch's scores stay ≤ SCORES floats
    for batch in store.scan(["id", column], batch_rows=rows):
        valid, vecs = vectors_of(batch.column(column), dim)
        if not len(vecs):
            continue
        ids = batch.column("id").filter(valid) if not valid.all() else batch.column("id")
        s = q @ normalize_rows(vecs).T
        kk = min(k, s.shape[1])
        top = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
        names = ids.take(top.ravel()).to_pylist()
        for j in range(len(q)):
            cand = best[j] + [(float(v), names[j * kk + c]) for c, v in enumerate(s[j, top[j]])]
            best[j] = sorted(cand, key=lambda h: (-h[0], h[1]))[:k]
    hit_ids = sorted({i for row in best for _, i in row})
    got = store.fetch(hit_ids, ["id", "payload"]) if hit_ids else None
    payloads = dict(zip(got.column("id").to_pylist(), got.column("payload").to_pylist())) if got is not None else {}
    return [[{"id": i, "score": sc, "payload": json.loads(payloads.get(i) or "{}")} for sc, i in row] for row in best]
