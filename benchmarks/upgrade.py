"""Text upgrade benchmark: MiniLM-L6 (old) -> MPNet (new) on held-out bbc-news title -> body retrieval.

The old index holds MiniLM bodies; new-model (MPNet) title queries search it through an adapter
fitted on N articles encoded by both models (train half, as a team would re-embed a sample of its corpus),
from their bodies only or from bodies and titles (the kind of text queries are); scored on the
test half. Oracle rows fit on every article (test included) and bound what a linear adapter can do. Side by side: old->old, new->new (full backfill),
adapted new->old, recovery = adapted / new_new, and the adapter's cost per query.

Usage: python benchmarks/upgrade.py   (MPNet bodies are encoded once into the bench cache: ~26 min)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine  # noqa: E402
from _spaces import bench_space  # noqa: E402

from repspace.alignment.linear import LeastSquares, Procrustes  # noqa: E402
from repspace.compat import evaluate_upgrade, fit_adapter  # noqa: E402


def per_query_us(adapter, x: np.ndarray, batch: int) -> float:
    xb = x[:batch]
    reps = max(1, 2000 // batch)
    t0 = time.perf_counter()
    for _ in range(reps):
        adapter.transform(xb)
    return (time.perf_counter() - t0) / (reps * len(xb)) * 1e6


def main() -> None:
    print(f"machine: {machine()}")
    old_c, new_c = bench_space("minilm-l6", "bbc-news:body"), bench_space("mpnet-base", "bbc-news:body")
    old_q, new_q = bench_space("minilm-l6", "bbc-news:title"), bench_space("mpnet-base", "bbc-news:title")
    print("\n| adapter | pairs (items) | fitted on | old->old R@10 | new->new R@10 | adapted R@10 | recovery R@10 | "
          "old->old nDCG@10 | new->new nDCG@10 | adapted nDCG@10 | recovery nDCG@10 | µs/query (batch 1) | "
          "µs/query (batch 1000) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    x = np.asarray(new_q.vectors)

    def row(method: str, pairs: str, sample: str, ad) -> None:
        r = evaluate_upgrade(ad, old_c, new_q, new_c, old_q)
        print(f"| {method} | {pairs} | {sample} | {r['old_old']['recall@10']:.4f} | {r['new_new']['recall@10']:.4f} | "
              f"{r['adapted_new_old']['recall@10']:.4f} | {r['recovery']['recall@10']:.4f} | "
              f"{r['old_old']['ndcg@10']:.4f} | {r['new_new']['ndcg@10']:.4f} | {r['adapted_new_old']['ndcg@10']:.4f} | "
              f"{r['recovery']['ndcg@10']:.4f} | {per_query_us(ad, x, 1):.1f} | {per_query_us(ad, x, 1000):.2f} |",
              flush=True)

    for method in ("procrustes", "affine", "lowrank", "mlp"):
        for pairs in (100, 300, 1000):
            for sample, also in (("bodies", None), ("bodies + titles", [(old_q, new_q)])):
                try:
                    ad = fit_adapter(old_c, new_c, method, pairs=pairs, rank=64, also=also)
                except Exception as e:
                    print(f"| {method} | {pairs} | {sample} | n/a ({str(e)[:60]}) |")
                    continue
                row(method, str(pairs), sample, ad)
    # ceiling: linear maps fitted on EVERY article (test half included, both views) — no adapter can be
    # expected to beat these on this model pair
    every_o = np.vstack([old_c.vectors, old_q.select(old_c.ids).vectors])
    every_n = np.vstack([new_c.vectors, new_q.select(old_c.ids).vectors])
    for name, est in (("procrustes", Procrustes()), ("lstsq", LeastSquares())):
        row(f"{name} (oracle)", "all 2,225 incl. test", "bodies + titles",
            est.fit(every_n, every_o, source=new_c, target=old_c))

if __name__ == "__main__":
    main()
