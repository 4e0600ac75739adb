"""CLI contract of eval / compare / compat / report (JSON keys are relied on by automated checks)."""

import json

import numpy as np
import pytest

from repspace import Space


def _labeled(tmp_path, name, x, model="m"):
    n = len(x)
    s = Space(x.astype(np.float32), [f"i{k}" for k in range(n)], [f"c{k % 4}" for k in range(n)], model=model)
    s.save(tmp_path / name)
    return tmp_path / name


@pytest.fixture
def spaces(tmp_path, rng):
    centers = rng.normal(size=(4, 32)) * 2
    y = np.arange(200) % 4
    x = centers[y] + rng.normal(size=(200, 32))
    q, _ = np.linalg.qr(rng.normal(size=(32, 32)))
    a = _labeled(tmp_path, "a", x, "old")
    b = _labeled(tmp_path, "b", x + 0.1 * rng.normal(size=x.shape), "new")
    c = _labeled(tmp_path, "c", x @ q, "rotated")
    d = _labeled(tmp_path, "d", x[:, :16], "small")
    return a, b, c, d


def _brute_force_label_retrieval(x, labels):
    """mAP@R, R-precision and MRR@10 of leave-one-out cosine retrieval by label, one query at a time."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    labels = np.asarray(labels)
    map_r, r_prec, mrr = [], [], []
    for i in range(len(x)):
        others = np.delete(np.arange(len(x)), i)
        order = others[np.argsort(-(x[others] @ x[i]), kind="stable")]
        rel = labels[order] == labels[i]
        R = int(rel.sum())
        hits = np.cumsum(rel[:R])
        map_r.append(float(np.sum(hits / np.arange(1, R + 1) * rel[:R]) / R))
        r_prec.append(hits[-1] / R)
        first = int(np.argmax(rel))
        mrr.append(1.0 / (first + 1) if first < 10 else 0.0)
    return {"map@r": np.mean(map_r), "r_precision": np.mean(r_prec), "mrr@10": np.mean(mrr)}


def test_eval_retrieval_json_keys(cli, spaces):
    code, out, err = cli("eval", spaces[0], "--task", "retrieval", "--json")
    assert code == 0, err
    r = json.loads(out)
    for key in ("recall@10", "ndcg@10", "mrr@10", "map@r", "map", "precision@10", "r_precision"):
        assert 0 <= r[key] <= 1
    # the values: the library's, and those of a brute-force leave-one-out ranking
    from repspace.evaluation import label_retrieval

    s = Space.load(spaces[0])
    assert r == pytest.approx(label_retrieval(s), abs=1e-12)
    brute = _brute_force_label_retrieval(np.asarray(s.vectors, np.float64), s.labels)
    for key, value in brute.items():
        assert r[key] == pytest.approx(value, abs=1e-6), key


def test_eval_retrieval_hand_computed(cli, tmp_path):
    """Queries on a circle, each relevant to the corpus item of its id: the ranks are known by construction."""
    angles = np.deg2rad(np.arange(0, 360, 30))  # 12 corpus items, 30 degrees apart
    corpus = np.stack([np.cos(angles), np.sin(angles)], 1)
    ids = [f"c{k}" for k in range(12)]
    Space(corpus.astype(np.float32), ids, model="m").save(tmp_path / "corpus")
    # query k sits 10 degrees past item k (rank 1), except query 0, 5 degrees past item 11 (item 0 is at rank 2)
    q_angles = angles + np.deg2rad(10)
    q_angles[0] = angles[11] + np.deg2rad(5)
    Space(np.stack([np.cos(q_angles), np.sin(q_angles)], 1).astype(np.float32), ids, model="m").save(tmp_path / "q")
    code, out, err = cli("eval", tmp_path / "corpus", "--queries", tmp_path / "q", "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["queries"] == 12
    assert r["recall@1"] == pytest.approx(11 / 12) and r["recall@10"] == pytest.approx(1.0)
    assert r["mrr@10"] == pytest.approx((11 + 1 / 2) / 12)
    assert r["ndcg@10"] == pytest.approx((11 + 1 / np.log2(3)) / 12)


def test_eval_queries_and_qrels(cli, spaces, tmp_path):
    code, out, _ = cli("eval", spaces[0], "--queries", spaces[1], "--json")
    assert code == 0 and json.loads(out)["recall@1"] > 0.9
    (tmp_path / "qrels.txt").write_text("i0 0 i1 1\ni2 0 i3 2\n")
    code, out, _ = cli("eval", spaces[0], "--queries", spaces[1], "--qrels", tmp_path / "qrels.txt", "--json")
    assert code == 0 and json.loads(out)["queries"] == 2


@pytest.mark.parametrize("task, keys", [("probe", ["accuracy"]), ("knn", ["accuracy"]),
                                        ("fewshot", ["accuracy", "accuracy_ci95"]), ("cluster", ["nmi", "ari"])])
def test_eval_tasks(cli, spaces, task, keys):
    code, out, err = cli("eval", spaces[0], "--task", task, "--n-way", "4", "--json")
    assert code == 0, err
    r = json.loads(out)
    for key in keys:
        assert key in r
    # exactly what the library computes, and right on four well-separated clusters
    from repspace.evaluation import evaluate

    assert r == pytest.approx(evaluate(Space.load(spaces[0]), task, n_way=4), abs=1e-12)
    assert r[keys[0]] > 0.95


def test_eval_dims_rows(cli, spaces):
    code, out, _ = cli("eval", spaces[0], "--task", "retrieval", "--dims", "4,8,16", "--reduce", "pca", "--json")
    rows = json.loads(out)["rows"]
    assert code == 0 and [r["dim"] for r in rows] == [4, 8, 16]
    assert "map@r" in rows[0] and "map@r_retained" in rows[0] and "ndcg@10_retained" in rows[0]
    code, out, _ = cli("eval", spaces[0], "--task", "probe", "--dims", "8,32", "--json")
    assert code == 0 and json.loads(out)["rows"][-1]["accuracy_retained"] == pytest.approx(1.0)
    # each row is the metric of the space cut to that dimension, computed by the library
    from repspace.evaluation import label_retrieval

    s = Space.load(spaces[0])
    full = label_retrieval(s)
    code, out, _ = cli("eval", spaces[0], "--dims", "4,32", "--json")
    rows = json.loads(out)["rows"]
    cut = label_retrieval(s.with_vectors(np.asarray(s.vectors)[:, :4]))
    assert rows[0]["map@r"] == pytest.approx(cut["map@r"], abs=1e-12)
    assert rows[0]["map@r_retained"] == pytest.approx(cut["map@r"] / full["map@r"], abs=1e-12)
    assert rows[1]["map@r"] == pytest.approx(full["map@r"], abs=1e-12) and rows[1]["map@r_retained"] == pytest.approx(1.0)


def test_compare_json(cli, spaces):
    code, out, _ = cli("compare", spaces[0], spaces[2], "--json")
    r = json.loads(out)
    assert code == 0
    assert set(["cka", "cka_debiased", "cka_rbf", "svcca", "mknn", "rsa", "procrustes"]) <= set(r)
    assert r["cka"] == pytest.approx(1.0, abs=1e-6) and r["procrustes"] == pytest.approx(0.0, abs=1e-3)
    code, out, _ = cli("compare", spaces[0], spaces[3], "--metrics", "cka,mknn", "--json")
    assert code == 0 and set(json.loads(out)) == {"cka", "mknn", "items"}
    # linear CKA by its textbook formula (centred Gram matrices), between a space and its first 16 columns
    r = json.loads(out)
    x = np.asarray(Space.load(spaces[0]).vectors, np.float64)
    y = x[:, :16]
    x, y = x - x.mean(0), y - y.mean(0)
    cka = np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))
    assert r["items"] == 200 and r["cka"] == pytest.approx(cka, abs=1e-6)


def test_compat_json(cli, spaces):
    code, out, _ = cli("compat", spaces[0], spaces[1], spaces[2], "--json")
    r = json.loads(out)
    assert code == 0
    assert len(r["matrix"]) == 3 and r["matrix"][0][1] is None
    assert r["compatible"]["2->1"] is True and r["compatible"]["3->1"] is False
    assert {"matrix", "compatible", "gain", "metric", "relevance", "models", "items"} <= set(r)  # keys stay
    assert set(r["gain"]) == set(r["gain_note"]) == {"2->1", "3->1", "3->2"}
    # the diagonal is each model on its own (label retrieval, mAP@R); gain = (M[i][j] - M[j][j]) / (M[i][i] - M[j][j])
    # for a compatible pair whose new model improves on the old one, else null with gain_note saying why
    from repspace.evaluation import label_retrieval

    M = r["matrix"]
    for i, path in enumerate(spaces[:3]):
        assert M[i][i] == pytest.approx(label_retrieval(Space.load(path))["map@r"], abs=1e-12)
    for key in r["gain"]:
        i, j = int(key[0]) - 1, int(key[-1]) - 1
        denom = M[i][i] - M[j][j]
        assert r["compatible"][key] is (M[i][j] >= M[j][j] - 1e-12)
        defined = r["compatible"][key] and denom >= 1e-12
        assert r["gain"][key] == (pytest.approx((M[i][j] - M[j][j]) / denom) if defined else None)
        assert (r["gain_note"][key] is None) is defined
    assert r["gain"]["3->1"] is None and r["gain_note"]["3->1"].startswith("not compatible")
    code, out, _ = cli("compat", spaces[0], spaces[1], spaces[2])
    assert code == 0 and "3->1: NOT compatible, gain n/a" in out
    assert M[2][0] < 0.5  # a rotated space's queries do not find the old gallery's items


def test_report_html(cli, spaces, tmp_path):
    code, _, err = cli("report", spaces[0], spaces[1], spaces[2], "--out", tmp_path / "r.html")
    html = (tmp_path / "r.html").read_text()
    assert code == 0, err
    assert html.count("data:image/png;base64,") >= 3 and "Compatibility" in html and "Similarity" in html


@pytest.mark.parametrize("args, message", [
    (["eval", "{a}", "--task", "nope"], "unknown task"),
    (["eval", "{unl}", "--task", "probe"], "needs labels"),
    (["eval", "{one}", "--task", "cluster"], "at least 2 classes"),
    (["eval", "{a}", "--dims", "8,999"], "exceed"),
    (["eval", "{a}", "--dims", "eight"], "comma-separated integers"),
    (["eval", "{a}", "--queries", "{other}"], "share no ids"),
    (["eval", "{a}", "--queries", "{d}"], "16-d"),
    (["eval", "{a}", "--queries", "{b}", "--qrels", "{qrels}"], "not in the corpus"),
    (["eval", "{tiny}", "--task", "retrieval"], "k=10"),
    (["compare", "{a}", "{other}"], "share no ids"),
    (["compat", "{a}", "{d}"], "needs an adapter"),
    (["compat", "{a}"], "at least two"),
    (["eval", "{a}", "--reduce", "nosuch"], "unknown reducer"),
])
def test_eval_errors(cli, spaces, tmp_path, args, message):
    a, b, c, d = spaces
    s = Space.load(a)
    Space(np.asarray(s.vectors), s.ids).save(tmp_path / "unl")
    Space(np.asarray(s.vectors), s.ids, ["x"] * s.count).save(tmp_path / "one")
    Space(np.asarray(s.vectors), [f"z{k}" for k in range(s.count)], s.labels).save(tmp_path / "other")
    s.head(6).save(tmp_path / "tiny")
    (tmp_path / "qrels.json").write_text(json.dumps({"i0": {"ghost": 1}}))
    paths = dict(a=a, b=b, d=d, unl=tmp_path / "unl", one=tmp_path / "one", other=tmp_path / "other",
                 tiny=tmp_path / "tiny", qrels=tmp_path / "qrels.json")
    code, out, err = cli(*[x.format(**paths) for x in args])
    assert code == 2 and message in err and "Traceback" not in err
