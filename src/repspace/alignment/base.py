"""Translator base: scikit-learn shaped estimators that map one space's vectors into another's.

Hyper-parameters live in `__init__`; learned state in trailing-underscore attributes. A
fitted translator remembers its source and target model and dimension and refuses vectors
of another model or dimension. `save(path)` writes `translator.json` (class, parameters,
provenance) and `state.safetensors` (arrays); `load(path)` never unpickles anything.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from repspace._io import load_estimator, save_estimator
from repspace.errors import DimensionMismatchError, InvalidInputError, InvalidVectorsError, SpaceFormatError
from repspace.spaces import Space
from repspace.spaces.space import check_finite

FORMAT = "repspace.translator"
REGISTRY: dict[str, type["Translator"]] = {}


def as_matrix(X: np.ndarray, what: str = "X") -> np.ndarray:
    """(n, d) float64 copy; clear errors for wrong shape, empty input and NaN/inf."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise InvalidVectorsError(f"{what} must be a non-empty (n, d) array; got shape {X.shape}")
    check_finite(X, what=what)
    return X.astype(np.float64)


class Translator:
    """Base class. Subclasses set `name`, implement `_fit(X, Y)` and `_transform(X)`,
    and list their learned arrays in `_state_keys`."""

    name: ClassVar[str] = "translator"
    min_pairs_rule: ClassVar[str] = "at least 2 pairs"
    _state_keys: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.name != "translator":
            REGISTRY[cls.name] = cls

    # ---------------------------------------------------------------- sklearn shape
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        sig = inspect.signature(type(self).__init__)
        return {p: getattr(self, p) for p in sig.parameters if p != "self"}

    def set_params(self, **params: Any) -> "Translator":
        for k, v in params.items():
            setattr(self, k, v)
        return self

    def min_pairs(self, dx: int, dy: int) -> int:
        return 2

    def fit(self, X: np.ndarray, Y: np.ndarray, source: Space | None = None, target: Space | None = None) -> "Translator":
        """X: (n, dx) source vectors, Y: (n, dy) target vectors of the same n items (row i = pair i)."""
        X, Y = as_matrix(X, "source vectors"), as_matrix(Y, "target vectors")
        if X.shape[0] != Y.shape[0]:
            raise InvalidInputError(f"{X.shape[0]} source rows but {Y.shape[0]} target rows; rows must be pairs")
        need = self.min_pairs(X.shape[1], Y.shape[1])
        if X.shape[0] < need:
            raise InvalidInputError(
                f"method {self.name!r} needs {self.min_pairs_rule} ({need} here); got {X.shape[0]}"
            )
        self.source_dim_, self.target_dim_ = X.shape[1], Y.shape[1]
        self.source_model_ = source.model if source is not None else None
        self.target_model_ = target.model if target is not None else None
        self.n_pairs_ = X.shape[0]
        self._fit(X, Y)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """(n, source_dim) -> (n, target_dim) float32."""
        self._check_fitted()
        X = as_matrix(X, "vectors")
        if X.shape[1] != self.source_dim_:
            raise DimensionMismatchError(
                f"translator {self.name!r} maps {self.source_dim_}-d vectors (model {self.source_model_}); got {X.shape[1]}-d"
            )
        return self._transform(X).astype(np.float32)

    def fit_transform(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        return self.fit(X, Y).transform(X)

    def transform_space(self, space: Space) -> Space:
        """Translate a whole space, refusing one of another model or dimension."""
        self.check_source(space)
        return space.with_vectors(self.transform(np.asarray(space.vectors)), model=self.target_model_ or space.model,
                                  extra={**space.extra, "translated_from": space.model, "translator": self.name})

    def check_source(self, space: Space) -> None:
        self._check_fitted()
        if self.source_model_ and space.model != self.source_model_:
            raise InvalidInputError(
                f"translator was fitted on model {self.source_model_!r} ({self.source_dim_}-d) but the space is "
                f"{space.model!r}; apply it to spaces of {self.source_model_!r}"
            )
        if space.dim != self.source_dim_:
            raise DimensionMismatchError(f"translator expects {self.source_dim_}-d vectors; the space is {space.dim}-d")

    def _check_fitted(self) -> None:
        if not hasattr(self, "source_dim_"):
            raise InvalidInputError(f"translator {self.name!r} is not fitted yet; call fit first")

    # ------------------------------------------------------------------- subclass API
    def _fit(self, X: np.ndarray, Y: np.ndarray) -> None:
        raise NotImplementedError

    def _transform(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _set_extra_state(self, meta: dict[str, Any]) -> None:
        pass

    # ------------------------------------------------------------------- storage
    def save(self, path: str | Path) -> Path:
        self._check_fitted()
        meta = {
            "format": FORMAT, "format_version": 1, "method": self.name, "params": self.get_params(),
            "source_model": self.source_model_, "target_model": self.target_model_,
            "source_dim": self.source_dim_, "target_dim": self.target_dim_, "n_pairs": self.n_pairs_,
            "extra": self._extra_state(),
        }
        return save_estimator(path, "translator.json", meta, {k: getattr(self, k) for k in self._state_keys})

    @classmethod
    def load(cls, path: str | Path) -> "Translator":
        meta, arrays = load_estimator(path, "translator.json", FORMAT, "translator")
        if meta.get("method") not in REGISTRY:
            raise SpaceFormatError(f"{path}: unknown translator method {meta.get('method')!r}")
        obj = REGISTRY[meta["method"]](**meta["params"])
        obj.source_model_, obj.target_model_ = meta["source_model"], meta["target_model"]
        obj.source_dim_, obj.target_dim_, obj.n_pairs_ = meta["source_dim"], meta["target_dim"], meta["n_pairs"]
        for k in obj._state_keys:
            if k not in arrays:
                raise SpaceFormatError(f"{path} lacks the array {k!r}; the translator is corrupt")
            setattr(obj, k, arrays[k])
        obj._set_extra_state(meta.get("extra", {}))
        return obj


def load_translator(path: str | Path) -> Translator:
    return Translator.load(path)
