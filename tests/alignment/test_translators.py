import numpy as np
import pytest

from repspace.alignment import (Affine, LeastSquares, LowRank, MLPTranslator, Procrustes, RelativeTranslator, Ridge,
                                UnsupervisedTranslator, load_translator, relative_projection, select_anchors)
from repspace.errors import (DimensionMismatchError, InvalidInputError, InvalidVectorsError, NotFittedError,
                             SpaceFormatError)


def _rotation(rng, d):
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return q


def test_procrustes_recovers_rotation_exactly(rng):
    X = rng.normal(size=(200, 16))
    Q = _rotation(rng, 16)
    t = Procrustes(center=False, scale=False).fit(X, X @ Q)
    np.testing.assert_allclose(t.W_, Q, atol=1e-10)
    np.testing.assert_allclose(t.transform(X), X @ Q, atol=1e-5)
    np.testing.assert_allclose(t.inverse_transform(X @ Q), X, atol=1e-5)


def test_procrustes_translation_and_scale(rng):
    X = rng.normal(size=(100, 8))
    Q = _rotation(rng, 8)
    Y = 2.5 * X @ Q + 3.0
    t = Procrustes(center=True, scale=True).fit(X, Y)
    assert t.scale_[0] == pytest.approx(2.5)
    np.testing.assert_allclose(t.transform(X), Y, atol=1e-4)


def test_procrustes_dimension_rule(rng):
    # dx < dy: semi-orthogonal W with orthonormal rows; an isometric embedding is recovered
    X = rng.normal(size=(300, 6))
    E = _rotation(rng, 10)[:6]          # (6, 10) orthonormal rows
    t = Procrustes(center=False, scale=False).fit(X, X @ E)
    np.testing.assert_allclose(t.W_ @ t.W_.T, np.eye(6), atol=1e-10)
    np.testing.assert_allclose(t.transform(X), X @ E, atol=1e-5)
    # dx > dy: orthonormal columns
    t2 = Procrustes(center=False, scale=False).fit(X @ E, X)
    np.testing.assert_allclose(t2.W_.T @ t2.W_, np.eye(6), atol=1e-10)


@pytest.mark.parametrize("cls, kw", [(LeastSquares, {}), (Affine, {}), (Ridge, {"alpha": 1e-8}), (LowRank, {"rank": 5, "alpha": 1e-8})])
def test_linear_maps_recover_a_linear_relation(rng, cls, kw):
    X = rng.normal(size=(300, 10))
    A = rng.normal(size=(10, 5))  # rank 5
    Y = X @ A + (0.5 if cls in (Affine, Ridge, LowRank) else 0.0)
    t = cls(**kw).fit(X, Y)
    np.testing.assert_allclose(t.transform(X), Y, atol=1e-3)


def test_lowrank_has_the_requested_rank(rng):
    X, Y = rng.normal(size=(200, 12)), rng.normal(size=(200, 9))
    t = LowRank(rank=3).fit(X, Y)
    assert np.linalg.matrix_rank(t.W_, tol=1e-8) == 3


def test_mlp_learns_a_nonlinear_map_better_than_linear(rng):
    X = rng.normal(size=(1500, 4))
    Y = np.tanh(X @ rng.normal(size=(4, 3))) * 2
    lin = Ridge().fit(X[:1200], Y[:1200])
    mlp = MLPTranslator(hidden=64, epochs=150, lr=3e-3, patience=20).fit(X[:1200], Y[:1200])
    err = lambda t: np.mean((t.transform(X[1200:]) - Y[1200:]) ** 2)  # noqa: E731
    assert err(mlp) < 0.5 * err(lin)
    assert mlp.epochs_run_ <= 150


def test_relative_invariant_to_rotation_and_scale(rng):
    X = rng.normal(size=(300, 12)) + 1.0
    Q = _rotation(rng, 12)
    for center in (False, True):
        anchors = X[:20]
        r1 = relative_projection(X, anchors, anchors.mean(0) if center else None)
        Z, za = 4.0 * X @ Q, 4.0 * anchors @ Q
        r2 = relative_projection(Z, za, za.mean(0) if center else None)
        np.testing.assert_allclose(r1, r2, atol=1e-5)
    t = RelativeTranslator(n_anchors=30).fit(X, 4.0 * X @ Q)
    np.testing.assert_allclose(t.transform(X), t.transform_target(4.0 * X @ Q), atol=1e-5)


@pytest.mark.parametrize("method", ["random", "kmeans", "fps"])
def test_anchor_selection(rng, method):
    X = rng.normal(size=(200, 8))
    rows = select_anchors(X, 25, method)
    assert len(rows) == 25 == len(set(rows.tolist())) and rows.max() < 200


def test_unsupervised_recovers_permutation_of_rotated_space(rng):
    n, d = 1500, 24
    centers = rng.normal(size=(15, d)) * 2
    X = (centers[rng.integers(0, 15, n)] + 0.7 * rng.normal(size=(n, d))) * np.linspace(2, 0.5, d)
    perm = rng.permutation(n)
    Y = (X @ _rotation(rng, d))[perm]
    t = UnsupervisedTranslator(pca_dim=24).fit(X, Y)
    T = t.transform(X)
    T /= np.linalg.norm(T, axis=1, keepdims=True)
    Yn = Y / np.linalg.norm(Y, axis=1, keepdims=True)
    assert np.mean(np.argmax(T @ Yn.T, axis=1) == np.argsort(perm)) > 0.99
    assert t.converged_ and t.history_[-1]["changed"] < 0.005


def test_save_load_roundtrip_all(tmp_path, rng):
    X, Y = rng.normal(size=(120, 6)), rng.normal(size=(120, 4))
    for t in (Procrustes(), LeastSquares(), Ridge(), Affine(), LowRank(rank=2), RelativeTranslator(n_anchors=10),
              MLPTranslator(hidden=8, epochs=3)):
        t.fit(X, Y)
        t.save(tmp_path / t.name)
        u = load_translator(tmp_path / t.name)
        assert type(u) is type(t)
        np.testing.assert_allclose(u.transform(X), t.transform(X), atol=1e-6)
        assert not any(p.suffix in (".pkl", ".pickle", ".pt") for p in (tmp_path / t.name).iterdir())


def test_bad_inputs(tmp_path, rng):
    X = rng.normal(size=(50, 8))
    with pytest.raises(InvalidInputError, match="needs at least as many pairs as source dimensions"):
        LeastSquares().fit(X[:5], X[:5])
    with pytest.raises(InvalidInputError, match="more pairs than the rank"):
        LowRank(rank=10).fit(X[:8], X[:8])
    bad = X.copy(); bad[3, 2] = np.nan
    with pytest.raises(InvalidVectorsError, match="NaN"):
        Procrustes().fit(bad, X)
    t = Procrustes().fit(X, X)
    with pytest.raises(DimensionMismatchError, match="maps 8-d"):
        t.transform(rng.normal(size=(3, 5)))
    (tmp_path / "junk").mkdir()
    with pytest.raises(SpaceFormatError, match="not a repspace translator"):
        load_translator(tmp_path / "junk")
    with pytest.raises(NotFittedError, match="not fitted"):  # a NotFittedError, no longer an InvalidInputError
        Procrustes().transform(X)
