"""The library computes (repspace.studies), report/ only renders what it is given."""

import ast
import inspect

import numpy as np
import pytest

from repspace import Space
from repspace.report import Report


@pytest.fixture(scope="module")
def pair():
    """Queries near their corpus item in 64-d, with relevance spread over few directions."""
    r = np.random.default_rng(0)
    corpus = r.normal(size=(240, 64)) * np.linspace(2, 0.2, 64)
    queries = corpus + 0.3 * r.normal(size=corpus.shape)
    ids = [f"i{k}" for k in range(240)]
    return (Space(queries.astype(np.float32), ids, model="m", view="title"),
            Space(corpus.astype(np.float32), ids, model="m", view="body"))


def test_compact_study_numbers_and_section(pair):
    from repspace.studies.compact import compact_study
    from repspace.datasets import split_ids
    from repspace.evaluation import query_retrieval
    from repspace.report.compact import compact_section

    q, c = pair
    res = compact_study(q, c, specs=("Flat", "int8"), prefix_dims=(16, 32))
    train, test = split_ids(c.ids)
    assert res["test_items"] == len(test) and res["dims"] == [16, 32] and res["dim"] == 64
    full = query_retrieval(q.select(test), c.select(test))["ndcg@10"]
    assert res["full_ndcg@10"] == full
    cut = query_retrieval(q.select(test).with_vectors(np.asarray(q.select(test).vectors)[:, :16]),
                          c.select(test).with_vectors(np.asarray(c.select(test).vectors)[:, :16]))["ndcg@10"]
    assert res["curves"]["truncate"][0] == pytest.approx(cut / full)
    assert [r["dim"] for r in res["rows"]] == [16, 32] and res["rows"][0]["of full"] == "1/4"
    flat = res["index_rows"][0]
    assert flat["spec"] == "Flat" and flat["nDCG@10"] == pytest.approx(full, abs=1e-6)
    assert flat["first stage KiB"] == round(len(test) * 64 * 4 / 1024) and flat["memory vs float32"] == "1/1.0"
    assert [r["spec"] for r in res["index_rows"]] == ["Flat", "int8", "funnel:32/64:200 through the adaptor",
                                                      "sparse (CSR k=32 codes)"]
    report = Report("t")
    assert compact_section(report, res) == res["rows"]
    (title, body), = report.sections
    assert title == "How small can it be" and f"{full:.4f}" in body and body.count("<table>") == 2


def test_adapter_recovery_and_upgrade_section(pair):
    from repspace.studies.upgrade import adapter_recovery
    from repspace.report.upgrade import upgrade_section

    q, c = pair
    rot, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(64, 64)))
    new_q = Space((np.asarray(q.vectors) @ rot).astype(np.float32), q.ids, model="new", view="title")
    new_c = Space((np.asarray(c.vectors) @ rot).astype(np.float32), c.ids, model="new", view="body")
    rows = adapter_recovery(q, c, new_q, new_c, pairs=(20, 10_000))
    from repspace.datasets import split_ids

    assert [r["pairs (articles)"] for r in rows] == [20, len(split_ids(c.ids)[0])]  # capped at the train half
    assert rows[-1]["recovery R@10"] == pytest.approx(1.0, abs=1e-6)  # a rotation is recovered exactly
    train_rows = [{"new model": "bct", "old model": "old", "dim": 8, "M(old,old)": 0.5, "M(new,new)": 0.7,
                   "M(new,old)": 0.6, "compatible": True, "gain": 0.5}]
    report = Report("t")
    upgrade_section(report, train_rows, rows, old_model="m", new_model="new")
    (title, body), = report.sections
    assert title.startswith("Upgrade") and "the criterion holds for: bct" in body and body.count("<img") == 2


@pytest.mark.parametrize("module", ["repspace.report.compact", "repspace.report.upgrade", "repspace.report.alignment",
                                    "repspace.report.live_upgrade"])
def test_report_sections_do_not_fit_or_train(module):
    """A report module imports no estimator, trainer or index: it renders results it is given."""
    mod = __import__(module, fromlist=["_"])
    imported = set()
    for node in ast.walk(ast.parse(inspect.getsource(mod))):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    assert imported <= {"__future__", "typing", "numpy", "repspace.report.html", "matplotlib"}, imported


def test_alignment_rows_and_section(pair):
    from repspace.report.alignment import alignment_section
    from repspace.studies.alignment import alignment_rows

    q, c = pair
    other = Space(np.asarray(c.vectors)[:, ::-1].copy(), c.ids, model="flipped", view="body")  # a permutation
    rows = alignment_rows([c, other], methods=("procrustes",))
    assert [(r["source"], r["target"], r["method"]) for r in rows] == [("m", "flipped", "procrustes"),
                                                                      ("flipped", "m", "procrustes")]
    assert all(r["top-1"] == pytest.approx(1.0) and r["mean cos"] == pytest.approx(1.0, abs=1e-4) for r in rows)
    report = Report("t")
    assert alignment_section(report, rows, title="A") == rows and report.sections[0][0] == "A"


