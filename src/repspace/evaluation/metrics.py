"""IR metrics from ranked relevance matrices (trec_eval / ir-measures conventions).

gains: (nq, K) float — the relevance grade of the item at each rank (0 = not relevant),
n_rel: (nq,) — number of relevant items per query (> 0), ideal: (nq, K') sorted ideal gains
for nDCG. Every function returns per-query values (nq,); callers average them.
"""

from __future__ import annotations

import numpy as np

from repspace.errors import InvalidInputError


def _hits(gains: np.ndarray) -> np.ndarray:
    return (gains > 0).astype(np.float64)


def precision_at(gains: np.ndarray, k: int) -> np.ndarray:
    """P@k: relevant among the first k, divided by k (trec_eval divides by k even if fewer)."""
    return _hits(gains[:, :k]).sum(1) / k


def recall_at(gains: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    return _hits(gains[:, :k]).sum(1) / n_rel


def rr_at(gains: np.ndarray, k: int) -> np.ndarray:
    """Reciprocal rank of the first relevant item within the first k (0 if none)."""
    h = _hits(gains[:, :k]) > 0
    first = np.argmax(h, axis=1)
    return np.where(h.any(1), 1.0 / (first + 1), 0.0)


def ndcg_at(gains: np.ndarray, ideal: np.ndarray, k: int) -> np.ndarray:
    """nDCG@k with linear gains and log2(rank + 1) discount (trec_eval ndcg_cut)."""
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (gains[:, :k] * disc[: gains[:, :k].shape[1]]).sum(1)
    ideal_k = ideal[:, :k]
    idcg = (ideal_k * disc[: ideal_k.shape[1]]).sum(1)
    return np.where(idcg > 0, dcg / np.where(idcg > 0, idcg, 1), 0.0)


def average_precision(gains: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    """AP over the retrieved list: sum of P@rank at relevant ranks / number of relevant."""
    h = _hits(gains)
    prec = np.cumsum(h, 1) / np.arange(1, h.shape[1] + 1)
    return (prec * h).sum(1) / n_rel


def r_precision(gains: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    """Precision at rank R = number of relevant items (needs K >= max R)."""
    _need_depth(gains, n_rel)
    h = _hits(gains)
    mask = np.arange(h.shape[1])[None, :] < n_rel[:, None]
    return (h * mask).sum(1) / n_rel


def map_at_r(gains: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    """mAP@R (Musgrave et al., 'A Metric Learning Reality Check'): AP truncated at rank R, divided by R."""
    _need_depth(gains, n_rel)
    h = _hits(gains)
    prec = np.cumsum(h, 1) / np.arange(1, h.shape[1] + 1)
    mask = np.arange(h.shape[1])[None, :] < n_rel[:, None]
    return (prec * h * mask).sum(1) / n_rel


def _need_depth(gains: np.ndarray, n_rel: np.ndarray) -> None:
    if n_rel.size and n_rel.max() > gains.shape[1]:
        raise InvalidInputError(f"ranking depth {gains.shape[1]} is below R = {int(n_rel.max())}")


def metric_names(ks: tuple[int, ...]) -> list[str]:
    names = []
    for k in ks:
        names += [f"recall@{k}", f"precision@{k}", f"ndcg@{k}", f"mrr@{k}"]
    return names + ["map", "map@r", "r_precision"]


def all_metrics(gains: np.ndarray, n_rel: np.ndarray, ideal: np.ndarray, ks: tuple[int, ...],
                with_r: bool = True) -> dict[str, np.ndarray]:
    """Per-query values of every metric: keys like 'recall@10', 'ndcg@10', 'mrr@10', 'map', 'map@r'.

    Hits, their running precision and the first-hit rank are computed once and shared
    (the same definitions as the single-metric functions above)."""
    h = gains > 0
    cum = np.cumsum(h, axis=1, dtype=np.float64)
    prec_at_hits = np.where(h, cum / np.arange(1, h.shape[1] + 1), 0.0)
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
        _need_depth(gains, n_rel)
        r_idx = n_rel.astype(np.int64) - 1
        rows = np.arange(len(h))
        out["r_precision"] = cum[rows, r_idx] / n_rel
        within = np.arange(h.shape[1])[None, :] < n_rel[:, None]
        out["map@r"] = (prec_at_hits * within).sum(1) / n_rel
    return out
