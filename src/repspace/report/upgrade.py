"""Report section: upgrading the model behind an index — compatible training and query-side adapters.

It renders what `repspace.studies.upgrade` measured (`compatible_training`, `adapter_recovery`)."""

from __future__ import annotations

import numpy as np

from repspace.report.html import Report, compat_cells


def upgrade_section(report: Report, train_rows: list[dict], rec: list[dict], old_model: str, new_model: str) -> None:
    """Append the section for `studies.upgrade.compatible_training` rows and `studies.upgrade.adapter_recovery` rows
    (`old_model` holds the index, `new_model` makes the queries)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig1, ax = plt.subplots(figsize=(7, 3.6))
    xs = np.arange(len(train_rows))
    for k, (key, label) in enumerate((("M(old,old)", "old -> old"), ("M(new,old)", "new -> old"), ("M(new,new)", "new -> new"))):
        ax.bar(xs + (k - 1) * 0.27, [r[key] for r in train_rows], 0.27, label=label)
    ax.set_xticks(xs, [r["new model"] for r in train_rows])
    ax.set_ylabel("mAP@R (digits test)")
    ax.legend(fontsize=8, ncol=3, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    ax.grid(axis="y", alpha=0.3)

    fig2, ax2 = plt.subplots(figsize=(7, 3.6))
    ax2.plot([r["pairs (articles)"] for r in rec], [r["adapted R@10"] for r in rec], marker="o", label="new queries -> old index, adapted")
    ax2.axhline(rec[0]["old->old R@10"], color="grey", ls="--", label=f"old -> old ({old_model})")
    ax2.axhline(rec[0]["new->new R@10"], color="black", ls=":", label=f"new -> new ({new_model}, after backfill)")
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
                    "gallery at least as well as the old model does (M(new,old) >= M(old,old)). BCT and BT² (extra "
                    "dimensions behind a learned orthonormal basis) are trained against the old model with the "
                    "default influence for added classes, the old gallery (each new feature must find its own item's "
                    "old embedding and its class among the old model's embeddings; `--influence classifier` is the "
                    "BCT paper's loss through the old classifier, which fails this protocol); d-Simplex models (old and new) share a fixed classifier; new models "
                    "start from other initial weights than the old one. In this run the criterion holds for: "
                    f"{', '.join(r['new model'] for r in train_rows if r['compatible']) or 'none'}. Class extension is "
                    "the hard protocol (benchmarks/RESULTS.md has Fashion-MNIST with both protocols and several seeds)."),
        Report.table([{**{k: v for k, v in r.items() if k not in ("compatible", "gain", "gain_note")},
                       **compat_cells(r["compatible"], r["gain"], r.get("gain_note"))} for r in train_rows]),
        Report.figure(fig1, "old->old, new->old and new->new mAP@R for each way of training the new model"),
        Report.text(f"Query-side adapter: the index holds {old_model} bodies; {new_model} title queries are mapped "
                    "into its space by orthogonal Procrustes fitted on N articles encoded by both models, then search "
                    "the old index without re-embedding it. Recovery = adapted / new->new. A new->old adapter cannot "
                    "be better than the old gallery allows: when the new model is much better, backfill (`repspace "
                    "upgrade backfill`) and switch (`repspace upgrade switch`)."),
        Report.table(rec),
        Report.figure(fig2, "recall@10 of adapted new-model queries on the old index versus the number of paired articles"),
    )
