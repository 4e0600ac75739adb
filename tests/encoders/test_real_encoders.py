"""Real packaged models on real data (small subsets)."""

import numpy as np
import pytest

from repspace import encode_items, get_encoder, load_dataset
from repspace.encoders import MODELS
from repspace.errors import InvalidInputError, UnknownNameError

pytestmark = pytest.mark.real


def _require(name):
    if not MODELS[name].available():
        pytest.skip(f"{name} not installed")


def test_minilm_matches_sentence_transformers():
    from sentence_transformers import SentenceTransformer

    from repspace.encoders.sentence import minilm_l6_path

    items = load_dataset("bbc-news:body").limit(48)
    space = encode_items(get_encoder("minilm-l6"), items, batch_size=16, progress=False)
    ref = SentenceTransformer(str(minilm_l6_path()), device="cpu").encode(list(items.data), batch_size=16)
    cos = np.sum(space.vectors * ref, axis=1) / (np.linalg.norm(space.vectors, axis=1) * np.linalg.norm(ref, axis=1))
    assert space.dim == 384 and space.normalized
    assert cos.min() >= 0.9999


def test_onnx_minilm_l3_is_a_sensible_text_space():
    _require("minilm-l3-onnx")
    titles = load_dataset("bbc-news:title").limit(64)
    bodies = load_dataset("bbc-news:body").limit(64)
    enc = get_encoder("minilm-l3-onnx")
    t = encode_items(enc, titles, progress=False)
    b = encode_items(enc, bodies, progress=False)
    assert t.dim == 384 and t.normalized
    top1 = np.mean(np.argmax(t.vectors @ b.vectors.T, axis=1) == np.arange(64))
    assert top1 > 0.6
    # batching must not change the result (padding is masked)
    one = enc.encode_batch([titles.data[0]])
    np.testing.assert_allclose(one[0], t.vectors[0], atol=1e-5)


def test_mpnet_from_pypi_parts_and_cache_reuse(repspace_home):
    _require("mpnet-base")
    from repspace.encoders.sentence import mpnet_path

    path = mpnet_path()
    assert str(path).startswith(repspace_home) and (path / "model.safetensors").is_file()
    mtime = (path / "model.safetensors").stat().st_mtime_ns
    assert mpnet_path() == path and (path / "model.safetensors").stat().st_mtime_ns == mtime  # reused, not re-unzipped
    space = encode_items(get_encoder("mpnet-base"), load_dataset("bbc-news:title").limit(16), progress=False)
    assert space.dim == 768 and space.normalized


def test_glove_mean_of_word_vectors():
    _require("glove-50")
    enc = get_encoder("glove-50")
    v = enc.encode_batch(["Stocks rally", "zzqqxx-unknownword"])
    assert v.shape == (2, 50)
    assert np.isclose(np.linalg.norm(v[0]), 1) and np.all(v[1] == 0)
    sim = enc.encode_batch(["market shares fell"]) @ enc.encode_batch(["stock prices dropped", "the football match"]).T
    assert sim[0, 0] > sim[0, 1]


def test_efficientnet_on_digits():
    _require("efficientnet-lite0")
    items = load_dataset("digits").limit(40)
    space = encode_items(get_encoder("efficientnet-lite0"), items, batch_size=20, progress=False)
    assert space.dim == 1280 and np.isfinite(space.vectors).all()
    # same-class images are closer on average than different-class ones
    x = space.normalize().vectors
    sims = x @ x.T
    same = items.labels[:, None] == items.labels[None, :]
    np.fill_diagonal(same, False)
    diff = items.labels[:, None] != items.labels[None, :]
    assert sims[same].mean() > sims[diff].mean()


def test_modality_mismatch_and_unknown_model():
    with pytest.raises(InvalidInputError, match="encodes text, but the input holds image"):
        encode_items(get_encoder("glove-50"), load_dataset("digits").limit(2), progress=False)
    with pytest.raises(UnknownNameError, match="unknown model 'bert-huge'.*minilm-l6"):
        get_encoder("bert-huge")


def test_local_sentence_transformers_dir_as_model():
    from repspace.encoders.sentence import minilm_l6_path

    enc = get_encoder(str(minilm_l6_path()))
    assert enc.dim == 384 and enc.name == str(minilm_l6_path())
