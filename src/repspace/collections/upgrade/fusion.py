"""The upgrade's fitted score models, as estimators: how the terms of the fused score are weighed
(`NonNegLogistic`, twice: model A for items not yet backfilled, model B for backfilled ones) and which items the
adapter explains worst (`ResidualRidge`, which orders an `uncertainty` backfill).

Both are `repspace.estimator.Estimator`s of the family "scorer" (`fit(X, y)` returns self, learned state in
`coef_` / `intercept_`, `decision_function(X)`, save/load, one conformance test over every registered one).
In a collection's metadata they are kept as JSON (`to_list`/`from_list`; the fusion as {"A": [w…, b],
"B": [w…, b]}, the uncertainty as {"w": […], "b": b} — the layout collections have always had).

`fusion_pairs` builds the training pairs of the fusion from queries over the re-embedded sample.
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

import numpy as np

from repspace.errors import InvalidInputError
from repspace.estimator import Estimator
from repspace.ops.validation import as_matrix, check_width

# the fusion's terms, in column order: q_old·old, A(q_new)·old, q_new·new
TERMS = ("old", "adapted", "new")
NEUTRAL = {"A": [1.0, 1.0, 0.0], "B": [1.0, 0.0, 1.0, 0.0]}  # before the fusion is fitted
MIXED = {"A": [0.0, 1.0, 0.0], "B": [0.0, 0.0, 1.0, 0.0]}  # the `mixed` strategy: raw cosines, new where backfilled


class Scorer(Estimator):
    """A fitted map from features (n, d) to one score per row (n,)."""

    family: ClassVar[str] = "scorer"
    registry: ClassVar[dict[str, type[Estimator]]] = {}
    _state_keys = ("coef_", "intercept_")
    _fitted_attr = "n_features_"

    def fit(self, X: np.ndarray, y: np.ndarray) -> "Scorer":
        X = as_matrix(X, "features")
        y = np.asarray(y, np.float64).reshape(-1)
        if len(y) != len(X):
            raise InvalidInputError(f"{len(y)} targets for {len(X)} rows", param="y")
        coef, intercept = self._fit(X, y)
        self.coef_ = np.asarray(coef, np.float64)
        self.intercept_ = np.asarray([intercept], np.float64)
        self.n_features_ = X.shape[1]
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        self.check_is_fitted()
        X = as_matrix(X, "features")
        check_width(X, self.n_features_, f"{self.name} scores {self.n_features_} features")
        return (X @ self.coef_ + self.intercept_[0]).astype(np.float32)

    def _set_extra_state(self, extra: dict[str, Any]) -> None:
        self.n_features_ = int(len(self.coef_))

    def _fit(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
        raise NotImplementedError

    # metadata form: [coef…, intercept]
    def to_list(self) -> list[float]:
        self.check_is_fitted()
        return [float(w) for w in self.coef_] + [float(self.intercept_[0])]

    @classmethod
    def from_list(cls, values: Sequence[float], **params: Any) -> "Scorer":
        obj = cls(**params)
        obj.coef_ = np.asarray(values[:-1], np.float64)
        obj.intercept_ = np.asarray([values[-1]], np.float64)
        obj.n_features_ = len(obj.coef_)
        return obj


class NonNegLogistic(Scorer):
    """Logistic regression with non-negative weights and a free bias, positives re-weighted to balance the
    negatives: a higher similarity under any model never counts against an item, which keeps the fit from
    exploiting quirks of pseudo-queries. `decision_function` is the log-odds of relevance."""

    name = "nonneg-logistic"

    def __init__(self, l2: float = 1e-4, balance: bool = True) -> None:
        self.l2 = l2
        self.balance = balance

    def _fit(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
        from scipy.optimize import minimize

        pos = max(1.0, y.sum())
        sw = np.where(y > 0, (len(y) - pos) / pos, 1.0) if self.balance else np.ones(len(y))
        sw = sw / sw.mean()
        l2 = self.l2

        def loss(theta):
            w, b = theta[:-1], theta[-1]
            z = X @ w + b
            p = 1.0 / (1.0 + np.exp(-z))
            val = np.mean(sw * (np.logaddexp(0.0, z) - y * z)) + l2 * (w @ w)
            g = sw * (p - y) / len(y)
            return val, np.concatenate([X.T @ g + 2 * l2 * w, [g.sum()]])

        theta0 = np.concatenate([np.ones(X.shape[1]), [0.0]])
        bounds = [(0.0, None)] * X.shape[1] + [(None, None)]
        res = minimize(loss, theta0, jac=True, method="L-BFGS-B", bounds=bounds)
        return res.x[:-1], float(res.x[-1])


class ResidualRidge(Scorer):
    """Ridge regression (`alignment.linear.ridge_fit`): predicts how badly the adapter explains an item's old
    vector from that vector, so a backfill can re-embed the worst-explained items first."""

    name = "ridge"

    def __init__(self, alpha: float = 1e-3) -> None:
        self.alpha = alpha

    def _fit(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
        from repspace.alignment.linear import ridge_fit

        W, b = ridge_fit(X, y[:, None], self.alpha)
        return W[:, 0], float(b[0])


def fit_fusion(features: np.ndarray, labels: np.ndarray) -> dict[str, list[float]]:
    """The fusion's two models on the same pairs: A from (q_old·old, A(q_new)·old), B from all three terms."""
    return {name: NonNegLogistic().fit(features[:, cols], labels).to_list()
            for name, cols in (("A", [0, 1]), ("B", [0, 1, 2]))}


def fusion_pairs(q_old: np.ndarray, q_ad: np.ndarray, q_new: np.ndarray, g_old: np.ndarray, g_new: np.ndarray,
                 relevant: Sequence[Sequence[int]], top: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Training pairs of the fusion: for each query (unit vectors in the old model, adapted, new), its top `top`
    sample items under each term plus its relevant ones, as (features: the three cosines, label: relevant)."""
    s_oo, s_ao, s_nn = q_old @ g_old.T, q_ad @ g_old.T, q_new @ g_new.T
    feats, labels = [], []
    k = min(top, g_old.shape[0])
    for j in range(len(q_old)):
        cand = set()
        for s in (s_oo[j], s_ao[j], s_nn[j]):
            cand.update(np.argpartition(-s, k - 1)[:k].tolist())
        rel = [int(x) for x in relevant[j]]
        cand.update(rel)
        c = np.fromiter(cand, np.int64)
        feats.append(np.stack([s_oo[j, c], s_ao[j, c], s_nn[j, c]], 1))
        labels.append(np.isin(c, rel).astype(np.int64))
    return np.concatenate(feats), np.concatenate(labels)
