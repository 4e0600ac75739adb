"""IR metrics from ranked relevance matrices (trec_eval / ir-measures conventions).

gains: (nq, K) float — the relevance grade of the item at each rank (0 = not relevant),
n_rel: (nq,) — number of relevant items per query (> 0), ideal: (nq, K') sorted ideal gains
for nDCG. Every function returns per-query values (nq,); callers average them.
"""

from __future__ import annotations

import numpy as np

from repspace.errors import InvalidInputError


def ndcg_at(gains: np.ndarray, ideal: np.ndarray, k: int) -> np.ndarray:
    """nDCG@k with linear gains and log2(rank + 1) discount (trec_eval ndcg_cut)."""
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (gains[:, :k] * disc[: gains[:, :k].shape[1]]).sum(1)
    ideal_k = ideal[:, :k]
    idcg = (ideal_k * disc[: ideal_k.shape[1]]).sum(1)
    return np.where(idcg > 0, dcg / np.where(idcg > 0, idcg, 1), 0.0)


def _running(gains: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hits (nq, K) bool, hits so far at each rank, precision at each relevant rank (0 elsewhere))."""
    h = gains > 0
    cum = np.cumsum(h, axis=1, dtype=np.float64)
    return h, cum, np.where(h, cum / np.arange(1, h.shape[1] + 1), 0.0)


def _r_metrics(cum: np.ndarray, prec_at_hits: np.ndarray, n_rel: np.ndarray) -> dict[str, np.ndarray]:
    """R-precision and mAP@R (Musgrave et al., 'A Metric Learning Reality Check': AP truncated at rank R,
    divided by R), R = the number of relevant items; needs a ranking at least R deep."""
    if n_rel.size and n_rel.max() > cum.shape[1]:
        raise InvalidInputError(f"ranking depth {cum.shape[1]} is below R = {int(n_rel.max())}")
    r_idx = n_rel.astype(np.int64) - 1
    within = np.arange(cum.shape[1])[None, :] < n_rel[:, None]
    return {"r_precision": cum[np.arange(len(cum)), r_idx] / n_rel,
            "map@r": (prec_at_hits * within).sum(1) / n_rel}


def r_precision(gains: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    """Precision at rank R = number of relevant items (needs K >= max R)."""
    _, cum, prec = _running(gains)
    return _r_metrics(cum, prec, n_rel)["r_precision"]


def map_at_r(gains: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    """mAP@R: AP truncated at rank R, divided by R (needs K >= max R)."""
    _, cum, prec = _running(gains)
    return _r_metrics(cum, prec, n_rel)["map@r"]


def all_metrics(gains: np.ndarray, n_rel: np.ndarray, ideal: np.ndarray, ks: tuple[int, ...],
                with_r: bool = True) -> dict[str, np.ndarray]:
    """Per-query values of every metric: keys like 'recall@10', 'ndcg@10', 'mrr@10', 'map', 'map@r'.

    Hits, their running precision and the first-hit rank are computed once and shared by every metric."""
    h, cum, prec_at_hits = _running(gains)
    any_hit = h.any(1)
    first = np.where(any_hit, np.argmax(h, axis=1), h.shape[1])
    out: dict[str, np.ndarray] = {}
    for k in ks:
        hits_k = cum[:, min(k, h.shape[1]) - 1]
        out[f"recall@{k}"] = hits_k / n_rel
        out[f"precision@{k}"] = hits_k / k
        out[f"ndcg@{k}"] = ndcg_at(gains, ideal, k)
        out[f"mrr@{k}"] = np.where(first < k, 1.0 / (first + 1), 0.0)
    out["map"] = prec_at_hits.sum(1) / n_rel
    if with_r:
        out.update(_r_metrics(cum, prec_at_hits, n_rel))
    return out


def ranking_metrics(ranked: list[list[str]], relevant: list, k: int = 10) -> dict[str, np.ndarray]:
    """Per-query recall@k and nDCG@k (binary gains) of ranked id lists; relevant[j] is one id or a collection
    of ids. The one recall@k of the project: hits in the top k / number of relevant items."""
    rel = [{r} if isinstance(r, str) else set(r) for r in relevant]
    gains = np.zeros((len(ranked), k))
    for j, (row, r) in enumerate(zip(ranked, rel)):
        hit = [1.0 if i in r else 0.0 for i in row[:k]]
        gains[j, : len(hit)] = hit
    n_rel = np.asarray([max(1, len(r)) for r in rel], np.float64)
    ideal = (np.arange(k)[None, :] < n_rel[:, None]).astype(np.float64)
    m = all_metrics(gains, n_rel, ideal, (k,), with_r=False)
    return {f"recall@{k}": m[f"recall@{k}"], f"ndcg@{k}": m[f"ndcg@{k}"]}
