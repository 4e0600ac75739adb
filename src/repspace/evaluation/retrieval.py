"""Retrieval evaluation: label-based leave-one-out, and query/corpus with same-id or qrels relevance."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Callable

import numpy as np

from repspace.errors import InvalidInputError
from repspace.evaluation.metrics import all_metrics
from repspace.ops.search import normalize_rows, topk
from repspace.spaces import Space

DEFAULT_KS = (1, 5, 10)
Qrels = dict[str, dict[str, float]]


def require_labels(space: Space, task: str, min_classes: int = 2) -> np.ndarray:
    """The space's labels as an array; clear errors for missing labels or too few classes."""
    if space.labels is None:
        raise InvalidInputError(f"task {task!r} needs labels, but space {space.model!r} has none")
    classes = np.unique(space.labels)
    if len(classes) < min_classes:
        raise InvalidInputError(f"task {task!r} needs at least {min_classes} classes; the labels have {len(classes)}")
    return np.asarray(space.labels)


class _Accumulator:
    def __init__(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.n = 0

    def add(self, values: dict[str, np.ndarray]) -> None:
        for k, v in values.items():
            self.sums[k] += float(np.sum(v))
        self.n += len(next(iter(values.values()))) if values else 0

    def result(self) -> dict[str, float]:
        out = {k: v / self.n for k, v in self.sums.items()}
        out["queries"] = self.n
        return out


def label_retrieval(
    space: Space,
    ks: tuple[int, ...] = DEFAULT_KS,
    query_block: int = 1024,
    max_queries: int | None = None,
    seed: int = 0,
    gallery: Space | None = None,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
) -> dict[str, float]:
    """Leave-one-out retrieval by label: each item queries all others; relevant = same label.

    With `gallery` (another model's vectors of the same items, same dimension), queries come
    from `space` and are searched in `gallery` — the cross-model setting of compatibility;
    `transform` maps query vectors into the gallery's space first (an adapter).
    Metrics: recall/precision/ndcg/mrr@k, map (AP over the top max(100, k, R) ranks, as trec_eval
    scores a run of that depth), map@r, r_precision.
    """
    labels = require_labels(space, "retrieval")
    gal = space if gallery is None else gallery
    if gallery is not None:
        space, gal = space.aligned_with(gallery)
        labels = np.asarray(space.labels)
    n = space.count
    if n < 2:
        raise InvalidInputError("label retrieval needs at least 2 items")
    classes, inv, counts = np.unique(labels, return_inverse=True, return_counts=True)
    n_rel_all = counts[inv] - 1
    queries = np.flatnonzero(n_rel_all > 0)
    if queries.size == 0:
        raise InvalidInputError("no item shares its label with another; label retrieval is undefined")
    if max_queries is not None and queries.size > max_queries:
        queries = np.sort(np.random.default_rng(seed).choice(queries, max_queries, replace=False))
    if max(ks) > n - 1:
        raise InvalidInputError(f"k={max(ks)} needs more than {n - 1} other items")
    depth = int(min(n - 1, max(100, max(ks), n_rel_all.max())))  # AP is over this depth, as a trec_eval run
    X = np.asarray(space.vectors, dtype=np.float32)
    if transform is not None:
        X = np.asarray(transform(X), dtype=np.float32)
    X = normalize_rows(X)
    G = X if gallery is None and transform is None else normalize_rows(np.asarray(gal.vectors))
    acc = _Accumulator()
    for s in range(0, queries.size, query_block):
        rows = queries[s : s + query_block]
        _, idx = topk(X[rows], G, depth, exclude=rows)
        gains = (inv[idx] == inv[rows][:, None]).astype(np.float64)
        n_rel = n_rel_all[rows].astype(np.float64)
        ideal = (np.arange(max(ks))[None, :] < n_rel[:, None]).astype(np.float64)  # R ones, then zeros
        acc.add(all_metrics(gains, n_rel, ideal, ks))
    return acc.result()


def read_qrels(path: str | Path) -> Qrels:
    """TREC qrels ('qid 0 docid rel' per line) or JSON {qid: {docid: rel}}."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"qrels file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    qrels: Qrels = defaultdict(dict)
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
            for q, docs in data.items():
                for d, r in docs.items():
                    qrels[str(q)][str(d)] = float(r)
        except (ValueError, AttributeError, TypeError) as e:
            raise InvalidInputError(f"{path} is not a JSON qrels object {{qid: {{docid: rel}}}}: {e}") from None
    else:
        for n, line in enumerate(text.splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 4:
                raise InvalidInputError(f"{path}: line {n} is not 'qid iter docid rel'")
            try:
                qrels[parts[0]][parts[2]] = float(parts[3])
            except ValueError:
                raise InvalidInputError(f"{path}: line {n}: relevance {parts[3]!r} is not a number") from None
    if not qrels:
        raise InvalidInputError(f"{path} holds no judgements")
    return dict(qrels)


def query_retrieval(
    queries: Space,
    corpus: Space,
    qrels: Qrels | None = None,
    ks: tuple[int, ...] = DEFAULT_KS,
    depth: int = 100,
    query_block: int = 4096,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
) -> dict[str, float]:
    """Queries search the corpus; relevant = the corpus item with the same id, or `qrels`.

    transform: optional map applied to query vectors first (a translator or adapter).
    Queries without any relevant corpus item are left out (as trec_eval does).
    """
    if qrels is None:
        corpus_ids = set(corpus.ids)
        qids = [i for i in queries.ids if i in corpus_ids]
        if not qids:
            raise InvalidInputError("queries and corpus share no ids; give qrels to say what is relevant", param="qrels")
        qrels = {i: {i: 1.0} for i in qids}
    else:
        unknown_q = [q for q in qrels if q not in set(queries.ids)]
        corpus_ids = set(corpus.ids)
        unknown_d = sorted({d for docs in qrels.values() for d in docs if d not in corpus_ids})
        if unknown_q:
            raise InvalidInputError(f"qrels name {len(unknown_q)} query id(s) not in the query space, e.g. {unknown_q[0]!r}")
        if unknown_d:
            raise InvalidInputError(f"qrels name {len(unknown_d)} doc id(s) not in the corpus, e.g. {unknown_d[0]!r}")
    qids = [q for q, docs in qrels.items() if any(r > 0 for r in docs.values())]
    if not qids:
        raise InvalidInputError("no query has a relevant document")
    qv = np.asarray(queries.vectors[queries.index_of(qids)], dtype=np.float32)
    if transform is not None:
        qv = np.asarray(transform(qv), dtype=np.float32)
    qv = normalize_rows(qv)
    cv = normalize_rows(np.asarray(corpus.vectors))
    if max(ks) > corpus.count:
        raise InvalidInputError(f"k={max(ks)} is more than the {corpus.count} corpus items")
    max_rel = max(sum(r > 0 for r in qrels[q].values()) for q in qids)
    depth = int(min(corpus.count, max(depth, max(ks), max_rel)))
    corpus_pos = {i: k for k, i in enumerate(corpus.ids)}
    acc = _Accumulator()
    for s in range(0, len(qids), query_block):
        block = qids[s : s + query_block]
        _, idx = topk(qv[s : s + len(block)], cv, depth)
        gains = np.zeros(idx.shape, dtype=np.float64)
        ideal = np.zeros((len(block), depth), dtype=np.float64)
        n_rel = np.zeros(len(block), dtype=np.float64)
        for r, q in enumerate(block):
            rel = {corpus_pos[d]: g for d, g in qrels[q].items() if g > 0}
            gains[r] = [rel.get(int(c), 0.0) for c in idx[r]]
            grades = sorted(rel.values(), reverse=True)[:depth]
            ideal[r, : len(grades)] = grades
            n_rel[r] = len(rel)
        acc.add(all_metrics(gains, n_rel, ideal, ks))
    return acc.result()
