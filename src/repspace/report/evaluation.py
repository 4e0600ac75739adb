"""Report sections for the evaluation capability: tasks, dimension curves, similarity, compatibility.

They render what `repspace.studies.evaluation` measured; `build_report` (the `repspace report` page) runs the
study, then renders it."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from repspace.report.html import Report, compat_cells
from repspace.spaces import Space
from repspace.studies.evaluation import (compatible_groups, compatibility_result, label_sweep,
                                         similarity, space_name, task_rows)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _curves(rows: list[dict[str, Any]], key: str, caption: str):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    for (space, reduce) in dict.fromkeys((r["space"], r["reduce"]) for r in rows):
        pts = [r for r in rows if r["space"] == space and r["reduce"] == reduce]
        ax.plot([r["dim"] for r in pts], [r[key] for r in pts], "--" if reduce == "truncate" else "-", marker="o",
                label=f"{space} {reduce}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("dimension")
    ax.set_ylabel(key)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return Report.figure(fig, caption)


def tasks_section(report: Report, rows: list[dict[str, Any]]) -> None:
    """Per-space probe, k-NN, label retrieval and clustering (rows of `studies.evaluation.task_rows`)."""
    if rows:
        report.section(
            "Classification, label retrieval, clustering",
            Report.text("Linear probe (logistic regression, C chosen on a validation split) and cosine 20-NN with "
                        "DINO-weighted votes on a fixed id-hash split (70/30); label retrieval leave-one-out "
                        "(relevant = same label); k-means with k = number of labels."),
            Report.table(rows),
        )


def sweep_section(report: Report, rows: list[dict[str, Any]], metric: str = "ndcg@10",
                  title: str = "How small can it be: retrieval vs dimension") -> list[dict]:
    """Metric vs dimension for query->corpus pairs (rows of `studies.evaluation.retrieval_sweep`)."""
    report.section(
        title,
        Report.text(f"Queries search the corpus (relevant = the item with the same id); {metric} when vectors are cut "
                    "to their first d coordinates (truncate) or projected on the top-d principal components of the "
                    "corpus (pca). 'retained' is the fraction of the full-dimension value."),
        _curves(rows, metric, f"{metric} vs dimension"),
        Report.table([{k: v for k, v in r.items() if k != "space"} for r in rows]),
    )
    return rows


def similarity_section(report: Report, names: Sequence[str], S: np.ndarray, rows: list[dict[str, Any]],
                       metric: str = "cka") -> np.ndarray:
    """Heat-map of a similarity measure between every pair of spaces (`studies.evaluation.similarity`)."""
    plt = _plt()
    n = len(names)
    fig, ax = plt.subplots(figsize=(1.2 * n + 2.5, 1.0 * n + 1.5))
    im = ax.imshow(S, vmin=0, vmax=2 ** 0.5 if metric in DISTANCES else 1,
                   cmap="viridis_r" if metric in DISTANCES else "viridis")
    ax.set_xticks(range(n), names, rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    for i in range(n):
        for j in range(n):
            if not np.isnan(S[i, j]):
                dark = S[i, j] > 0.6 * 2 ** 0.5 if metric in DISTANCES else S[i, j] < 0.6
                ax.text(j, i, f"{S[i, j]:.2f}", ha="center", va="center", color="w" if dark else "k", fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.046)
    report.section(
        "Similarity between spaces",
        Report.text("Linear CKA (Kornblith et al. 2019) between every pair of spaces, joined by item id; the table "
                    "adds debiased CKA and mutual 10-NN overlap (similarities: higher = closer, 1 = same) and the "
                    "orthogonal Procrustes distance (a distance: lower = closer; 0 = same up to rotation and scale, "
                    "at most √2)."),
        Report.figure(fig, f"{metric} between spaces"
                      + (" (a distance: lower = closer)" if metric in DISTANCES else "")),
        Report.table([{DISTANCES.get(k, k): v for k, v in r.items()} for r in rows]),
    )
    return S


# measures of `evaluation.compare` that are distances (lower = closer), and their column label beside similarities
DISTANCES = {"procrustes": "procrustes distance (lower = closer)"}


def compat_section(report: Report, names: Sequence[str], res: dict[str, Any], title: str = "Compatibility") -> dict | None:
    """Compatibility matrix of spaces ordered old -> new (`studies.evaluation.compatibility_result`)."""
    if "error" in res:
        report.section(title, Report.text(f"not computed: {res['error']}", note=True))
        return None
    plt = _plt()
    n = len(names)
    M = np.array([[np.nan if v is None else v for v in row] for row in res["matrix"]])
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
    raw = res["matrix"]
    rows = []
    for k, ok in res["compatible"].items():
        i, j = (int(x) - 1 for x in k.split("->"))
        rows.append({"pair (new->old)": k, "M(old,old)": raw[j][j], "M(new,old)": raw[i][j], "M(new,new)": raw[i][i],
                     **compat_cells(ok, res["gain"][k], res.get("gain_note", {}).get(k))})
    report.section(
        title,
        Report.text(f"M[i][j] = {res['metric']} with queries from model i searching a gallery from model j "
                    f"(relevance by {res['relevance']}). Model i is compatible with j when M[i][j] >= M[j][j] (new "
                    "queries on the old gallery do at least as well as old on old). Only for a compatible pair whose "
                    "new model improves on the old one is there a gain = (M[i][j] - M[j][j]) / (M[i][i] - M[j][j]), "
                    "the share of the upgrade's improvement had without re-encoding the gallery (BCT); a pair that "
                    "fails the criterion has none. Two independently trained models are not compatible even at equal "
                    "dimension: that is what the upgrade tools address."),
        Report.figure(fig, "compatibility matrix"),
        Report.table(rows),
    )
    return res


def overview_section(report: Report, spaces: Sequence[Space]) -> None:
    rows = [{"space": space_name(s), "model": s.model, "dataset": s.dataset, "view": s.view, "count": s.count,
             "dim": s.dim, "normalized": s.normalized, "labels": s.labels is not None} for s in spaces]
    report.section("Spaces", Report.table(rows))


def build_report(spaces: Sequence[Space], title: str = "repspace report") -> Report:
    """The `repspace report` page for any list of spaces: the evaluation study, then its sections."""
    report = Report(title)
    overview_section(report, spaces)
    tasks_section(report, task_rows(spaces))
    labelled = [s for s in spaces if s.labels is not None]
    if labelled:
        rows = label_sweep(labelled)
        report.section("Label retrieval vs dimension", _curves(rows, "mAP@R", "mAP@R vs dimension"), Report.table(rows))
    if len(spaces) > 1:
        similarity_section(report, [space_name(s) for s in spaces], *similarity(spaces))
        for where, dim, group in compatible_groups(spaces):
            compat_section(report, [space_name(s) for s in group], compatibility_result(group),
                           title=f"Compatibility ({where}, {dim}-d)")
    return report
