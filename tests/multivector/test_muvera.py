"""MUVERA fixed-dimensional encodings (issue #28 item 2): equal to Google's compiled reference (PyPI `muvfde`),
an inner product that tracks Chamfer similarity, exact MaxSim, the CLI round trip and one clear error per bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from repspace.errors import InvalidInputError, InvalidVectorsError
from repspace.multivector import (
    FDEConfig,
    TokenSet,
    encode_documents,
    encode_queries,
    maxsim,
    maxsim_scores,
    search,
)
from repspace.multivector.rng import WordStream, index_sign_pairs
from repspace.ops.search import normalize_rows


def _items(rng, n, dim, max_tokens):
    return [rng.standard_normal((int(rng.integers(1, max_tokens)), dim)).astype(np.float32) for _ in range(n)]


# ------------------------------------------------------------------------------------------- the random streams
def test_word_stream_is_std_mt19937():
    """C++11 [rand.predef]: the 10000th output of a default-constructed std::mt19937 (seed 5489) is 4123659995."""
    s = WordStream(5489)
    s.skip(9999)
    assert int(s.peek(1)[0]) == 4123659995


def test_rejections_of_the_integer_reduction_are_redrawn():
    """A range just above 2**31 rejects about half the words (Lemire's reduction); each index is still in range and
    the stream stays aligned: the same draws split into two calls give the same values."""
    idx, sign = index_sign_pairs(WordStream(7), 400, 2**31 + 3)
    assert idx.min() >= 0 and idx.max() < 2**31 + 3 and set(np.unique(sign)) == {-1.0, 1.0}
    s = WordStream(7)
    a = index_sign_pairs(s, 150, 2**31 + 3)
    b = index_sign_pairs(s, 250, 2**31 + 3)
    assert np.array_equal(np.r_[a[0], b[0]], idx) and np.array_equal(np.r_[a[1], b[1]], sign)


# ------------------------------------------------------------------------------------------- (a) the reference
CASES = [
    dict(num_simhash_projections=4),
    dict(num_simhash_projections=4, projection_dimension=8),
    dict(num_simhash_projections=3, projection_dimension=7, seed=5),
    dict(num_simhash_projections=4, final_projection_dimension=500),
    dict(num_simhash_projections=3, projection_dimension=6, final_projection_dimension=333, seed=11),
    dict(num_simhash_projections=0),
    dict(num_simhash_projections=6, num_repetitions=1),  # 64 buckets: most are empty, so filling matters
]


def _reference(muvfde, items, cfg: FDEConfig, document: bool) -> np.ndarray:
    c = muvfde.fixed_dimensional_encoding_config()  # its setters return copies: call them one by one
    c.set_num_repetitions(cfg.num_repetitions)
    c.set_num_simhash_projections(cfg.num_simhash_projections)
    c.set_seed(cfg.seed)
    c.set_encoding_type(muvfde.encoding_type.AVERAGE if document else muvfde.encoding_type.DEFAULT_SUM)
    if cfg.projection_dimension:
        c.set_projection_type(muvfde.projection_type.AMS_SKETCH)
        c.set_projection_dimension(cfg.projection_dimension)
    if document and cfg.fill_empty_partitions:
        c.enable_fill_empty(True)
    if cfg.final_projection_dimension:
        c.set_final_projection_dimension(cfg.final_projection_dimension)
    return np.stack([muvfde.generate_fixed_dimensional_encoding(np.ascontiguousarray(x), c) for x in items])


@pytest.mark.parametrize("fill", [False, True])
@pytest.mark.parametrize("case", CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_equals_googles_reference(case, fill):
    muvfde = pytest.importorskip("muvfde")
    rng = np.random.default_rng(len(str(case)))
    items = _items(rng, 12, 24, 40)
    cfg = FDEConfig(dim=24, **{"num_repetitions": 3, **case}, fill_empty_partitions=fill)
    q, d = encode_queries(items, cfg), encode_documents(items, cfg)
    rq, rd = _reference(muvfde, items, cfg, False), _reference(muvfde, items, cfg, True)
    assert q.shape == rq.shape == (12, cfg.output_dim) and d.shape == rd.shape
    np.testing.assert_allclose(q, rq, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(d, rd, rtol=1e-5, atol=1e-5)


def test_blocks_of_items_change_nothing(rng):
    items = _items(rng, 30, 16, 50)
    cfg = FDEConfig(dim=16, num_repetitions=4, num_simhash_projections=3, projection_dimension=8)
    whole = encode_documents(items, cfg)
    np.testing.assert_allclose(encode_documents(items, cfg, chunk_tokens=7), whole, rtol=1e-6, atol=1e-6)
    assert np.array_equal(encode_documents(items, cfg), whole)  # deterministic for a seed
    assert not np.allclose(encode_documents(items, FDEConfig(**{**cfg.to_dict(), "seed": 2})), whole)


# ------------------------------------------------------------------------------------------- (b) the approximation
def test_fde_inner_product_tracks_chamfer_better_with_repetitions():
    rng = np.random.default_rng(0)
    queries = [normalize_rows(rng.standard_normal((8, 16))) for _ in range(20)]
    docs = [normalize_rows(rng.standard_normal((30, 16))) for _ in range(60)]
    exact = maxsim_scores(queries, docs).ravel()

    def corr(reps):
        out = []
        for seed in range(3):
            cfg = FDEConfig(dim=16, num_repetitions=reps, num_simhash_projections=3, seed=seed)
            out.append(np.corrcoef(exact, (encode_queries(queries, cfg) @ encode_documents(docs, cfg).T).ravel())[0, 1])
        return float(np.mean(out))

    c1, c5, c20 = corr(1), corr(5), corr(20)
    assert c1 < c5 < c20 and c20 > 0.5, (c1, c5, c20)


def test_one_bucket_is_the_sum_and_the_mean():
    """k_sim = 0, no projection: the query FDE is the token sum, the document FDE the token mean (exact)."""
    rng = np.random.default_rng(1)
    items = _items(rng, 5, 6, 9)
    cfg = FDEConfig(dim=6, num_repetitions=2, num_simhash_projections=0)
    np.testing.assert_allclose(encode_queries(items, cfg), np.stack([np.tile(x.sum(0), 2) for x in items]), atol=1e-5)
    np.testing.assert_allclose(encode_documents(items, cfg), np.stack([np.tile(x.mean(0), 2) for x in items]),
                               atol=1e-6)


# ------------------------------------------------------------------------------------------- (c) exact MaxSim
def test_maxsim_equals_a_brute_force_loop(rng):
    queries, docs = _items(rng, 6, 12, 7), _items(rng, 25, 12, 15)
    brute = np.array([[sum(max(float(q @ t) for t in d) for q in qs) for d in docs] for qs in queries])
    np.testing.assert_allclose(maxsim_scores(queries, docs), brute, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(maxsim_scores(queries, docs, max_scores=40), brute, rtol=1e-5, atol=1e-4)
    assert maxsim(queries[2], docs[7]) == pytest.approx(brute[2, 7], rel=1e-5)


def test_search_with_a_full_shortlist_is_exact_maxsim(rng):
    queries, docs = _items(rng, 6, 12, 7), _items(rng, 25, 12, 15)
    cfg = FDEConfig(dim=12, num_repetitions=4, num_simhash_projections=2)
    scores, rows = search(queries, encode_queries(queries, cfg), encode_documents(docs, cfg), TokenSet.from_arrays(docs),
                          k=5, shortlist=25)
    exact = maxsim_scores(queries, docs)
    assert np.array_equal(rows, np.argsort(-exact, axis=1, kind="stable")[:, :5])
    np.testing.assert_allclose(scores, np.take_along_axis(exact, rows, 1), rtol=1e-5)


# ------------------------------------------------------------------------------------------- (e) bad input
@pytest.mark.parametrize("bad, words", [
    ([np.ones((3, 8)), np.ones((2, 7))], "item 1 has shape (2, 7)"),
    ([np.ones((3, 8)), np.ones((0, 8))], "item 1 has no tokens"),
    ([np.ones((3, 8)), np.ones((2, 8)), np.array([[1.0] * 7 + [np.nan]])], "item 2 holds NaN"),
    ([], "no documents"),
    ([np.ones(8)], "item 0 has shape (8,)"),
])
def test_bad_items_give_one_clear_error(bad, words):
    cfg = FDEConfig(dim=8, num_repetitions=2, num_simhash_projections=2)
    with pytest.raises(InvalidVectorsError, match=None) as e:
        encode_documents(bad, cfg)
    assert words in str(e.value) and e.value.param == "documents"


@pytest.mark.parametrize("field, value", [("num_simhash_projections", 31), ("num_repetitions", 0), ("dim", -3),
                                          ("projection_dimension", 0), ("seed", -1), ("final_projection_dimension", 1.5)])
def test_bad_configs_name_their_parameter(field, value):
    with pytest.raises(InvalidInputError) as e:
        FDEConfig(**{"dim": 8, field: value})
    assert e.value.param == field


# ------------------------------------------------------------------------------------------- (d) the CLI
@pytest.mark.real
def test_cli_round_trip(cli, tmp_path):
    from repspace.index import Index
    from repspace.multivector.api import load_muvera_space
    from repspace.spaces import Space

    texts = ["the cat sat on the mat", "stock markets fell sharply", "a new phone was released today",
             "the football team won the cup", "rain is expected tomorrow"]
    src = tmp_path / "docs.txt"
    src.write_text("\n".join(texts) + "\n")
    opts = ["--model", "minilm-l6", "--input", src, "--repetitions", "4", "--simhash", "3", "--proj", "8"]
    code, _, err = cli("muvera", "encode", *opts, "--out", tmp_path / "docs")
    assert code == 0, err
    code, _, err = cli("muvera", "encode", *opts, "--out", tmp_path / "queries", "--side", "query")
    assert code == 0, err
    space, tokens, cfg, side = load_muvera_space(tmp_path / "docs")
    assert (space.count, space.dim, side, cfg.projection_dimension) == (5, 4 * 8 * 8, "document", 8)
    assert len(tokens) == 5 and tokens.dim == 384 and np.allclose(np.linalg.norm(tokens.flat, axis=1), 1, atol=1e-5)
    assert np.allclose(space.vectors, encode_documents(tokens, cfg), atol=1e-6)
    queries, q_tokens, _, q_side = load_muvera_space(tmp_path / "queries")
    assert q_side == "query" and np.allclose(queries.vectors, encode_queries(q_tokens, cfg), atol=1e-5)
    # a normal space: any index takes it, and re-ranking a full shortlist is exact MaxSim
    code, _, err = cli("index", "build", tmp_path / "docs", "--out", tmp_path / "idx")
    assert code == 0, err
    _, rows = Index.load(tmp_path / "idx").search(queries.vectors, 5)
    assert rows.shape == (5, 5)
    _, top = search(q_tokens, queries.vectors, space.vectors, tokens, k=1, shortlist=5)
    assert top[:, 0].tolist() == np.argmax(maxsim_scores(q_tokens, tokens), axis=1).tolist()
    assert Space.load(tmp_path / "docs").model == "minilm-l6+muvera"


@pytest.mark.real
def test_cli_eval_and_errors(cli):
    code, out, err = cli("muvera", "eval", "--model", "minilm-l6", "--queries", "bbc-news:title@test",
                         "--corpus", "bbc-news:body@test", "--limit", "12", "--shortlist", "12", "--repetitions", "4",
                         "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["fde_dim"] == 4 * 32 * 16 and result["queries"] == 12
    assert result["shortlist_recall@12_of_maxsim_top10"] == 1.0  # the shortlist is the whole corpus
    assert result["ndcg@10"]["fde_rerank"] == result["ndcg@10"]["maxsim"]
    code, _, err = cli("muvera", "eval", "--model", "minilm-l6", "--queries", "bbc-news:title@test",
                       "--corpus", "bbc-news:body@test", "--simhash", "31")
    assert code == 2 and err.count("error:") == 1 and "--simhash" in err
    code, _, err = cli("muvera", "encode", "--model", "glove-50", "--dataset", "bbc-news:title@test", "--out", "/nonexist/x")
    assert code == 2 and "no token embeddings" in err
