"""Evaluation benchmarks, each side by side with an anchor in one run.

1. IR metrics: repspace vs ranx (and ir-measures) on the same run and qrels: equal values, time ratio.
2. Linear CKA on 200k x 768 vs 200k x 384 (memory-mapped): repspace's streamed form vs the
   full-matrix feature-space formula (Kornblith et al.), time and peak memory (separate processes).
3. Label retrieval (mAP@R, P@10) over 50k items: repspace (faiss, blocked) vs a numpy anchor
   (blocked matmul + argsort), time ratio and equal values.

Usage: python benchmarks/evaluate.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine  # noqa: E402

KS = (1, 5, 10)


def bench_ir_metrics(n_q: int, n_d: int, depth: int, seed: int = 0) -> dict:
    from repspace.evaluation.metrics import all_metrics

    rng = np.random.default_rng(seed)
    qrels = {f"q{q}": {f"d{d}": int(rng.integers(1, 3)) for d in rng.choice(n_d, 10, replace=False)} for q in range(n_q)}
    scores = rng.random((n_q, n_d)).astype(np.float32)
    order = np.argsort(-scores, axis=1)[:, :depth]
    run = {f"q{q}": {f"d{d}": float(scores[q, d]) for d in order[q]} for q in range(n_q)}

    def ours():
        gains = np.zeros((n_q, depth)); ideal = np.zeros((n_q, depth)); n_rel = np.zeros(n_q)
        for q in range(n_q):
            rel = qrels[f"q{q}"]
            gains[q] = [rel.get(f"d{d}", 0) for d in order[q]]
            g = sorted(rel.values(), reverse=True)
            ideal[q, : len(g)] = g
            n_rel[q] = len(rel)
        return {k: float(v.mean()) for k, v in all_metrics(gains, n_rel, ideal, KS).items()}

    out = {}
    t0 = time.perf_counter(); mine = ours(); out["repspace_s"] = time.perf_counter() - t0
    try:
        import ranx

        names = ["ndcg@10", "recall@10", "mrr@10", "precision@10", "map", "r-precision"]
        t0 = time.perf_counter()
        ref = ranx.evaluate(ranx.Qrels.from_dict(qrels), ranx.Run.from_dict(run), names)
        out["ranx_s"] = time.perf_counter() - t0
        # second call: ranx compiles with numba on first use
        t0 = time.perf_counter()
        ranx.evaluate(ranx.Qrels.from_dict(qrels), ranx.Run.from_dict(run), names)
        out["ranx_warm_s"] = time.perf_counter() - t0
        key = {"r-precision": "r_precision"}
        out["ranx_max_abs_diff"] = max(abs(mine[key.get(n, n)] - ref[n]) for n in names)
    except ImportError as e:
        out["ranx"] = f"not installed ({e})"
    try:
        import ir_measures
        from ir_measures import AP, P, R, RR, nDCG

        t0 = time.perf_counter()
        ms = [nDCG @ 10, R @ 10, RR @ 10, P @ 10, AP]
        agg = ir_measures.calc_aggregate(ms, [ir_measures.Qrel(q, d, r) for q, docs in qrels.items() for d, r in docs.items()],
                                         [ir_measures.ScoredDoc(q, d, s) for q, docs in run.items() for d, s in docs.items()])
        out["ir_measures_s"] = time.perf_counter() - t0
        pairs = [("ndcg@10", nDCG @ 10), ("recall@10", R @ 10), ("mrr@10", RR @ 10), ("precision@10", P @ 10), ("map", AP)]
        out["ir_measures_max_abs_diff"] = max(abs(mine[a] - agg[b]) for a, b in pairs)
    except ImportError as e:
        out["ir_measures"] = f"not installed ({e})"
    return out


CKA_CHILD = r"""
import json, sys, time, tracemalloc
import numpy as np
mode, xp, yp = sys.argv[1:4]
X = np.load(xp, mmap_mode="r"); Y = np.load(yp, mmap_mode="r")
tracemalloc.start()  # numpy reports its buffers to tracemalloc; memory-mapped file pages are not allocations
t0 = time.perf_counter()
if mode == "stream":
    from repspace.evaluation.similarity import linear_cka
    v = linear_cka(X, Y, batch_size=16384)
else:  # feature-space formula on the full matrices (Kornblith et al. 2019)
    Xf = np.asarray(X, np.float64); Yf = np.asarray(Y, np.float64)
    Xf -= Xf.mean(0); Yf -= Yf.mean(0)
    v = np.linalg.norm(Xf.T @ Yf) ** 2 / (np.linalg.norm(Xf.T @ Xf) * np.linalg.norm(Yf.T @ Yf))