def test_evaluation_sections_render_only_and_build_report_runs_the_study():
    """report/evaluation.py's sections take the study's results; only `build_report` calls the study."""
    import repspace.report.evaluation as mod

    tree = ast.parse(inspect.getsource(mod))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert "repspace.evaluation" not in imported
    study_names = {"task_rows", "label_sweep", "similarity", "compatibility_result", "compatible_groups"}
    for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.endswith("_section")):
        called = {c.func.id for c in ast.walk(fn) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)}
        assert not called & study_names, (fn.name, called & study_names)


def test_compat_section_gives_no_gain_when_the_criterion_fails():
    """Issue #24 item 10: an incompatible pair (M(new,old) 0.333 < M(old,old) 0.518) showed gain 1.808."""
    from repspace.report.evaluation import compat_section

    res = {"matrix": [[0.518, None, None], [0.333, 0.416, None], [0.6, 0.55, 0.7]], "metric": "map@r",
           "relevance": "label", "compatible": {"2->1": False, "3->1": True, "3->2": True},
           "gain": {"2->1": None, "3->1": 0.5, "3->2": 0.4767},
           "gain_note": {"2->1": "not compatible (M(new,old) < M(old,old))", "3->1": None, "3->2": None}}
    report = Report("t")
    assert compat_section(report, ["old", "new", "newer"], res) is res
    (_, body), = report.sections
    rows = _table(body)
    assert rows[0]["pair (new->old)"] == "2->1" and rows[0]["criterion M(new,old) >= M(old,old)"] == "FAILS"
    assert rows[0]["gain"] == "none: not compatible (M(new,old) < M(old,old))" and "1.8" not in body
    assert (rows[0]["M(old,old)"], rows[0]["M(new,old)"], rows[0]["M(new,new)"]) == ("0.5180", "0.3330", "0.4160")
    assert rows[1]["criterion M(new,old) >= M(old,old)"] == "holds" and rows[1]["gain"] == "0.5000"
    # a result without gain_note whose gain is the bare ratio still shows no number for a failing pair
    old_style = {k: v for k, v in res.items() if k != "gain_note"}
    old_style["gain"] = {**res["gain"], "2->1": 1.808}
    report = Report("t")
    compat_section(report, ["old", "new", "newer"], old_style)
    assert _table(report.sections[0][1])[0]["gain"] == "none: not compatible" and "1.808" not in report.sections[0][1]


def test_upgrade_section_shows_the_verdict_beside_the_gain(pair):
    from repspace.report.upgrade import upgrade_section

    rec = [{"pairs (articles)": 10, "old->old R@10": 0.5, "new->new R@10": 0.7, "adapted R@10": 0.6,
            "recovery R@10": 0.86, "µs/query": 1.0}]
    train_rows = [{"new model": "independent", "old model": "old", "dim": 8, "M(old,old)": 0.518, "M(new,new)": 0.416,
                   "M(new,old)": 0.333, "compatible": False, "gain": None,
                   "gain_note": "not compatible (M(new,old) < M(old,old))"},
                  {"new model": "bct", "old model": "old", "dim": 8, "M(old,old)": 0.5, "M(new,new)": 0.7,
                   "M(new,old)": 0.6, "compatible": True, "gain": 0.5, "gain_note": None}]
    report = Report("t")
    upgrade_section(report, train_rows, rec, old_model="m", new_model="new")
    rows = _table(report.sections[0][1])
    assert rows[0]["criterion M(new,old) >= M(old,old)"] == "FAILS" and rows[0]["gain"].startswith("none: not compatible")
    assert rows[1]["criterion M(new,old) >= M(old,old)"] == "holds" and rows[1]["gain"] == "0.5000"
    assert "gain_note" not in rows[0] and "compatible" not in rows[0]


def test_similarity_section_labels_procrustes_a_distance(pair):
    from repspace.report.evaluation import similarity_section
    from repspace.studies.evaluation import similarity

    q, c = pair
    S, rows = similarity([q, c])
    assert "procrustes" in rows[0]  # the study's rows keep `compare`'s keys
    report = Report("t")
    similarity_section(report, ["q", "c"], S, rows)
    (_, body), = report.sections
    table = _table(body)
    assert "procrustes" not in table[0] and float(table[0]["procrustes distance (lower = closer)"]) == pytest.approx(
        rows[0]["procrustes"], abs=1e-4)
    assert "lower = closer" in body.split("<table>")[0]  # the text says which way it reads too


def _table(body: str) -> list[dict[str, str]]:
    """The first table of a section as rows of header -> cell text."""
    import html
    import re

    t = body.split("<table>", 1)[1].split("</table>", 1)[0]
    heads = [html.unescape(h) for h in re.findall(r"<th>(.*?)</th>", t)]
    return [dict(zip(heads, map(html.unescape, re.findall(r"<td>(.*?)</td>", tr))))
            for tr in re.findall(r"<tr>(.*?)</tr>", t.split("</thead>")[1])]
