"""Report sections for the evaluation capability: tasks, dimension curves, similarity, compatibility."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from repspace.errors import RepspaceError
from repspace.evaluation import (cluster, compare, compatibility, knn_probe, label_retrieval, linear_probe,
                                 query_retrieval, sweep)
from repspace.report.html import Report
from repspace.spaces import Space


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def space_name(s: Space) -> str:
    parts = [s.model.split("/")[-1]] + [p for p in (s.view, s.split) if p]
    return ":".join(parts)


def default_dims(full: int) -> list[int]:
    dims = [d for d in (8, 16, 32, 64, 128, 256, 512, 1024) if d < full]
    return dims + [full]


def tasks_section(report: Report, spaces: Sequence[Space]) -> None:
    """Per-space probe, k-NN, label retrieval and clustering on labelled spaces."""
    rows = []
    for s in spaces:
        if s.labels is None or len(np.unique(s.labels)) < 2:
            continue
        lr = label_retrieval(s)
        rows.append({"space": space_name(s), "dim": s.dim, "probe acc": linear_probe(s)["accuracy"],
                     "20-NN acc": knn_probe(s)["accuracy"], "mAP@R": lr["map@r"], "P@10": lr["precision@10"],
                     "NMI": cluster(s)["nmi"]})
    if rows:
        report.section(
            "Classification, label retrieval, clustering",
            Report.text("Linear probe (logistic regression, C chosen on a validation split) and cosine 20-NN with "
                        "DINO-weighted votes on a fixed id-hash split (70/30); label retrieval leave-one-out "
                        "(relevant = same label); k-means with k = number of labels."),
            Report.table(rows),
        )


def sweep_section(report: Report, pairs: Sequence[tuple[Space, Space]], metric: str = "ndcg@10",
                  title: str = "How small can it be: retrieval vs dimension") -> list[dict]:
    """Metric vs dimension for query->corpus pairs (one per model), by truncation and by PCA."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    rows = []
    for q, c in pairs:
        dims = default_dims(c.dim)
        for reduce, style in (("truncate", "--"), ("pca", "-")):
            res = sweep(lambda s: query_retrieval(s[0], s[1]), [q, c], dims, reducer=reduce)
            ys = [r[metric] for r in res["rows"]]
            ax.plot(dims, ys, style, marker="o", label=f"{space_name(c)} {reduce}")
            for r in res["rows"]:
                rows.append({"model": c.model, "reduce": reduce, "dim": r["dim"], metric: r[metric],
                             "retained": r[f"{metric}_retained"]})
    ax.set_xscale("log", base=2)
    ax.set_xlabel("dimension")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    report.section(
        title,
        Report.text(f"Queries search the corpus (relevant = the item with the same id); {metric} when vectors are cut "
                    "to their first d coordinates (truncate) or projected on the top-d principal components of the "
                    "corpus (pca). 'retained' is the fraction of the full-dimension value."),
        Report.figure(fig, f"{metric} vs dimension"),
        Report.table(rows),
    )
    return rows


