import json

import numpy as np
import pytest
import torch

from repspace import Space
from repspace.compress import (Compressor, InfoNCELoss, MatryoshkaAdaptor, MatryoshkaLoss, PCACompressor,
                               SimilarityPreservationLoss, SupConLoss)
from repspace.errors import DimensionMismatchError, InvalidInputError, SpaceFormatError


def test_matryoshka_loss_is_weighted_sum_of_parts():
    torch.manual_seed(0)
    q, d = torch.randn(8, 16), torch.randn(8, 16)
    base = InfoNCELoss()
    wrapped = MatryoshkaLoss(base, [4, 8, 16], [1.0, 0.5, 2.0])
    expected = base(q[:, :4], d[:, :4]) + 0.5 * base(q[:, :8], d[:, :8]) + 2.0 * base(q, d)
    assert torch.allclose(wrapped(q, d), expected)
    # n_truncated=1: the second argument (original vectors) is passed through whole
    sp = SimilarityPreservationLoss()
    w2 = MatryoshkaLoss(sp, [4, 16], n_truncated=1)
    assert torch.allclose(w2(q, d), sp(q[:, :4], d) + sp(q, d))


@pytest.mark.parametrize("loss, args", [
    (InfoNCELoss(), lambda x: (x, x.detach() + 0.1)),
    (SupConLoss(), lambda x: (x, torch.tensor([0, 1, 0, 1, 2, 2, 0, 1]))),
    (SimilarityPreservationLoss(topk=3), lambda x: (x, x.detach() * 2 + 1)),
    (MatryoshkaLoss(InfoNCELoss(), [2, 4]), lambda x: (x, x.detach() + 0.1)),
])
def test_gradients_flow(loss, args):
    x = torch.randn(8, 4, requires_grad=True)
    value = loss(*args(x))
    value.backward()
    assert torch.isfinite(value) and x.grad is not None and x.grad.abs().sum() > 0


def test_infonce_prefers_matching_pairs():
    torch.manual_seed(0)
    x = torch.randn(16, 8)
    assert InfoNCELoss()(x, x) < InfoNCELoss()(x, torch.randn(16, 8))


def _nuisance_case(rng, n=1200):
    # retrieval signal lives in 4 low-variance dims; 12 high-variance dims are independent noise
    signal = rng.normal(size=(n, 4))
    docs = np.hstack([signal + 0.1 * rng.normal(size=(n, 4)), 3.0 * rng.normal(size=(n, 12))])
    queries = np.hstack([signal + 0.1 * rng.normal(size=(n, 4)), 3.0 * rng.normal(size=(n, 12))])
    return queries, docs


def _top1(q, d):
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    dn = d / np.linalg.norm(d, axis=1, keepdims=True)
    return np.mean(np.argmax(qn @ dn.T, 1) == np.arange(len(q)))


def test_adaptor_beats_pca_when_variance_is_not_relevance(rng):
    q, d = _nuisance_case(rng)
    tr, te = slice(0, 900), slice(900, None)
    pca = PCACompressor().fit(d[tr])
    ada = MatryoshkaAdaptor(dims=[4, 8], epochs=60, lr=3e-3).fit(d[tr], pairs=q[tr])
    pca4 = _top1(pca.transform(q[te], 4), pca.transform(d[te], 4))
    ada4 = _top1(ada.transform(q[te], 4), ada.transform(d[te], 4))
    assert ada4 > pca4 + 0.3, (ada4, pca4)


def test_unsupervised_adaptor_keeps_similarity_at_least_as_well_as_pca(rng):
    x = rng.normal(size=(600, 24)) * np.linspace(3, 0.2, 24) + 0.5
    pca = PCACompressor().fit(x)
    ada = MatryoshkaAdaptor(dims=[4, 8], epochs=30).fit(x)

    def err(c, dim):
        z = c.transform(x, dim)
        z /= np.linalg.norm(z, axis=1, keepdims=True)
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        return np.abs(z @ z.T - xn @ xn.T).mean()

    assert err(ada, 4) <= err(pca, 4) + 1e-3