dt = time.perf_counter() - t0
peak = tracemalloc.get_traced_memory()[1]
print(json.dumps({"cka": float(v), "seconds": dt, "peak_alloc_mib": peak / 2**20}))
"""


def bench_cka(n: int) -> dict:
    tmp = Path(tempfile.mkdtemp())
    rng = np.random.default_rng(0)
    X = np.lib.format.open_memmap(tmp / "x.npy", mode="w+", dtype=np.float32, shape=(n, 768))
    Y = np.lib.format.open_memmap(tmp / "y.npy", mode="w+", dtype=np.float32, shape=(n, 384))
    W = rng.normal(size=(768, 384)).astype(np.float32) / 28
    for s in range(0, n, 50000):
        x = rng.normal(size=(min(50000, n - s), 768)).astype(np.float32)
        X[s : s + len(x)] = x
        Y[s : s + len(x)] = x @ W + 0.5 * rng.normal(size=(len(x), 384)).astype(np.float32)
    X.flush(); Y.flush(); del X, Y
    out = {}
    for mode in ("stream", "full"):
        res = subprocess.run([sys.executable, "-c", CKA_CHILD, mode, str(tmp / "x.npy"), str(tmp / "y.npy")],
                             capture_output=True, text=True, check=True)
        out[mode] = json.loads(res.stdout)
    for p in tmp.iterdir():
        p.unlink()
    tmp.rmdir()
    return out


def bench_label_retrieval(n: int, d: int = 384, classes: int = 10) -> dict:
    from repspace import Space
    from repspace.evaluation import label_retrieval

    rng = np.random.default_rng(0)
    y = rng.integers(0, classes, n)
    x = (rng.normal(size=(classes, d))[y] + 1.5 * rng.normal(size=(n, d))).astype(np.float32)
    space = Space(x, [str(i) for i in range(n)], y.astype(str))
    t0 = time.perf_counter(); ours = label_retrieval(space); t_ours = time.perf_counter() - t0

    # anchor: numpy blocked exact search, full argsort per block, mAP@R and P@10
    t0 = time.perf_counter()
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    counts = np.bincount(y, minlength=classes)
    maps, p10 = [], []
    for s in range(0, n, 1024):
        sims = xn[s : s + 1024] @ xn.T
        sims[np.arange(len(sims)), np.arange(s, s + len(sims))] = -np.inf
        R = counts[y[s : s + 1024]] - 1
        top = np.argpartition(-sims, R.max(), axis=1)[:, : R.max()]
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(sims, top, 1), 1), 1)
        rel = (y[top] == y[s : s + 1024, None]).astype(np.float64)
        prec = np.cumsum(rel, 1) / np.arange(1, rel.shape[1] + 1)
        mask = np.arange(rel.shape[1])[None] < R[:, None]
        maps.append(((prec * rel * mask).sum(1) / R))
        p10.append(rel[:, :10].mean(1))
    t_np = time.perf_counter() - t0
    return {"n": n, "repspace_s": t_ours, "numpy_s": t_np,
            "map@r": ours["map@r"], "numpy_map@r": float(np.concatenate(maps).mean()),
            "precision@10": ours["precision@10"], "numpy_precision@10": float(np.concatenate(p10).mean())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller sizes for a smoke run")
    ap.add_argument("--only", choices=("ir", "cka", "label"), help="run one part")
    args = ap.parse_args()
    print(f"machine: {machine()}")
    if args.only in (None, "ir"):
        bench_ir(args)
    if args.only in (None, "cka"):
        bench_cka_part(args)
    if args.only in (None, "label"):
        lr = bench_label_retrieval(50000 if not args.quick else 5000)
        print(f"\n[label retrieval, {lr['n']} items x 384, 10 classes]")
        print(json.dumps(lr, indent=1))
        print(f"time ratio numpy/repspace: {lr['numpy_s'] / lr['repspace_s']:.2f}")


def bench_ir(args) -> None:
    ir = bench_ir_metrics(2000 if not args.quick else 200, 5000 if not args.quick else 500, 100)
    print("\n[IR metrics: 2000 queries x depth 100, graded qrels]")
    print(json.dumps(ir, indent=1))
    if "ranx_warm_s" in ir:
        print(f"time ratio ranx(warm)/repspace: {ir['ranx_warm_s'] / ir['repspace_s']:.2f}")
    if "ir_measures_s" in ir:
        print(f"time ratio ir-measures/repspace: {ir['ir_measures_s'] / ir['repspace_s']:.2f}")


def bench_cka_part(args) -> None:
    n = 200000 if not args.quick else 20000
    cka = bench_cka(n)
    print(f"\n[linear CKA, {n} x 768 vs {n} x 384, memory-mapped float32]")
    print(json.dumps(cka, indent=1))
    print(f"streamed vs full: time ratio full/stream {cka['full']['seconds'] / cka['stream']['seconds']:.2f}, "
          f"peak allocations {cka['stream']['peak_alloc_mib']:.0f} MiB vs {cka['full']['peak_alloc_mib']:.0f} MiB, "
          f"|diff| {abs(cka['stream']['cka'] - cka['full']['cka']):.2e}")


if __name__ == "__main__":
    main()
