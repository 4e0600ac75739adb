"""Report section: upgrading the model behind an index — compatible training and query-side adapters."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from repspace.report.html import Report
from repspace.spaces import Space

COMPAT_METHODS = ("independent", "bct", "bt2", "dsimplex")


def compatible_training_rows(work: Path, dataset: str = "digits", dim: int = 16, epochs: int = 30,
                             classes: str = "0-4", seed: int = 0) -> list[dict]:
    """Old CNN on `classes`, new CNNs on all classes with each method; M(old,old), M(new,new), M(new,old) in mAP@R."""
    from repspace.compat.training import train_model
    from repspace.datasets import load_dataset
    from repspace.encoders import get_encoder
    from repspace.encoders.job import encode_items
    from repspace.evaluation import compatibility

    train, test = load_dataset(f"{dataset}@train"), load_dataset(f"{dataset}@test")
    common = dict(arch="cnn", dim=dim, items=train, epochs=epochs, batch_size=64, threads=1, progress=False)

    def fit(name: str, method: str, seed_: int, **kw) -> Space:
        train_model(method=method, out=work / name, seed=seed_, name=name, **common, **kw)
        return encode_items(get_encoder(str(work / name)), test, progress=False)

    old = fit("old", "independent", seed, classes=classes)
    old_ds = fit("old-dsimplex", "dsimplex", seed, classes=classes)
    rows = []
    for method in COMPAT_METHODS:
        kw = {"old": work / "old"} if method in ("bct", "bt2") else {}
        new = fit(f"new-{method}", method, seed + 1000, **kw)
        ref = old_ds if method == "dsimplex" else old
        res = compatibility([ref, new], metric="map@r")
        M = res["matrix"]
        rows.append({"new model": method, "old model": ref.model, "dim": new.dim, "M(old,old)": M[0][0],
                     "M(new,new)": M[1][1], "M(new,old)": M[1][0], "compatible": res["compatible"]["2->1"],
                     "gain": res["gain"]["2->1"]})
    return rows


def recovery_rows(old_q: Space, old_c: Space, new_q: Space, new_c: Space, pairs=(50, 100, 300, 1000)) -> list[dict]:
    """Procrustes adapters new -> old from N articles (bodies + titles), scored on the held-out half."""
    from repspace.compat import evaluate_upgrade, fit_adapter
    from repspace.datasets.builtin import hash_split

    available = sum(hash_split(i) == "train" for i in set(old_c.ids) & set(new_c.ids))
    rows = []
    for n in sorted({min(p, available) for p in pairs}):
        ad = fit_adapter(old_c, new_c, "procrustes", pairs=n, also=[(old_q, new_q)])
        r = evaluate_upgrade(ad, old_c, new_q, new_c, old_q)
        rows.append({"pairs (articles)": n, "old->old R@10": r["old_old"]["recall@10"],
                     "new->new R@10": r["new_new"]["recall@10"], "adapted R@10": r["adapted_new_old"]["recall@10"],
                     "recovery R@10": r["recovery"]["recall@10"], "µs/query": r["adapter_us_per_query"]})
    return rows


def upgrade_section(report: Report, work: Path, old_q: Space, old_c: Space, new_q: Space, new_c: Space,
                    epochs: int = 30) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train_rows = compatible_training_rows(work / "models", epochs=epochs)
    fig1, ax = plt.subplots(figsize=(7, 3.6))
    xs = np.arange(len(train_rows))
    for k, (key, label) in enumerate((("M(old,old)", "old -> old"), ("M(new,old)", "new -> old"), ("M(new,new)", "new -> new"))):
        ax.bar(xs + (k - 1) * 0.27, [r[key] for r in train_rows], 0.27, label=label)
    ax.set_xticks(xs, [r["new model"] for r in train_rows])
    ax.set_ylabel("mAP@R (digits test)")
    ax.legend(fontsize=8, ncol=3, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    ax.grid(axis="y", alpha=0.3)

    rec = recovery_rows(old_q, old_c, new_q, new_c)
    fig2, ax2 = plt.subplots(figsize=(7, 3.6))
    ax2.plot([r["pairs (articles)"] for r in rec], [r["adapted R@10"] for r in rec], marker="o", label="new queries -> old index, adapted")
    ax2.axhline(rec[0]["old->old R@10"], color="grey", ls="--", label=f"old -> old ({old_c.model})")
    ax2.axhline(rec[0]["new->new R@10"], color="black", ls=":", label=f"new -> new ({new_c.model}, after backfill)")
    ax2.set_xscale("log")
    ax2.set_xticks([r["pairs (articles)"] for r in rec], [str(r["pairs (articles)"]) for r in rec])
    ax2.minorticks_off()
    ax2.set_xlabel("articles encoded by both models (bodies + titles)")
    ax2.set_ylabel("recall@10, held-out titles -> bodies")
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3)
    report.section(
        "Upgrade: compatible training and query-side adapters",
        Report.text("Compatible training (BCT protocol on scikit-learn digits, small CNNs): the old model saw classes "
                    "0-4 only; new models see all 10. A new model is backward compatible when its queries search the old "
                    "gallery at least as well as the old model does (M(new,old) >= M(old,old)). BCT (influence loss "
                    "through the old classifier) and BT² (extra dimensions behind a learned orthonormal basis) are "
                    "trained against the old model; d-Simplex models (old and new) share a fixed classifier; new models "
                    "start from other initial weights than the old one. In this run the criterion holds for: "
                    f"{', '.join(r['new model'] for r in train_rows if r['compatible']) or 'none'}. Class extension is "
                    "the hard protocol (benchmarks/RESULTS.md has Fashion-MNIST with both protocols and several seeds)."),
        Report.table(train_rows),
        Report.figure(fig1, "old->old, new->old and new->new mAP@R for each way of training the new model"),
        Report.text(f"Query-side adapter: the index holds {old_c.model} bodies; {new_q.model} title queries are mapped "
                    "into its space by orthogonal Procrustes fitted on N articles encoded by both models, then search "
                    "the old index without re-embedding it. Recovery = adapted / new->new. A new->old adapter cannot "
                    "be better than the old gallery allows: when the new model is much better, backfill (`repspace "
                    "upgrade backfill`) and switch (`repspace upgrade switch`)."),
        Report.table(rec),
        Report.figure(fig2, "recall@10 of adapted new-model queries on the old index versus the number of paired articles"),
    )
