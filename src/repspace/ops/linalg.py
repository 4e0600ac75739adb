"""Numerics shared by the estimators: PCA (the one routine), projection onto its components, GELU.

    mean, comp = pca(X)                       # numpy SVD of the centred rows: comp (min(n, d), d)
    Z = pca_project(X, mean, comp, 64)        # (n, 64) coordinates, zero-padded past len(comp)

Two solvers, kept apart because they round differently and the callers' numbers must not move:
`solver="svd"` (numpy's LAPACK SVD, sign as LAPACK returns it; PCACompressor, the Matryoshka adaptor's
initial rotation, the unsupervised translator's reduced spaces) and `solver="sklearn"` (scikit-learn's
`PCA(n_components=min(X.shape), random_state=seed)`, its solver choice and sign convention; the sweep's
'pca' reducer). Both give the principal axes by decreasing variance; they agree up to sign and rounding.
"""

from __future__ import annotations

import numpy as np


def pca(X: np.ndarray, solver: str = "svd", max_rows: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(mean (d,), components (min(n, d), d)) of X: (n, d), rows of components by decreasing variance.

    max_rows (svd): the mean is taken over all rows, the SVD over the first `max_rows` centred rows only."""
    if solver == "sklearn":
        from sklearn.decomposition import PCA

        fitted = PCA(n_components=min(X.shape), random_state=seed).fit(X)
        return fitted.mean_, fitted.components_
    if solver != "svd":
        raise ValueError(f"unknown PCA solver {solver!r}; use svd or sklearn")
    mean = X.mean(0)
    Xc = X - mean
    _, _, Vt = np.linalg.svd(Xc if max_rows is None else Xc[:max_rows], full_matrices=False)
    return mean, Vt


def pca_project(X: np.ndarray, mean: np.ndarray, components: np.ndarray, dim: int,
                dtype: type = np.float64) -> np.ndarray:
    """(n, dim) coordinates of X on the first `dim` components. Beyond the number of components (fewer items
    than dimensions when fitted) the coordinates are zeros: the centred data is already fully represented."""
    comp = components[:dim]
    out = np.zeros((len(X), dim), dtype=dtype)
    out[:, : len(comp)] = (X - mean) @ comp.T
    return out


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    """numpy GELU, tanh approximation (= torch's GELU(approximate='tanh'))."""
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))
