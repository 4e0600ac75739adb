"""The evaluation capability's measurements for reports: per-space tasks, dimension sweeps, similarity between
spaces and compatibility matrices — plain rows and matrices that `repspace.report.evaluation` renders."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from repspace.errors import RepspaceError
from repspace.evaluation import (cluster, compare, compatibility, knn_probe, label_retrieval, linear_probe,
                                 query_retrieval, sweep)
from repspace.spaces import Space

REDUCERS = ("truncate", "pca")


def space_name(s: Space) -> str:
    parts = [s.model.split("/")[-1]] + [p for p in (s.view, s.split) if p]
    return ":".join(parts)


def default_dims(full: int) -> list[int]:
    dims = [d for d in (8, 16, 32, 64, 128, 256, 512, 1024) if d < full]
    return dims + [full]


def task_rows(spaces: Sequence[Space]) -> list[dict[str, Any]]:
    """Linear probe, 20-NN, label retrieval and clustering of every labelled space (two labels or more)."""
    rows = []
    for s in spaces:
        if s.labels is None or len(np.unique(s.labels)) < 2:
            continue
        lr = label_retrieval(s)
        rows.append({"space": space_name(s), "dim": s.dim, "probe acc": linear_probe(s)["accuracy"],
                     "20-NN acc": knn_probe(s)["accuracy"], "mAP@R": lr["map@r"], "P@10": lr["precision@10"],
                     "NMI": cluster(s)["nmi"]})
    return rows


def retrieval_sweep(pairs: Sequence[tuple[Space, Space]], metric: str = "ndcg@10") -> list[dict[str, Any]]:
    """`metric` of query -> corpus retrieval against the dimension, by truncation and by PCA, per pair:
    rows {space, model, reduce, dim, metric, retained}."""
    rows = []
    for q, c in pairs:
        for reduce in REDUCERS:
            res = sweep(lambda s: query_retrieval(s[0], s[1]), [q, c], default_dims(c.dim), reducer=reduce)
            rows += [{"space": space_name(c), "model": c.model, "reduce": reduce, "dim": r["dim"], metric: r[metric],
                      "retained": r[f"{metric}_retained"]} for r in res["rows"]]
    return rows


def label_sweep(spaces: Sequence[Space]) -> list[dict[str, Any]]:
    """mAP@R of label retrieval against the dimension, by truncation and by PCA, per labelled space."""
    rows = []
    for s in spaces:
        for reduce in REDUCERS:
            res = sweep(lambda x: label_retrieval(x[0]), [s], default_dims(s.dim), reducer=reduce)
            rows += [{"space": space_name(s), "reduce": reduce, "dim": r["dim"], "mAP@R": r["map@r"],
                      "retained": r["map@r_retained"]} for r in res["rows"]]
    return rows


def similarity(spaces: Sequence[Space], metric: str = "cka") -> tuple[np.ndarray, list[dict[str, Any]]]:
    """(matrix of `metric` between every pair of spaces joined by id, NaN where not comparable; rows with CKA,
    debiased CKA, mutual k-NN and Procrustes per comparable pair)."""
    n = len(spaces)
    S = np.full((n, n), np.nan)
    rows = []
    for i in range(n):
        S[i, i] = 1.0 if metric != "procrustes" else 0.0
        for j in range(i + 1, n):
            try:
                res = compare(spaces[i], spaces[j], metrics=("cka", "cka_debiased", "mknn", "procrustes"))
            except RepspaceError:
                continue
            S[i, j] = S[j, i] = res[metric]
            rows.append({"A": space_name(spaces[i]), "B": space_name(spaces[j]), **res})
    return S, rows


def compatibility_result(spaces: Sequence[Space]) -> dict[str, Any]:
    """`evaluation.compatibility` of spaces ordered old -> new, or {"error": message} when not computable."""
    try:
        return compatibility(list(spaces))
    except RepspaceError as e:
        return {"error": str(e)}


def compatible_groups(spaces: Sequence[Space]) -> list[tuple[str, int, list[Space]]]:
    """Spaces of the same items (dataset, view, split) and dimension, two or more: (where, dim, group)."""
    groups: dict[tuple, list[Space]] = {}
    for s in spaces:
        groups.setdefault((s.dataset, s.view, s.split, s.dim), []).append(s)
    return [(":".join(str(p) for p in (d, v) if p) + (f"@{sp}" if sp else ""), dim, g)
            for (d, v, sp, dim), g in groups.items() if len(g) > 1]
