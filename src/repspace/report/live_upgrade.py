"""Report section: the curve a person reads before switching a live collection to a new model.

It renders what `repspace.collections.upgrade.curve` measured (rows, areas, the never-lose verdict): quality of every serving strategy against
the fraction of the gallery backfilled, with old -> old and new -> new (after a full backfill) as lines.
"""

from __future__ import annotations

from typing import Any

from repspace.report.html import Report

LABELS = {"old": "old (no upgrade)", "adapted": "adapted new queries -> old", "mixed": "mixed (raw scores)",
          "fused": "fused (default)"}


def live_upgrade_section(report: Report, result: dict[str, Any], corpus: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    xs = [100 * r["fraction"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, key in zip(axes, ("recall@10", "ndcg@10")):
        for s in ("adapted", "mixed", "fused"):
            ax.plot(xs, [r[s][key] for r in rows], marker="o", label=LABELS[s], lw=2.2 if s == "fused" else 1.2)
        ax.axhline(rows[0]["old"][key], color="grey", ls="--", label=f"old -> old ({result['old']})")
        ax.axhline(rows[-1]["new"][key], color="black", ls=":", label=f"new -> new ({result['new']}, 100 %)")
        ax.set_xlabel("gallery backfilled with the new model (%)")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    table = [{"backfilled": f"{r['fraction']:.0%}", **{f"{s} R@10": r[s]["recall@10"] for s in ("old", "adapted", "mixed", "fused")},
              "fused nDCG@10": r["fused"]["ndcg@10"], "old nDCG@10": r["old"]["ndcg@10"],
              "fused negative flips": r["fused"]["negative_flip_rate"]} for r in rows]
    last = rows[-1]
    verdict = ("never below old -> old (within one standard error) at any measured fraction"
               if result["never_loses"] else "below old -> old at some fraction: do not serve it by default here")
    report.section(
        "Upgrade a live collection without losing",
        Report.text(f"A collection of {result['items']:,} {corpus} items holds {result['old']} vectors; "
                    f"`repspace upgrade start` fitted a Procrustes adapter and the fusion weights on {result['sample']:,} "
                    f"re-embedded items, and the backfill ({result['order']} order) re-embeds the rest with "
                    f"{result['new']}. At each fraction, {result['queries']:,} held-out queries search the live "
                    "collection with each strategy. The default, fused, scores items not yet backfilled by "
                    "(old·old, adapted·old) and backfilled ones by (old·old, adapted·old, new·new), with non-negative "
                    "logistic weights, so both kinds meet on one scale; fitted on pseudo-queries (as here, unless "
                    "`--fit-queries` gives real ones), the backfilled items' model fades into the new model's term "
                    f"alone as the backfill completes, so the end is new -> new. Here fused is {verdict}; at 100 % it is "
                    f"{last['fused']['recall@10'] - last['new']['recall@10']:+.4f} recall@10 and "
                    f"{last['fused']['ndcg@10'] - last['new']['ndcg@10']:+.4f} nDCG@10 from new -> new. Area under the "
                    "recall@10 curve: " + ", ".join(f"{s} {result['area'][s]:.4f}" for s in ("old", "adapted", "mixed", "fused"))
                    + ". Negative flips (RACT): queries old -> old answered right at rank 1 that fused answers wrong."),
        Report.table(table),
        Report.figure(fig, "quality against backfill fraction for each strategy; old -> old and new -> new as lines"),
    )
