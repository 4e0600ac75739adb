"""Alignment benchmark on real spaces (bbc-news titles; 10k bbc sentences for unsupervised).

A. Side by side with latentis (PyPI `latentis` 0.0.8): Procrustes and relative projection on
   the same spaces and pairs — matching accuracy and fit time.
B. Grid: every ordered pair of {minilm-l6, minilm-l3-onnx, mpnet-base, glove-50} x method x
   number of training pairs (100, 300, 1000, all): top-1, mean cosine, stitching accuracy.
C. Unsupervised translation (no pairs) on 10,000 sentences, MiniLM-L6 <-> MPNet.

Usage: python benchmarks/align.py [--skip-grid] [--skip-10k]
Spaces are cached in $REPSPACE_BENCH_SPACES (default ~/.cache/repspace/bench-spaces).
"""

from __future__ import annotations

import argparse
import sys
import time
from itertools import permutations
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine  # noqa: E402
from _spaces import bench_space  # noqa: E402

from repspace.alignment import evaluate_translator, fit_translator, matching_scores  # noqa: E402
from repspace.alignment.api import split_shared_ids  # noqa: E402
from repspace.alignment.relative import relative_projection  # noqa: E402

MODELS = ("minilm-l6", "minilm-l3-onnx", "mpnet-base", "glove-50")
METHODS = ("procrustes", "ridge", "affine", "lowrank", "mlp", "relative")
PAIRS = (100, 300, 1000, None)


def _median_time(fn, reps: int = 5) -> tuple[float, object]:
    times, out = [], None
    for _ in range(reps):
        t0 = time.perf_counter(); out = fn(); times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def side_by_side(src, tgt) -> None:
    import torch
    from latentis.transform.projection import cosine_proj
    from latentis.transform.projection import relative_projection as lt_relative
    from latentis.transform.translate.aligner import Procrustes as LtProcrustes

    train, test = split_shared_ids(src, tgt)
    train = train[:1000]
    Xtr, Ytr = np.asarray(src.select(train).vectors), np.asarray(tgt.select(train).vectors)
    Xte, Yte = np.asarray(src.select(test).vectors), np.asarray(tgt.select(test).vectors)
    print(f"\n## A. side by side with latentis: {src.model} -> {tgt.model}, bbc-news {src.view}s, "
          f"{len(train)} training pairs, {len(test)} test items")
    print("| method | implementation | fit time (ms, median of 5) | top-1 | mean cos |")
    print("|---|---|---|---|---|")
    from repspace.alignment import Procrustes

    t_ours, ours = _median_time(lambda: Procrustes().fit(Xtr, Ytr))
    m_ours = matching_scores(ours.transform(Xte), Yte)
    xt, yt = torch.from_numpy(Xtr), torch.from_numpy(Ytr)
    t_lt, lt = _median_time(lambda: LtProcrustes().fit(x=xt, y=yt))
    m_lt = matching_scores(lt.transform(x=torch.from_numpy(Xte))[0].numpy(), Yte)
    print(f"| procrustes | repspace (centre + isotropic scale) | {1000 * t_ours:.1f} | {m_ours['top1']:.4f} | {m_ours['mean_cos']:.4f} |")
    print(f"| procrustes | latentis (standard scaling + zero padding) | {1000 * t_lt:.1f} | {m_lt['top1']:.4f} | {m_lt['mean_cos']:.4f} |")
    print(f"fit time ratio latentis/repspace: {t_lt / t_ours:.2f}")
    anchors = np.random.default_rng(0).choice(len(train), 300, replace=False)
    ax, ay = Xtr[anchors], Ytr[anchors]
    t_ours, (rx, ry) = _median_time(lambda: (relative_projection(Xte, ax), relative_projection(Yte, ay)))
    m_ours = matching_scores(rx, ry)
    t_lt, (lx, ly) = _median_time(lambda: (lt_relative(torch.from_numpy(Xte), torch.from_numpy(ax), cosine_proj),
                                           lt_relative(torch.from_numpy(Yte), torch.from_numpy(ay), cosine_proj)))
    m_lt = matching_scores(lx.numpy(), ly.numpy())
    print(f"| relative (300 anchors, cosine) | repspace | {1000 * t_ours:.1f} | {m_ours['top1']:.4f} | {m_ours['mean_cos']:.4f} |")
    print(f"| relative (300 anchors, cosine) | latentis | {1000 * t_lt:.1f} | {m_lt['top1']:.4f} | {m_lt['mean_cos']:.4f} |")
    rc = relative_projection(Xte, ax, ax.mean(0)), relative_projection(Yte, ay, ay.mean(0))
    print(f"| relative (300 anchors, centred) | repspace | - | {matching_scores(*rc)['top1']:.4f} | - |")


