"""Similarity between two spaces of the same items (joined by id; dimensions may differ).

Linear CKA, its debiased form and the Procrustes distance are computed from streamed
row blocks (d x d accumulators in float64), so memory does not grow with n and a
memory-mapped space is never loaded whole; the result equals the full-matrix formula.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from repspace.errors import InvalidInputError, UnknownNameError
from repspace.ops.search import normalize_rows, topk
from repspace.spaces import Space

METRICS = ("cka", "cka_debiased", "cka_rbf", "svcca", "mknn", "rsa", "procrustes")


@dataclass
class _Moments:
    """Second moments of centred X (n, dx) and Y (n, dy) accumulated block by block."""

    n: int
    xty: np.ndarray  # (dx, dy) Xc^T Yc
    xtx: np.ndarray
    yty: np.ndarray
    # sums over rows of a_i = |xc_i|^2 and b_i = |yc_i|^2 (diagonals of the linear Gram matrices)
    sa: float
    sb: float
    saa: float
    sbb: float
    sab: float


def _moments(X: np.ndarray, Y: np.ndarray, batch_size: int = 16384) -> _Moments:
    n = X.shape[0]
    if n != Y.shape[0]:
        raise InvalidInputError(f"X has {n} rows and Y {Y.shape[0]}; align the spaces by id first")
    mx = np.zeros(X.shape[1]); my = np.zeros(Y.shape[1])
    for s in range(0, n, batch_size):
        mx += np.asarray(X[s : s + batch_size], np.float64).sum(0)
        my += np.asarray(Y[s : s + batch_size], np.float64).sum(0)
    mx /= n; my /= n
    xty = np.zeros((X.shape[1], Y.shape[1])); xtx = np.zeros((X.shape[1],) * 2); yty = np.zeros((Y.shape[1],) * 2)
    sa = sb = saa = sbb = sab = 0.0
    for s in range(0, n, batch_size):
        xb = np.asarray(X[s : s + batch_size], np.float64) - mx
        yb = np.asarray(Y[s : s + batch_size], np.float64) - my
        xty += xb.T @ yb; xtx += xb.T @ xb; yty += yb.T @ yb
        a = np.einsum("ij,ij->i", xb, xb)
        b = np.einsum("ij,ij->i", yb, yb)
        sa += a.sum(); sb += b.sum(); saa += a @ a; sbb += b @ b; sab += a @ b
    return _Moments(n, xty, xtx, yty, sa, sb, saa, sbb, sab)


def _hsic_unbiased_linear(tr_kl: float, sum_a: float, sum_b: float, sum_ab: float, n: int) -> float:
    """Unbiased HSIC (Song et al. 2012) for linear kernels of centred features.

    With K~ = K - diag(K), a = diag(K), b = diag(L): tr(K~L~) = tr(KL) - sum(a*b);
    1'K~1 = -sum(a) (centred rows sum to zero); (K~1)_i = -a_i, so 1'K~L~1 = sum(a*b).
    """
    tr_tilde = tr_kl - sum_ab
    one_k, one_l, one_kl_one = -sum_a, -sum_b, sum_ab
    return (tr_tilde + one_k * one_l / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * one_kl_one) / (n * (n - 3))


def linear_cka(X: np.ndarray, Y: np.ndarray, debiased: bool = False, batch_size: int = 16384) -> float:
    """Linear CKA (Kornblith et al. 2019) of X: (n, dx) and Y: (n, dy); streamed in row blocks."""
    m = _moments(X, Y, batch_size)
    if debiased:
        if m.n < 4:
            raise InvalidInputError("debiased CKA needs at least 4 items")
        xy = _hsic_unbiased_linear(float(np.sum(m.xty**2)), m.sa, m.sb, m.sab, m.n)
        xx = _hsic_unbiased_linear(float(np.sum(m.xtx**2)), m.sa, m.sa, m.saa, m.n)
        yy = _hsic_unbiased_linear(float(np.sum(m.yty**2)), m.sb, m.sb, m.sbb, m.n)
    else:
        xy, xx, yy = np.sum(m.xty**2), np.sum(m.xtx**2), np.sum(m.yty**2)
    denom = np.sqrt(max(xx, 0.0) * max(yy, 0.0))
    return float(xy / denom) if denom > 0 else 0.0


def procrustes_distance(X: np.ndarray, Y: np.ndarray, batch_size: int = 16384) -> float:
    """Orthogonal Procrustes distance between centred, unit-Frobenius X and Y (Williams et al. 2021):
    sqrt(2 - 2 ||X^T Y||_*) in [0, sqrt(2)]; 0 = equal up to rotation, translation and scale.
    Different dimensions are handled as zero-padding (which leaves the nuclear norm unchanged)."""
    m = _moments(X, Y, batch_size)
    nx, ny = np.sqrt(np.trace(m.xtx)), np.sqrt(np.trace(m.yty))
    if nx == 0 or ny == 0:
        raise InvalidInputError("a space is constant; Procrustes distance is undefined")
    nuc = np.linalg.svd(m.xty / (nx * ny), compute_uv=False).sum()
    return float(np.sqrt(max(0.0, 2.0 - 2.0 * nuc)))


def _center_gram(K: np.ndarray) -> np.ndarray:
    K = K - K.mean(0, keepdims=True)
    return K - K.mean(1, keepdims=True)


def rbf_cka(X: np.ndarray, Y: np.ndarray, threshold: float = 1.0, max_items: int = 2000, seed: int = 0) -> float:
    """CKA with RBF kernels, bandwidth = threshold * median pairwise distance, on a sample of items."""
    rows = _sample_rows(X.shape[0], max_items, seed)
    grams = []
    for Z in (np.asarray(X[rows], np.float64), np.asarray(Y[rows], np.float64)):
        sq = np.sum(Z**2, 1)
        d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * Z @ Z.T, 0)
        med = np.median(d2[np.triu_indices(len(Z), 1)])
        grams.append(_center_gram(np.exp(-d2 / (2 * threshold**2 * max(med, 1e-12)))))
    k, l = grams
    return float(np.sum(k * l) / np.sqrt(np.sum(k * k) * np.sum(l * l)))


def _sample_rows(n: int, max_items: int, seed: int) -> np.ndarray:
    if n <= max_items:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, max_items, replace=False))


def svcca(X: np.ndarray, Y: np.ndarray, variance: float = 0.99, max_items: int = 50000, seed: int = 0) -> float:
    """SVCCA (Raghu et al. 2017): keep the top singular directions explaining `variance` of each
    space, then the mean canonical correlation between the two reduced spaces."""
    rows = _sample_rows(X.shape[0], max_items, seed)
    bases = []
    for Z in (np.asarray(X[rows], np.float64), np.asarray(Y[rows], np.float64)):
        Z = Z - Z.mean(0)
        U, s, _ = np.linalg.svd(Z, full_matrices=False)
        energy = np.cumsum(s**2) / max(np.sum(s**2), 1e-300)
        keep = int(np.searchsorted(energy, variance) + 1)
        keep = min(keep, int(np.sum(s > s[0] * 1e-10)))
        bases.append(U[:, :keep])  # orthonormal basis of the reduced, centred space
    corr = np.linalg.svd(bases[0].T @ bases[1], compute_uv=False)
    return float(np.mean(np.clip(corr, 0, 1)))


def mutual_knn(X: np.ndarray, Y: np.ndarray, k: int = 10) -> float:
    """Mean overlap |N_k^X(i) ∩ N_k^Y(i)| / k of cosine k-NN sets (self excluded)."""
    n = X.shape[0]
    if k >= n:
        raise InvalidInputError(f"mutual k-NN with k={k} needs more than {k} items; the spaces share {n}")
    rows = np.arange(n)
    _, a = topk(normalize_rows(X), normalize_rows(X), k, exclude=rows)
    _, b = topk(normalize_rows(Y), normalize_rows(Y), k, exclude=rows)
    a.sort(1); b.sort(1)
    overlap = [np.intersect1d(a[i], b[i], assume_unique=True).size for i in range(n)]
    return float(np.mean(overlap) / k)


def rsa(X: np.ndarray, Y: np.ndarray, max_items: int = 1000, seed: int = 0) -> float:
    """Representational similarity analysis: Spearman correlation of the two cosine-similarity
    matrices' upper triangles, on a sample of items."""
    from scipy.stats import spearmanr

    rows = _sample_rows(X.shape[0], max_items, seed)
    iu = np.triu_indices(len(rows), 1)
    sx = (normalize_rows(np.asarray(X[rows])) @ normalize_rows(np.asarray(X[rows])).T)[iu]
    sy = (normalize_rows(np.asarray(Y[rows])) @ normalize_rows(np.asarray(Y[rows])).T)[iu]
    return float(spearmanr(sx, sy).statistic)


def compare(a: Space, b: Space, metrics: tuple[str, ...] = METRICS, k: int = 10) -> dict[str, float]:
    """All requested similarity measures between two spaces of the same items (joined by id)."""
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise UnknownNameError(f"unknown similarity metric(s) {', '.join(unknown)}; choose from {', '.join(METRICS)}")
    a, b = a.aligned_with(b)
    if a.count < 4:
        raise InvalidInputError(f"the spaces share only {a.count} items; similarity needs at least 4")
    X, Y = a.vectors, b.vectors
    fns = {
        "cka": lambda: linear_cka(X, Y),
        "cka_debiased": lambda: linear_cka(X, Y, debiased=True),
        "cka_rbf": lambda: rbf_cka(X, Y),
        "svcca": lambda: svcca(X, Y),
        "mknn": lambda: mutual_knn(np.asarray(X), np.asarray(Y), k=k),
        "rsa": lambda: rsa(X, Y),
        "procrustes": lambda: procrustes_distance(X, Y),
    }
    out = {m: fns[m]() for m in metrics}
    out["items"] = a.count
    return out
