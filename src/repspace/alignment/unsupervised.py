"""Unsupervised translation: no pairs, only the geometry of each space (ids are never read).

1. Signatures: each item is described by the sorted distribution of its cosine similarities
   to a random sample of its own space (quantiles) — invariant to rotation, scaling and to
   which items were sampled, so it can be compared across spaces without any pairs
   (after the "similarity distribution" initialisation of VecMap, Artetxe et al. 2018).
2. Seed pairs: mutual nearest neighbours of the signatures under CSLS scores.
3. Refinement in the PCA-reduced spaces (k = min(pca_dim, dx, dy) dimensions): orthogonal
   Procrustes onto soft targets — the mean of each mapped item's m nearest target items —
   with m annealed from `soft_k` down to 1, then hard nearest neighbours until fewer than
   0.5% of the assignments change. `history_` records every round (m, changed, mean cosine)
   as the convergence diagnostic. The refinement is run from several signature samples and in
   both directions (a solution Y -> X, transposed); the candidate whose map leaves the largest
   fraction of items in mutual-nearest-neighbour pairs wins (`candidates_`, `mutual_fraction_`),
   stopping early once one reaches `accept`.
4. The final map is a Procrustes (centring + scale) fitted in the original spaces on the
   final mutual-nearest-neighbour pairs.
"""

from __future__ import annotations

import numpy as np

from repspace.alignment.base import Translator
from repspace.alignment.linear import orthogonal_map, procrustes_apply, procrustes_fit
from repspace.errors import InvalidInputError
from repspace.ops.linalg import pca, pca_project
from repspace.ops.search import normalize_rows, topk


def _pca(X: np.ndarray, k: int) -> np.ndarray:
    """Rows of X on its top-k principal axes (SVD of at most 20,000 rows), L2-normalised."""
    mean, comp = pca(X, max_rows=20000)
    return normalize_rows(pca_project(X, mean, comp, min(k, len(comp))))


