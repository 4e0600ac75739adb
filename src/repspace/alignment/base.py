"""Translator base: estimators (see `repspace.estimator`) that map one space's vectors into another's.

Hyper-parameters live in `__init__`; learned state in trailing-underscore attributes. A fitted
translator remembers its source and target model and dimension and refuses vectors of another model
or dimension. `save(path)` writes `translator.json` (class, parameters, provenance) and
`state.safetensors` (arrays); `Translator.load(path)` never unpickles anything.

Every translator has both sides: `transform` maps source vectors, `transform_target` maps target
vectors into the space where the two are compared — the target space itself (identity) for most
translators, a third space for a relative projection (`outputs_target_space = False`). Callers never
ask which class they hold.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from repspace.errors import DimensionMismatchError, InvalidInputError
from repspace.estimator import Estimator
from repspace.ops.validation import as_matrix, check_width
from repspace.spaces import Space

__all__ = ["FORMAT", "REGISTRY", "Translator", "as_matrix", "load_translator"]  # as_matrix: re-exported for old imports

FORMAT = "repspace.translator"


class Translator(Estimator):
    """Base class. Subclasses set `name`, implement `_fit(X, Y)` and `_transform(X)`,
    and list their learned arrays in `_state_keys`."""

    family = "translator"
    name = "translator"
    registry: ClassVar[dict[str, type[Estimator]]] = {}
    min_pairs_rule: ClassVar[str] = "at least 2 pairs"
    uses_pairs: ClassVar[bool] = True  # False: fitted on two unpaired spaces, row order and ids ignored
    outputs_target_space: ClassVar[bool] = True  # False: both sides land in a third space (transform_target)
    _meta_fields = {"source_model": "source_model_", "target_model": "target_model_", "source_dim": "source_dim_",
                    "target_dim": "target_dim_", "n_pairs": "n_pairs_"}

    def min_pairs(self, dx: int, dy: int) -> int:
        return 2

    def fit(self, X: np.ndarray, y: np.ndarray | None = None, source: Space | None = None,
            target: Space | None = None, ids: list[str] | None = None) -> "Translator":
        """X: (n, dx) source vectors, y: (n, dy) target vectors of the same n items (row i = pair i).

        source/target: the spaces the rows come from (their models are remembered); ids: the pairs' ids
        (recorded by translators that keep provenance, e.g. a relative translator's anchor ids)."""
        if y is None:
            raise InvalidInputError(f"translator {self.name!r} needs target vectors y (row i paired with row i of X)",
                                    param="y")
        X, Y = as_matrix(X, "source vectors"), as_matrix(y, "target vectors")
        self._check_sizes(X, Y)
        self._fit(X, Y)
        self._set_provenance(X.shape[1], Y.shape[1], source, target, self._pairs_used(X))
        return self

    def _check_sizes(self, X: np.ndarray, Y: np.ndarray) -> None:
        if X.shape[0] != Y.shape[0]:
            raise InvalidInputError(f"{X.shape[0]} source rows but {Y.shape[0]} target rows; rows must be pairs")
        need = self.min_pairs(X.shape[1], Y.shape[1])
        if X.shape[0] < need:
            raise InvalidInputError(f"method {self.name!r} needs {self.min_pairs_rule} ({need} here); got {X.shape[0]}",
                                    param="pairs")

    def _pairs_used(self, X: np.ndarray) -> int:
        return X.shape[0]

    def _set_provenance(self, source_dim: int, target_dim: int, source: Space | None, target: Space | None,
                        n_pairs: int) -> None:
        """The learned provenance; `source_dim_` last, as it marks the translator fitted."""
        self.source_model_ = source.model if source is not None else None
        self.target_model_ = target.model if target is not None else None
        self.target_dim_, self.n_pairs_ = target_dim, int(n_pairs)
        self.source_dim_ = source_dim

    def transform(self, X: np.ndarray) -> np.ndarray:
        """(n, source_dim) -> (n, output dim) float32."""
        self.check_is_fitted()
        X = as_matrix(X, "vectors")
        check_width(X, self.source_dim_, f"translator {self.name!r} maps {self.source_dim_}-d vectors (model {self.source_model_})")
        return self._transform(X).astype(np.float32)

    def transform_target(self, Y: np.ndarray) -> np.ndarray:
        """Target-model vectors (n, target_dim) -> the space `transform` maps into (float32): the target
        space itself (identity) unless the translator compares both sides in a third space."""
        self.check_is_fitted()
        Y = as_matrix(Y, "target vectors")
        check_width(Y, self.target_dim_, f"translator {self.name!r} takes {self.target_dim_}-d target vectors")
        return self._transform_target(Y).astype(np.float32)

    def fit_transform(self, X: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        return self.fit(X, y).transform(X)

    def transform_space(self, space: Space) -> Space:
        """Translate a whole space, refusing one of another model or dimension."""
        self.check_source(space)
        return space.with_vectors(self.transform(np.asarray(space.vectors)), model=self.target_model_ or space.model,
                                  extra={**space.extra, "translated_from": space.model, "translator": self.name})

    def check_source(self, space: Space) -> None:
        self.check_is_fitted()
        if self.source_model_ and space.model != self.source_model_:
            raise InvalidInputError(
                f"translator was fitted on model {self.source_model_!r} ({self.source_dim_}-d) but the space is "
                f"{space.model!r}; apply it to spaces of {self.source_model_!r}"
            )
        if space.dim != self.source_dim_:
            raise DimensionMismatchError(f"translator expects {self.source_dim_}-d vectors; the space is {space.dim}-d")

    def check_target(self, model: str, dim: int, what: str = "index") -> None:
        """Refuse to feed a `what` of another model or dimension than this translator's output."""
        from repspace.ops.validation import check_adapter_target

        check_adapter_target(self, model, dim, what)

    # ------------------------------------------------------------------- subclass API
    def _fit(self, X: np.ndarray, Y: np.ndarray) -> None:
        raise NotImplementedError

    def _transform(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _transform_target(self, Y: np.ndarray) -> np.ndarray:
        return Y

    def _extra_state(self) -> dict[str, Any]:
        return {}


REGISTRY = Translator.registry


def load_translator(path) -> Translator:
    return Translator.load(path)  # type: ignore[return-value]
