"""CSR sparse codes vs dense vectors at equal bytes (compact-search issue).

Held-out bbc-news title -> body retrieval (test half of the articles). Compressors are fitted on
the train half (bodies, with titles as pairs for the CSR contrastive term and the Matryoshka adaptor).
A CSR code with k active latents is stored as k float32 values + k 16-bit latent ids = 6k bytes, the
same as 1.5k float32 dimensions: k = 32 (192 B) is compared with 48-d dense vectors (truncation, PCA,
Matryoshka adaptor) and with 192-d int8 (also 192 B). Search time: the `sparse` index (scipy sparse
products) vs repspace Flat (faiss) at full and at 48 dimensions, all queries in one batch.

Usage: python benchmarks/csr.py [--models minilm-l6,mpnet-base] [--epochs 60]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import per_model_main  # noqa: E402
from _spaces import bbc_held_out  # noqa: E402

from repspace.compress import CSRCompressor, MatryoshkaAdaptor, PCACompressor  # noqa: E402
from repspace.evaluation.metrics import all_metrics  # noqa: E402
from repspace.index import Index  # noqa: E402


def ndcg(index: Index, q: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    t0 = time.perf_counter()
    _, idx = index.search(q, 10)
    dt = time.perf_counter() - t0
    gains = (idx == target[:, None]).astype(np.float64)
    ideal = np.zeros_like(gains); ideal[:, 0] = 1
    return float(all_metrics(gains, np.ones(len(gains)), ideal, (10,))["ndcg@10"].mean()), dt


def run(model: str, epochs: int) -> None:
    X, P, qs, c = bbc_held_out(model)
    q = np.asarray(qs.vectors)
    target = np.arange(len(qs.ids))  # same order: query i's relevant body is row i
    d = c.dim
    full, t_full = ndcg(Index.build(c, "Flat"), q, target)
    print(f"\n## {model} ({d}-d), {len(qs.ids)} held-out titles -> bodies; full-dimension nDCG@10 {full:.4f}")
    print("| representation | bytes / vector | nDCG@10 | retained | search time, all queries (ms) |")
    print("|---|---|---|---|---|")
    print(f"| dense float32, {d}-d (Flat) | {4 * d} | {full:.4f} | 1.000 | {1e3 * t_full:.1f} |")
    pca = PCACompressor(dims=[48]).fit(X, source=c)
    ada = MatryoshkaAdaptor(dims=[48, 96], epochs=40).fit(X, source=c, pairs=P)
    for name, ix in (("truncation 48-d float32", Index.build(c.truncate(48), "Flat")),
                     ("PCA 48-d float32", Index.build(c, "Flat", adaptor=pca, adaptor_dim=48)),
                     ("Matryoshka adaptor 48-d float32", Index.build(c, "Flat", adaptor=ada, adaptor_dim=48)),
                     ("int8 192-d PCA prefix", Index.build(c, "int8", adaptor=PCACompressor(dims=[192]).fit(X, source=c),
                                                           adaptor_dim=192))):
        qq = q[:, :48] if name.startswith("truncation") else q
        v, t = ndcg(ix, qq, target)
        print(f"| {name} | {ix.memory_bytes()['first_stage'] // c.count} | {v:.4f} | {v / full:.3f} | {1e3 * t:.1f} |")
    for k, hidden in ((32, 4 * d), (16, 4 * d), (64, 4 * d)):
        t0 = time.perf_counter()
        csr = CSRCompressor(k=k, hidden=hidden, epochs=epochs).fit(X, source=c, pairs=P)
        fit_s = time.perf_counter() - t0
        ix = Index.build(c, "sparse", adaptor=csr)
        v, t = ndcg(ix, q, target)
        per = ix.memory_bytes()["first_stage"] / c.count
        print(f"| CSR k={k}, {hidden} latents (fit {fit_s:.0f} s, dead {csr.dead_fraction_:.2f}) | {per:.0f} | {v:.4f} | "
              f"{v / full:.3f} | {1e3 * t:.1f} |", flush=True)


if __name__ == "__main__":
    per_model_main(run, epochs=60)
