"""The upgrade's fitted score models, as estimators: how the terms of the fused score are weighed
(`NonNegLogistic`, twice: model A for items not yet backfilled, model B for backfilled ones) and which items the
adapter explains worst (`ResidualRidge`, which orders an `uncertainty` backfill).

Both are `repspace.estimator.Estimator`s of the family "scorer" (`fit(X, y, sample_weight=None)` returns self, learned state in
`coef_` / `intercept_`, `decision_function(X)`, save/load, one conformance test over every registered one).
In a collection's metadata they are kept as JSON (`to_list`/`from_list`; the fusion as {"A": [w…, b],
"B": [w…, b]}, the uncertainty as {"w": […], "b": b} — the layout collections have always had).

`fusion_pairs` builds the training pairs of the fusion from queries over the re-embedded sample, with the weights
that calibrate the fit to the collection's density (each non-relevant sample item stands for N / n items of the
collection); `fit_fusion` fits A and B on them (weighted, or class-balanced without weights).
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

    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> "Scorer":
        """Learn from features `X` (n, d) and targets `y` (n,); `sample_weight` (n,), non-negative: how many rows of
        the population each row stands for (None: one each)."""
        X = as_matrix(X, "features")
        y = np.asarray(y, np.float64).reshape(-1)
        if len(y) != len(X):
            raise InvalidInputError(f"{len(y)} targets for {len(X)} rows", param="y")
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight, np.float64).reshape(-1)
            if len(sample_weight) != len(X):
                raise InvalidInputError(f"{len(sample_weight)} weights for {len(X)} rows", param="sample_weight")
            if not np.isfinite(sample_weight).all() or (sample_weight < 0).any() or (len(X) and not sample_weight.sum() > 0):
                raise InvalidInputError("sample weights must be finite, non-negative and not all zero",
                                        param="sample_weight")
        coef, intercept = self._fit(X, y, sample_weight)
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

    def _fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None) -> tuple[np.ndarray, float]:
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


def logistic_objective(theta: np.ndarray, X: np.ndarray, y: np.ndarray, w: np.ndarray,
                       l2: float) -> tuple[float, np.ndarray]:
    """The weighted logistic loss and its gradient in theta = [coef…, bias]:

        L(θ) = Σ_i w_i (log(1 + e^{z_i}) − y_i z_i) / Σ_i w_i + l2 ‖coef‖²,   z_i = x_i · coef + bias

    (a row of weight m counts as m copies of it; the bias is not penalised)."""
    from scipy.special import expit

    coef, b = theta[:-1], theta[-1]
    z = X @ coef + b
    p = expit(z)
    total = w.sum()
    val = float(w @ (np.logaddexp(0.0, z) - y * z)) / total + l2 * float(coef @ coef)
    g = w * (p - y) / total
    return val, np.concatenate([X.T @ g + 2 * l2 * coef, [g.sum()]])


L2 = 1e-4  # the fusion's default penalty


class NonNegLogistic(Scorer):
    """Logistic regression with non-negative weights and a free bias: a higher similarity under any model never
    counts against an item, which keeps the fit from exploiting quirks of pseudo-queries. `decision_function` is the
    log-odds of relevance. It minimises `logistic_objective` with the rows' `sample_weight` (default 1 each);
    `balance` then scales the positives' weights so that they weigh as much as the negatives together (a class
    balance that forgets the population's prevalence: leave it off where the weights carry that prevalence)."""

    name = "nonneg-logistic"

    def __init__(self, l2: float = L2, balance: bool = True) -> None:
        self.l2 = l2
        self.balance = balance

    def _fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None) -> tuple[np.ndarray, float]:
        from scipy.optimize import minimize

        w = np.ones(len(y)) if sample_weight is None else sample_weight.copy()
        if self.balance:
            pos, neg = w[y > 0].sum(), w[y <= 0].sum()
            if pos > 0 and neg > 0:
                w[y > 0] *= neg / pos
        theta0 = np.concatenate([np.ones(X.shape[1]), [0.0]])
        if not len(y):
            return theta0[:-1], 0.0
        bounds = [(0.0, None)] * X.shape[1] + [(None, None)]
        # The loss is an average over all the pairs' weight. Where the relevant pairs are a tiny share of it (a fit
        # calibrated to a large collection: 300 relevant pairs against millions of weighted competitors), its
        # gradient falls under L-BFGS-B's tolerance at the first steps and the fit stops near its start (measured:
        # gcide at 200k items, weights 0.1 where the minimum has 11.5, 10.9 against 9.2 of loss). Scaled so that the
        # relevant pairs weigh 1 in all: the same minimum, a gradient of their order.
        relevant = w[y > 0].sum()
        scale = float(w.sum() / relevant) if relevant > 0 else 1.0

        def objective(theta):
            val, grad = logistic_objective(theta, X, y, w, self.l2)
            return val * scale, grad * scale

        res = minimize(objective, theta0, jac=True, method="L-BFGS-B", bounds=bounds)
        return res.x[:-1], float(res.x[-1])


