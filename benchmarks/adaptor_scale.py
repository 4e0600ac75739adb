"""Post-hoc Matryoshka adaptor trained on far more unlabelled text (issue 28 item 4): retained nDCG@10 at 1/8 of
the dimensions against the number of unlabelled training items.

Protocol (as benchmarks/adaptor.py): bbc-news title -> body retrieval, the adaptor fitted on the train half of the
articles (bodies; the supervised variant also on their titles as pairs) plus N unlabelled items encoded by the same
model, scored on the held-out test half. Unlabelled corpus: a fixed random sample of the GNU dictionary's
definitions (dataset `gcide`), or (`--corpus sentences`) a random sample of `--pool` body sentences of the *train*
articles (`bbc-sentences@train`: in domain, never the held-out articles), or both (`gcide,sentences`, interleaved);
the first N of a fixed permutation, so the sets are nested. The target is the teacher's own similarities
(SimilarityPreservationLoss + RankDistillationLoss over the batch, MatryoshkaLoss over d/16, d/8, d/4, d/2, d), at a
fixed budget of `--steps` steps of `--batch` items for every N (equal compute). Baselines side by side: PCA fitted
on the same items, truncation.

Usage: python benchmarks/adaptor_scale.py [--model minilm-l6] [--sizes 0,1000,5000,20000,50000] [--corpus gcide]
       [--pool 50000] [--steps 1000] [--batch 256] [--rank-weight 1] [--modes unsupervised,supervised] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine  # noqa: E402
from _spaces import bbc_held_out, bench_space  # noqa: E402

from repspace.compress import MatryoshkaAdaptor, PCACompressor  # noqa: E402
from repspace.evaluation import query_retrieval  # noqa: E402


def corpus(model: str, names: list[str], pool: int) -> np.ndarray:
    parts = []
    for name in names:
        space = bench_space(model, "gcide" if name == "gcide" else "bbc-sentences@train", sample=pool)
        v = np.asarray(space.vectors, np.float64)
        parts.append(v[np.random.default_rng(0).permutation(len(v))])
    if len(parts) == 1:
        return parts[0]
    m = min(map(len, parts))  # interleave, so every prefix mixes the corpora
    return np.concatenate([np.stack([p[:m] for p in parts], 1).reshape(-1, parts[0].shape[1])] + [p[m:] for p in parts])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="minilm-l6")
    ap.add_argument("--sizes", default="0,1000,5000,20000,50000")
    ap.add_argument("--corpus", default="gcide")
    ap.add_argument("--pool", type=int, default=50000)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--rank-weight", type=float, default=1.0)
    ap.add_argument("--kind", default="linear")
    ap.add_argument("--modes", default="unsupervised,supervised")
    ap.add_argument("--seed", type=int, default=0, help="the adaptor's seed (its initialisation and batches)")
    args = ap.parse_args()
    print(f"machine: {machine()}")
    X, P, qt, ct = bbc_held_out(args.model)
    d = ct.dim
    dims = [d // 16, d // 8, d // 4, d // 2]
    full = query_retrieval(qt, ct)["ndcg@10"]
    U = corpus(args.model, args.corpus.split(","), args.pool)
    sizes = [int(s) for s in args.sizes.split(",") if int(s) <= len(U)]
    print(f"\n## {args.model} ({d}-d): {len(qt.ids)} held-out titles -> bodies, full nDCG@10 {full:.4f}; "
          f"{len(X)} train articles + N of {len(U)} unlabelled ({args.corpus}); {args.steps} steps x {args.batch}, "
          f"rank weight {args.rank_weight}, {args.kind}, seed {args.seed}")

    def retained(fn, m):
        return query_retrieval(qt.with_vectors(fn(np.asarray(qt.vectors), m)),
                               ct.with_vectors(fn(np.asarray(ct.vectors), m)))["ndcg@10"] / full

    print("| mode | N unlabelled | fit (s) | " + " | ".join(f"{m} (1/{d // m})" for m in dims) + " | PCA at 1/8 |")
    print("|---|---|---|" + "---|" * (len(dims) + 1))
    trunc = [retained(lambda x, m: x[:, :m], m) for m in dims]
    print("| truncation | - | - | " + " | ".join(f"{v:.3f}" for v in trunc) + " | - |", flush=True)
    for mode in args.modes.split(","):
        for n in sizes:
            extra = U[:n] if n else None
            t0 = time.perf_counter()
            ada = MatryoshkaAdaptor(dims=dims, kind=args.kind, epochs=10**6, batch_size=args.batch,
                                    max_steps=args.steps, rank_weight=args.rank_weight, seed=args.seed).fit(
                X, pairs=P if mode == "supervised" else None, unlabelled=extra)
            secs = time.perf_counter() - t0
            pca = PCACompressor(dims=dims).fit(X, unlabelled=extra)
            vals = [retained(lambda x, m: ada.transform(x, m), m) for m in dims]
            p8 = retained(lambda x, m: pca.transform(x, m), d // 8)
            print(f"| {mode} | {n} | {secs:.0f} | " + " | ".join(f"{v:.3f}" for v in vals) + f" | {p8:.3f} |",
                  flush=True)


if __name__ == "__main__":
    main()
