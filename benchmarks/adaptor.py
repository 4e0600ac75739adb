"""Post-hoc Matryoshka adaptor vs truncation and PCA (compact-search issue target: >= 98 % of
full-dimension nDCG@10 at 1/8 of the dimension; beat truncation and PCA at every dim <= 1/4).

bbc-news title -> body retrieval; PCA and the adaptors are fitted on the train half of the articles
(bodies; the supervised adaptor also on their titles as pairs) and scored on the held-out half.

Usage: python benchmarks/adaptor.py [--models minilm-l6,mpnet-base] [--epochs 40]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import per_model_main  # noqa: E402
from _spaces import bbc_held_out  # noqa: E402

from repspace.compress import MatryoshkaAdaptor, PCACompressor  # noqa: E402
from repspace.evaluation import query_retrieval  # noqa: E402


def run(model: str, epochs: int) -> None:
    X, P, qt, ct = bbc_held_out(model)
    d = ct.dim
    dims = [d // 16, d // 8, d // 4, d // 2]
    full = query_retrieval(qt, ct)["ndcg@10"]
    t0 = time.perf_counter()
    unsup = MatryoshkaAdaptor(dims=dims, epochs=epochs).fit(X, source=ct)
    t_unsup = time.perf_counter() - t0
    t0 = time.perf_counter()
    sup = MatryoshkaAdaptor(dims=dims, epochs=epochs).fit(X, source=ct, pairs=P)
    t_sup = time.perf_counter() - t0
    pca = PCACompressor(dims=dims).fit(X, source=ct)
    reducers = {"truncation": lambda x, m: np.asarray(x)[:, :m], "PCA": lambda x, m: pca.transform(np.asarray(x), m),
                "adaptor, unsupervised": lambda x, m: unsup.transform(np.asarray(x), m),
                "adaptor, supervised (title/body pairs)": lambda x, m: sup.transform(np.asarray(x), m)}
    print(f"\n## {model} ({d}-d): held-out {len(qt.ids)} titles -> bodies, full nDCG@10 {full:.4f}; "
          f"adaptor fit {t_unsup:.0f} s (unsupervised) / {t_sup:.0f} s (supervised), {epochs} epochs")
    print("| dim | " + " | ".join(reducers) + " |")
    print("|---" * (len(reducers) + 1) + "|")
    for m in dims:
        vals = [query_retrieval(qt.with_vectors(f(qt.vectors, m)), ct.with_vectors(f(ct.vectors, m)))["ndcg@10"] / full
                for f in reducers.values()]
        print(f"| {m} (1/{d // m}) | " + " | ".join(f"{v:.3f}" for v in vals) + " |", flush=True)


if __name__ == "__main__":
    per_model_main(run, epochs=40)
