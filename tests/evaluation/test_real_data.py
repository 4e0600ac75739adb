"""Evaluation on real encoders and real data (bbc-news)."""

import json

import numpy as np
import pytest

from repspace import Space
from repspace.evaluation import compare, compatibility, label_retrieval, linear_probe, query_retrieval

pytestmark = pytest.mark.real


def test_minilm_bodies_full_via_cli(cli, bbc_space):
    path = bbc_space("minilm-l6", "body")
    code, out, _ = cli("info", path, "--json")
    info = json.loads(out)
    assert code == 0 and info["count"] == 2225 and info["dim"] == 384 and info["model"] == "minilm-l6"
    s = Space.load(path)
    assert linear_probe(s)["accuracy"] > 0.93
    assert label_retrieval(s)["map@r"] > 0.4


def test_title_to_body_and_similarity_across_models(bbc_space):
    t6, b6 = Space.load(bbc_space("minilm-l6", "title")), Space.load(bbc_space("minilm-l6", "body"))
    t3, b3 = Space.load(bbc_space("minilm-l3-onnx", "title")), Space.load(bbc_space("minilm-l3-onnx", "body"))
    for t, b in ((t6, b6), (t3, b3)):
        assert query_retrieval(t, b)["ndcg@10"] > 0.7
    sim = compare(b6, b3)
    assert 0.5 < sim["cka"] < 0.95 and 0.2 < sim["mknn"] < 0.8
    # two independently trained models of equal dimension are not compatible
    res = compatibility([b6, b3])
    assert res["compatible"]["2->1"] is False
    # but the same model is perfectly similar to itself
    assert compare(b6, b6, metrics=("cka",))["cka"] == pytest.approx(1.0, abs=1e-6)


def test_glove_is_worse_than_minilm_on_titles(bbc_space):
    g = Space.load(bbc_space("glove-50", "title"))
    m = Space.load(bbc_space("minilm-l6", "title"))
    assert linear_probe(g)["accuracy"] < linear_probe(m)["accuracy"]
    assert np.isfinite(compare(g, m, metrics=("cka", "svcca"))["svcca"])
