"""Model upgrades without re-embedding: query-side adapters (new model -> old space).

An adapter is a translator fitted from items encoded by both models, mapping NEW-model
vectors into the OLD model's space, so new-model queries can search the old index while
the gallery is backfilled (after Drift-Adapter: Procrustes, low-rank affine, residual MLP).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from repspace.alignment.api import make_translator, training_ids
from repspace.alignment.base import Translator
from repspace.compat.methods import ADAPTER_METHODS
from repspace.datasets.builtin import split_ids
from repspace.errors import InvalidInputError, UnknownNameError
from repspace.evaluation.retrieval import query_retrieval
from repspace.spaces import Space

KEYS = ("recall@10", "ndcg@10")


def fit_adapter(old: Space, new: Space, method: str = "procrustes", pairs: int | None = None, rank: int = 64,
                seed: int = 0, also: list[tuple[Space, Space]] | None = None) -> Translator:
    """Adapter NEW -> OLD from items both spaces share (the train half of the id split; `pairs` of them).

    also: more (old, new) views of the same items (e.g. titles beside bodies): for the same sampled
    items their vector pairs are added, so the adapter sees the kinds of text queries will be."""
    if method not in ADAPTER_METHODS:
        raise UnknownNameError(f"unknown adapter method {method!r}; choose from {', '.join(ADAPTER_METHODS)}")
    ids = training_ids(new, old, pairs, seed)
    xs, ys = [np.asarray(new.select(ids).vectors)], [np.asarray(old.select(ids).vectors)]
    for o, n in also or ():
        if (o.model, o.dim, n.model, n.dim) != (old.model, old.dim, new.model, new.dim):
            raise InvalidInputError(f"an extra view pair holds {o.model!r} / {n.model!r} vectors; "
                                    f"it must be {old.model!r} (old) / {new.model!r} (new)")
        both = set(o.ids) & set(n.ids)
        shared = [i for i in ids if i in both]
        if not shared:
            raise InvalidInputError("an extra view pair shares none of the sampled items' ids")
        xs.append(np.asarray(n.select(shared).vectors))
        ys.append(np.asarray(o.select(shared).vectors))
    adapter = make_translator(method, rank=rank, seed=seed)
    return adapter.fit(np.vstack(xs), np.vstack(ys), source=new, target=old)


def check_adapter_target(adapter: Translator, model: str, dim: int, what: str = "index") -> None:
    """Refuse an adapter whose output is not the given model's space (`Translator.check_target`)."""
    adapter.check_target(model, dim, what)


def evaluate_upgrade(adapter: Translator, old_corpus: Space, new_queries: Space, new_corpus: Space | None = None,
                     old_queries: Space | None = None, all_items: bool = False) -> dict[str, Any]:
    """recall@10 / nDCG@10 for old->old, new->new, adapted new->old, and recovery = adapted / new_new.

    Relevance: the corpus item with the query's id. Scored on the test half of the query ids
    (the adapter's pairs come from the train half) unless all_items.
    """
    adapter.check_source(new_queries)
    check_adapter_target(adapter, old_corpus.model, old_corpus.dim, what="old corpus")
    ids = list(new_queries.ids) if all_items else split_ids(new_queries.ids)[1]
    if not ids:
        raise InvalidInputError("no query ids in the test half; pass all_items to score on every query")
    nq = new_queries.select(ids)
    pick = lambda r: {k: float(r[k]) for k in KEYS}  # noqa: E731
    out: dict[str, Any] = {}
    if old_queries is not None:
        have = set(old_queries.ids)
        out["old_old"] = pick(query_retrieval(old_queries.select([i for i in ids if i in have]), old_corpus))
    if new_corpus is not None:
        out["new_new"] = pick(query_retrieval(nq, new_corpus))
    out["adapted_new_old"] = pick(query_retrieval(nq, old_corpus, transform=adapter.transform))
    if "new_new" in out:
        out["recovery"] = {k: (out["adapted_new_old"][k] / out["new_new"][k] if out["new_new"][k] else None) for k in KEYS}
    x = np.asarray(nq.vectors)
    reps = max(1, 20000 // len(x))
    t0 = time.perf_counter()
    for _ in range(reps):
        adapter.transform(x)
    out["adapter_us_per_query"] = (time.perf_counter() - t0) / (reps * len(x)) * 1e6
    out["queries"] = len(ids)
    return out
