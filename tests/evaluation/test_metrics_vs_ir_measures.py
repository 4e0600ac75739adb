"""IR metrics equal ir-measures (pytrec_eval, i.e. trec_eval) on randomized runs, to 1e-9."""

import numpy as np
import pytest

from repspace import Space
from repspace.evaluation import query_retrieval
from repspace.evaluation.metrics import all_metrics

ir_measures = pytest.importorskip("ir_measures")
from ir_measures import AP, P, R, RR, Rprec, nDCG  # noqa: E402

KS = (1, 5, 10)


def _reference(qrels, run, ks):
    measures = [AP, Rprec] + [m @ k for k in ks for m in (P, R, RR, nDCG)]
    agg = ir_measures.calc_aggregate(measures, qrels, run)
    out = {"map": agg[AP], "r_precision": agg[Rprec]}
    for k in ks:
        out.update({f"precision@{k}": agg[P @ k], f"recall@{k}": agg[R @ k], f"mrr@{k}": agg[RR @ k],
                    f"ndcg@{k}": agg[nDCG @ k]})
    return out


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("graded", [False, True])
def test_metrics_equal_ir_measures(seed, graded):
    rng = np.random.default_rng(seed)
    n_q, n_d = 40, 300
    qrels, run = [], []
    gains, ideal, n_rel = np.zeros((n_q, n_d)), np.zeros((n_q, n_d)), np.zeros(n_q)
    for q in range(n_q):
        rel_docs = rng.choice(n_d, rng.integers(1, 30), replace=False)
        grades = {int(d): float(rng.integers(1, 4) if graded else 1) for d in rel_docs}
        for d, g in grades.items():
            qrels.append(ir_measures.Qrel(f"q{q}", f"d{d}", int(g)))
        scores = rng.random(n_d)
        order = np.argsort(-scores)
        for d in range(n_d):
            run.append(ir_measures.ScoredDoc(f"q{q}", f"d{d}", float(scores[d])))
        gains[q] = [grades.get(int(d), 0.0) for d in order]
        g_sorted = sorted(grades.values(), reverse=True)
        ideal[q, : len(g_sorted)] = g_sorted
        n_rel[q] = len(grades)
    ours = {k: float(v.mean()) for k, v in all_metrics(gains, n_rel, ideal, KS).items()}
    ref = _reference(qrels, run, KS)
    for key, value in ref.items():
        assert ours[key] == pytest.approx(value, abs=1e-9), key


def test_query_retrieval_end_to_end_equals_ir_measures(tmp_path):
    """Spaces + faiss search + qrels file: same numbers as ir-measures on the run we retrieved."""
    from repspace.evaluation import read_qrels
    from repspace.evaluation.search import normalize_rows, topk

    rng = np.random.default_rng(1)
    corpus = Space(rng.normal(size=(500, 16)).astype(np.float32), [f"d{i}" for i in range(500)])
    queries = Space(rng.normal(size=(60, 16)).astype(np.float32), [f"q{i}" for i in range(60)])
    lines = []
    for q in range(60):
        for d in rng.choice(500, 8, replace=False):
            lines.append(f"q{q} 0 d{d} {rng.integers(1, 3)}")
    (tmp_path / "qrels.txt").write_text("\n".join(lines) + "\n")
    qrels = read_qrels(tmp_path / "qrels.txt")
    ours = query_retrieval(queries, corpus, qrels=qrels, ks=KS, depth=500)
    scores, idx = topk(normalize_rows(queries.vectors), normalize_rows(corpus.vectors), 500)
    run = [ir_measures.ScoredDoc(f"q{q}", f"d{idx[q, r]}", float(scores[q, r])) for q in range(60) for r in range(500)]
    ref_qrels = [ir_measures.Qrel(q, d, int(g)) for q, docs in qrels.items() for d, g in docs.items()]
    ref = _reference(ref_qrels, run, KS)
    for key, value in ref.items():
        assert ours[key] == pytest.approx(value, abs=1e-9), key


def test_map_at_r_textbook():
    # ranks 1..6 relevance: 1 0 1 0 0 1, R = 3 -> (1/1 + 2/3) / 3
    from repspace.evaluation.metrics import map_at_r, r_precision

    g = np.array([[1, 0, 1, 0, 0, 1]], float)
    assert map_at_r(g, np.array([3.0]))[0] == pytest.approx((1 + 2 / 3) / 3)
    assert r_precision(g, np.array([3.0]))[0] == pytest.approx(2 / 3)
