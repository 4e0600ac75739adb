import numpy as np
import pytest

from repspace import Space
from repspace.evaluation import compare, linear_cka
from repspace.evaluation.similarity import mutual_knn, procrustes_distance, rbf_cka, rsa, svcca


def _textbook_cka(X, Y):
    n = len(X)
    H = np.eye(n) - 1.0 / n
    K, L = X @ X.T, Y @ Y.T
    hsic = lambda a, b: np.trace(a @ H @ b @ H) / (n - 1) ** 2  # noqa: E731
    return hsic(K, L) / np.sqrt(hsic(K, K) * hsic(L, L))


def _textbook_unbiased_hsic(K, L):
    n = len(K)
    K, L = K.copy(), L.copy()
    np.fill_diagonal(K, 0); np.fill_diagonal(L, 0)
    one = np.ones(n)
    return (np.trace(K @ L) + (one @ K @ one) * (one @ L @ one) / ((n - 1) * (n - 2))
            - 2 / (n - 2) * one @ K @ L @ one) / (n * (n - 3))


@pytest.fixture
def xy(rng):
    X = rng.normal(size=(120, 10))
    Y = X @ rng.normal(size=(10, 6)) + 0.5 * rng.normal(size=(120, 6))
    return X, Y


def test_linear_cka_textbook(xy):
    X, Y = xy
    assert linear_cka(X, Y) == pytest.approx(_textbook_cka(X, Y), abs=1e-10)


def test_debiased_cka_textbook(xy):
    X, Y = xy
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    K, L = Xc @ Xc.T, Yc @ Yc.T
    ref = _textbook_unbiased_hsic(K, L) / np.sqrt(_textbook_unbiased_hsic(K, K) * _textbook_unbiased_hsic(L, L))
    assert linear_cka(X, Y, debiased=True) == pytest.approx(ref, abs=1e-10)
    # uncentred raw Gram matrices give the same unbiased estimate (it is translation invariant)
    K2, L2 = X @ X.T, Y @ Y.T
    ref2 = _textbook_unbiased_hsic(K2, L2) / np.sqrt(_textbook_unbiased_hsic(K2, K2) * _textbook_unbiased_hsic(L2, L2))
    assert ref == pytest.approx(ref2, abs=1e-8)


def test_cka_invariances(xy, rng):
    X, _ = xy
    Q, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    for Z in (X @ Q, 3.7 * X, X @ Q * 0.1 + 5.0):
        assert linear_cka(X, Z) == pytest.approx(1.0, abs=1e-10)
        assert linear_cka(X, Z, debiased=True) == pytest.approx(1.0, abs=1e-10)
        assert rbf_cka(X, Z) == pytest.approx(1.0, abs=1e-8)
        assert procrustes_distance(X, Z) == pytest.approx(0.0, abs=1e-6)
        assert svcca(X, Z) == pytest.approx(1.0, abs=1e-8)


def test_minibatch_form_equals_full(xy):
    X, Y = xy
    for debiased in (False, True):
        full = linear_cka(X, Y, debiased=debiased, batch_size=10**6)
        assert linear_cka(X, Y, debiased=debiased, batch_size=7) == pytest.approx(full, abs=1e-12)


def test_unrelated_spaces_score_low(rng):
    X, Y = rng.normal(size=(500, 20)), rng.normal(size=(500, 20))
    assert linear_cka(X, Y, debiased=True) < 0.05
    assert mutual_knn(X, Y, k=10) < 0.1
    assert abs(rsa(X, Y)) < 0.1
    assert procrustes_distance(X, Y) > 0.8


def test_compare_joins_by_id_and_dims_differ(rng):
    X = rng.normal(size=(80, 12)).astype(np.float32)
    a = Space(X, [f"i{k}" for k in range(80)])
    b = Space((X @ rng.normal(size=(12, 5))).astype(np.float32)[::-1].copy(), [f"i{k}" for k in range(80)][::-1])
    res = compare(a, b)
    assert set(res) == {"cka", "cka_debiased", "cka_rbf", "svcca", "mknn", "rsa", "procrustes", "items"}
    assert res["items"] == 80 and res["cka"] > 0.3
    from repspace.errors import UnknownNameError

    with pytest.raises(UnknownNameError):
        compare(a, b, metrics=("cosine",))
