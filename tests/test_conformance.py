"""One conformance suite over every registered estimator (after scikit-learn's `parametrize_with_checks`).

Every translator, compressor and sweep reducer registered when repspace.alignment, repspace.compress and
repspace.evaluation.sweep (and the upgrade's score models, repspace.collections.upgrade.fusion) are imported passes: the scikit-learn shape (hyper-parameters only in __init__,
get_params/set_params round trip, fit returns self, learned state in attr_), fit/transform shapes,
save -> load giving the same transforms (no pickle), NotFittedError before fit, and bad input refused.
A new estimator is covered by registering it; give it small hyper-parameters in FAST when its defaults are slow.
"""

from __future__ import annotations

import numpy as np
import pytest

import repspace.alignment  # noqa: F401  (registers the translators)
import repspace.compress  # noqa: F401  (registers the compressors)
from repspace.alignment import Translator
from repspace.collections.upgrade.fusion import Scorer
from repspace.compress import Compressor
from repspace.errors import DimensionMismatchError, InvalidInputError, InvalidVectorsError, NotFittedError
from repspace.evaluation.sweep import Reducer

FAMILIES = (Translator, Compressor, Reducer, Scorer)

# small hyper-parameters so the whole file runs in seconds (torch-trained ones: a few epochs)
FAST = {
    ("translator", "lowrank"): {"rank": 2},
    ("translator", "mlp"): {"hidden": 8, "epochs": 3, "patience": 2},
    ("translator", "relative"): {"n_anchors": 10},
    ("translator", "unsupervised"): {"pca_dim": 4, "sample": 100, "restarts": 1, "csls_k": 5, "soft_k": 5,
                                     "anneal_rounds": 5, "max_rounds": 10},
    ("compressor", "pca"): {"dims": [2, 4]},
    ("compressor", "matryoshka"): {"dims": [2, 4], "epochs": 2, "kind": "mlp", "hidden": 8},
    ("compressor", "csr"): {"k": 2, "hidden": 16, "epochs": 2, "batch_size": 64, "aux_k": 4},
}

CASES = [(base, name) for base in FAMILIES for name in base.registry]
IDS = [f"{base.family}:{name}" for base, name in CASES]


def make(base, name):
    return base.registry[name](**FAST.get((base.family, name), {}))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(5, 6)) * 3
    X = centers[rng.integers(0, 5, 120)] + rng.normal(size=(120, 6))
    Y = X @ rng.normal(size=(6, 4)) + 0.05 * rng.normal(size=(120, 4))
    return X, Y


def fit(est, X, Y):
    if isinstance(est, Scorer):  # a score per row: relevance labels (logistic) or a target value (ridge)
        y = np.asarray(Y)[:, 0] if np.ndim(Y) == 2 else np.asarray(Y)
        return est.fit(X, (y > np.median(y)).astype(np.float64) if len(y) else y)
    return est.fit(X, Y) if isinstance(est, Translator) else est.fit(X)


def apply(est, X):
    """The estimator's main map of X."""
    if isinstance(est, Reducer):
        return est.transform(X, 3)
    return est.decision_function(X) if isinstance(est, Scorer) else est.transform(X)


def outputs(est, X, Y) -> list[np.ndarray]:
    """Every transform the estimator offers, on X (and Y for a translator's target side)."""
    if isinstance(est, Translator):
        return [est.transform(X), est.transform_target(Y)]
    if isinstance(est, Compressor):
        return [est.transform(X), est.transform(X, min(est.dims_))]
    if isinstance(est, Scorer):
        return [est.decision_function(X)]
    return [est.transform(X, 3)]


@pytest.mark.parametrize("base, name", CASES, ids=IDS)
def test_init_holds_hyper_parameters_only(base, name):
    est = make(base, name)
    params = est.get_params()
    assert list(params) == type(est)._param_names()
    assert not [a for a in vars(est) if a.endswith("_")], "learned state before fit"
    assert not est.is_fitted()
    again = type(est)(**params)
    assert again.get_params() == params
    assert est.set_params(**params) is est and est.get_params() == params
    with pytest.raises(InvalidInputError, match="no parameter"):
        est.set_params(no_such_parameter=1)


@pytest.mark.parametrize("base, name", CASES, ids=IDS)
def test_fit_returns_self_and_transform_shapes(base, name, data):
    X, Y = data
    est = make(base, name)
    assert fit(est, X, Y) is est and est.is_fitted()
    outs = outputs(est, X, Y)
    for out in outs:
        assert out.dtype == np.float32 and out.shape[0] == len(X) and np.isfinite(out).all()
    if isinstance(est, Translator):
        assert outs[0].shape[1] == outs[1].shape[1]  # both sides land in one space
        if est.outputs_target_space:
            assert outs[0].shape[1] == Y.shape[1]
            np.testing.assert_array_equal(outs[1], Y.astype(np.float32))  # identity target side
    elif isinstance(est, Compressor):
        assert outs[0].shape[1] == max(est.dims_) and outs[1].shape[1] == min(est.dims_)
    elif isinstance(est, Scorer):
        assert outs[0].shape == (len(X),)
    else:
        assert outs[0].shape[1] == 3


@pytest.mark.parametrize("base, name", CASES, ids=IDS)
def test_save_load_roundtrip_and_refit(base, name, data, tmp_path):
    X, Y = data
    est = fit(make(base, name), X, Y)
    est.save(tmp_path / "est")
    assert not any(p.suffix in (".pkl", ".pickle", ".pt") for p in (tmp_path / "est").iterdir())
    back = base.load(tmp_path / "est")
    assert type(back) is type(est) and back.get_params() == est.get_params()
    for a, b in zip(outputs(est, X, Y), outputs(back, X, Y)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    # the same hyper-parameters on the same data learn the same thing (seeded)
    twin = fit(type(est)(**est.get_params()), X, Y)
    for a, b in zip(outputs(est, X, Y), outputs(twin, X, Y)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("base, name", CASES, ids=IDS)
def test_unfitted_use_raises_not_fitted(base, name, data, tmp_path):
    X, Y = data
    est = make(base, name)
    with pytest.raises(NotFittedError, match="not fitted"):
        outputs(est, X, Y) if not isinstance(est, Reducer) else apply(est, X)
    with pytest.raises(NotFittedError):
        est.save(tmp_path / "never")
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize("base, name", CASES, ids=IDS)
def test_bad_input_refused(base, name, data):
    X, Y = data
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(InvalidVectorsError, match="NaN"):
        fit(make(base, name), bad, Y)
    with pytest.raises(InvalidVectorsError, match="non-empty"):
        fit(make(base, name), X[:0], Y[:0])
    with pytest.raises(InvalidVectorsError, match="non-empty"):
        fit(make(base, name), X[0], Y[0])  # 1-d
    est = fit(make(base, name), X, Y)
    wrong = np.hstack([X, X])[:, :7]
    with pytest.raises(DimensionMismatchError):
        apply(est, wrong)
    with pytest.raises(InvalidVectorsError):
        apply(est, bad)
    with pytest.raises(InvalidVectorsError):
        apply(est, X[:0])
    if isinstance(est, Translator):
        with pytest.raises(DimensionMismatchError):
            est.transform_target(X)  # 6-d, the target side is 4-d
