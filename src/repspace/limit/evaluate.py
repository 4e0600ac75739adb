"""`limit eval`: recall@k of a packaged model and of BM25 on LIMIT-style data (`repspace.limit.data`).

recall@k of a query = the share of its relevant documents (2) among its top k; averaged over the queries, as the
paper reports it. The dense model scores cosine similarities of its query and document vectors (exact search);
`dims` also scores the model's vectors truncated to their first m coordinates (renormalised), as the paper does
for Matryoshka models. BM25 (`repspace.limit.bm25`) is the sparse baseline.

    r = evaluate_limit("minilm-l6", docs=1000)
    r["systems"]  # [{"system": "minilm-l6", "dim": 384, "recall@2": ...}, {"system": "bm25", ...}]
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from repspace.errors import InvalidInputError
from repspace.limit.bm25 import BM25
from repspace.limit.data import LimitData, limit_data

DEFAULT_KS = (2, 10, 100)


def recall_at(scores: np.ndarray, data: LimitData, ks: Sequence[int]) -> dict[str, float]:
    """scores: (queries, docs) in data's order -> {"recall@k": mean share of relevant docs in the top k}."""
    pos = {d: i for i, d in enumerate(data.doc_ids)}
    rel = np.zeros(scores.shape, dtype=bool)
    for qi, q in enumerate(data.query_ids):
        rel[qi, [pos[d] for d in data.qrels[q]]] = True
    order = np.argsort(-scores, axis=1, kind="stable")
    hits = np.take_along_axis(rel, order, axis=1)
    n_rel = rel.sum(1)
    return {f"recall@{k}": round(float((hits[:, :k].sum(1) / n_rel).mean()), 4) for k in ks}


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def evaluate_limit(model: str | None = "minilm-l6", docs: int = 1000, queries: int = 1000,
                   ks: Sequence[int] = DEFAULT_KS, dims: Sequence[int] = (), bm25: bool = True,
                   attributes: Sequence[str] | None = None, seed: int = 0, batch_size: int = 32,
                   device: str = "cpu", progress: bool = False) -> dict[str, Any]:
    """Build the data, score `model` (None: BM25 only) and BM25; returns the data's shape and one row per system."""
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise InvalidInputError(f"ks must be positive integers; got {ks}", param="ks")
    data = limit_data(docs=docs, queries=queries, attributes=attributes, seed=seed)
    rows: list[dict[str, Any]] = []
    if model is not None:
        from repspace.datasets import Items
        from repspace.encoders import get_encoder
        from repspace.encoders.job import encode_items

        encoder = get_encoder(model, device=device)
        bad = [m for m in dims if not 1 <= int(m) <= encoder.dim]
        if bad:
            raise InvalidInputError(f"dims must lie in 1..{encoder.dim} for {model!r}; got {bad}", param="dims")
        t0 = time.perf_counter()
        D = encode_items(encoder, Items(data.doc_ids, data.doc_texts, "text"), batch_size=batch_size,
                         progress=progress).vectors
        Q = encode_items(encoder, Items(data.query_ids, data.query_texts, "text"), batch_size=batch_size,
                         progress=progress).vectors
        seconds = time.perf_counter() - t0
        for m in sorted({int(m) for m in dims} | {encoder.dim}, reverse=True):
            s = _unit(np.asarray(Q[:, :m], np.float64)) @ _unit(np.asarray(D[:, :m], np.float64)).T
            rows.append({"system": model, "dim": m, **recall_at(s, data, ks),
                         "encode_seconds": round(seconds, 2)})
    if bm25:
        t0 = time.perf_counter()
        s = BM25().fit(data.doc_texts).scores(data.query_texts)
        rows.append({"system": "bm25", "dim": None, **recall_at(s, data, ks),
                     "seconds": round(time.perf_counter() - t0, 3)})
    return {"docs": docs, "queries": queries, "relevant_docs": data.relevant_docs,
            "attributes_per_doc": data.attributes_per_doc, "seed": seed, "systems": rows}