def test_save_load_and_errors(tmp_path, rng):
    x = rng.normal(size=(200, 16))
    for comp in (PCACompressor(dims=[4, 8]).fit(x), MatryoshkaAdaptor(dims=[4, 8], epochs=2, kind="mlp").fit(x)):
        comp.save(tmp_path / comp.name)
        again = Compressor.load(tmp_path / comp.name)
        np.testing.assert_allclose(again.transform(x, 8), comp.transform(x, 8), atol=1e-6)
        with pytest.raises(InvalidInputError, match="not one this compressor supports: 4, 8"):
            again.transform(x, 5)
        with pytest.raises(DimensionMismatchError, match="maps 16-d"):
            again.transform(x[:, :10], 4)
    with pytest.raises(DimensionMismatchError):
        MatryoshkaAdaptor(dims=[64]).fit(x)
    (tmp_path / "junk").mkdir()
    with pytest.raises(SpaceFormatError):
        Compressor.load(tmp_path / "junk")


def test_cli_fit_apply_and_eval_hook(cli, tmp_path, rng):
    q, d = _nuisance_case(rng, 400)
    ids = [f"i{k}" for k in range(400)]
    Space(d.astype(np.float32), ids, model="m").save(tmp_path / "docs")
    Space(q.astype(np.float32), ids, model="m").save(tmp_path / "queries")
    code, _, err = cli("compress", "fit", tmp_path / "docs", "--method", "matryoshka", "--dims", "4,8",
                       "--pairs", tmp_path / "queries", "--epochs", "20", "--out", tmp_path / "ad")
    assert code == 0, err
    code, out, err = cli("eval", tmp_path / "docs", "--queries", tmp_path / "queries", "--dims", "4,8",
                         "--reduce", tmp_path / "ad", "--json")
    assert code == 0, err
    assert [r["dim"] for r in json.loads(out)["rows"]] == [4, 8]
    code, _, err = cli("compress", "apply", tmp_path / "ad", tmp_path / "docs", "--dim", "4", "--out", tmp_path / "small")
    assert code == 0 and Space.load(tmp_path / "small").dim == 4
    code, _, err = cli("compress", "apply", tmp_path / "ad", tmp_path / "docs", "--dim", "5", "--out", tmp_path / "x")
    assert code == 2 and "supports: 4, 8" in err
    Space(d[:, :8].astype(np.float32), ids, model="other").save(tmp_path / "other")
    code, _, err = cli("compress", "apply", tmp_path / "ad", tmp_path / "other", "--out", tmp_path / "x")
    assert code == 2 and "fitted on model 'm'" in err
    code, _, err = cli("compress", "fit", tmp_path / "docs", "--method", "csr", "--k", "4", "--hidden", "32",
                       "--pairs", tmp_path / "queries", "--epochs", "3", "--out", tmp_path / "csr")
    assert code == 0, err
    code, _, err = cli("compress", "apply", tmp_path / "csr", tmp_path / "docs", "--out", tmp_path / "codes")
    assert code == 0 and Space.load(tmp_path / "codes").dim == 32
    code, _, err = cli("compress", "fit", tmp_path / "docs", "--method", "zip", "--out", tmp_path / "x")
    assert code == 2 and "pca, matryoshka or csr" in err


