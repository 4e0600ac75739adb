"""Query-side adapters on a synthetic drift with a known answer: the new model is a rotation of the old."""

import json

import numpy as np
import pytest

from repspace import Space
from repspace.compat import evaluate_upgrade, fit_adapter


@pytest.fixture
def drift(tmp_path, rng):
    n, d = 800, 24
    ids = [f"doc{k}" for k in range(n)]
    docs = rng.normal(size=(n, d))
    queries = docs + 0.6 * rng.normal(size=(n, d))
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    spaces = {
        "old_corpus": Space(docs.astype(np.float32), ids, model="old"),
        "old_queries": Space(queries.astype(np.float32), ids, model="old"),
        "new_corpus": Space((docs @ q).astype(np.float32), ids, model="new"),
        "new_queries": Space((queries @ q).astype(np.float32), ids, model="new"),
    }
    for name, s in spaces.items():
        s.save(tmp_path / name)
    return spaces


@pytest.mark.parametrize("method", ["procrustes", "affine", "lowrank", "mlp"])
def test_adapter_recovers_a_rotation(drift, method):
    adapter = fit_adapter(drift["old_corpus"], drift["new_corpus"], method, rank=24)
    res = evaluate_upgrade(adapter, drift["old_corpus"], drift["new_queries"], drift["new_corpus"], drift["old_queries"])
    assert res["recovery"]["recall@10"] > 0.97
    assert res["adapted_new_old"]["ndcg@10"] == pytest.approx(res["old_old"]["ndcg@10"], abs=0.03)
    # without the adapter, new queries cannot search the old index at all
    from repspace.evaluation import query_retrieval

    assert query_retrieval(drift["new_queries"], drift["old_corpus"])["recall@10"] < 0.2


def test_cli_fit_eval_search(cli, drift, tmp_path):
    code, _, err = cli("upgrade", "fit", tmp_path / "old_corpus", tmp_path / "new_corpus", "--method", "procrustes",
                       "--pairs", "300", "--out", tmp_path / "ad")
    assert code == 0, err
    code, out, err = cli("upgrade", "eval", tmp_path / "ad", "--old-corpus", tmp_path / "old_corpus",
                         "--new-queries", tmp_path / "new_queries", "--new-corpus", tmp_path / "new_corpus",
                         "--old-queries", tmp_path / "old_queries", "--json")
    assert code == 0, err
    r = json.loads(out)
    for key in ("old_old", "new_new", "adapted_new_old", "recovery"):
        assert set(r[key]) == {"recall@10", "ndcg@10"}
    assert r["recovery"]["recall@10"] > 0.97 and r["adapter_us_per_query"] > 0
    # the CLI prints what the library computes (timing aside)
    from repspace.alignment import load_translator

    lib = evaluate_upgrade(load_translator(tmp_path / "ad"), drift["old_corpus"], drift["new_queries"],
                           drift["new_corpus"], drift["old_queries"])
    for key in ("old_old", "new_new", "adapted_new_old", "recovery"):
        assert r[key] == pytest.approx(lib[key], abs=1e-12), key
    assert cli("index", "build", tmp_path / "old_corpus", "--spec", "Flat", "--out", tmp_path / "ix")[0] == 0
    code, out, err = cli("search", tmp_path / "ix", "--queries", tmp_path / "new_queries", "--query-adapter", tmp_path / "ad",
                         "--k", "5", "--json")
    assert code == 0, err
    hits = json.loads(out)["results"]
    assert np.mean([r["query"] in {h["id"] for h in r["hits"]} for r in hits]) > 0.9


def test_mismatched_adapter_and_index(cli, drift, tmp_path, rng):
    assert cli("upgrade", "fit", tmp_path / "old_corpus", tmp_path / "new_corpus", "--out", tmp_path / "ad")[0] == 0
    # an index of the NEW model: the adapter maps into the old model's space
    assert cli("index", "build", tmp_path / "new_corpus", "--spec", "Flat", "--out", tmp_path / "ix_new")[0] == 0
    code, _, err = cli("search", tmp_path / "ix_new", "--queries", tmp_path / "new_queries", "--query-adapter", tmp_path / "ad")
    assert code == 2 and "maps into model 'old'" in err
    Space(rng.normal(size=(10, 12)).astype(np.float32), [f"x{i}" for i in range(10)], model="old").save(tmp_path / "small")
    assert cli("index", "build", tmp_path / "small", "--spec", "Flat", "--out", tmp_path / "ix_small")[0] == 0
    code, _, err = cli("search", tmp_path / "ix_small", "--queries", tmp_path / "new_queries", "--query-adapter", tmp_path / "ad")
    assert code == 2 and "24-d vectors but the index is 12-d" in err
    code, _, err = cli("upgrade", "fit", tmp_path / "old_corpus", tmp_path / "new_corpus", "--method", "ridge", "--out", tmp_path / "x")
    assert code == 2 and "unknown adapter method" in err
    # queries of the old model given to a new->old adapter
    code, _, err = cli("search", tmp_path / "ix_small", "--queries", tmp_path / "old_queries", "--query-adapter", tmp_path / "ad")
    assert code == 2 and err == "error: the adapter outputs 24-d vectors but the index is 12-d\n"


def test_adapter_from_several_views_of_the_same_items(cli, drift, tmp_path):
    """--also-old/--also-new add the query view's pairs for the same sampled items."""
    code, _, err = cli("upgrade", "fit", tmp_path / "old_corpus", tmp_path / "new_corpus", "--pairs", "50",
                       "--also-old", tmp_path / "old_queries", "--also-new", tmp_path / "new_queries", "--out", tmp_path / "ad2")
    assert code == 0, err
    from repspace.alignment import load_translator

    ad = load_translator(tmp_path / "ad2")
    assert ad.n_pairs_ == 100  # 50 items x 2 views
    res = evaluate_upgrade(ad, drift["old_corpus"], drift["new_queries"], drift["new_corpus"])
    assert res["recovery"]["recall@10"] > 0.97
    code, _, err = cli("upgrade", "fit", tmp_path / "old_corpus", tmp_path / "new_corpus",
                       "--also-old", tmp_path / "old_queries", "--out", tmp_path / "ad3")
    assert code == 2 and "same number of times" in err
    code, _, err = cli("upgrade", "fit", tmp_path / "old_corpus", tmp_path / "new_corpus",
                       "--also-old", tmp_path / "new_queries", "--also-new", tmp_path / "old_queries", "--out", tmp_path / "ad3")
    assert code == 2 and "must be 'old' (old) / 'new' (new)" in err


def test_fit_from_test_half_only_says_why(cli, tmp_path):
    from repspace.datasets import hash_split

    ids = [f"doc{k}" for k in range(400) if hash_split(f"doc{k}") == "test"]
    x = np.random.default_rng(0).normal(size=(len(ids), 8)).astype(np.float32)
    Space(x, ids, model="old").save(tmp_path / "o")
    Space(x, ids, model="new").save(tmp_path / "n")
    code, _, err = cli("upgrade", "fit", tmp_path / "o", tmp_path / "n", "--out", tmp_path / "ad")
    assert code == 2 and "test half" in err and "train split" in err
