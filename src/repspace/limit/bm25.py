"""Okapi BM25 (Robertson et al., 1995) with numpy/scipy: a sparse lexical baseline for `limit eval`.

score(q, d) = sum over query terms t in d of idf(t) * tf(t, d) * (k1 + 1) / (tf(t, d) + k1 * (1 - b + b * |d| / avgdl))

idf: "lucene" (default) = ln(1 + (N - df + 0.5) / (df + 0.5)), always positive; "okapi" = ln((N - df + 0.5) /
(df + 0.5)) with negative values raised to `epsilon` times the mean idf, as the `rank_bm25` package's BM25Okapi
computes it. Tokens: lower-cased runs of letters and digits. A query term repeated counts once per occurrence.

    bm = BM25().fit(["the cat sat", "the dog"]); bm.scores(["cat"])  # (1, 2)
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from repspace.errors import InvalidInputError

_TOKEN = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


class BM25:
    def __init__(self, k1: float = 1.5, b: float = 0.75, idf: str = "lucene", epsilon: float = 0.25) -> None:
        if idf not in ("lucene", "okapi"):
            raise InvalidInputError(f"idf must be lucene or okapi; got {idf!r}", param="idf")
        self.k1, self.b, self.idf, self.epsilon = k1, b, idf, epsilon

    def fit(self, docs: Sequence[str]) -> "BM25":
        from scipy import sparse

        toks = [tokenize(d) for d in docs]
        self.vocab_: dict[str, int] = {}
        rows, cols = [], []
        for i, t in enumerate(toks):
            for w in t:
                rows.append(i)
                cols.append(self.vocab_.setdefault(w, len(self.vocab_)))
        n = len(toks)
        tf = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, len(self.vocab_)))
        tf.sum_duplicates()
        lengths = np.array([len(t) for t in toks], dtype=float)
        avgdl = lengths.mean() if n else 0.0
        df = np.bincount(tf.indices, minlength=len(self.vocab_)).astype(float)
        if self.idf == "lucene":
            idf = np.log1p((n - df + 0.5) / (df + 0.5))
        else:
            idf = np.log(n - df + 0.5) - np.log(df + 0.5)
            idf = np.where(idf < 0, self.epsilon * idf.mean(), idf)
        norm = self.k1 * (1 - self.b + self.b * lengths / (avgdl or 1.0))
        w = tf.tocoo()
        data = idf[w.col] * w.data * (self.k1 + 1) / (w.data + norm[w.row])
        self.weights_ = sparse.csr_matrix((data, (w.row, w.col)), shape=tf.shape).T.tocsr()  # (vocab, docs)
        self.n_docs_ = n
        return self

    def scores(self, queries: Sequence[str]) -> np.ndarray:
        """(len(queries), n_docs) BM25 scores."""
        from scipy import sparse

        rows, cols = [], []
        for i, q in enumerate(queries):
            for w in tokenize(q):
                j = self.vocab_.get(w)
                if j is not None:
                    rows.append(i)
                    cols.append(j)
        qm = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(queries), len(self.vocab_)))
        return np.asarray((qm @ self.weights_).todense())
