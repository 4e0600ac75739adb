"""Linear translators: orthogonal Procrustes, least squares, ridge, affine, low-rank.

Shapes: X (n, dx) source, Y (n, dy) target; transform maps (m, dx) -> (m, dy).
"""

from __future__ import annotations

import numpy as np

from repspace.alignment.base import Translator


def polar_factor(M: np.ndarray) -> np.ndarray:
    """U V^T for the thin SVD M = U S V^T (the orthogonal polar factor), shape of M.

    Computed as (M M^T)^(-1/2) M (or M (M^T M)^(-1/2)) from a symmetric eigendecomposition of the
    smaller Gram matrix — several times faster than the SVD at 384 x 768; an ill-conditioned or
    rank-deficient M falls back to the SVD.
    """
    wide = M.shape[0] <= M.shape[1]
    lam, Q = np.linalg.eigh(M @ M.T if wide else M.T @ M)
    if lam[-1] > 0 and lam[0] > 1e-10 * lam[-1]:
        inv_sqrt = (Q / np.sqrt(lam)) @ Q.T
        return inv_sqrt @ M if wide else M @ inv_sqrt
    U, _, Vt = np.linalg.svd(M, full_matrices=False)
    return U @ Vt


def orthogonal_map(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """argmin_W ||XW - Y||_F over W with orthonormal rows or columns, shape (dx, dy).

    Dimension rule: for dx != dy the smaller space is treated as zero-padded to the larger
    one, and W is the (dx, dy) block of the square orthogonal solution — a semi-orthogonal
    map (W W^T = I when dx <= dy, W^T W = I when dx >= dy): the polar factor of X^T Y.
    """
    return orthogonal_from_cross(X.T @ Y, len(X))


def orthogonal_from_cross(M: np.ndarray, n: int) -> np.ndarray:
    """The orthogonal map of `orthogonal_map` from the cross-covariance M = X^T Y of n pairs."""
    if n < min(M.shape):  # M is rank-deficient: SVD directly
        U, _, Vt = np.linalg.svd(M, full_matrices=False)
        return U @ Vt
    return polar_factor(M)


def procrustes_fit(X: np.ndarray, Y: np.ndarray, center: bool = True,
                   scale: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Orthogonal Procrustes with optional centring and isotropic scale: (W, mean_x, mean_y, scale (1,)),
    so that Y ≈ (X - mean_x) W * scale + mean_y (apply with `procrustes_apply`)."""
    mean_x = X.mean(0) if center else np.zeros(X.shape[1])
    mean_y = Y.mean(0) if center else np.zeros(Y.shape[1])
    Xc, Yc = X - mean_x, Y - mean_y
    M = Xc.T @ Yc
    W = orthogonal_from_cross(M, len(X))
    s = 1.0
    if scale:
        # isotropic scale minimising ||s Xc W - Yc||: trace(W^T M) / ||Xc W||^2, where
        # ||Xc W|| = ||Xc|| when W has orthonormal rows (dx <= dy)
        den = np.sum(Xc * Xc) if X.shape[1] <= Y.shape[1] else np.sum((Xc @ W) ** 2)
        s = float(np.sum(W * M) / max(den, 1e-300))
    return W, mean_x, mean_y, np.asarray([s])


def procrustes_apply(X: np.ndarray, W: np.ndarray, mean_x: np.ndarray, mean_y: np.ndarray,
                     scale: np.ndarray) -> np.ndarray:
    return (X - mean_x) @ W * scale[0] + mean_y


def ridge_fit(X: np.ndarray, Y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Ridge regression with bias, Y ≈ X W + b, penalty alpha * trace(X^T X) / dx * ||W||^2: (W, b)."""
    mx, my = X.mean(0), Y.mean(0)
    Xc, Yc = X - mx, Y - my
    G = Xc.T @ Xc
    lam = alpha * np.trace(G) / X.shape[1]
    W = np.linalg.solve(G + lam * np.eye(X.shape[1]), Xc.T @ Yc)
    return W, my - mx @ W


class Procrustes(Translator):
    """Orthogonal Procrustes, optional centring (then a translation is learned) and isotropic scale."""

    name = "procrustes"
    min_pairs_rule = "at least 2 pairs"
    _state_keys = ("W_", "mean_x_", "mean_y_", "scale_")

    def __init__(self, center: bool = True, scale: bool = True) -> None:
        self.center = center
        self.scale = scale

    def _fit(self, X: np.ndarray, Y: np.ndarray) -> None:
        self.W_, self.mean_x_, self.mean_y_, self.scale_ = procrustes_fit(X, Y, self.center, self.scale)

    def _transform(self, X: np.ndarray) -> np.ndarray:
        return procrustes_apply(X, self.W_, self.mean_x_, self.mean_y_, self.scale_)

    def inverse_transform(self, Y: np.ndarray) -> np.ndarray:
        """Exact inverse when dx <= dy (W has orthonormal rows); a least-squares inverse otherwise."""
        Y = np.asarray(Y, np.float64)
        return ((Y - self.mean_y_) / self.scale_[0] @ self.W_.T + self.mean_x_).astype(np.float32)


class LeastSquares(Translator):
    """Plain least squares Y ≈ X W (no bias, no regularisation): ill-posed when n ≲ dx."""

    name = "lstsq"
    min_pairs_rule = "at least as many pairs as source dimensions"
    _state_keys = ("W_",)

    def __init__(self) -> None:
        pass

    def min_pairs(self, dx: int, dy: int) -> int:
        return dx

    def _fit(self, X: np.ndarray, Y: np.ndarray) -> None:
        self.W_ = np.linalg.lstsq(X, Y, rcond=None)[0]

    def _transform(self, X: np.ndarray) -> np.ndarray:
        return X @ self.W_


class Ridge(Translator):
    """Ridge regression with bias: Y ≈ X W + b, penalty alpha ||W||^2 (alpha scaled by trace(X^T X)/dx)."""

    name = "ridge"
    _state_keys = ("W_", "b_")

    def __init__(self, alpha: float = 0.01) -> None:
        self.alpha = alpha

    def _fit(self, X: np.ndarray, Y: np.ndarray) -> None:
        self.W_, self.b_ = ridge_fit(X, Y, self.alpha)

    def _transform(self, X: np.ndarray) -> np.ndarray:
        return X @ self.W_ + self.b_


class Affine(Translator):
    """Unregularised affine map Y ≈ X W + b (least squares with a bias column)."""

    name = "affine"
    min_pairs_rule = "more pairs than source dimensions"
    _state_keys = ("W_", "b_")

    def __init__(self) -> None:
        pass

    def min_pairs(self, dx: int, dy: int) -> int:
        return dx + 1

    def _fit(self, X: np.ndarray, Y: np.ndarray) -> None:
        Xb = np.hstack([X, np.ones((X.shape[0], 1))])
        sol = np.linalg.lstsq(Xb, Y, rcond=None)[0]
        self.W_, self.b_ = sol[:-1], sol[-1]

    def _transform(self, X: np.ndarray) -> np.ndarray:
        return X @ self.W_ + self.b_


class LowRank(Translator):
    """Reduced-rank ridge regression: the ridge solution projected on its top-`rank` output
    directions, W = W_ridge V_r V_r^T (Izenman 1975), so W has rank <= rank."""

    name = "lowrank"
    min_pairs_rule = "more pairs than the rank"
    _state_keys = ("W_", "b_")

    def __init__(self, rank: int = 64, alpha: float = 0.01) -> None:
        self.rank = rank
        self.alpha = alpha

    def min_pairs(self, dx: int, dy: int) -> int:
        return self.rank + 1

    def _fit(self, X: np.ndarray, Y: np.ndarray) -> None:
        W_ridge, _ = ridge_fit(X, Y, self.alpha)
        fitted = (X - X.mean(0)) @ W_ridge
        _, _, Vt = np.linalg.svd(fitted, full_matrices=False)
        V = Vt[: self.rank].T
        self.W_ = W_ridge @ V @ V.T
        self.b_ = Y.mean(0) - X.mean(0) @ self.W_

    def _transform(self, X: np.ndarray) -> np.ndarray:
        return X @ self.W_ + self.b_
