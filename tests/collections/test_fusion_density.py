"""The fusion calibrated to the collection's density (`collections/upgrade/fusion.py`): the weighted logistic
objective against a direct computation, a weight of m on a row against m copies of it, the pairs' weights
(relevant 1, every other sample item N / n), and what `fit_fusion` fits with them."""

import math

import numpy as np
import pytest

from repspace.collections.upgrade.fusion import (L2, NEUTRAL, NonNegLogistic, density_of, fit_end, fit_fusion,
                                                 fusion_pairs, logistic_objective, served)
from repspace.errors import InvalidInputError

X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
Y = np.array([1.0, 0.0, 0.0])


def test_weighted_objective_is_the_direct_computation():
    # theta = (coef 0.5, 0.25; bias -0.5); weights 1 (relevant), 3, 3 (negatives standing for 3 items each)
    theta, w, l2 = np.array([0.5, 0.25, -0.5]), np.array([1.0, 3.0, 3.0]), 0.1
    z = [0.5 - 0.5, 0.25 - 0.5, 0.75 - 0.5]  # 0, -0.25, 0.25
    want = (1 * (math.log(2) - 0) + 3 * math.log(1 + math.exp(-0.25)) + 3 * math.log(1 + math.exp(0.25))) / 7
    want += l2 * (0.5**2 + 0.25**2)
    val, grad = logistic_objective(theta, X, Y, w, l2)
    assert val == pytest.approx(want, abs=1e-12)
    sig = lambda t: 1 / (1 + math.exp(-t))  # noqa: E731
    r = [w[i] * (sig(z[i]) - Y[i]) / 7 for i in range(3)]
    want_grad = [r[0] + r[2] + 2 * l2 * 0.5, r[1] + r[2] + 2 * l2 * 0.25, sum(r)]
    np.testing.assert_allclose(grad, want_grad, atol=1e-12)
    # and the gradient is the objective's: central differences
    eps = 1e-6
    num = [(logistic_objective(theta + eps * e, X, Y, w, l2)[0] - logistic_objective(theta - eps * e, X, Y, w, l2)[0])
           / (2 * eps) for e in np.eye(3)]
    np.testing.assert_allclose(grad, num, atol=1e-8)


def test_a_weight_of_m_is_m_copies():
    rng = np.random.default_rng(0)
    F = rng.uniform(-0.2, 1.0, (40, 3))
    y = (F @ [2.0, 1.0, 3.0] + rng.normal(0, 0.8, 40) > 2.5).astype(float)
    m = 7  # N / n: each negative stands for 7 items
    w = np.where(y > 0, 1.0, m)
    dup = np.concatenate([np.flatnonzero(y > 0)] + [np.flatnonzero(y <= 0)] * m)
    theta = np.array([0.3, 1.2, 0.7, -1.0])
    # the same objective (value and gradient) at any theta ...
    a, ga = logistic_objective(theta, F, y, w, 1e-3)
    b, gb = logistic_objective(theta, F[dup], y[dup], np.ones(len(dup)), 1e-3)
    assert a == pytest.approx(b, abs=1e-12)
    np.testing.assert_allclose(ga, gb, atol=1e-12)
    # ... so the same fit
    weighted = NonNegLogistic(balance=False).fit(F, y, sample_weight=w)
    copies = NonNegLogistic(balance=False).fit(F[dup], y[dup])
    np.testing.assert_allclose(weighted.to_list(), copies.to_list(), rtol=1e-5, atol=1e-5)
    assert (weighted.coef_ >= 0).all()
    # the balanced fit scales the relevant rows to weigh as much as all the negatives together
    bal = NonNegLogistic().fit(F, y, sample_weight=w)
    scaled = np.where(y > 0, w[y <= 0].sum() / w[y > 0].sum(), w)
    np.testing.assert_allclose(bal.to_list(), NonNegLogistic(balance=False).fit(F, y, sample_weight=scaled).to_list(),
                               rtol=1e-5, atol=1e-5)


def test_denser_negatives_lower_the_bias_by_about_log_m():
    """With features that carry no signal, the fitted bias is the log-odds of the prevalence: log(pos / (m · neg))."""
    F = np.zeros((10, 2))
    y = np.array([1.0] * 5 + [0.0] * 5)
    for m in (1.0, 10.0):
        fit = NonNegLogistic(l2=0.0, balance=False).fit(F, y, sample_weight=np.where(y > 0, 1.0, m))
        assert fit.intercept_[0] == pytest.approx(math.log(1 / m), abs=1e-4)


