"""PCA compressor: prefixes of the principal-component coordinates."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from repspace.compress.base import Compressor
from repspace.errors import DimensionMismatchError
from repspace.ops.linalg import pca, pca_project


class PCACompressor(Compressor):
    name = "pca"
    _state_keys = ("mean_", "components_")

    def __init__(self, dims: Sequence[int] | None = None) -> None:
        self.dims = list(dims) if dims is not None else None

    def _fit(self, X: np.ndarray, pairs: np.ndarray | None = None) -> None:
        self.mean_, self.components_ = pca(X)  # components (min(n, d), d), rows by decreasing variance
        self.dims_ = sorted(self.dims) if self.dims else list(range(1, X.shape[1] + 1))
        if max(self.dims_) > X.shape[1]:
            raise DimensionMismatchError(f"dims {self.dims_} exceed the space's dimension {X.shape[1]}", param="dims")

    def _transform(self, X: np.ndarray) -> np.ndarray:
        """Component coordinates (zeros beyond the number of components)."""
        return pca_project(X, self.mean_, self.components_, max(self.dims_))
