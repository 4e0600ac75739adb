import json
import math
import zlib

import numpy as np
import pytest

from repspace.errors import InvalidInputError
from repspace.limit.bm25 import BM25
from repspace.limit.data import limit_data, relevant_count
from repspace.limit.evaluate import evaluate_limit, recall_at

WORDS = [f"thing{i}" for i in range(400)]


def test_bm25_matches_a_hand_computation():
    docs = ["a b", "a c c", "d"]
    n, avgdl, k1, b = 3, 2.0, 1.5, 0.75
    idf_c = math.log(1 + (n - 1 + 0.5) / (1 + 0.5))
    idf_a = math.log(1 + (n - 2 + 0.5) / (2 + 0.5))
    c_in_doc1 = idf_c * 2 * (k1 + 1) / (2 + k1 * (1 - b + b * 3 / avgdl))
    a_in_doc0 = idf_a * 1 * (k1 + 1) / (1 + k1 * (1 - b + b * 2 / avgdl))
    a_in_doc1 = idf_a * 1 * (k1 + 1) / (1 + k1 * (1 - b + b * 3 / avgdl))
    s = BM25().fit(docs).scores(["c", "A, c!", "zzz"])
    np.testing.assert_allclose(s, [[0, c_in_doc1, 0], [a_in_doc0, a_in_doc1 + c_in_doc1, 0], [0, 0, 0]])


def test_bm25_okapi_idf_floors_negative_idf_like_rank_bm25():
    # rank_bm25.BM25Okapi(["a b".split(), "a c c".split(), "d".split()]).get_scores(["a", "c"]) (checked once)
    s = BM25(idf="okapi").fit(["a b", "a c c", "d"]).scores(["a c"])
    np.testing.assert_allclose(s, [[0.0638532, 0.68083352, 0.0]], atol=1e-7)
    with pytest.raises(InvalidInputError) as e:
        BM25(idf="nope")
    assert e.value.param == "idf"


def test_limit_data_is_the_dense_pair_pattern():
    d = limit_data(docs=60, queries=45, attributes=WORDS, seed=3)
    assert relevant_count(45) == 10 == d.relevant_docs and d.attributes_per_doc == 9
    assert len(d.doc_ids) == 60 and len(d.query_ids) == 45
    pairs = {frozenset(r) for r in d.qrels.values()}
    assert len(pairs) == 45 and all(len(p) == 2 for p in pairs)  # every pair of the 10 documents, once
    relevant = set().union(*pairs)
    assert len(relevant) == 10
    text = dict(zip(d.doc_ids, d.doc_texts))
    for q, qt in zip(d.query_ids, d.query_texts):
        attr = qt.removeprefix("Who likes ").removesuffix("?")
        holders = {i for i, t in text.items() if f" {attr}," in t or f" {attr}." in t or f" {attr} and" in t}
        assert holders == set(d.qrels[q])  # exactly its two documents like it
    counts = {t.count(",") for t in d.doc_texts}
    assert counts == {d.attributes_per_doc - 2}  # every document lists as many attributes
    assert limit_data(docs=60, queries=45, attributes=WORDS, seed=3) == d


def test_limit_data_refuses_too_few_docs_or_attributes():
    with pytest.raises(InvalidInputError) as e:
        limit_data(docs=20, queries=1000, attributes=WORDS)
    assert e.value.param == "docs"
    with pytest.raises(InvalidInputError) as e:
        limit_data(docs=100, queries=300, attributes=WORDS[:100])
    assert e.value.param == "attributes"


def test_recall_at_counts_relevant_in_top_k():
    d = limit_data(docs=10, queries=3, attributes=WORDS, seed=0)
    pos = {i: j for j, i in enumerate(d.doc_ids)}
    s = np.zeros((3, 10))
    for qi, q in enumerate(d.query_ids):
        a, b = sorted(pos[x] for x in d.qrels[q])
        s[qi, a] = 2.0 if qi == 0 else 0.5  # query 0: both on top; others: one 2nd (under 0.9), one last
        s[qi, b] = 1.0 if qi == 0 else -1.0
        s[qi, [j for j in range(10) if j not in (a, b)][0]] = 0.9
    r = recall_at(s, d, [1, 2, 10])
    assert r == {"recall@1": round(0.5 / 3, 4), "recall@2": round((1 + 0.5 + 0.5) / 3, 4),
                 "recall@10": 1.0}


def test_bm25_solves_limit_and_a_callable_model_does_not(cli):
    from repspace.encoders import register_encoder

    def hashed(texts):  # a weak 16-d "model": bag of hashed words
        out = np.zeros((len(texts), 16), np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                out[i, zlib.crc32(w.encode()) % 16] += 1
        return out

    register_encoder("limit-test-hash", hashed, dim=16, replace=True)
    r = evaluate_limit("limit-test-hash", docs=80, queries=45, attributes=WORDS, ks=(2, 10))
    bm25 = [s for s in r["systems"] if s["system"] == "bm25"][0]
    dense = [s for s in r["systems"] if s["system"] == "limit-test-hash"][0]
    assert bm25["recall@2"] >= 0.95 and dense["recall@2"] < bm25["recall@2"]
    assert r["relevant_docs"] == 10


def test_cli_limit_eval_json_and_old_contract(cli, tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("\n".join(WORDS))
    code, out, err = cli("limit", "eval", "--bm25-only", "--docs", 50, "--queries", 20, "--attributes", words, "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["docs"] == 50 and r["systems"][0]["system"] == "bm25" and r["systems"][0]["recall@2"] >= 0.95
    code, out, err = cli("limit", "eval", "--bm25-only", "--docs", 5, "--attributes", words)
    assert code == 2 and "--docs" in err and err.startswith("error:")
    code, out, err = cli("limit", "--dim", 2, "--k", 2, "--json", "--max-n", 3, "--tries", 1, "--patience", 300, "--quiet")
    assert code == 0 and json.loads(out)["critical_n"] == 3