def test_csr_codes_are_k_sparse_reconstruct_and_survive_save_load(tmp_path, rng):
    from repspace.compress import CSRCompressor

    # data on a union of sparse directions: a top-k SAE should reconstruct it well
    atoms = rng.normal(size=(64, 32))
    coef = np.zeros((1500, 64))
    for row in coef:
        row[rng.choice(64, 4, replace=False)] = rng.uniform(0.5, 2, 4)
    X = (coef @ atoms).astype(np.float32)
    csr = CSRCompressor(k=8, hidden=128, epochs=40, lr=3e-3).fit(X)
    Z = csr.transform(X)
    assert Z.shape == (1500, 128) and ((Z != 0).sum(1) <= 8).all() and (Z >= 0).all()
    err = np.mean(np.sum((csr.reconstruct(X) - X) ** 2, 1)) / np.mean(np.sum((X - X.mean(0)) ** 2, 1))
    assert err < 0.25, err
    assert csr.dead_fraction_ < 0.5
    csr.save(tmp_path / "csr")
    back = Compressor.load(tmp_path / "csr")
    np.testing.assert_allclose(back.transform(X[:20]), Z[:20], atol=1e-5)
    assert (back.encode_sparse(X[:20]) != csr.encode_sparse(X[:20])).nnz == 0
    with pytest.raises(InvalidInputError, match="dimension 64 is not one"):
        back.transform(X, 64)
    with pytest.raises(DimensionMismatchError):
        back.transform(X[:, :10])
    with pytest.raises(InvalidInputError, match="k must be between 1 and the number of latents"):  # no CLI flag names
        CSRCompressor(k=500, hidden=128).fit(X)


def test_csr_contrastive_term_uses_pairs(rng):
    from repspace.compress import CSRCompressor

    X = rng.normal(size=(300, 16)).astype(np.float32)
    P = X + 0.1 * rng.normal(size=X.shape).astype(np.float32)
    csr = CSRCompressor(k=4, hidden=64, epochs=10).fit(X, pairs=P)
    a, b = csr.transform(X), csr.transform(P)
    na = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-9)
    nb = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-9)
    assert np.mean(np.argmax(na @ nb.T, axis=1) == np.arange(300)) > 0.5
    with pytest.raises(InvalidInputError, match="pairs must be"):
        CSRCompressor(k=4, hidden=64, epochs=1).fit(X, pairs=P[:10])


def test_fit_compressor_uses_the_train_half_and_shared_pairs(rng):
    from repspace.compress import fit_compressor
    from repspace.datasets import split_ids
    from repspace.errors import UnknownNameError

    q, d = _nuisance_case(rng, 300)
    ids = [f"i{k}" for k in range(300)]
    docs = Space(d.astype(np.float32), ids, model="m")
    train, _ = split_ids(ids)
    comp = fit_compressor(docs, "pca", dims=[4, 8])
    ref = PCACompressor(dims=[4, 8]).fit(np.asarray(docs.select(train).vectors), source=docs)
    np.testing.assert_array_equal(comp.transform(d, 4), ref.transform(d, 4))
    assert comp.source_model_ == "m" and comp.dims_ == [4, 8]
    queries = Space(q[:200].astype(np.float32), ids[:200], model="m")  # pairs share only the first 200 ids
    ada = fit_compressor(docs, "matryoshka", pairs=queries, dims=[4], epochs=2, hidden=None)
    shared = [i for i in train if i in set(ids[:200])]
    ref = MatryoshkaAdaptor(dims=[4], epochs=2).fit(np.asarray(docs.select(shared).vectors),
                                                    pairs=np.asarray(queries.select(shared).vectors))
    np.testing.assert_array_equal(ada.transform(d, 4), ref.transform(d, 4))
    with pytest.raises(UnknownNameError, match="choose pca, matryoshka or csr") as e:
        fit_compressor(docs, "zip")
    assert e.value.param == "method"
    with pytest.raises(InvalidInputError, match="same model") as e:
        fit_compressor(docs, "pca", pairs=Space(q[:, :8].astype(np.float32), ids, model="m"))
    assert "--" not in str(e.value)