def _csls_mnn(A: np.ndarray, B: np.ndarray, knn: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Mutual nearest neighbours of rows of A and B (both L2-normalised) under CSLS scores
    (Conneau et al. 2018): 2 cos(a, b) - r_B(a) - r_A(b), which discounts hub items."""
    ka, kb = min(knn, len(B)), min(knn, len(A))
    ra = topk(A, B, ka)[0].mean(1)  # mean sim of each a to its knn in B
    rb = topk(B, A, kb)[0].mean(1)
    best_ab = np.empty(len(A), dtype=np.int64)
    best_ba = np.empty(len(B), dtype=np.int64)
    for s in range(0, len(A), 2048):
        S = 2 * A[s : s + 2048] @ B.T - ra[s : s + 2048, None] - rb[None, :]
        best_ab[s : s + 2048] = S.argmax(1)
    for s in range(0, len(B), 2048):
        S = 2 * B[s : s + 2048] @ A.T - rb[s : s + 2048, None] - ra[None, :]
        best_ba[s : s + 2048] = S.argmax(1)
    a = np.flatnonzero(best_ba[best_ab] == np.arange(len(A)))
    return a, best_ab[a]


def similarity_signatures(Xn: np.ndarray, sample: int = 2000, quantiles: int = 100, seed: int = 0) -> np.ndarray:
    """(n, quantiles) standardised, L2-normalised quantiles of each row's cosine similarities
    to `sample` random rows of the same space (its own similarity excluded)."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(Xn), min(sample, len(Xn)), replace=False)
    cols = np.linspace(0, len(rows) - 2, quantiles).astype(int)
    out = np.empty((len(Xn), len(cols)))
    for s in range(0, len(Xn), 4096):
        S = np.sort(Xn[s : s + 4096] @ Xn[rows].T, axis=1)[:, ::-1][:, 1:]
        out[s : s + 4096] = S[:, cols]
    out = (out - out.mean(0)) / (out.std(0) + 1e-9)
    return normalize_rows(out)


class UnsupervisedTranslator(Translator):
    """Translate between two spaces without any paired items (X and Y may differ in size).

    The final map has Procrustes' form (`procrustes_fit` on the mutual nearest neighbours found)."""

    name = "unsupervised"
    min_pairs_rule = "at least 100 items in each space"
    uses_pairs = False
    _state_keys = ("W_", "mean_x_", "mean_y_", "scale_")

    def __init__(self, pca_dim: int = 64, soft_k: int = 50, anneal_rounds: int = 30, max_rounds: int = 100,
                 sample: int = 2000, csls_k: int = 10, restarts: int = 3, accept: float = 0.75, seed: int = 0) -> None:
        self.pca_dim = pca_dim
        self.soft_k = soft_k
        self.anneal_rounds = anneal_rounds
        self.max_rounds = max_rounds
        self.sample = sample
        self.csls_k = csls_k
        self.restarts = restarts
        self.accept = accept
        self.seed = seed

    def min_pairs(self, dx: int, dy: int) -> int:
        return 100

    def _check_sizes(self, X: np.ndarray, Y: np.ndarray) -> None:
        if min(len(X), len(Y)) < 100:
            raise InvalidInputError(f"unsupervised translation needs at least 100 items in each space; got {len(X)} and {len(Y)}")

    def _pairs_used(self, X: np.ndarray) -> int:
        return len(self.pairs_[0])

    def _fit(self, X: np.ndarray, Y: np.ndarray) -> None:
        """X: (nx, dx), Y: (ny, dy) — unpaired; row order carries no information."""
        k = min(self.pca_dim, X.shape[1], Y.shape[1])
        Xn, Yn = normalize_rows(X - X.mean(0)), normalize_rows(Y - Y.mean(0))
        Px, Py = _pca(X, k), _pca(Y, k)
        sig = {}

        def signatures(which: str, seed: int) -> np.ndarray:
            if (which, seed) not in sig:
                sig[(which, seed)] = similarity_signatures(Xn if which == "x" else Yn, self.sample, seed=seed)
            return sig[(which, seed)]

        # candidates: several signature samples, in both directions (a reverse solution W' : Y -> X
        # gives W = W'^T); the one with the most mutual nearest neighbours after refinement wins.
        best = None
        self.candidates_ = []
        for r in range(self.restarts):
            for reverse in (False, True):
                sx, sy = self.seed + 2 * r, self.seed + 2 * r + 1
                A, B = (Py, Px) if reverse else (Px, Py)
                sa, sb = (signatures("y", sy), signatures("x", sx)) if reverse else (signatures("x", sx), signatures("y", sy))
                a, b = _csls_mnn(sa, sb, self.csls_k)
                if len(a) < 2:
                    continue
                W, history, converged = self._refine(A, B, orthogonal_map(A[a], B[b]))
                if reverse:
                    W = W.T
                a, b = _csls_mnn(normalize_rows(Px @ W), Py, self.csls_k)
                score = len(a) / min(len(X), len(Y))
                self.candidates_.append({"restart": r, "reverse": reverse, "mutual_fraction": score,
                                         "converged": converged, "rounds": len(history) - 1})
                if best is None or score > best[0]:
                    best = (score, W, history, converged)
                if score >= self.accept:
                    break
            if best is not None and best[0] >= self.accept:
                break
        if best is None:
            raise InvalidInputError("no mutual matches between the spaces' similarity signatures; they share too little structure")
        self.mutual_fraction_, W, self.history_, self.converged_ = best
        # 4. final Procrustes in the original spaces on mutual nearest neighbours
        a, b = _csls_mnn(normalize_rows(Px @ W), Py, self.csls_k)
        if len(a) < 2:
            raise InvalidInputError("unsupervised matching found fewer than 2 mutual pairs; the spaces share too little structure")
        self.W_, self.mean_x_, self.mean_y_, self.scale_ = procrustes_fit(X[a], Y[b], center=True, scale=True)
        self.pairs_ = (a, b)

    def _transform(self, X: np.ndarray) -> np.ndarray:
        return procrustes_apply(X, self.W_, self.mean_x_, self.mean_y_, self.scale_)

    def _refine(self, A: np.ndarray, B: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, list[dict], bool]:
        """Annealed soft-target Procrustes A -> B, then hard nearest neighbours until stable."""
        history: list[dict] = [{"round": 0, "m": None, "changed": 1.0, "mean_cos": None}]
        prev = None
        for r in range(1, self.max_rounds + 1):
            m = max(1, int(round(self.soft_k * (1 - r / self.anneal_rounds)))) if r < self.anneal_rounds else 1
            sims, nn = topk(normalize_rows(A @ W), B, m)
            W = orthogonal_map(A, B[nn].mean(1))
            changed = 1.0 if prev is None else float(np.mean(nn[:, 0] != prev))
            prev = nn[:, 0]
            history.append({"round": r, "m": m, "changed": changed, "mean_cos": float(sims[:, 0].mean())})
            if m == 1 and changed < 0.005:
                return W, history, True
        return W, history, False

    def _extra_state(self) -> dict:
        return {"history": getattr(self, "history_", []), "converged": getattr(self, "converged_", None),
                "candidates": getattr(self, "candidates_", []), "mutual_fraction": getattr(self, "mutual_fraction_", None)}

    def _set_extra_state(self, meta: dict) -> None:
        self.history_ = meta.get("history", [])
        self.converged_ = meta.get("converged")
        self.candidates_ = meta.get("candidates", [])
        self.mutual_fraction_ = meta.get("mutual_fraction")