def grid(spaces: dict, view: str = "title") -> None:
    print(f"\n## B. grid: bbc-news {view}s, fit on train ids, scored on test ids (top-1 / mean cos / stitch acc)")
    print("| source -> target | method | 100 pairs | 300 pairs | 1000 pairs | all train pairs | target's own acc |")
    print("|---|---|---|---|---|---|---|")
    for a, b in permutations(list(spaces), 2):
        src, tgt = spaces[a], spaces[b]
        for method in METHODS + ("unsupervised",):
            cells, own = [], ""
            for n in PAIRS if method != "unsupervised" else (None,):
                try:
                    t = fit_translator(src, tgt, method, pairs=n, rank=64, anchors=min(300, n or 300))
                    r = evaluate_translator(t, src, tgt)
                    cells.append(f"{r['top1']:.3f} / {r['mean_cos']:.2f} / {r.get('stitch_accuracy', float('nan')):.3f}")
                    own = f"{r.get('target_accuracy', float('nan')):.3f}"
                except Exception as e:  # record why a cell is empty (e.g. too few pairs for lstsq/affine)
                    cells.append(f"n/a ({str(e).split(';')[0][:40]})")
            if method == "unsupervised":
                cells = ["-", "-", "-", cells[0] + " (no pairs)"]
            print(f"| {a} -> {b} | {method} | " + " | ".join(cells) + f" | {own} |", flush=True)


def unsupervised_10k() -> None:
    from repspace.alignment import UnsupervisedTranslator

    a = bench_space("minilm-l6", "bbc-sentences", sample=10000)
    b = bench_space("mpnet-base", "bbc-sentences", sample=10000)
    print(f"\n## C. unsupervised translation, {a.count} bbc sentences, no pairs (rows shuffled independently)")
    print("| direction | top-1 | top-5 | mean rank | mean cos | rounds | converged | fit time (s) |")
    print("|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for src, tgt in ((a, b), (b, a)):
        ps, pt = rng.permutation(src.count), rng.permutation(tgt.count)
        X, Y = np.asarray(src.vectors)[ps], np.asarray(tgt.vectors)[pt]
        t0 = time.perf_counter()
        u = UnsupervisedTranslator().fit(X, Y)
        dt = time.perf_counter() - t0
        # ids are used only here, for scoring: both spaces in their original (id-aligned) order
        m = matching_scores(u.transform(np.asarray(src.vectors)), np.asarray(tgt.vectors))
        print(f"| {src.model} -> {tgt.model} | {m['top1']:.4f} | {m['top5']:.4f} | {m['mean_rank']:.1f} | "
              f"{m['mean_cos']:.3f} | {len(u.history_) - 1} | {u.converged_} | {dt:.1f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-grid", action="store_true")
    ap.add_argument("--skip-10k", action="store_true")
    ap.add_argument("--skip-latentis", action="store_true")
    ap.add_argument("--view", default="title", choices=("title", "body"))
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated (MPNet bodies take 26 min to encode)")
    args = ap.parse_args()
    print(f"machine: {machine()}")
    spaces = {m: bench_space(m, f"bbc-news:{args.view}") for m in args.models.split(",")}
    if not args.skip_latentis and {"minilm-l6", "mpnet-base"} <= set(spaces):
        try:
            side_by_side(spaces["minilm-l6"], spaces["mpnet-base"])
        except ImportError as e:
            print(f"latentis unavailable ({e}); install with `pip install latentis==0.0.8`")
    if not args.skip_grid:
        grid(spaces, args.view)
    if not args.skip_10k:
        unsupervised_10k()


if __name__ == "__main__":
    main()
