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
        self.dims_ = sorted(self.dims) if self.dims else list(range(1, len(Vt) + 1))
        if max(self.dims_) > len(Vt):
            from repspace.errors import DimensionMismatchError

            raise DimensionMismatchError(f"PCA of {len(X)} items x {X.shape[1]} dims has {len(Vt)} components; "
                                         f"{max(self.dims_)} requested")

    def _transform(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean_) @ self.components_[: max(self.dims_)].T
