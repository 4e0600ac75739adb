"""Alignment between models, measured: the rows behind the demo's "Alignment between models" sections.

    rows = alignment_rows([minilm_titles, onnx_titles])   # one row per ordered pair and method
"""

from __future__ import annotations

from itertools import permutations
from typing import Sequence

from repspace.spaces import Space

METHODS = ("procrustes", "relative", "unsupervised")


def alignment_rows(spaces: Sequence[Space], methods: Sequence[str] = METHODS) -> list[dict]:
    """For every ordered pair of spaces (same items, different models): top-1 / top-5 matching, mean cosine and
    stitching accuracy of each method — Procrustes on the train half of the shared ids, relative representations
    with 300 anchors (fewer if the train half is smaller), unsupervised translation without pairs."""
    from repspace.alignment import evaluate_translator, fit_translator
    from repspace.alignment.api import split_shared_ids

    rows = []
    for src, tgt in permutations(spaces, 2):
        anchors = min(300, len(split_shared_ids(src, tgt)[0]))
        for method in methods:
            t = fit_translator(src, tgt, method, anchors=anchors)
            r = evaluate_translator(t, src, tgt)
            rows.append({"source": src.model, "target": tgt.model, "view": src.view, "method": method,
                         "top-1": r["top1"], "top-5": r["top5"], "mean cos": r["mean_cos"],
                         "stitch acc": r.get("stitch_accuracy"), "target's own acc": r.get("target_accuracy")})
    return rows
