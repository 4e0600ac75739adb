"""Compatibility of model versions (BCT family).

For spaces of the same items from models v1..vn: M[i][j] = retrieval metric with queries
embedded by model i against a gallery embedded by model j (i >= j). Model i is compatible
with j when M[i][j] >= M[j][j] (new queries on the old gallery do at least as well as old on
old); the empirical compatibility gain is (M[i][j] - M[j][j]) / (M[i][i] - M[j][j]): the share of
the upgrade's improvement (new on new over old on old) had without re-encoding the gallery.

As in BCT (Shen et al., CVPR 2020) the gain is defined only for a compatible pair, and only when
the new model improves on the old one (M[i][i] > M[j][j]); otherwise it is None and `gain_note`
says why. (Computed anyway, the ratio misleads: an incompatible new model that is also worse than
the old one divides two negative numbers into a "gain" above 1.)
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from repspace.errors import DimensionMismatchError, InvalidInputError
from repspace.evaluation.retrieval import label_retrieval, query_retrieval
from repspace.spaces import Space

Adapter = Callable[[np.ndarray], np.ndarray]


def _cross(query: Space, gallery: Space, metric: str, ks: tuple[int, ...], transform: Adapter | None,
           by_label: bool) -> float:
    if by_label:
        res = label_retrieval(query, ks=ks, gallery=gallery, transform=transform)
    else:
        res = query_retrieval(query, gallery, ks=ks, transform=transform)
    if metric not in res:
        raise InvalidInputError(f"unknown metric {metric!r}; available: {', '.join(k for k in res if k != 'queries')}")
    return float(res[metric])


def _prefix_adapter(query: Space, gallery: Space) -> Adapter | None:
    """BT²-style spaces carry `compatible_dim`: their first coordinates face the old model's space."""
    d = query.extra.get("compatible_dim")
    if d is None or d == query.dim or d != gallery.dim:
        return None
    return lambda x: np.ascontiguousarray(x[:, :d])


def compatibility(
    spaces: list[Space],
    metric: str | None = None,
    ks: tuple[int, ...] = (1, 5, 10),
    adapters: dict[tuple[int, int], Adapter] | None = None,
    tol: float = 1e-12,
) -> dict:
    """Compatibility matrix and criterion for spaces ordered old -> new (0-based in, 1-based keys out).

    Relevance is by label when every space has labels (default metric map@r), else by id
    (the same item's vector in the gallery model; default metric recall@1).
    adapters[(i, j)] maps model-i query vectors into model j's space when dimensions differ; a space whose
    manifest names a `compatible_dim` equal to the gallery's dimension (BT²) is compared by that prefix.
    """
    if len(spaces) < 2:
        raise InvalidInputError("compatibility needs at least two spaces (old, new)")
    adapters = adapters or {}
    base = spaces[0]
    for s in spaces[1:]:
        base, _ = base.aligned_with(s)
    shared = base.ids
    spaces = [s.select(shared) for s in spaces]
    by_label = all(s.labels is not None for s in spaces)
    metric = metric or ("map@r" if by_label else "recall@1")
    n = len(spaces)
    M: list[list[float | None]] = [[None] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1):
            t = adapters.get((i, j)) or _prefix_adapter(spaces[i], spaces[j])
            if t is None and spaces[i].dim != spaces[j].dim:
                raise DimensionMismatchError(
                    f"model {i + 1} ({spaces[i].model}, {spaces[i].dim}-d) and model {j + 1} ({spaces[j].model}, "
                    f"{spaces[j].dim}-d) differ in dimension; cross-model retrieval needs an adapter"
                )
            M[i][j] = _cross(spaces[i], spaces[j], metric, ks, t, by_label)
    compatible, gain, note = {}, {}, {}
    for i in range(n):
        for j in range(i):
            key = f"{i + 1}->{j + 1}"
            compatible[key] = bool(M[i][j] >= M[j][j] - tol)
            gain[key], note[key] = compatibility_gain(M[i][j], M[j][j], M[i][i], tol)
    return {"matrix": M, "compatible": compatible, "gain": gain, "gain_note": note, "metric": metric,
            "relevance": "label" if by_label else "id", "models": [s.model for s in spaces], "items": len(shared)}


def compatibility_gain(new_old: float, old_old: float, new_new: float,
                       tol: float = 1e-12) -> tuple[float | None, str | None]:
    """(gain, None) for a compatible pair whose new model improves on the old one, else (None, why not).

    gain = (M(new,old) - M(old,old)) / (M(new,new) - M(old,old)); `tol` as in the criterion."""
    if new_old < old_old - tol:
        return None, "not compatible (M(new,old) < M(old,old))"
    if new_new - old_old < 1e-12:
        return None, "no improvement to share (M(new,new) <= M(old,old))"
    return float((new_old - old_old) / (new_new - old_old)), None
