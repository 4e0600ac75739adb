import json

import numpy as np
import pytest

from repspace import Space
from repspace.errors import DimensionMismatchError, InvalidInputError
from repspace.evaluation import (cluster, compatibility, evaluate, few_shot, knn_probe, label_retrieval,
                                 linear_probe, query_retrieval, read_qrels)
from repspace.evaluation.probes import id_split, knn_classify
from repspace.evaluation.search import topk


def clustered_space(n=300, d=16, classes=3, noise=0.3, seed=0, model="m"):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(classes, d)) * 3
    y = np.arange(n) % classes
    x = centers[y] + noise * rng.normal(size=(n, d))
    return Space(x.astype(np.float32), [f"i{k}" for k in range(n)], [f"c{c}" for c in y], model=model)


def test_topk_matches_bruteforce_with_shards_and_exclusion(rng):
    q = rng.normal(size=(37, 8)).astype(np.float32)
    c = rng.normal(size=(101, 8)).astype(np.float32)
    s, i = topk(q, c, 7, query_block=10, corpus_shard=13)
    ref = np.argsort(-(q @ c.T), axis=1)[:, :7]
    np.testing.assert_array_equal(i, ref)
    ex = np.arange(37)
    _, i2 = topk(c[:37], c, 5, corpus_shard=16, exclude=ex)
    full = np.argsort(-(c[:37] @ c.T), axis=1)
    for r in range(37):
        assert list(i2[r]) == [x for x in full[r] if x != r][:5]


def test_label_retrieval_perfect_and_leave_one_out():
    s = clustered_space(noise=0.01)
    r = label_retrieval(s)
    assert r["map@r"] == pytest.approx(1.0) and r["precision@10"] == pytest.approx(1.0)
    assert r["queries"] == 300


def test_label_retrieval_bruteforce_map_at_r(rng):
    s = clustered_space(n=60, noise=3.0, seed=2)
    x = s.vectors / np.linalg.norm(s.vectors, axis=1, keepdims=True)
    vals = []
    for q in range(60):
        order = [j for j in np.argsort(-(x[q] @ x.T), kind="stable") if j != q]
        rel = np.array([s.labels[j] == s.labels[q] for j in order], float)
        R = int(rel.sum())
        prec = np.cumsum(rel) / np.arange(1, len(rel) + 1)
        vals.append((prec[:R] * rel[:R]).sum() / R)
    assert label_retrieval(s)["map@r"] == pytest.approx(np.mean(vals), abs=1e-6)


def test_label_retrieval_ndcg_with_small_classes_equals_ir_measures(rng):
    """Classes smaller than k: the ideal DCG counts only the R relevant items."""
    ir_measures = pytest.importorskip("ir_measures")
    from ir_measures import AP, P, R, RR, nDCG

    labels = ["a"] * 3 + ["b"] * 4 + ["c"] * 30
    x = rng.normal(size=(len(labels), 8)).astype(np.float32)
    s = Space(x, [f"i{k}" for k in range(len(labels))], labels)
    ours = label_retrieval(s)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    qrels, run = [], []
    for q in range(len(labels)):
        for j in range(len(labels)):
            if j != q:
                run.append(ir_measures.ScoredDoc(f"q{q}", f"d{j}", float(xn[q] @ xn[j])))
                if labels[j] == labels[q]:
                    qrels.append(ir_measures.Qrel(f"q{q}", f"d{j}", 1))
    ref = ir_measures.calc_aggregate([nDCG @ 10, P @ 5, R @ 10, RR @ 10, AP], qrels, run)
    assert ours["ndcg@10"] == pytest.approx(ref[nDCG @ 10], abs=1e-6)
    assert ours["precision@5"] == pytest.approx(ref[P @ 5], abs=1e-6)
    assert ours["recall@10"] == pytest.approx(ref[R @ 10], abs=1e-6)
    assert ours["mrr@10"] == pytest.approx(ref[RR @ 10], abs=1e-6)
    assert ours["map"] == pytest.approx(ref[AP], abs=1e-6)


def test_knn_matches_sklearn():
    from sklearn.neighbors import KNeighborsClassifier

    s = clustered_space(noise=2.5, seed=3)
    train, test = id_split(s)
    X, y = s.vectors, s.labels
    for temp in (None, 0.07):
        weights = "uniform" if temp is None else (lambda d, t=temp: np.exp((1 - d) / t))
        ref = KNeighborsClassifier(n_neighbors=15, metric="cosine", algorithm="brute", weights=weights)
        ref = ref.fit(X[train], y[train]).predict(X[test])
        ours = knn_classify(X[train], y[train], X[test], k=15, temperature=temp)
        assert np.mean(ours == ref) == 1.0
    assert knn_probe(s, k=15)["accuracy"] > 0.5


