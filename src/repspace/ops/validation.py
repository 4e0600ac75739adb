"""Input validation every estimator shares: a matrix's shape, emptiness and finiteness, and its width.

    X = as_matrix(X, "source vectors")        # (n, d) float64 copy, or InvalidVectorsError
    check_width(X, 384, "translator 'procrustes' maps 384-d vectors (model m)")   # or DimensionMismatchError
"""

from __future__ import annotations

import numpy as np

from repspace.errors import DimensionMismatchError, InvalidVectorsError


def check_finite(vectors: np.ndarray, what: str = "vectors", chunk_rows: int = 65536) -> None:
    """Raise InvalidVectorsError naming the first row with NaN/inf (chunked, memory-map friendly)."""
    for start in range(0, vectors.shape[0], chunk_rows):
        block = np.asarray(vectors[start : start + chunk_rows])
        with np.errstate(over="ignore", invalid="ignore"):
            total = np.add.reduce(block, axis=None)
        if np.isfinite(total):  # NaN/inf reach the sum, so it is finite only if all are (a sum of finite values that
            continue  # overflows goes on to the exact test below); 10x faster than the elementwise test
        bad = ~np.isfinite(block).all(axis=1)
        if bad.any():
            row = start + int(np.flatnonzero(bad)[0])
            raise InvalidVectorsError(
                f"{what} contain NaN or inf (first at row {row}, {int(bad.sum())} row(s) in that block); "
                "clean or drop those items first"
            )


def check_matrix(X: np.ndarray, what: str = "X") -> np.ndarray:
    """X as an array (no copy) after checking it is a non-empty, finite (n, d) matrix."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise InvalidVectorsError(f"{what} must be a non-empty (n, d) array; got shape {X.shape}")
    check_finite(X, what=what)
    return X


def as_matrix(X: np.ndarray, what: str = "X") -> np.ndarray:
    """(n, d) float64 copy; clear errors for wrong shape, empty input and NaN/inf."""
    return check_matrix(X, what).astype(np.float64)


def check_width(X: np.ndarray, dim: int, expects: str) -> None:
    """DimensionMismatchError "<expects>; got <d>-d" unless X has `dim` columns."""
    if X.shape[1] != dim:
        raise DimensionMismatchError(f"{expects}; got {X.shape[1]}-d")


def check_adapter_target(adapter, model: str, dim: int, what: str = "index") -> None:
    """Refuse an adapter (anything with `target_dim_` / `target_model_`) whose output is not `model`'s `dim`-d
    space — the `what` it is to feed."""
    from repspace.errors import DimensionMismatchError, InvalidInputError

    if hasattr(adapter, "check_is_fitted"):  # an unfitted estimator: NotFittedError, not an AttributeError
        adapter.check_is_fitted()
    if adapter.target_dim_ != dim:
        raise DimensionMismatchError(f"the adapter outputs {adapter.target_dim_}-d vectors but the {what} is {dim}-d")
    if adapter.target_model_ and adapter.target_model_ != model:
        raise InvalidInputError(f"the adapter maps into model {adapter.target_model_!r} but the {what} holds {model!r}")
