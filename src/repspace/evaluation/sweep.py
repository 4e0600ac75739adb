"""Dimension sweeps: any evaluation at a list of dimensions, by truncation or a fitted reducer.

A reducer has `fit(X) -> self` and `transform(X, dim) -> (n, dim)`. Built in: 'truncate'
(Matryoshka prefixes) and 'pca'. Other capabilities register loaders for saved reducers
(e.g. learned adaptors) in `REDUCER_LOADERS`, so `--reduce PATH` works for them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from repspace.errors import DimensionMismatchError, InvalidInputError, UnknownNameError
from repspace.spaces import Space

NON_METRIC_KEYS = {"queries", "train", "test", "k", "c", "clusters", "n_way", "k_shot", "n_query", "episodes", "items"}


class Reducer(Protocol):
    def fit(self, X: np.ndarray) -> "Reducer": ...

    def transform(self, X: np.ndarray, dim: int) -> np.ndarray: ...


class TruncateReducer:
    """Keep the first `dim` coordinates (Matryoshka prefix)."""

    name = "truncate"

    def fit(self, X: np.ndarray) -> "TruncateReducer":
        return self

    def transform(self, X: np.ndarray, dim: int) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(X)[:, :dim], dtype=np.float32)


class PCAReducer:
    """Project onto the top `dim` principal components (fitted once, reused for every dim)."""

    name = "pca"

    def __init__(self, seed: int = 0, max_fit_items: int = 100000) -> None:
        self.seed = seed
        self.max_fit_items = max_fit_items

    def fit(self, X: np.ndarray) -> "PCAReducer":
        from sklearn.decomposition import PCA

        X = np.asarray(X, dtype=np.float64)
        if X.shape[0] > self.max_fit_items:
            X = X[np.random.default_rng(self.seed).choice(X.shape[0], self.max_fit_items, replace=False)]
        self.pca_ = PCA(n_components=min(X.shape), random_state=self.seed).fit(X)
        return self

    def transform(self, X: np.ndarray, dim: int) -> np.ndarray:
        """Top-`dim` component coordinates; with fewer components than `dim` (fewer items than
        dimensions) the rest are zeros — the centred data is already fully represented."""
        if dim > len(self.pca_.mean_):
            raise DimensionMismatchError(f"PCA of {len(self.pca_.mean_)}-d vectors cannot give {dim} dimensions")
        comp = self.pca_.components_[:dim]
        out = np.zeros((len(X), dim), dtype=np.float32)
        out[:, : len(comp)] = (np.asarray(X, dtype=np.float64) - self.pca_.mean_) @ comp.T
        return out


REDUCER_LOADERS: list[Callable[[Path], Reducer | None]] = []


def get_reducer(spec: str | Reducer) -> Reducer:
    """'truncate', 'pca', a saved reducer path (via REDUCER_LOADERS), or a reducer object."""
    if not isinstance(spec, str):
        return spec
    if spec == "truncate":
        return TruncateReducer()
    if spec == "pca":
        return PCAReducer()
    path = Path(spec)
    if path.exists():
        import repspace.compress  # noqa: F401  (registers the loader for saved compressors)

        for loader in REDUCER_LOADERS:
            reducer = loader(path)
            if reducer is not None:
                return reducer
        raise InvalidInputError(f"{path} is not a saved reducer/adaptor that repspace can load")
    raise UnknownNameError(f"unknown reducer {spec!r}; use truncate, pca or the path of a saved adaptor")


def sweep(
    evaluate: Callable[[list[Space]], dict[str, Any]],
    spaces: list[Space],
    dims: list[int],
    reducer: str | Reducer = "truncate",
    fit_on: int = -1,
) -> dict[str, Any]:
    """Run `evaluate(spaces)` at full dimension and at each of `dims`.

    spaces: spaces of one model (e.g. [corpus] or [queries, corpus]); the reducer is fitted on
    spaces[fit_on] and applied to all. Returns {"full": {...}, "rows": [{"dim", metric,
    metric_retained, ...}, ...]} with metric_retained = value / full-dimension value.
    """
    full_dim = spaces[0].dim
    if any(s.dim != full_dim for s in spaces):
        raise DimensionMismatchError("all spaces of a sweep must have the same dimension")
    bad = [d for d in dims if d > full_dim]
    if bad:
        raise DimensionMismatchError(f"dims {bad} exceed the space's dimension {full_dim}")
    red = get_reducer(reducer)
    red.fit(np.asarray(spaces[fit_on].vectors))
    full = evaluate(spaces)
    rows = []
    for d in dims:
        reduced = [s.with_vectors(red.transform(np.asarray(s.vectors), d)) for s in spaces]
        res = evaluate(reduced)
        row: dict[str, Any] = {"dim": d}
        for key, value in res.items():
            row[key] = value
            if key not in NON_METRIC_KEYS and isinstance(value, (int, float)) and isinstance(full.get(key), (int, float)):
                row[f"{key}_retained"] = float(value / full[key]) if full[key] else None
        rows.append(row)
    return {"full": full, "rows": rows, "reduce": getattr(red, "name", str(reducer))}
