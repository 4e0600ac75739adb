"""The LIMIT capacity test (issue 28 item 3): free-embedding critical n against the paper's fitted cubic, and
recall@k of packaged models and BM25 on LIMIT-style data.

capacity: `critical_n(d, 2, search="bisect", start=...)` for each d (k = 2, the default fit budget: 4000 Adam steps,
patience 1000, `--tries` seeds before an n counts as failed), within `--budget` seconds in all (the d that do not fit
are left out and said so), beside the paper's fit -10.5322 + 4.0309 d + 0.0520 d^2 + 0.0037 d^3 (Weller et al.
2025, §4, Figure 2; r^2 = 0.999). The bisection starts at 0.8 x the paper's value (at least k + 1).

eval: `evaluate_limit(model, docs, queries=1000, dims=...)` for each model, and BM25 (numpy/scipy; its "okapi"
variant equals the rank_bm25 package's scores, checked once).

verify: for each (d, n) a fit kept with its vectors (`vectors=True`), seeds 0, 1, … until one solves; its unit vectors
checked in numpy, float64, apart from the optimiser's own test: for every pair the two relevant documents score
strictly above all others, the smallest such margin printed. A checked configuration proves the true capacity at d is
at least n, whatever any optimiser reaches.

Usage: python benchmarks/limit.py capacity [--dims 4,6,8,10,12,16,20] [--tries 2] [--budget 1800]
           [--precision float64|float32] [--threads 1] [--protocol repspace|paper]
       python benchmarks/limit.py verify [--cases 4:9,6:19,8:30] [--seeds 4] [--protocol paper] [--threads 1]
       python benchmarks/limit.py eval [--models minilm-l6,mpnet-base] [--docs 1000] [--dims 32,64,128]
"""

from __future__ import annotations

import argparse
import sys
import time
from itertools import combinations
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine  # noqa: E402

from repspace.limit import critical_n, fit_free_embeddings  # noqa: E402
from repspace.limit.evaluate import evaluate_limit  # noqa: E402


def paper_fit(d: int) -> float:
    return -10.5322 + 4.0309 * d + 0.0520 * d**2 + 0.0037 * d**3


def capacity(args) -> None:
    t0 = time.monotonic()
    print(f"protocol {args.protocol}, {args.tries} tries")
    print("| d | critical n (ours) | paper's fit | ours / fit | fits | seconds |")
    print("|---|---|---|---|---|---|")
    for d in [int(x) for x in args.dims.split(",")]:
        left = args.budget - (time.monotonic() - t0)
        if left <= 0:
            print(f"| {d} | not measured (budget spent) | {paper_fit(d):.1f} | - | - | - |", flush=True)
            continue
        start = max(3, int(0.8 * paper_fit(d)))
        r = critical_n(d, 2, search="bisect", start=start, tries=args.tries, max_n=4 * start + 8,
                       max_queries=args.max_queries, max_seconds=left, precision=args.precision, threads=args.threads,
                       protocol=args.protocol)
        cap = f" (lower bound: {r.stopped_by})" if r.capped else ""
        print(f"| {d} | {r.critical_n}{cap} | {paper_fit(d):.1f} | {r.critical_n / paper_fit(d):.2f} | "
              f"{len(r.trials)} | {r.seconds:.0f} |", flush=True)


def smallest_margin(queries: np.ndarray, docs: np.ndarray, k: int) -> float:
    """min over the C(n, k) queries of (lowest relevant score - highest other score), in float64: > 0 iff every
    query's top k is exactly its subset (queries in `itertools.combinations` order, as `relevance` builds them)."""
    s = queries.astype(np.float64) @ docs.astype(np.float64).T
    worst = np.inf
    for i, subset in enumerate(combinations(range(len(docs)), k)):
        rel = np.zeros(len(docs), bool)
        rel[list(subset)] = True
        worst = min(worst, s[i, rel].min() - s[i, ~rel].max())
    return float(worst)


def verify(args) -> None:
    if args.seeds < 1:
        raise SystemExit("--seeds must be at least 1")
    print(f"protocol {args.protocol}, up to {args.seeds} seeds per case")
    print("| d | n | paper's fit | n / fit | seed | steps | seconds | optimiser's test | smallest margin (numpy, float64) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for case in args.cases.split(","):
        d, n = (int(x) for x in case.split(":"))
        t0 = time.monotonic()  # all seeds tried, and the check
        for seed in range(args.seeds):
            fit = fit_free_embeddings(n, 2, d, seed=seed, protocol=args.protocol, threads=args.threads, vectors=True)
            if fit.solved or seed == args.seeds - 1:
                break
        margin = smallest_margin(fit.query_vectors, fit.doc_vectors, 2)
        print(f"| {d} | {n} | {paper_fit(d):.1f} | {n / paper_fit(d):.2f} | {seed} | {fit.steps} | "
              f"{time.monotonic() - t0:.0f} | "
              f"{'solved' if fit.solved else f'{fit.accuracy:.3f}'} | {margin:.4g} |", flush=True)


def evaluate(args) -> None:
    dims = [int(x) for x in args.dims.split(",")] if args.dims else []
    for i, model in enumerate(args.models.split(",")):
        r = evaluate_limit(model, docs=args.docs, queries=args.queries, dims=dims, bm25=i == 0, seed=args.seed)
        if i == 0:
            print(f"LIMIT-style data: {r['docs']} documents, {r['queries']} queries over {r['relevant_docs']} relevant "
                  f"documents, {r['attributes_per_doc']} attributes each\n")
            print("| system | dim | recall@2 | recall@10 | recall@100 |")
            print("|---|---|---|---|---|")
        for row in r["systems"]:
            print(f"| {row['system']} | {row['dim'] or 'sparse'} | {row['recall@2']:.4f} | {row['recall@10']:.4f} | "
                  f"{row['recall@100']:.4f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="part", required=True)
    c = sub.add_parser("capacity")
    c.add_argument("--dims", default="4,6,8,10,12,16,20")
    c.add_argument("--tries", type=int, default=2)
    c.add_argument("--budget", type=float, default=1800)
    c.add_argument("--max-queries", type=int, default=200_000)
    c.add_argument("--precision", default=None, help="float32 with --threads 2: ~2.5x faster per step at d = 16 "
                   "(default: the protocol's, float64 / paper float32)")
    c.add_argument("--protocol", default="repspace", help="repspace, or paper: the authors' released optimiser "
                   "(docs/limit.md); with --tries 1 as they ran it")
    c.add_argument("--threads", type=int, default=1)
    v = sub.add_parser("verify")
    v.add_argument("--cases", default="4:9,6:19,8:30", help="d:n pairs")
    v.add_argument("--seeds", type=int, default=4)
    v.add_argument("--protocol", default="paper")
    v.add_argument("--threads", type=int, default=1)
    e = sub.add_parser("eval")
    e.add_argument("--models", default="minilm-l6,mpnet-base")
    e.add_argument("--docs", type=int, default=1000)
    e.add_argument("--queries", type=int, default=1000)
    e.add_argument("--dims", default="32,64,128")
    e.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(f"machine: {machine()}")
    {"capacity": capacity, "verify": verify, "eval": evaluate}[args.part](args)


if __name__ == "__main__":
    main()