def test_probe_fewshot_cluster_on_separable_data():
    s = clustered_space(noise=0.5)
    assert linear_probe(s)["accuracy"] > 0.95
    fs = few_shot(s, n_way=3, k_shot=2, n_query=5, episodes=30)
    assert fs["accuracy"] > 0.9 and fs["accuracy_ci95"] >= 0
    c = cluster(s)
    assert c["nmi"] > 0.9 and c["ari"] > 0.9


def test_query_retrieval_same_id():
    s = clustered_space()
    r = query_retrieval(s, s)
    assert r["recall@1"] == 1.0 and r["mrr@10"] == 1.0


def test_compatibility_known_answers(rng):
    old = clustered_space(noise=5.0, seed=4, model="old")
    q, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    rotated = old.with_vectors(old.vectors @ q.astype(np.float32), model="rotated")
    same = old.with_vectors(np.array(old.vectors), model="same")
    better = clustered_space(noise=3.0, seed=4, model="better")  # same centres, less noise
    res = compatibility([old, same])
    assert res["compatible"]["2->1"] is True and res["gain"]["2->1"] is None
    assert res["gain_note"]["2->1"].startswith("no improvement")
    res = compatibility([old, rotated])
    assert res["compatible"]["2->1"] is False
    assert res["matrix"][1][0] < res["matrix"][0][0] and res["matrix"][0][1] is None
    assert res["gain"]["2->1"] is None and res["gain_note"]["2->1"].startswith("not compatible")
    res = compatibility([old, better])
    assert res["compatible"]["2->1"] is True and res["gain"]["2->1"] > 0 and res["gain_note"]["2->1"] is None
    M = res["matrix"]
    assert res["gain"]["2->1"] == pytest.approx((M[1][0] - M[0][0]) / (M[1][1] - M[0][0]))
    # an adapter (the inverse rotation) makes the rotated model compatible again
    res = compatibility([old, rotated], adapters={(1, 0): lambda x: x @ q.T.astype(np.float32)})
    assert res["compatible"]["2->1"] is True
    json.dumps(res)


def test_compatibility_gain_only_for_a_compatible_improvement():
    """BCT defines the gain for compatible pairs: issue #24's incompatible pair (M(new,old) 0.333 < M(old,old)
    0.518, new model worse on its own) used to print gain 1.808, two negative numbers divided."""
    from repspace.evaluation.compatibility import compatibility_gain

    assert (0.333 - 0.518) / (0.416 - 0.518) == pytest.approx(1.814, abs=1e-3)  # what the bare ratio gave
    assert compatibility_gain(0.333, 0.518, 0.416) == (None, "not compatible (M(new,old) < M(old,old))")
    assert compatibility_gain(0.333, 0.518, 0.9) == (None, "not compatible (M(new,old) < M(old,old))")
    assert compatibility_gain(0.6, 0.518, 0.5)[0] is None  # compatible, but the new model is worse on its own
    assert compatibility_gain(0.518, 0.518, 0.518) == (None, "no improvement to share (M(new,new) <= M(old,old))")
    assert compatibility_gain(0.6, 0.5, 0.7) == (pytest.approx(0.5), None)
    assert compatibility_gain(0.5 - 1e-13, 0.5, 0.7) == (pytest.approx(0.0, abs=1e-9), None)  # within tol: compatible


def test_compatibility_dimension_mismatch():
    a, b = clustered_space(d=16), clustered_space(d=8)
    with pytest.raises(DimensionMismatchError, match="needs an adapter"):
        compatibility([a, b])


def test_sweep_rows_and_retained():
    s = clustered_space(d=32, noise=1.5)
    res = evaluate(s, "retrieval", dims=[4, 8, 32], reduce="pca")
    assert [r["dim"] for r in res["rows"]] == [4, 8, 32]
    last = res["rows"][-1]
    assert last["map@r_retained"] == pytest.approx(1.0, abs=1e-6)
    assert 0 < res["rows"][0]["map@r_retained"] <= 1.0 + 1e-9
    with pytest.raises(DimensionMismatchError, match="exceed"):
        evaluate(s, "retrieval", dims=[64])


def test_bad_inputs(tmp_path):
    s = clustered_space()
    unlabeled = Space(s.vectors, s.ids)
    with pytest.raises(InvalidInputError, match="needs labels"):
        label_retrieval(unlabeled)
    one_class = Space(s.vectors, s.ids, ["a"] * s.count)
    for fn in (label_retrieval, linear_probe, cluster):
        with pytest.raises(InvalidInputError, match="at least 2 classes"):
            fn(one_class)
    other = Space(s.vectors, [f"x{k}" for k in range(s.count)])
    with pytest.raises(InvalidInputError, match="share no ids"):
        query_retrieval(other, s)
    (tmp_path / "q.json").write_text(json.dumps({"i0": {"nope": 1}}))
    with pytest.raises(InvalidInputError, match="doc id"):
        query_retrieval(s, s, qrels=read_qrels(tmp_path / "q.json"))
    tiny = s.head(5)
    with pytest.raises(InvalidInputError, match="k=10"):
        label_retrieval(tiny)
