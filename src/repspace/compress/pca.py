"""PCA compressor: prefixes of the principal-component coordinates."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from repspace.compress.base import Compressor


class PCACompressor(Compressor):
    name = "pca"
    _state_keys = ("mean_", "components_")

    def __init__(self, dims: Sequence[int] | None = None) -> None:
        self.dims = list(dims) if dims is not None else None

    def _fit(self, X: np.ndarray, **kw) -> None:
        self.mean_ = X.mean(0)
        _, _, Vt = np.linalg.svd(X - self.mean_, full_matrices=False)
        self.components_ = Vt  # (min(n, d), d), rows by decreasing variance
        self.dims_ = sorted(self.dims) if self.dims else list(range(1, X.shape[1] + 1))
        if max(self.dims_) > X.shape[1]:
            from repspace.errors import DimensionMismatchError

            raise DimensionMismatchError(f"dims {self.dims_} exceed the space's dimension {X.shape[1]}")

    def _transform(self, X: np.ndarray) -> np.ndarray:
        """Component coordinates; beyond the number of components (fewer items than dimensions)
        the coordinates are zeros — the centred data is already fully represented."""
        m = max(self.dims_)
        comp = self.components_[:m]
        out = np.zeros((len(X), m))
        out[:, : len(comp)] = (X - self.mean_) @ comp.T
        return out
