"""Index benchmark: faiss IndexFlatIP at full dimension vs repspace index specs, side by side.

1. Synthetic Matryoshka-ordered vectors (N x 768, coordinate j scaled by exp(-j / 96) before
   normalisation, so the leading coordinates carry most of the energy — a stand-in for MRL-trained
   embeddings), 1,000 queries from the same distribution: queries/second and recall@10 against
   exact full-dimension search, for Flat, funnel and binary+rescore specs.
2. Real bbc-news spaces (MiniLM-L6 titles -> bodies): nDCG@10 of each spec relative to exact search,
   and the first-stage memory.
3. A real adapted space: 10,000 bbc-news sentences encoded by MPNet (768-d), indexed through an
   unsupervised Matryoshka adaptor (fitted on the sentences of the train articles) with funnel specs;
   1,000 sentences of test articles as queries. QPS vs faiss IndexFlatIP on the raw 768-d vectors,
   recall@10 against exact search in the adapted full-dimension space (the funnel's own target) and
   against exact search in the raw space.

Usage: python benchmarks/index.py [--n 1000000] [--queries 1000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine  # noqa: E402

from repspace import Space  # noqa: E402
from repspace.evaluation.search import _faiss, normalize_rows  # noqa: E402
from repspace.index import Index  # noqa: E402


def synthetic(n: int, d: int = 768, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scale = np.exp(-np.arange(d) / 96).astype(np.float32)
    out = np.empty((n, d), np.float32)
    for s in range(0, n, 100000):
        out[s : s + 100000] = rng.standard_normal((min(100000, n - s), d), dtype=np.float32) * scale
    return normalize_rows(out)


def recall(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([len(set(x) & set(y)) / len(x) for x, y in zip(a, b)]))


def timed_search(fn, reps: int = 2):
    best, out = np.inf, None
    for _ in range(reps):
        t0 = time.perf_counter(); out = fn(); best = min(best, time.perf_counter() - t0)
    return best, out


def part_synthetic(n: int, nq: int) -> None:
    faiss = _faiss()
    x = synthetic(n)
    q = synthetic(nq, seed=1)
    flat = faiss.IndexFlatIP(x.shape[1]); flat.add(x)
    t_flat, (_, ref) = timed_search(lambda: flat.search(q, 10))
    space = Space(x, [str(i) for i in range(n)], model="synthetic-mrl", validate=False)
    print(f"\n## synthetic Matryoshka-ordered {n} x 768, {nq} queries, k = 10")
    print("| index | QPS | speed-up vs faiss IndexFlatIP | recall@10 | first-stage memory (MiB) |")
    print("|---|---|---|---|---|")
    print(f"| faiss IndexFlatIP (768-d) | {nq / t_flat:,.0f} | 1.00 | 1.0000 | {x.nbytes / 2**20:,.0f} |")
    for spec in ("funnel:64/768:200", "funnel:64/768:400", "funnel:96/768:200", "funnel:64/256/768:400", "funnel:128/768:100",
                 "binary+rescore:200", "binary+rescore:500"):
        index = Index.build(space, spec)
        t, (_, got) = timed_search(lambda index=index: index.search(q, 10))
        mem = index.memory_bytes()["first_stage"] / 2**20
        print(f"| {spec} | {nq / t:,.0f} | {t_flat / t:.2f} | {recall(got, ref):.4f} | {mem:,.0f} |", flush=True)


def part_real() -> None:
    from _spaces import bench_space

    from repspace.datasets import hash_split
    from repspace.evaluation import query_retrieval
    from repspace.evaluation.metrics import all_metrics

    t, b = bench_space("minilm-l6", "bbc-news:title"), bench_space("minilm-l6", "bbc-news:body")
    test = [i for i in b.ids if hash_split(i) == "test"]
    t, b = t.select(test), b.select(test)
    full = query_retrieval(t, b)["ndcg@10"]
    print(f"\n## real: MiniLM-L6 bbc-news title -> body, test half ({len(test)} items), exact nDCG@10 = {full:.4f}")
    print("| index | nDCG@10 | retained | first-stage memory | vs float32 |")
    print("|---|---|---|---|---|")
    pos = {i: k for k, i in enumerate(b.ids)}
    for spec in ("Flat", "HNSW32", "int8", "int8+rescore:100", "binary+rescore:100", "binary+rescore:200", "funnel:64/384:200"):
        ix = Index.build(b, spec)
        _, idx = ix.search(np.asarray(t.vectors), 10)
        gains = (idx == np.asarray([pos[i] for i in t.ids])[:, None]).astype(np.float64)
        ideal = np.zeros_like(gains); ideal[:, 0] = 1
        nd = float(all_metrics(gains, np.ones(len(gains)), ideal, (10,))["ndcg@10"].mean())
        mem = ix.memory_bytes()["first_stage"]
        print(f"| {spec} | {nd:.4f} | {nd / full:.4f} | {mem / 1024:,.0f} KiB | 1/{b.count * b.dim * 4 / mem:.1f} |")


def part_real_adapted(nq: int = 1000) -> None:
    from _spaces import bench_space

    from repspace.compress import MatryoshkaAdaptor

    faiss = _faiss()
    s = bench_space("mpnet-base", "bbc-sentences", sample=10000)
    from repspace.datasets import hash_split

    train = [i for i in s.ids if hash_split(i.rsplit("/", 1)[0]) == "train"]
    test = [i for i in s.ids if hash_split(i.rsplit("/", 1)[0]) == "test"]
    rng = np.random.default_rng(0)
    q = normalize_rows(np.asarray(s.select([test[k] for k in rng.choice(len(test), nq, replace=False)]).vectors))
    t0 = time.perf_counter()
    ada = MatryoshkaAdaptor(dims=(64, 128, 256), epochs=20).fit(np.asarray(s.select(train).vectors), source=s)
    fit_s = time.perf_counter() - t0
    x = normalize_rows(np.asarray(s.vectors))
    flat = faiss.IndexFlatIP(x.shape[1]); flat.add(x)
    t_flat, (_, ref_raw) = timed_search(lambda: flat.search(q, 10), reps=3)
    full = Index.build(s, "Flat", adaptor=ada)
    _, ref_ad = full.search(q, 10)
    print(f"\n## real adapted space: MPNet bbc-news sentences {s.count} x 768 through a Matryoshka adaptor "
          f"(fitted in {fit_s:.0f} s on {len(train)} train-article sentences), {nq} test-article queries, k = 10")
    print("| index | QPS | speed-up vs faiss IndexFlatIP (raw 768-d) | recall@10 vs exact adapted 768-d | "
          "recall@10 vs exact raw 768-d |")
    print("|---|---|---|---|---|")
    print(f"| faiss IndexFlatIP (raw 768-d) | {nq / t_flat:,.0f} | 1.00 | {recall(ref_raw, ref_ad):.4f} | 1.0000 |")
    for spec in ("Flat", "funnel:64/768:200", "funnel:64/256/768:400", "funnel:128/768:100", "funnel:128/768:200"):
        ix = Index.build(s, spec, adaptor=ada)
        t, (_, got) = timed_search(lambda ix=ix: ix.search(q, 10), reps=3)
        print(f"| {spec} (through adaptor) | {nq / t:,.0f} | {t_flat / t:.2f} | {recall(got, ref_ad):.4f} | "
              f"{recall(got, ref_raw):.4f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--skip-synthetic", action="store_true")
    ap.add_argument("--skip-real", action="store_true")
    args = ap.parse_args()
    print(f"machine: {machine()}")
    if not args.skip_real:
        part_real()
        part_real_adapted(args.queries)
    if not args.skip_synthetic:
        part_synthetic(args.n, args.queries)


if __name__ == "__main__":
    main()
