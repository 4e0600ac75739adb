"""Exact MaxSim (Chamfer) similarity, and search by FDE shortlist + exact MaxSim re-ranking.

MaxSim(Q, D) = sum over query tokens q of max over document tokens d of <q, d> (ColBERT's late interaction; the
Chamfer similarity of the MUVERA paper).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from repspace.errors import DimensionMismatchError, InvalidInputError
from repspace.multivector.tokens import TokenSet


def maxsim(query_tokens: np.ndarray, doc_tokens: np.ndarray) -> float:
    """Chamfer similarity of one query (m, d) and one document (n, d)."""
    q = TokenSet.from_arrays([query_tokens], what="query_tokens")
    d = TokenSet.from_arrays([doc_tokens], what="doc_tokens")
    if q.dim != d.dim:
        raise DimensionMismatchError(f"query tokens are {q.dim}-d but document tokens are {d.dim}-d",
                                     param="doc_tokens")
    return float((q.flat @ d.flat.T).max(axis=1).sum())


def _as_tokens(x: Sequence[np.ndarray] | TokenSet, what: str) -> TokenSet:
    return x if isinstance(x, TokenSet) else TokenSet.from_arrays(x, what=what)


def maxsim_scores(queries: Sequence[np.ndarray] | TokenSet, documents: Sequence[np.ndarray] | TokenSet,
                  max_scores: int = 1 << 25) -> np.ndarray:
    """(n_queries, n_documents) exact MaxSim scores, computed in blocks of query tokens (bounded memory)."""
    q, d = _as_tokens(queries, "queries"), _as_tokens(documents, "documents")
    if q.dim != d.dim:
        raise DimensionMismatchError(f"query tokens are {q.dim}-d but document tokens are {d.dim}-d", param="documents")
    out = np.empty((len(q), len(d)), dtype=np.float32)
    budget = max(1, max_scores // max(1, len(d.flat)))  # query tokens per block
    start = 0
    while start < len(q):
        stop = int(np.searchsorted(q.offsets, q.offsets[start] + budget, side="right")) - 1
        stop = min(max(stop, start + 1), len(q))
        sims = q.flat[q.offsets[start]:q.offsets[stop]] @ d.flat.T  # (block tokens, all doc tokens)
        best = np.maximum.reduceat(sims, d.offsets[:-1], axis=1)  # (block tokens, n_docs)
        out[start:stop] = np.add.reduceat(best, q.offsets[start:stop] - q.offsets[start], axis=0)
        start = stop
    return out


def rerank(queries: Sequence[np.ndarray] | TokenSet, documents: TokenSet, candidates: np.ndarray,
           k: int) -> tuple[np.ndarray, np.ndarray]:
    """Re-rank each query's candidate documents (nq, c) by exact MaxSim; returns the top k (scores, indices), best
    first (ties: the earlier candidate)."""
    q = _as_tokens(queries, "queries")
    candidates = np.asarray(candidates, dtype=np.int64)
    if candidates.ndim != 2 or candidates.shape[0] != len(q):
        raise InvalidInputError(f"candidates must be ({len(q)}, c); got shape {candidates.shape}", param="candidates")
    if not 1 <= k <= candidates.shape[1]:
        raise InvalidInputError(f"k must be in 1..{candidates.shape[1]} (the shortlist), got {k}", param="k")
    scores = np.empty((len(q), k), dtype=np.float32)
    rows = np.empty((len(q), k), dtype=np.int64)
    for i in range(len(q)):  # one step per query: its shortlist's tokens in one product
        sub = documents.take(candidates[i])
        s = (q[i] @ sub.flat.T)
        s = np.add.reduce(np.maximum.reduceat(s, sub.offsets[:-1], axis=1), axis=0)
        order = np.argsort(-s, kind="stable")[:k]
        scores[i], rows[i] = s[order], candidates[i][order]
    return scores, rows


def search(query_tokens: Sequence[np.ndarray] | TokenSet, query_fde: np.ndarray, doc_fde: np.ndarray,
           doc_tokens: TokenSet, k: int = 10, shortlist: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """MUVERA search: the `shortlist` documents of highest FDE inner product, re-ranked by exact MaxSim -> the top
    k (scores, document rows), each (nq, k)."""
    from repspace.ops.search import topk

    if len(doc_tokens) != len(doc_fde):
        raise InvalidInputError(f"{len(doc_fde)} document FDEs for {len(doc_tokens)} token sets; they must match",
                                param="doc_tokens")
    if not 1 <= k <= shortlist:
        raise InvalidInputError(f"k must be in 1..shortlist ({shortlist}), got {k}", param="k")
    shortlist = min(shortlist, len(doc_fde))
    _, cand = topk(np.asarray(query_fde, dtype=np.float32), np.asarray(doc_fde, dtype=np.float32), shortlist)
    return rerank(query_tokens, doc_tokens, cand, min(k, shortlist))
