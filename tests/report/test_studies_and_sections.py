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