def test_a_fit_where_the_relevant_pairs_are_a_tiny_share_of_the_weight_reaches_the_minimum():
    """300 relevant pairs against 30,000 competitors of weight 200 each (a 1,000-item sample of a 200k collection):
    the relevant pairs are 5e-5 of the loss's weight. The fit must still reach the minimum — checked against
    scikit-learn's logistic regression on the same pairs (weights divided by 200: the same minimum, no penalty);
    before the objective was scaled, L-BFGS-B stopped at once with weights ~0.1."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    F = np.concatenate([rng.normal(0.45, 0.08, (300, 2)), rng.normal(0.12, 0.08, (30_000, 2))])
    y = np.r_[np.ones(300), np.zeros(30_000)]
    w = np.where(y > 0, 1.0, 200.0)
    fit = NonNegLogistic(l2=0.0, balance=False).fit(F, y, sample_weight=w)
    ref = LogisticRegression(C=1e10, tol=1e-12, max_iter=100_000).fit(F, y, sample_weight=w / 200.0)
    assert np.all(ref.coef_[0] > 5)  # the minimum: a steep positive slope on both similarities
    np.testing.assert_allclose(fit.coef_, ref.coef_[0], rtol=2e-2)
    assert fit.intercept_[0] == pytest.approx(ref.intercept_[0], rel=2e-2)


def test_pairs_carry_the_density_weights():
    rng = np.random.default_rng(1)
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    g_old, g_new, q = unit(rng.normal(size=(30, 4))), unit(rng.normal(size=(30, 5))), unit(rng.normal(size=(6, 4)))
    qn = unit(rng.normal(size=(6, 5)))
    rel = [[j] for j in range(6)]
    F, y, w = fusion_pairs(q, q, qn, g_old, g_new, rel, top=5, density=12.5)
    assert F.shape == (len(y), 3) and y.sum() == 6
    np.testing.assert_array_equal(w, np.where(y > 0, 1.0, 12.5))
    # the features are the three cosines
    for j in range(6):
        assert any(np.allclose(row, [q[j] @ g_old[j], q[j] @ g_old[j], qn[j] @ g_new[j]]) for row in F[y > 0])
    assert density_of(38169, 1000) == pytest.approx(38.169) and density_of(10, 20) == 1.0 and density_of(5, 0) == 5.0
    # fit_fusion with weights: unbalanced fits with the penalty scaled by the relevant pairs' share
    got = fit_fusion(F, y, sample_weight=w)
    share = w[y > 0].sum() / w.sum()
    for name, cols in (("A", [0, 1]), ("B", [0, 1, 2])):
        want = NonNegLogistic(l2=2 * L2 * share, balance=False).fit(F[:, cols], y, sample_weight=w).to_list()
        if max(want[:-1]) <= 1e-6:  # learned nothing (6 queries): the neutral fusion is kept instead
            want = NEUTRAL[name]
        assert got[name] == pytest.approx(want)
    # without weights: the class-balanced fit of before
    want = NonNegLogistic().fit(F, y).to_list()
    assert fit_fusion(F, y)["B"] == pytest.approx(want if max(want[:-1]) > 1e-6 else NEUTRAL["B"])


@pytest.mark.parametrize("w", [[1.0, -1.0, 1.0], [1.0, np.nan, 1.0], [0.0, 0.0, 0.0], [1.0, 1.0]])
def test_bad_weights(w):
    with pytest.raises(InvalidInputError) as e:
        NonNegLogistic().fit(X, Y, sample_weight=np.asarray(w))
    assert e.value.param == "sample_weight"


def test_a_fit_without_signal_falls_back_to_the_neutral_fusion():
    """Pairs whose features carry nothing (every feature alike) fit all-zero weights, which would tie every item:
    the neutral fusion is kept instead."""
    labels = np.tile([1.0, 0.0, 0.0, 0.0], 50)
    assert fit_fusion(np.zeros((200, 3)), labels) == NEUTRAL


def test_a_pseudo_query_skips_a_one_token_first_sentence():
    from repspace.collections.upgrade.lifecycle import pseudo_query

    assert pseudo_query("n. A small domesticated animal that purrs. It lives with people.") == \
        "n. A small domesticated animal that purrs."
    assert pseudo_query("A long first sentence of the article here. Then more.") == \
        "A long first sentence of the article here."
    assert pseudo_query("n. Cat.") == "n."  # the whole item: its first half, never the item itself


def test_a_pseudo_query_fusion_fades_into_the_new_model_as_the_backfill_completes():
    """served(fusion, f): B(f) = (1 − f)·B + f·B_end (clamped to 0 ≤ f ≤ 1); a fusion without B_end (fitted on real
    queries) serves as fitted; none at all: the neutral fusion."""
    fusion = {"A": [2.0, 1.0, -3.0], "B": [4.0, 1.0, 2.0, -5.0], "B_end": [0.0, 0.0, 8.0, -4.0], "from": "pseudo-queries"}
    assert served(fusion, 0.0)["B"] == [4.0, 1.0, 2.0, -5.0]
    assert served(fusion, 1.0)["B"] == [0.0, 0.0, 8.0, -4.0]
    assert served(fusion, 0.25)["B"] == pytest.approx([3.0, 0.75, 3.5, -4.75])
    assert served(fusion, 1.5)["B"] == served(fusion, 1.0)["B"] and served(fusion, -1)["B"] == fusion["B"]
    assert served(fusion, 0.25)["A"] == fusion["A"] and fusion["B"] == [4.0, 1.0, 2.0, -5.0]  # A kept, input unchanged
    fitted = {k: v for k, v in fusion.items() if k != "B_end"}
    assert served(fitted, 0.7) == fitted and served(None, 0.7) == NEUTRAL


def test_b_end_is_the_new_term_alone_fitted_on_the_same_pairs():
    rng = np.random.default_rng(2)
    F = rng.uniform(-0.2, 1.0, (60, 3))
    y = (F @ [0.5, 0.2, 3.0] + rng.normal(0, 0.5, 60) > 1.8).astype(float)
    end = fit_end(F, y)
    want = NonNegLogistic().fit(F[:, [2]], y).to_list()  # class-balanced, as B on pseudo-queries
    assert end[:2] == [0.0, 0.0] and end[2:] == pytest.approx(want) and end[2] > 0
    # a new term without signal: the new cosine as it is (never a tie of every item)
    assert fit_end(np.zeros((40, 3)), np.tile([1.0, 0.0, 0.0, 0.0], 10)) == [0.0, 0.0, 1.0, 0.0]


def test_the_backfilled_share_is_recounted_at_most_every_few_seconds(monkeypatch):
    """A search recounts the share when the version moved and the last count is SHARE_REFRESH_S old (a count of a
    slot's vectors reads its column); a backfill's own final count is taken as it is."""
    import importlib
    from types import SimpleNamespace

    bf = importlib.import_module("repspace.collections.upgrade.backfill")  # (the package exports a function so named)

    class Coll:
        def __init__(self):
            self._memo, self.counts, self.done, self.version = {}, 0, 5, 1
            self.store = SimpleNamespace(version=lambda: self.version)

        def memo(self, key, version, build):  # Collection.memo's contract
            hit = self._memo.get(key)
            if hit is None or hit[0] != version:
                hit = self._memo[key] = (version, build())
            return hit[1]

        def count(self, slot=None):
            self.counts += 1
            return 10 if slot is None else self.done

    clock = [100.0]
    monkeypatch.setattr(bf.time, "monotonic", lambda: clock[0])
    c, up = Coll(), SimpleNamespace(new="new-model")
    assert bf.backfilled_share(c, up, 1) == 0.5 and c.counts == 2  # first: counted
    c.done = 8
    assert bf.backfilled_share(c, up, 1) == 0.5 and c.counts == 2  # same version: kept
    assert bf.backfilled_share(c, up, 2) == 0.5 and c.counts == 2  # moved, but counted 0 s ago: kept
    clock[0] += bf.SHARE_REFRESH_S
    assert bf.backfilled_share(c, up, 2) == 0.8 and c.counts == 4  # moved and old enough: recounted
    clock[0] += 100
    assert bf.backfilled_share(c, up, 2) == 0.8 and c.counts == 4  # not moved: kept, however old
    assert bf.backfilled_share(c, up, None) == 0.8 and c.counts == 6  # no version (an application's table): old enough
    c.version = 3
    bf.remember_share(c, up, 1.0)  # a backfill's final count, at the version it left
    assert bf.backfilled_share(c, up, 3) == 1.0 and c.counts == 6
    assert bf.backfilled_share(c, SimpleNamespace(new="other"), 3) == 0.8 and c.counts == 8  # another upgrade: its own
