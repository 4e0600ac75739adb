"""The library half of the service: dimensions rule, encoding formats, adaptors, the dynamic batcher."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from repspace.errors import DimensionMismatchError, InvalidInputError
from repspace.service import DynamicBatcher, EmbeddingModel, QueueFullError, format_embeddings
from repspace.service.embeddings import decode_base64, pack_binary, quantize_int8
from tests.service.conftest import StubEncoder


def _pca(dims, d=8, n=64):
    from repspace.compress import PCACompressor

    return PCACompressor(dims=dims).fit(np.random.default_rng(1).normal(size=(n, d)).astype(np.float32))


def test_dimensions_rule_and_normalisation():
    m = EmbeddingModel(StubEncoder(dim=8))
    full = m.embed(["a", "bb", "ccc"])
    assert full.dimensions_method == "full" and full.vectors.shape == (3, 8)
    np.testing.assert_allclose(np.linalg.norm(full.vectors, axis=1), 1, atol=1e-6)
    assert m.embed(["a"], dimensions=8).dimensions_method == "full"
    t = m.embed(["a", "bb", "ccc"], dimensions=3)
    assert t.dimensions_method == "truncate"
    pref = full.vectors[:, :3] / np.linalg.norm(full.vectors[:, :3], axis=1, keepdims=True)
    np.testing.assert_allclose(t.vectors, pref, atol=1e-6)
    with pytest.raises(DimensionMismatchError, match="exceeds"):
        m.embed(["a"], dimensions=9)
    for bad in (0, -1, True, 2.5):
        with pytest.raises(InvalidInputError):
            m.dimensions_method(bad)


def test_adaptor_serves_its_dims_and_truncation_the_rest(tmp_path):
    comp = _pca([2, 4])
    comp.save(tmp_path / "a")
    m = EmbeddingModel(StubEncoder(dim=8), adaptor=tmp_path / "a")
    assert m.adaptor_dims == [2, 4]
    full = m.embed(["x", "y"]).vectors
    a = m.embed(["x", "y"], dimensions=4)
    assert a.dimensions_method == "adaptor"
    ref = comp.transform(full, 4)
    np.testing.assert_allclose(a.vectors, ref / np.linalg.norm(ref, axis=1, keepdims=True), atol=1e-5)
    assert m.embed(["x"], dimensions=3).dimensions_method == "truncate"
    assert m.describe()["adaptor"] == "pca"


def test_adaptor_refused_when_it_does_not_fit():
    with pytest.raises(DimensionMismatchError, match="maps 16-d"):
        EmbeddingModel(StubEncoder(dim=8), adaptor=_pca([4], d=16))


def test_formats_roundtrip():
    X = np.random.default_rng(0).normal(size=(3, 10)).astype(np.float32)
    assert np.allclose(format_embeddings(X, "float"), X)
    b64 = format_embeddings(X, "base64")
    assert all(isinstance(s, str) for s in b64)
    np.testing.assert_array_equal(np.stack([decode_base64(s) for s in b64]), X)
    q = np.asarray(format_embeddings(X, "int8"))
    assert q.shape == (3, 10) and np.abs(q).max() == 127
    assert np.array_equal(q, quantize_int8(X))
    cos = (q[0] @ X[0]) / np.linalg.norm(q[0]) / np.linalg.norm(X[0])
    assert cos > 0.999
    bits = np.asarray(format_embeddings(X, "binary"))
    assert bits.shape == (3, 2) and bits.dtype.kind in "iu"
    np.testing.assert_array_equal(np.unpackbits(bits.astype(np.uint8), axis=1)[:, :10], (X > 0).astype(np.uint8))
    assert np.array_equal(bits, pack_binary(X))
    with pytest.raises(InvalidInputError, match="encoding_format"):
        format_embeddings(X, "fp16")


def test_micro_batches_sorted_by_length_keep_order():
    enc = StubEncoder(dim=4)
    m = EmbeddingModel(enc, micro_batch=2)
    texts = ["a" * k for k in (5, 1, 9, 3, 7)]
    out = m.encode(texts)
    assert enc.batches == [2, 2, 1]
    for i, t in enumerate(texts):
        np.testing.assert_allclose(out[i], m.encode([t])[0], atol=1e-6)


def test_batcher_merges_concurrent_requests_and_splits_results():
    calls = []
    gate = threading.Event()

    def fn(texts):
        gate.wait(5)
        calls.append(list(texts))
        return np.array([[len(t)] for t in texts], np.float32)

    b = DynamicBatcher(fn, max_batch_items=100, max_queue_items=100)
    try:
        first = b.submit(["x"])  # taken at once; blocks the worker on the gate
        time.sleep(0.05)
        futs = [b.submit(["a" * k, "b" * (k + 1)]) for k in range(1, 6)]
        assert b.queue_depth == 10
        gate.set()
        assert first.result(5).tolist() == [[1.0]]
        for k, f in zip(range(1, 6), futs):
            assert f.result(5).ravel().tolist() == [k, k + 1]
        assert len(calls) == 2 and len(calls[1]) == 10  # the five queued requests: one batch
    finally:
        b.close()


def test_batcher_bounds_batch_and_queue_and_skips_cancelled():
    gate = threading.Event()
    sizes = []

    def fn(texts):
        gate.wait(5)
        sizes.append(len(texts))
        return np.zeros((len(texts), 1), np.float32)

    b = DynamicBatcher(fn, max_batch_items=4, max_batch_tokens=10**6, max_queue_items=8)
    try:
        b.submit(["w"])
        time.sleep(0.05)
        keep = [b.submit(["a", "b", "c"]), b.submit(["d", "e", "f"])]
        dropped = b.submit(["g", "h"])
        with pytest.raises(QueueFullError) as e:
            b.submit(["i"])
        assert e.value.retry_after >= 1 and "max_queue_items" in str(e.value)
        assert dropped.cancel()
        gate.set()
        for f in keep:
            f.result(5)
        time.sleep(0.05)
        assert sizes == [1, 3, 3]  # 3 + 3 > 4: two batches; the cancelled request never encoded
    finally:
        b.close()


def test_batcher_delivers_errors_to_every_request():
    def fn(texts):
        raise InvalidInputError("boom")

    b = DynamicBatcher(fn)
    try:
        with pytest.raises(InvalidInputError, match="boom"):
            b.submit(["a"]).result(5)
    finally:
        b.close()


def test_batcher_with_two_workers_encodes_two_batches_at_once():
    running, peak, lock = [0], [0], threading.Lock()

    def fn(texts):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.2)
        with lock:
            running[0] -= 1
        return np.zeros((len(texts), 1), np.float32)

    b = DynamicBatcher(fn, max_batch_items=1, workers=2)
    try:
        futs = [b.submit([str(k)]) for k in range(4)]
        for f in futs:
            assert f.result(5).shape == (1, 1)
        assert peak[0] == 2
    finally:
        b.close()


def test_batcher_wait_merges_requests_arriving_shortly_after():
    sizes = []

    def fn(texts):
        sizes.append(len(texts))
        return np.zeros((len(texts), 1), np.float32)

    b = DynamicBatcher(fn, max_wait_ms=300)
    try:
        first = b.submit(["a"])
        time.sleep(0.05)
        second = b.submit(["b", "c"])  # within the wait: same batch
        first.result(5), second.result(5)
        assert sizes == [3]
    finally:
        b.close()


@pytest.mark.parametrize("fmt", ["float", "base64", "int8"])
def test_response_body_same_with_and_without_orjson(monkeypatch, fmt):
    import json
    import sys

    from repspace.service.embeddings import embedding_response

    X = np.random.default_rng(0).normal(size=(2, 5)).astype(np.float32)
    fast = json.loads(embedding_response(X, fmt, "m", 7, "truncate"))
    monkeypatch.setitem(sys.modules, "orjson", None)  # import fails: the json fallback
    slow = json.loads(embedding_response(X, fmt, "m", 7, "truncate"))
    assert fast.keys() == slow.keys() and fast["usage"] == slow["usage"] == {"prompt_tokens": 7, "total_tokens": 7}
    a = np.array([d["embedding"] for d in fast["data"]]) if fmt != "base64" else [d["embedding"] for d in fast["data"]]
    b = np.array([d["embedding"] for d in slow["data"]]) if fmt != "base64" else [d["embedding"] for d in slow["data"]]
    if fmt == "float":
        np.testing.assert_array_equal(a.astype(np.float32), X)
        np.testing.assert_array_equal(b.astype(np.float32), X)
    else:
        assert np.array_equal(a, b) if fmt == "int8" else a == b
