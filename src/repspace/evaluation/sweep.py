"""Dimension sweeps: any evaluation at a list of dimensions, by truncation or a fitted reducer.

A reducer is an estimator (`repspace.estimator`) with `fit(X) -> self` and `transform(X, dim) -> (n, dim)`.
Built in: 'truncate' (Matryoshka prefixes) and 'pca', both of the `Reducer` family here (registered by
name, saved and loaded like every estimator). A saved compressor (`repspace compress fit`) is a reducer
too: `--reduce PATH` loads it and the sweep uses it as fitted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, ClassVar, Protocol

import numpy as np

from repspace.errors import DimensionMismatchError, InvalidInputError, UnknownNameError
from repspace.estimator import Estimator
from repspace.ops.linalg import pca, pca_project
from repspace.ops.validation import check_matrix
from repspace.spaces import Space

NON_METRIC_KEYS = {"queries", "train", "test", "k", "c", "clusters", "n_way", "k_shot", "n_query", "episodes", "items"}


class ReducerLike(Protocol):
    def fit(self, X: np.ndarray) -> "ReducerLike": ...

    def transform(self, X: np.ndarray, dim: int) -> np.ndarray: ...


class Reducer(Estimator):
    """Base of the sweep's reducers: `fit(X)` on one space's vectors, `transform(X, dim)` for any dim up to
    the fitted dimension. Subclasses set `name` and implement `_fit(X)` and `_transform(X, dim)`."""

    family = "reducer"
    name = "reducer"
    registry: ClassVar[dict[str, type[Estimator]]] = {}
    _meta_fields = {"source_dim": "source_dim_"}

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> "Reducer":
        X = check_matrix(X, "vectors")
        self._fit(X)
        self.source_dim_ = X.shape[1]
        return self

    def transform(self, X: np.ndarray, dim: int) -> np.ndarray:
        """(n, source_dim) -> (n, dim) float32."""
        self.check_is_fitted()
        X = check_matrix(X, "vectors")
        if X.shape[1] != self.source_dim_:
            raise DimensionMismatchError(f"reducer {self.name!r} maps {self.source_dim_}-d vectors; got {X.shape[1]}-d")
        if not 1 <= dim <= self.source_dim_:
            raise DimensionMismatchError(f"{self.name} of {self.source_dim_}-d vectors cannot give {dim} dimensions")
        return self._transform(X, dim)

    def _fit(self, X: np.ndarray) -> None:
        pass

    def _transform(self, X: np.ndarray, dim: int) -> np.ndarray:
        raise NotImplementedError


class TruncateReducer(Reducer):
    """Keep the first `dim` coordinates (Matryoshka prefix)."""

    name = "truncate"

    def __init__(self) -> None:
        pass

    def _transform(self, X: np.ndarray, dim: int) -> np.ndarray:
        return np.ascontiguousarray(X[:, :dim], dtype=np.float32)


class PCAReducer(Reducer):
    """Project onto the top `dim` principal components (fitted once, reused for every dim; scikit-learn's
    PCA on at most `max_fit_items` rows sampled with `seed`)."""

    name = "pca"
    _state_keys = ("mean_", "components_")

    def __init__(self, seed: int = 0, max_fit_items: int = 100000) -> None:
        self.seed = seed
        self.max_fit_items = max_fit_items

    def _fit(self, X: np.ndarray) -> None:
        X = np.asarray(X, dtype=np.float64)
        if X.shape[0] > self.max_fit_items:
            X = X[np.random.default_rng(self.seed).choice(X.shape[0], self.max_fit_items, replace=False)]
        self.mean_, self.components_ = pca(X, solver="sklearn", seed=self.seed)

    def _transform(self, X: np.ndarray, dim: int) -> np.ndarray:
        """Top-`dim` component coordinates (zeros beyond the number of components)."""
        return pca_project(np.asarray(X, dtype=np.float64), self.mean_, self.components_, dim, dtype=np.float32)


def get_reducer(spec: str | ReducerLike) -> ReducerLike:
    """A registered reducer name ('truncate', 'pca'), the path of a saved compressor or reducer, or a reducer object."""
    if not isinstance(spec, str):
        return spec
    if spec in Reducer.registry:
        return Reducer.registry[spec]()  # type: ignore[return-value]
    path = Path(spec)
    if path.exists():
        if (path / "reducer.json").is_file():
            return Reducer.load(path)  # type: ignore[return-value]
        if (path / "compressor.json").is_file():
            from repspace.compress import Compressor  # imported only here: compress never imports evaluation

            return Compressor.load(path)  # type: ignore[return-value]
        raise InvalidInputError(f"{path} is not a saved reducer/adaptor that repspace can load")
    names = ", ".join(Reducer.registry)
    raise UnknownNameError(f"unknown reducer {spec!r}; use {names} or the path of a saved adaptor")


def sweep(
    evaluate: Callable[[list[Space]], dict[str, Any]],
    spaces: list[Space],
    dims: list[int],
    reducer: str | ReducerLike = "truncate",
    fit_on: int = -1,
) -> dict[str, Any]:
    """Run `evaluate(spaces)` at full dimension and at each of `dims`.

    spaces: spaces of one model (e.g. [corpus] or [queries, corpus]); the reducer is fitted on
    spaces[fit_on] (unless it is already fitted, e.g. a saved compressor) and applied to all. Returns {"full": {...}, "rows": [{"dim", metric,
    metric_retained, ...}, ...]} with metric_retained = value / full-dimension value.
    """
    full_dim = spaces[0].dim
    if any(s.dim != full_dim for s in spaces):
        raise DimensionMismatchError("all spaces of a sweep must have the same dimension")
    bad = [d for d in dims if d > full_dim]
    if bad:
        raise DimensionMismatchError(f"dims {bad} exceed the space's dimension {full_dim}")
    red = get_reducer(reducer)
    if not getattr(red, "is_fitted", lambda: False)():
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
    return {"full": full, "rows": rows, "reduce": getattr(red, "label", getattr(red, "name", str(reducer)))}
