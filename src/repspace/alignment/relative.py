"""Relative representations (Moschella et al., ICLR 2023).

Each item becomes its cosine similarity to K anchor items: r(x) = [cos(x - m, a_k - m)]_k,
with optional centring m (the anchors' mean) and L2 normalisation of r. The same anchor
items are embedded by both models, so both spaces land in one K-d relative space that is
invariant to rotations and rescaling of either space — the basis of zero-shot stitching.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from repspace.alignment.base import Translator
from repspace.errors import InvalidInputError, UnknownNameError
from repspace.ops.search import normalize_rows
from repspace.ops.validation import as_matrix
from repspace.spaces import Space

ANCHOR_METHODS = ("random", "kmeans", "fps")


def select_anchors(X: np.ndarray, k: int, method: str = "random", seed: int = 0) -> np.ndarray:
    """Row indices of k anchors chosen in X: (n, d). random | kmeans (item nearest each
    k-means centroid) | fps (farthest point sampling under cosine distance)."""
    n = X.shape[0]
    if k > n:
        raise InvalidInputError(f"{k} anchors requested but only {n} paired items are available")
    if k < 1:
        raise InvalidInputError("the number of anchors must be at least 1")
    rng = np.random.default_rng(seed)
    if method == "random":
        return np.sort(rng.choice(n, k, replace=False))
    Xn = normalize_rows(X)
    if method == "kmeans":
        from sklearn.cluster import KMeans

        centers = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(Xn).cluster_centers_
        sims = normalize_rows(centers) @ Xn.T
        chosen: list[int] = []
        taken: set[int] = set()
        for row in sims:  # nearest unused item per centroid
            for j in np.argsort(-row):
                if int(j) not in taken:
                    chosen.append(int(j)); taken.add(int(j))
                    break
        return np.asarray(sorted(chosen))
    if method == "fps":
        chosen = [int(rng.integers(n))]
        dist = 1.0 - Xn @ Xn[chosen[0]]
        for _ in range(k - 1):
            j = int(np.argmax(dist))
            chosen.append(j)
            dist = np.minimum(dist, 1.0 - Xn @ Xn[j])
        return np.asarray(sorted(chosen))
    raise UnknownNameError(f"unknown anchor method {method!r}; choose from {', '.join(ANCHOR_METHODS)}")


def relative_projection(X: np.ndarray, anchors: np.ndarray, center: np.ndarray | None = None,
                        normalize: bool = True) -> np.ndarray:
    """X: (n, d), anchors: (K, d) -> (n, K) cosine similarities (optionally centred, L2-normalised rows)."""
    if center is not None:
        X, anchors = X - center, anchors - center
    R = normalize_rows(X) @ normalize_rows(anchors).T
    return normalize_rows(R) if normalize else R.astype(np.float32)


class RelativeTranslator(Translator):
    """Maps both spaces into the shared relative space of K anchors (transform: source side,
    transform_target: target side). fit(X, y) takes paired rows and picks the anchors among them;
    fit_anchors takes given anchors."""

    name = "relative"
    min_pairs_rule = "at least as many pairs as anchors"
    outputs_target_space = False
    _state_keys = ("anchors_x_", "anchors_y_", "center_x_", "center_y_")

    def __init__(self, n_anchors: int = 300, method: str = "random", center: bool = True,
                 normalize: bool = True, seed: int = 0) -> None:
        self.n_anchors = n_anchors
        self.method = method
        self.center = center
        self.normalize = normalize
        self.seed = seed

    def min_pairs(self, dx: int, dy: int) -> int:
        return self.n_anchors

    def fit(self, X: np.ndarray, y: np.ndarray | None = None, source=None, target=None,
            ids: Sequence[str] | None = None) -> "RelativeTranslator":
        """Pick `n_anchors` anchors among the pairs (rows of X and y); with `ids` (the pairs' ids) their ids
        are recorded in `anchor_ids_`."""
        super().fit(X, y, source=source, target=target)
        self.anchor_ids_ = [ids[r] for r in self.anchor_rows_] if ids is not None else None
        return self

    def _fit(self, X: np.ndarray, Y: np.ndarray) -> None:
        rows = select_anchors(X, self.n_anchors, self.method, self.seed)
        self.anchor_rows_ = rows
        self._set_anchors(X[rows], Y[rows])

    def _set_anchors(self, ax: np.ndarray, ay: np.ndarray) -> None:
        self.anchors_x_, self.anchors_y_ = ax, ay
        self.center_x_ = ax.mean(0) if self.center else np.zeros(ax.shape[1])
        self.center_y_ = ay.mean(0) if self.center else np.zeros(ay.shape[1])
        self.target_dim_out_ = len(ax)

    def fit_anchors(self, anchors_x: np.ndarray, anchors_y: np.ndarray, source=None, target=None,
                    anchor_ids: Sequence[str] | None = None) -> "RelativeTranslator":
        """Use the given anchors (row k of both = the same item) instead of selecting them."""
        ax, ay = as_matrix(anchors_x, "source anchors"), as_matrix(anchors_y, "target anchors")
        if len(ax) != len(ay):
            raise InvalidInputError("source and target anchors must be the same items")
        self.anchor_ids_ = list(anchor_ids) if anchor_ids is not None else None
        self._set_anchors(ax, ay)
        self._set_provenance(ax.shape[1], ay.shape[1], source, target, len(ax))
        return self

    def _transform(self, X: np.ndarray) -> np.ndarray:
        return relative_projection(X, self.anchors_x_, self.center_x_ if self.center else None, self.normalize)

    def _transform_target(self, Y: np.ndarray) -> np.ndarray:
        return relative_projection(Y, self.anchors_y_, self.center_y_ if self.center else None, self.normalize)

    def transform_space(self, space: Space) -> Space:
        """A space of either model -> the relative space (a target-model space through transform_target)."""
        self.check_is_fitted()
        if self.target_model_ and space.model == self.target_model_ and space.model != self.source_model_:
            rel = self.transform_target(np.asarray(space.vectors))
        else:
            self.check_source(space)
            rel = self.transform(np.asarray(space.vectors))
        return space.with_vectors(rel, model=f"relative({space.model})",
                                  extra={**space.extra, "relative_anchors": rel.shape[1]})

    def _extra_state(self) -> dict:
        return {"anchor_ids": getattr(self, "anchor_ids_", None)}

    def _set_extra_state(self, meta: dict) -> None:
        self.anchor_ids_ = meta.get("anchor_ids")