def test_import_does_not_load_torch():
    import subprocess
    import sys

    code = "import sys, repspace.compress; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_sweep_uses_a_saved_compressor_as_fitted_and_reducers_round_trip(tmp_path, rng):
    from repspace.evaluation.sweep import PCAReducer, get_reducer, sweep

    x = rng.normal(size=(200, 16))
    comp = PCACompressor(dims=[4, 8]).fit(x[:100])
    comp.save(tmp_path / "c")
    red = get_reducer(str(tmp_path / "c"))
    space = Space(x.astype(np.float32), [f"i{k}" for k in range(200)])
    seen = []
    res = sweep(lambda s: seen.append(np.asarray(s[0].vectors)) or {"v": 1.0}, [space], [4], reducer=red)
    assert res["reduce"] == "pca adaptor"
    np.testing.assert_array_equal(seen[1], comp.transform(np.asarray(space.vectors), 4))  # not refitted on the space
    pca = PCAReducer().fit(x)
    pca.save(tmp_path / "r")
    np.testing.assert_array_equal(get_reducer(str(tmp_path / "r")).transform(x, 5), pca.transform(x, 5))


def test_rank_distillation_is_zero_on_the_original_and_positive_otherwise():
    from repspace.compress.losses import RankDistillationLoss

    torch.manual_seed(0)
    x = torch.randn(16, 8, dtype=torch.float64)
    loss = RankDistillationLoss(0.05)
    assert float(loss(x * 3.0, x)) == pytest.approx(0.0, abs=1e-9)  # scale-free: cosine similarities
    assert float(loss(x[:, :2], x)) > 0.01


def test_unlabelled_items_join_the_unsupervised_fit(tmp_path, rng, cli):
    from repspace.compress import CSRCompressor, fit_compressor

    q, d = _nuisance_case(rng, 300)
    extra = _nuisance_case(np.random.default_rng(1), 500)[1]
    pca = PCACompressor(dims=[4]).fit(d, unlabelled=extra)  # a method without pairs fits on both together
    np.testing.assert_allclose(pca.transform(d, 4), PCACompressor(dims=[4]).fit(np.vstack([d, extra])).transform(d, 4))
    ada = MatryoshkaAdaptor(dims=[4], epochs=50, batch_size=64, max_steps=7, rank_weight=1.0).fit(
        d, pairs=q, unlabelled=extra)
    assert ada.steps_ == 7 and len(ada.history_) == 1  # 800 items / 64 = 13 steps an epoch, capped at 7
    np.testing.assert_allclose(ada.mean_, np.vstack([d, extra]).mean(0))
    with pytest.raises(InvalidInputError) as e:
        CSRCompressor(k=4, hidden=16, epochs=1).fit(d, pairs=q, unlabelled=extra)
    assert e.value.param == "unlabelled"
    with pytest.raises(InvalidInputError) as e:
        MatryoshkaAdaptor(dims=[4], max_steps=0).fit(d)
    assert e.value.param == "max_steps"
    ids = [f"i{k}" for k in range(300)]
    docs = Space(d.astype(np.float32), ids, model="m")
    with pytest.raises(InvalidInputError) as e:
        fit_compressor(docs, "pca", unlabelled=Space(extra.astype(np.float32), [f"u{k}" for k in range(500)],
                                                     model="other"))
    assert e.value.param == "unlabelled"
    docs.save(tmp_path / "docs")
    Space(extra.astype(np.float32), [f"u{k}" for k in range(500)], model="m").save(tmp_path / "extra")
    code, _, err = cli("compress", "fit", tmp_path / "docs", "--dims", "4,8", "--unlabelled", tmp_path / "extra",
                       "--unlabelled", tmp_path / "extra", "--max-steps", "3", "--rank-weight", "0.5",
                       "--out", tmp_path / "ad")
    assert code == 0, err
    assert Compressor.load(tmp_path / "ad").dims_ == [4, 8, 16]
    Space(extra[:, :8].astype(np.float32), [f"u{k}" for k in range(500)], model="m").save(tmp_path / "narrow")
    code, _, err = cli("compress", "fit", tmp_path / "docs", "--unlabelled", tmp_path / "narrow", "--out", tmp_path / "x")
    assert code == 2 and "--unlabelled" in err
