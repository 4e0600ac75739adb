"""Report section for alignment: model x model matching table and zero-shot stitching."""

from __future__ import annotations

from itertools import permutations
from typing import Sequence

from repspace.alignment import evaluate_translator, fit_translator
from repspace.alignment.api import split_shared_ids
from repspace.report.html import Report
from repspace.spaces import Space

SECTION_METHODS = ("procrustes", "relative", "unsupervised")


def alignment_section(report: Report, spaces: Sequence[Space], title: str = "Alignment between models") -> list[dict]:
    """For every ordered pair of spaces (same items, different models): top-1 matching and
    stitching accuracy of Procrustes (train-half pairs), relative representations (300 anchors)
    and unsupervised translation (no pairs)."""
    rows = []
    for src, tgt in permutations(spaces, 2):
        anchors = min(300, len(split_shared_ids(src, tgt)[0]))
        for method in SECTION_METHODS:
            t = fit_translator(src, tgt, method, anchors=anchors)
            r = evaluate_translator(t, src, tgt)
            rows.append({"source": src.model, "target": tgt.model, "view": src.view, "method": method,
                         "top-1": r["top1"], "top-5": r["top5"], "mean cos": r["mean_cos"],
                         "stitch acc": r.get("stitch_accuracy"), "target's own acc": r.get("target_accuracy")})
    report.section(
        title,
        Report.text("Matching: a source item, translated, should be nearest to the same item in the target space, "
                    "among all test items (top-1, top-5). Procrustes is fitted on the train half of the shared ids and "
                    "scored on the test half; relative representations use 300 anchor items (fewer if the train half is smaller); "
                    "unsupervised translation sees no pairs at all (scored on all items). Stitching: a logistic "
                    "regression trained on the target model's vectors classifies the source model's test items "
                    "through the translator."),
        Report.table(rows),
    )
    return rows
