"""Compressors: map a space to nested prefixes usable at several dimensions.

scikit-learn shape: hyper-parameters in `__init__`, `fit(X)`, `transform(X, dim)`, learned
state in `attr_`; `save(path)` writes `compressor.json` + `state.safetensors` (no pickle).
A fitted compressor remembers its source model and dimension and the dimensions it supports.
Saved compressors plug into `repspace eval --reduce PATH` through REDUCER_LOADERS.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from repspace._io import load_estimator, save_estimator
from repspace.alignment.base import as_matrix
from repspace.errors import DimensionMismatchError, InvalidInputError, SpaceFormatError
from repspace.spaces import Space

FORMAT = "repspace.compressor"
REGISTRY: dict[str, type["Compressor"]] = {}


class Compressor:
    name: ClassVar[str] = "compressor"
    _state_keys: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        REGISTRY[cls.name] = cls

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        sig = inspect.signature(type(self).__init__)
        return {p: getattr(self, p) for p in sig.parameters if p != "self"}

    def fit(self, X: np.ndarray, source: Space | None = None, **kw: Any) -> "Compressor":
        X = as_matrix(X, "vectors")
        self.source_dim_ = X.shape[1]
        self.source_model_ = source.model if source is not None else None
        self._fit(X, **kw)
        return self

    def transform(self, X: np.ndarray, dim: int | None = None) -> np.ndarray:
        """(n, source_dim) -> (n, dim) float32; dim must be one the compressor supports."""
        if not hasattr(self, "source_dim_"):
            raise InvalidInputError(f"compressor {self.name!r} is not fitted yet")
        X = as_matrix(X, "vectors")
        if X.shape[1] != self.source_dim_:
            raise DimensionMismatchError(
                f"compressor maps {self.source_dim_}-d vectors (model {self.source_model_}); got {X.shape[1]}-d")
        dim = dim or max(self.dims_)
        if dim not in self.dims_:
            raise InvalidInputError(f"dimension {dim} is not one this compressor supports: {_ranges(self.dims_)}")
        return self._transform(X)[:, :dim].astype(np.float32)

    def check_source(self, space: Space) -> None:
        """Refuse a space of another model or dimension than the one this compressor was fitted on."""
        if self.source_model_ and space.model != self.source_model_:
            raise InvalidInputError(f"compressor was fitted on model {self.source_model_!r}; the space is {space.model!r}")
        if space.dim != self.source_dim_:
            raise DimensionMismatchError(
                f"compressor maps {self.source_dim_}-d vectors (model {self.source_model_}); the space is {space.dim}-d")

    def transform_space(self, space: Space, dim: int | None = None) -> Space:
        self.check_source(space)
        return space.with_vectors(self.transform(np.asarray(space.vectors), dim),
                                  extra={**space.extra, "compressor": self.name, "compressed_from": space.dim})

    def _fit(self, X: np.ndarray, **kw: Any) -> None:
        raise NotImplementedError

    def _transform(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def save(self, path: str | Path) -> Path:
        meta = {"format": FORMAT, "format_version": 1, "method": self.name, "params": self.get_params(),
                "source_model": self.source_model_, "source_dim": self.source_dim_, "dims": list(map(int, self.dims_))}
        return save_estimator(path, "compressor.json", meta, {k: getattr(self, k) for k in self._state_keys})

    @staticmethod
    def load(path: str | Path) -> "Compressor":
        meta, arrays = load_estimator(path, "compressor.json", FORMAT, "compressor")
        if meta.get("method") not in REGISTRY:
            raise SpaceFormatError(f"{path}: unknown compressor method {meta.get('method')!r}")
        obj = REGISTRY[meta["method"]](**meta["params"])
        obj.source_model_, obj.source_dim_, obj.dims_ = meta["source_model"], meta["source_dim"], meta["dims"]
        for k in obj._state_keys:
            if k not in arrays:
                raise SpaceFormatError(f"{path} lacks the array {k!r}; the compressor is corrupt")
            setattr(obj, k, arrays[k])
        return obj


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


class CompressorReducer:
    """Adapts a saved compressor to the evaluation sweep's reducer protocol (fit is a no-op)."""

    def __init__(self, compressor: Compressor) -> None:
        self.compressor = compressor
        self.name = f"{compressor.name} adaptor"

    def fit(self, X: np.ndarray) -> "CompressorReducer":
        return self

    def transform(self, X: np.ndarray, dim: int) -> np.ndarray:
        return self.compressor.transform(X, dim)


def _load_reducer(path: Path):
    if (path / "compressor.json").is_file():
        return CompressorReducer(Compressor.load(path))
    return None
