"""How small can a space be: one measurement behind the demo's "How small can it be" section.

    from repspace.studies.compact import compact_study
    res = compact_study(title_space, body_space)   # plain dicts and lists, nothing rendered
    res["rows"][0]["pca retained"], res["index_rows"][0]["nDCG@10"]

Queries search the corpus (relevant = the item with the same id). The shared ids are split once by
`repspace.datasets.split_ids`: PCA, the Matryoshka adaptor and the CSR codes are fitted on the train half,
every number is measured on the test half.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from repspace.datasets import split_ids
from repspace.spaces import Space

# the index specs compared ("{d}" is the corpus dimension)
SPECS = ("Flat", "HNSW32", "int8", "int8+rescore:100", "binary+rescore:200", "funnel:64/{d}:200")
PREFIX_DIMS = (16, 32, 48, 64, 96, 128, 192, 256)
CURVES = ("truncate", "pca", "matryoshka adaptor")


def _ndcg_at_10(queries: Space, corpus: Space) -> float:
    from repspace.evaluation import query_retrieval

    return query_retrieval(queries, corpus)["ndcg@10"]


def _fraction(m: int, d: int) -> str:
    return f"1/{d / m:.0f}" if d % m == 0 else f"{m / d:.2f}"


def compact_study(queries: Space, corpus: Space, seed: int = 0, specs: Sequence[str] = SPECS,
                  prefix_dims: Sequence[int] = PREFIX_DIMS) -> dict[str, Any]:
    """Retained nDCG@10 of truncation, PCA and a (query, corpus)-supervised Matryoshka adaptor at each prefix
    dimension below the full one, and quality / first-stage memory / speed of index specs over the test corpus.

    Returns {"model", "dim", "test_items", "full_ndcg@10", "dims", "curves": {name: [retained per dim]},
    "rows": [one per dim], "index_rows": [one per spec]}."""
    from repspace.compress import CSRCompressor, MatryoshkaAdaptor, PCACompressor
    from repspace.index import Index

    qset = set(queries.ids)
    train, test = split_ids([i for i in corpus.ids if i in qset])
    q_te, c_te = queries.select(test), corpus.select(test)
    c_tr, q_tr = np.asarray(corpus.select(train).vectors), np.asarray(queries.select(train).vectors)
    full = _ndcg_at_10(q_te, c_te)
    d = corpus.dim
    dims = [x for x in prefix_dims if x < d]
    pca = PCACompressor().fit(c_tr)
    ada = MatryoshkaAdaptor(dims=dims, seed=seed).fit(c_tr, pairs=q_tr)
    reduce = {"truncate": lambda x, m: np.asarray(x)[:, :m], "pca": lambda x, m: pca.transform(np.asarray(x), m),
              "matryoshka adaptor": lambda x, m: ada.transform(np.asarray(x), m)}
    curves: dict[str, list[float]] = {name: [] for name in CURVES}
    rows = []
    for m in dims:
        for name in CURVES:
            fn = reduce[name]
            value = _ndcg_at_10(q_te.with_vectors(fn(q_te.vectors, m)), c_te.with_vectors(fn(c_te.vectors, m)))
            curves[name].append(value / full)
        rows.append({"dim": m, "of full": _fraction(m, d), **{f"{k} retained": curves[k][-1] for k in curves}})

    pos = {i: k for k, i in enumerate(c_te.ids)}
    target = np.asarray([pos[i] for i in q_te.ids])
    csr = CSRCompressor(k=32, epochs=30, seed=seed).fit(c_tr, source=corpus, pairs=q_tr)
    builds = [(spec.format(d=d), None) for spec in specs] + [
        (f"funnel:32/{d}:200 through the adaptor", ada), ("sparse (CSR k=32 codes)", csr)]
    index_rows = []
    for label, adaptor in builds:
        t0 = time.perf_counter()
        ix = Index.build(c_te, label.split(" ")[0], adaptor=adaptor)
        build = time.perf_counter() - t0
        t0 = time.perf_counter()
        _, idx = ix.search(np.asarray(q_te.vectors), 10)
        seconds = time.perf_counter() - t0
        hit = idx == target[:, None]  # one relevant item per query: nDCG@10 = 1 / log2(rank + 1)
        ndcg = float(np.mean(np.where(hit.any(1), 1.0 / np.log2(2 + np.argmax(hit, 1)), 0.0)))
        mem = ix.memory_bytes()["first_stage"]
        index_rows.append({"spec": label, "nDCG@10": ndcg, "retained": ndcg / full, "first stage KiB": round(mem / 1024),
                           "memory vs float32": f"1/{c_te.count * d * 4 / mem:.1f}",
                           "queries/s": round(len(q_te.ids) / seconds), "build s": round(build, 2)})
    return {"model": corpus.model, "dim": d, "test_items": len(test), "full_ndcg@10": full, "dims": dims,
            "curves": curves, "rows": rows, "index_rows": index_rows}