def similarity_section(report: Report, spaces: Sequence[Space], metric: str = "cka") -> np.ndarray:
    """Heat-map of a similarity measure between every pair of spaces (joined by id)."""
    plt = _plt()
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
            rows.append({"A": space_name(spaces[i]), "B": space_name(spaces[j]), **{k: v for k, v in res.items()}})
    names = [space_name(s) for s in spaces]
    fig, ax = plt.subplots(figsize=(1.2 * n + 2.5, 1.0 * n + 1.5))
    im = ax.imshow(S, vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(n), names, rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    for i in range(n):
        for j in range(n):
            if not np.isnan(S[i, j]):
                ax.text(j, i, f"{S[i, j]:.2f}", ha="center", va="center", color="w" if S[i, j] < 0.6 else "k", fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.046)
    report.section(
        "Similarity between spaces",
        Report.text("Linear CKA (Kornblith et al. 2019) between every pair of spaces, joined by item id; the table "
                    "adds debiased CKA, mutual 10-NN overlap and the orthogonal Procrustes distance (0 = same up to "
                    "rotation and scale)."),
        Report.figure(fig, f"{metric} between spaces"),
        Report.table(rows),
    )
    return S


def compat_section(report: Report, spaces: Sequence[Space], title: str = "Compatibility") -> dict | None:
    """Compatibility matrix of spaces ordered old -> new (same dimension)."""
    plt = _plt()
    try:
        res = compatibility(list(spaces))
    except RepspaceError as e:
        report.section(title, Report.text(f"not computed: {e}", note=True))
        return None
    n = len(spaces)
    M = np.array([[np.nan if v is None else v for v in row] for row in res["matrix"]])
    names = [space_name(s) for s in spaces]
    fig, ax = plt.subplots(figsize=(1.5 * n + 2.5, 1.2 * n + 1.2))
    im = ax.imshow(M, cmap="magma", vmin=0, vmax=max(1e-9, np.nanmax(M)))
    ax.set_xticks(range(n), names, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    ax.set_xlabel("gallery model")
    ax.set_ylabel("query model")
    for i in range(n):
        for j in range(i + 1):
            ax.text(j, i, f"{M[i, j]:.3f}", ha="center", va="center", color="w" if M[i, j] < 0.6 * np.nanmax(M) else "k")
    fig.colorbar(im, ax=ax, fraction=0.046)
    rows = [{"pair (new->old)": k, "M(new,old)": res["matrix"][int(k[0]) - 1][int(k[-1]) - 1],
             "M(old,old)": res["matrix"][int(k[-1]) - 1][int(k[-1]) - 1], "compatible": v, "gain": res["gain"][k]}
            for k, v in res["compatible"].items()]
    report.section(
        title,
        Report.text(f"M[i][j] = {res['metric']} with queries from model i searching a gallery from model j "
                    f"(relevance by {res['relevance']}). Model i is compatible with j when M[i][j] >= M[j][j]; "
                    "gain = (M[i][j] - M[j][j]) / (M[i][i] - M[j][j]). Two independently trained models are not "
                    "compatible even at equal dimension: that is what the upgrade tools address."),
        Report.figure(fig, "compatibility matrix"),
        Report.table(rows),
    )
    return res


def overview_section(report: Report, spaces: Sequence[Space]) -> None:
    rows = [{"space": space_name(s), "model": s.model, "dataset": s.dataset, "view": s.view, "count": s.count,
             "dim": s.dim, "normalized": s.normalized, "labels": s.labels is not None} for s in spaces]
    report.section("Spaces", Report.table(rows))


def build_report(spaces: Sequence[Space], title: str = "repspace report") -> Report:
    """The `repspace report` page for any list of spaces."""
    report = Report(title)
    overview_section(report, spaces)
    tasks_section(report, spaces)
    labelled = [s for s in spaces if s.labels is not None]
    if labelled:
        plt = _plt()
        fig, ax = plt.subplots(figsize=(7, 4))
        rows = []
        for s in labelled:
            dims = default_dims(s.dim)
            for reduce, style in (("truncate", "--"), ("pca", "-")):
                res = sweep(lambda x: label_retrieval(x[0]), [s], dims, reducer=reduce)
                ax.plot(dims, [r["map@r"] for r in res["rows"]], style, marker="o", label=f"{space_name(s)} {reduce}")
                rows += [{"space": space_name(s), "reduce": reduce, "dim": r["dim"], "mAP@R": r["map@r"],
                          "retained": r["map@r_retained"]} for r in res["rows"]]
        ax.set_xscale("log", base=2); ax.set_xlabel("dimension"); ax.set_ylabel("mAP@R"); ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        report.section("Label retrieval vs dimension", Report.figure(fig, "mAP@R vs dimension"), Report.table(rows))
    if len(spaces) > 1:
        similarity_section(report, spaces)
        groups: dict[tuple, list[Space]] = {}
        for s in spaces:
            groups.setdefault((s.dataset, s.view, s.split, s.dim), []).append(s)
        for (dataset, view, split, dim), group in groups.items():
            if len(group) > 1:
                where = ":".join(str(p) for p in (dataset, view) if p) + (f"@{split}" if split else "")
                compat_section(report, group, title=f"Compatibility ({where}, {dim}-d)")
    return report
