"""MUVERA on bbc-news title -> body (test split, minilm-l6 tokens): shortlist recall of the exact MaxSim top 10 and
nDCG@10 of MaxSim vs mean pooling, for FDE configs of at most 10,240 dimensions.

    nice -n 10 python benchmarks/muvera.py [--limit N] [--shortlist 100]

Token embeddings and the exact MaxSim ranking are computed once; every config reuses them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine  # noqa: E402

from repspace.datasets import load_dataset  # noqa: E402
from repspace.encoders import get_encoder  # noqa: E402
from repspace.multivector.api import evaluate_embeddings, exact_top, fde_config  # noqa: E402
from repspace.multivector.embed import embed_tokens  # noqa: E402

# (repetitions, simhash bits, d_proj, final dim): all at most 10,240 dimensions
CONFIGS = [(20, 5, 16, None), (20, 4, 32, None), (20, 3, 64, None), (10, 4, 64, None), (40, 4, 16, None),
           (40, 5, 16, 10240), (20, 5, 32, 10240)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--shortlist", type=int, default=100)
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args()
    print(machine())
    queries = load_dataset("bbc-news:title@test").limit(args.limit)
    corpus = load_dataset("bbc-news:body@test").limit(args.limit)
    assert queries.ids == corpus.ids
    encoder = get_encoder("minilm-l6")
    t0 = time.perf_counter()
    q, d = embed_tokens(encoder, list(queries.data)), embed_tokens(encoder, list(corpus.data))
    t1 = time.perf_counter()
    exact = exact_top(q, d, args.k)
    t2 = time.perf_counter()
    print(f"{len(queries)} queries x {len(corpus)} docs; tokens/item {q.tokens.lengths.mean():.1f} / "
          f"{d.tokens.lengths.mean():.1f}; token embeddings {t1 - t0:.1f} s, exact MaxSim (all pairs) {t2 - t1:.1f} s")
    relevant = np.arange(len(corpus))
    rows = []
    for reps, ksim, proj, final in CONFIGS:
        cfg = fde_config(encoder.dim, reps, ksim, proj, final)
        r = evaluate_embeddings(q, d, relevant, cfg, args.k, args.shortlist, exact=exact)
        rows.append(r)
        print(json.dumps({"R": reps, "k_sim": ksim, "d_proj": proj, "final": final, "dim": r["fde_dim"],
                          "recall": r[f"shortlist_recall@{args.shortlist}_of_maxsim_top{args.k}"],
                          **r[f"ndcg@{args.k}"], "seconds": r["seconds"]}), flush=True)
    print(f"\n| R | k_sim | d_proj | final | FDE dims | shortlist recall@{args.shortlist} of MaxSim top {args.k} "
          f"| nDCG@{args.k} FDE | FDE + re-rank | MaxSim | mean pooling | FDE encode s |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for (reps, ksim, proj, final), r in zip(CONFIGS, rows):
        n = r[f"ndcg@{args.k}"]
        print(f"| {reps} | {ksim} | {proj} | {final or '-'} | {r['fde_dim']:,} "
              f"| {r[f'shortlist_recall@{args.shortlist}_of_maxsim_top{args.k}']:.3f} | {n['fde']:.3f} "
              f"| {n['fde_rerank']:.3f} | {n['maxsim']:.3f} | {n['mean_pooling']:.3f} | {r['seconds']['fde_encode']} |")


if __name__ == "__main__":
    main()
