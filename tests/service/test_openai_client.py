"""`repspace serve` as a subprocess with the real minilm-l6, used through the real `openai` package."""

from __future__ import annotations

import json

import httpx
import numpy as np
import openai
import pytest

from repspace.compress import Compressor

pytestmark = pytest.mark.real

TEXTS = ["The central bank raised interest rates.", "A late goal won the cup final."]


@pytest.fixture(scope="module")
def client(real_server):
    return openai.OpenAI(base_url=real_server["base"] + "/v1", api_key=real_server["key"], max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def full(client):
    r = client.embeddings.create(model="minilm-l6", input=TEXTS, encoding_format="float")
    return np.array([d.embedding for d in r.data], np.float32)


def test_embeddings_default_base64_equals_float(client, full):
    r = client.embeddings.create(model="minilm-l6", input=TEXTS)  # the openai package asks for base64 and decodes it
    got = np.array([d.embedding for d in r.data], np.float32)
    assert got.shape == (2, 384) and r.model == "minilm-l6" and r.object == "list"
    np.testing.assert_array_equal(got, full)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)
    assert r.usage.prompt_tokens == r.usage.total_tokens > 4
    assert float(got[0] @ got[1]) < 0.5  # unrelated sentences


def test_single_string_input(client, full):
    r = client.embeddings.create(model="minilm-l6", input=TEXTS[0], encoding_format="float")
    assert len(r.data) == 1
    np.testing.assert_allclose(r.data[0].embedding, full[0], atol=1e-5)  # same vector alone or batched


def test_dimensions_adaptor_and_truncation(client, full, real_server, minilm_adaptor):
    r = client.embeddings.create(model="minilm-l6", input=TEXTS, dimensions=32)
    a = np.array([d.embedding for d in r.data], np.float32)
    assert a.shape == (2, 32) and r.model_extra["dimensions_method"] == "adaptor"
    ref = Compressor.load(minilm_adaptor).transform(full, 32)
    np.testing.assert_allclose(a, ref / np.linalg.norm(ref, axis=1, keepdims=True), atol=1e-4)
    r = client.embeddings.create(model="minilm-l6", input=TEXTS, dimensions=48, encoding_format="float")
    t = np.array([d.embedding for d in r.data], np.float32)
    assert r.model_extra["dimensions_method"] == "truncate"
    np.testing.assert_allclose(t, full[:, :48] / np.linalg.norm(full[:, :48], axis=1, keepdims=True), atol=1e-5)
    raw = httpx.post(real_server["base"] + "/v1/embeddings", headers={"Authorization": f"Bearer {real_server['key']}"},
                     json={"model": "minilm-l6", "input": TEXTS, "dimensions": 16})
    assert raw.headers["x-repspace-dimensions-method"] == "adaptor"


def test_int8_and_binary_extensions(real_server, full):
    h = {"Authorization": f"Bearer {real_server['key']}"}
    url = real_server["base"] + "/v1/embeddings"
    q = np.array([d["embedding"] for d in httpx.post(url, headers=h, json={"model": "minilm-l6", "input": TEXTS,
                                                                              "encoding_format": "int8"}).json()["data"]])
    assert q.shape == (2, 384) and np.abs(q).max() == 127
    cos = (q * full).sum(1) / np.linalg.norm(q, axis=1)
    assert (cos > 0.999).all()
    b = np.array([d["embedding"] for d in httpx.post(url, headers=h, json={"model": "minilm-l6", "input": TEXTS,
                                                                              "encoding_format": "binary"}).json()["data"]])
    assert b.shape == (2, 48)
    np.testing.assert_array_equal(np.unpackbits(b.astype(np.uint8), axis=1), (full > 0).astype(np.uint8))


def test_models_list(client):
    models = client.models.list()
    assert [m.id for m in models.data] == ["minilm-l6"]
    m = client.models.retrieve("minilm-l6")
    assert m.model_extra["dim"] == 384 and m.model_extra["adaptor_dims"] == [16, 32]


def test_errors_surface_as_openai_exceptions(client, real_server):
    with pytest.raises(openai.NotFoundError, match="not served"):
        client.embeddings.create(model="text-embedding-3-small", input="x")
    with pytest.raises(openai.UnprocessableEntityError, match="dimensions"):
        client.embeddings.create(model="minilm-l6", input="x", dimensions=1000)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=real_server["base"] + "/v1", api_key="wrong-key-0123456789", max_retries=0).embeddings.create(
            model="minilm-l6", input="x")
    with pytest.raises(openai.APIStatusError) as e:
        client.embeddings.create(model="minilm-l6", input=["x"] * 9)
    assert e.value.status_code == 413 and "max_inputs" in e.value.message
    with pytest.raises(openai.APIStatusError) as e:
        client.embeddings.create(model="minilm-l6", input="y" * 301)
    assert e.value.status_code == 413 and "max_input_chars" in e.value.message


def test_access_log_and_metrics(real_server):
    text = httpx.get(real_server["base"] + "/metrics").text
    assert 'repspace_embedding_inputs_total{dimensions_method="adaptor",model="minilm-l6"}' in text
    assert "repspace_embedding_batch_size_count" in text and "repspace_embedding_queue_depth" in text
    lines = [json.loads(l) for l in real_server["log"].read_text().splitlines() if l.startswith("{")]
    assert any(l["route"] == "/v1/embeddings" and l["status"] == 200 and l["model"] == "minilm-l6" for l in lines)
    assert any(l["status"] == 401 for l in lines)
