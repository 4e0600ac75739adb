"""Report section: how small can it be — prefix curves (truncation, PCA, Matryoshka adaptor) and index specs.

It renders what `repspace.studies.compact.compact_study` measured."""

from __future__ import annotations

from typing import Any

from repspace.report.html import Report


def compact_section(report: Report, result: dict[str, Any]) -> list[dict]:
    """Append the section for a `compact_study` result; returns its prefix-curve rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, ys in result["curves"].items():
        ax.plot(result["dims"], ys, marker="o", label=name)
    ax.axhline(0.98, color="grey", ls=":", lw=1)
    ax.set_xscale("log", base=2); ax.set_xlabel("dimension"); ax.set_ylabel("nDCG@10 / full-dimension nDCG@10")
    ax.grid(alpha=0.3); ax.legend()
    report.section(
        "How small can it be",
        Report.text(f"{result['model']}: bbc-news titles search bodies; compressors and the adaptor are fitted on the "
                    f"train half of the articles and scored on the {result['test_items']} held-out ones (full-dimension "
                    f"nDCG@10 = {result['full_ndcg@10']:.4f}). The Matryoshka adaptor is supervised by the training "
                    "(title, body) pairs; the dotted line marks 98 % of full quality."),
        Report.figure(fig, "retained nDCG@10 vs dimension"),
        Report.table(result["rows"]),
        Report.text("Index specs over the same held-out bodies: quality, first-stage memory and speed (one batch of "
                    "queries, 2 cores; at this size every spec is fast — the speed-ups matter at millions of items). "
                    "The last rows index through a fitted adaptor, which the index also applies to each query: a funnel "
                    "over the Matryoshka adaptor's prefixes, and CSR sparse codes (32 active latents of "
                    f"{4 * result['dim']}, stored and searched sparse)."),
        Report.table(result["index_rows"]),
    )
    return result["rows"]
