"""Compressors: map a space to nested prefixes usable at several dimensions.

Estimators of the one base (`repspace.estimator`): hyper-parameters in `__init__`, `fit(X, pairs=...)`,
`transform(X, dim)`, learned state in `attr_`; `save(path)` writes `compressor.json` + `state.safetensors`
(no pickle), `Compressor.load(path)` reads any registered method back. A fitted compressor remembers its
source model and dimension and the dimensions it supports. A fitted compressor is also a reducer for the
evaluation sweep (`transform(X, dim)`), so `repspace eval --reduce PATH` uses a saved one as it is.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from repspace.errors import DimensionMismatchError, InvalidInputError
from repspace.estimator import Estimator
from repspace.ops.validation import as_matrix, check_width
from repspace.spaces import Space

FORMAT = "repspace.compressor"


class Compressor(Estimator):
    """Base class. Subclasses set `name`, implement `_fit(X, pairs)` (setting `dims_`) and `_transform(X)`
    (all supported coordinates, prefixes first), and list their learned arrays in `_state_keys`."""

    family = "compressor"
    name = "compressor"
    registry: ClassVar[dict[str, type[Estimator]]] = {}
    _meta_fields = {"source_model": "source_model_", "source_dim": "source_dim_", "dims": "dims_"}

    takes_unlabelled: ClassVar[bool] = False  # _fit(X, pairs, unlabelled=U) trains on U beside X itself

    def fit(self, X: np.ndarray, y: np.ndarray | None = None, source: Space | None = None,
            pairs: np.ndarray | None = None, unlabelled: np.ndarray | None = None) -> "Compressor":
        """X: (n, d) items. pairs: (n, d) paired queries of the same model, row i with item i (supervised
        training, for the methods that use them). unlabelled: (m, d) more items of the same model (e.g. a large
        unlabelled corpus) that unsupervised objectives train on beside X; a method without pairs simply fits on
        X and them together. y is ignored (scikit-learn signature)."""
        X = as_matrix(X, "vectors")
        if pairs is not None:
            pairs = as_matrix(pairs, "paired vectors")
            if pairs.shape != X.shape:
                raise InvalidInputError(f"pairs must be {X.shape} like the items; got {pairs.shape}", param="pairs")
        if unlabelled is not None:
            unlabelled = as_matrix(unlabelled, "unlabelled vectors")
            check_width(unlabelled, X.shape[1], "unlabelled items must have the items' dimension")
        if unlabelled is not None and self.takes_unlabelled:
            self._fit(X, pairs, unlabelled=unlabelled)
        elif unlabelled is not None and pairs is None:
            self._fit(np.vstack([X, unlabelled]), None)
        elif unlabelled is not None:
            raise InvalidInputError(f"compressor {self.name!r} cannot train on pairs and unlabelled items together",
                                    param="unlabelled")
        else:
            self._fit(X, pairs)
        self.dims_ = [int(d) for d in self.dims_]
        self.source_model_ = source.model if source is not None else None
        self.source_dim_ = X.shape[1]
        return self

    def transform(self, X: np.ndarray, dim: int | None = None) -> np.ndarray:
        """(n, source_dim) -> (n, dim) float32; dim must be one the compressor supports (default: the largest)."""
        X = self._check(X)
        dim = dim or max(self.dims_)
        if dim not in self.dims_:
            raise InvalidInputError(f"dimension {dim} is not one this compressor supports: {_ranges(self.dims_)}",
                                    param="dim")
        return self._transform(X)[:, :dim].astype(np.float32)

    def _check(self, X: np.ndarray) -> np.ndarray:
        """Fitted, and X a finite (n, source_dim) matrix: its float64 copy."""
        self.check_is_fitted()
        X = as_matrix(X, "vectors")
        check_width(X, self.source_dim_, f"compressor {self.name!r} maps {self.source_dim_}-d vectors (model {self.source_model_})")
        return X

    @property
    def label(self) -> str:
        return f"{self.name} adaptor"

    def check_source(self, space: Space) -> None:
        """Refuse a space of another model or dimension than the one this compressor was fitted on."""
        self.check_is_fitted()
        if self.source_model_ and space.model != self.source_model_:
            raise InvalidInputError(f"compressor was fitted on model {self.source_model_!r}; the space is {space.model!r}")
        if space.dim != self.source_dim_:
            raise DimensionMismatchError(
                f"compressor maps {self.source_dim_}-d vectors (model {self.source_model_}); the space is {space.dim}-d")

    def transform_space(self, space: Space, dim: int | None = None) -> Space:
        self.check_source(space)
        return space.with_vectors(self.transform(np.asarray(space.vectors), dim),
                                  extra={**space.extra, "compressor": self.name, "compressed_from": space.dim})

    def _fit(self, X: np.ndarray, pairs: np.ndarray | None = None) -> None:
        raise NotImplementedError

    def _transform(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError


REGISTRY = Compressor.registry


def _ranges(values: list[int]) -> str:
    """[1, 2, 3, 8, 16] -> '1-3, 8, 16'."""
    parts, start, prev = [], None, None
    for v in sorted(values):
        if start is None:
            start = prev = v
        elif v == prev + 1:
            prev = v
        else:
            parts.append(f"{start}-{prev}" if prev > start else str(start))
            start = prev = v
    if start is not None:
        parts.append(f"{start}-{prev}" if prev > start else str(start))
    return ", ".join(parts)


def CompressorReducer(compressor: Compressor) -> Compressor:  # noqa: N802  (old name of a removed adapter)
    """A fitted compressor already is a sweep reducer; kept so old imports keep working."""
    return compressor