class ResidualRidge(Scorer):
    """Ridge regression (`alignment.linear.ridge_fit`): predicts how badly the adapter explains an item's old
    vector from that vector, so a backfill can re-embed the worst-explained items first."""

    name = "ridge"

    def __init__(self, alpha: float = 1e-3) -> None:
        self.alpha = alpha

    def _fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None) -> tuple[np.ndarray, float]:
        from repspace.alignment.linear import ridge_fit

        if sample_weight is not None:
            raise InvalidInputError("the ridge scorer takes no sample weights", param="sample_weight")

        W, b = ridge_fit(X, y[:, None], self.alpha)
        return W[:, 0], float(b[0])


def fit_fusion(features: np.ndarray, labels: np.ndarray,
               sample_weight: np.ndarray | None = None) -> dict[str, list[float]]:
    """The fusion's two models on the same pairs: A from (q_old·old, A(q_new)·old), B from all three terms.

    Without weights, each model is the class-balanced `NonNegLogistic` (the fit before density calibration). With
    `sample_weight` (`fusion_pairs`' third output), each pair counts as that many pairs of the collection and the
    classes are not re-balanced, so both models estimate the log-odds of relevance at the collection's density;
    the penalty l2 is scaled by the relevant pairs' share of the weight, so it weighs against them as the balanced
    fit's does (there they are half of it)."""
    def model(w):
        if w is None:
            return NonNegLogistic()
        share = float(w[labels > 0].sum() / w.sum()) if w.sum() > 0 else 0.5
        return NonNegLogistic(l2=2 * L2 * share, balance=False)

    w = None if sample_weight is None else np.asarray(sample_weight, np.float64)
    fitted = {name: model(w).fit(features[:, cols], labels, sample_weight=w).to_list()
              for name, cols in (("A", [0, 1]), ("B", [0, 1, 2]))}
    # a fit that learned nothing (every weight ~0: pairs without signal) would score every item alike: the neutral
    # fusion instead (benchmarks: gcide's one-token pseudo-queries gave recall 0 before this)
    return {name: coef if max(coef[:-1]) > 1e-6 else list(NEUTRAL[name]) for name, coef in fitted.items()}


def fit_end(features: np.ndarray, labels: np.ndarray) -> list[float]:
    """`B_end`: model B with the new model's term alone ([0, 0, w, bias]), class-balanced, on the same pairs — what
    a fusion fitted on pseudo-queries fades into as the backfill completes (`served`)."""
    coef = NonNegLogistic().fit(features[:, [2]], labels).to_list()
    return [0.0, 0.0, coef[0], coef[1]] if coef[0] > 1e-6 else [0.0, 0.0, 1.0, 0.0]


def served(fusion: dict[str, Any] | None, fraction: float) -> dict[str, Any]:
    """The weights a fused search uses when `fraction` of the live items are backfilled. A fusion with `B_end` (fitted
    on pseudo-queries) fades B into it: B(f) = (1 − f)·B + f·B_end, so with every item backfilled the new model alone
    ranks. Pseudo-queries are the items' own words, which the old model finds as well as the new one, so they credit
    the old model with more than it adds on real queries (bbc-sentences ended 0.0106 recall@10 below new → new with
    B alone); B's old-space terms matter while backfilled items compete with items scored by A (a share 1 − f of
    them). A fusion fitted on real queries (`--fit-queries`) serves its B throughout; no fusion: the neutral one."""
    if not fusion:
        return {k: list(v) for k, v in NEUTRAL.items()}
    end = fusion.get("B_end")
    if end is None:
        return fusion
    f = min(max(float(fraction), 0.0), 1.0)
    return {**fusion, "B": [(1.0 - f) * b + f * e for b, e in zip(fusion["B"], end)]}


def density_of(collection: int, sample: int) -> float:
    """How many items of the collection each item of the fit's sample stands for: N / n (at least 1)."""
    return max(1.0, collection / max(1, sample))


def fusion_pairs(q_old: np.ndarray, q_ad: np.ndarray, q_new: np.ndarray, g_old: np.ndarray, g_new: np.ndarray,
                 relevant: Sequence[Sequence[int]], top: int = 50,
                 density: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training pairs of the fusion: for each query (unit vectors in the old model, adapted, new), its top `top`
    sample items under each term plus its relevant ones, as (features: the three cosines, label: relevant, weight).

    The weight calibrates the fit to the collection's density (`density` = N / n, `density_of`): a query's relevant
    item is the one it was made for (weight 1), while each other sample item stands for `density` items of the
    collection, so Σ_pairs w · loss estimates the loss over the whole collection's competitors (Horvitz–Thompson;
    the sample items outside each term's top `top` are left out, as their loss is near zero). Density 1: every pair
    counts once."""
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
    y = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    F = np.concatenate(feats) if feats else np.zeros((0, 3))
    return F, y, np.where(y > 0, 1.0, float(density))
