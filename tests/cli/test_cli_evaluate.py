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


def test_eval_retrieval_json_keys(cli, spaces):
    code, out, err = cli("eval", spaces[0], "--task", "retrieval", "--json")
    assert code == 0, err
    r = json.loads(out)
    for key in ("recall@10", "ndcg@10", "mrr@10", "map@r", "map", "precision@10", "r_precision"):
        assert 0 <= r[key] <= 1


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


def test_eval_dims_rows(cli, spaces):
    code, out, _ = cli("eval", spaces[0], "--task", "retrieval", "--dims", "4,8,16", "--reduce", "pca", "--json")
    rows = json.loads(out)["rows"]
    assert code == 0 and [r["dim"] for r in rows] == [4, 8, 16]
    assert "map@r" in rows[0] and "map@r_retained" in rows[0] and "ndcg@10_retained" in rows[0]
    code, out, _ = cli("eval", spaces[0], "--task", "probe", "--dims", "8,32", "--json")
    assert code == 0 and json.loads(out)["rows"][-1]["accuracy_retained"] == pytest.approx(1.0)


def test_compare_json(cli, spaces):
    code, out, _ = cli("compare", spaces[0], spaces[2], "--json")
    r = json.loads(out)
    assert code == 0
    assert set(["cka", "cka_debiased", "cka_rbf", "svcca", "mknn", "rsa", "procrustes"]) <= set(r)
    assert r["cka"] == pytest.approx(1.0, abs=1e-6) and r["procrustes"] == pytest.approx(0.0, abs=1e-3)
    code, out, _ = cli("compare", spaces[0], spaces[3], "--metrics", "cka,mknn", "--json")
    assert code == 0 and set(json.loads(out)) == {"cka", "mknn", "items"}


def test_compat_json(cli, spaces):
    code, out, _ = cli("compat", spaces[0], spaces[1], spaces[2], "--json")
    r = json.loads(out)
    assert code == 0
    assert len(r["matrix"]) == 3 and r["matrix"][0][1] is None
    assert r["compatible"]["2->1"] is True and r["compatible"]["3->1"] is False
    assert set(r["gain"]) == {"2->1", "3->1", "3->2"}


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
