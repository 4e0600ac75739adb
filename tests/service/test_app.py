"""The app on a real uvicorn server (in a thread, loopback) with a stub encoder: auth, limits, 429, 503, 504, errors, metrics."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import pytest

from repspace.service import EmbeddingModel, Limits, ServeConfig
from repspace.service.app import create_app
from tests.service.conftest import KEY, StubEncoder, running

AUTH = {"Authorization": f"Bearer {KEY}"}


def _app(encoder=None, **limits):
    enc = encoder or StubEncoder()
    cfg = ServeConfig(models=["stub"], api_keys=[KEY], limits=Limits(**{"max_inputs": 4, "max_input_chars": 50,
                                                                         "max_body_bytes": 4000, **limits}))
    return create_app(cfg, models={"stub": EmbeddingModel(enc)}, background_load=False), enc


@pytest.fixture(scope="module")
def stub_server():
    app, enc = _app()
    with running(app) as base:
        yield base, enc


def _post(base, body, headers=AUTH, **kw):
    return httpx.post(f"{base}/v1/embeddings", json=body, headers=headers, timeout=10, **kw)


def _err(r, status):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and {"message", "type"} <= set(body["error"])
    assert "Traceback" not in r.text
    return body["error"]


def test_auth(stub_server):
    base, _ = stub_server
    body = {"model": "stub", "input": "hi"}
    e = _err(_post(base, body, headers={}), 401)
    assert e["type"] == "authentication_error" and "missing" in e["message"]
    assert _err(_post(base, body, headers={"Authorization": "Bearer wrong-key-0123456789abcdef"}), 401)["code"] == "invalid_api_key"
    _err(_post(base, body, headers={"Authorization": f"Basic {KEY}"}), 401)
    _err(httpx.get(f"{base}/v1/models"), 401)
    assert _post(base, body).status_code == 200
    for public in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert httpx.get(base + public).status_code == 200, public


def test_validation_names_the_field(stub_server):
    base, _ = stub_server
    cases = {
        "model": {"input": "x"},
        "input": {"model": "stub"},
        "input[1]": {"model": "stub", "input": ["a", 3]},
        "dimensions": {"model": "stub", "input": "a", "dimensions": 0},
        "encoding_format": {"model": "stub", "input": "a", "encoding_format": "fp16"},
    }
    for field, body in cases.items():
        e = _err(_post(base, body), 422)
        assert e["param"] == field and f"'{field}'" in e["message"], (field, e)
    e = _err(_post(base, {"model": "stub", "input": "a", "dimensions": 9}), 422)
    assert e["param"] == "dimensions" and "exceeds" in e["message"]
    _err(_post(base, {"model": "stub", "input": []}), 422)
    e = _err(httpx.post(f"{base}/v1/embeddings", content=b"{not json", headers={**AUTH, "content-type": "application/json"}), 422)
    assert "JSON" in e["message"]


def test_unknown_model_and_route_404(stub_server):
    base, _ = stub_server
    e = _err(_post(base, {"model": "nope", "input": "a"}), 404)
    assert e["param"] == "model" and "stub" in e["message"]
    _err(httpx.get(f"{base}/v1/models/nope", headers=AUTH), 404)
    _err(httpx.get(f"{base}/v2/whatever", headers=AUTH), 404)
    assert httpx.get(f"{base}/v1/models/stub", headers=AUTH).json()["dim"] == 8


def test_limits_413_name_the_limit(stub_server):
    base, _ = stub_server
    e = _err(_post(base, {"model": "stub", "input": ["a"] * 5}), 413)
    assert "max_inputs" in e["message"] and e["param"] == "input"
    e = _err(_post(base, {"model": "stub", "input": ["ok", "x" * 51]}), 413)
    assert "max_input_chars" in e["message"] and e["param"] == "input[1]"
    e = _err(httpx.post(f"{base}/v1/embeddings", content=b"x" * 5000, headers={**AUTH, "content-type": "application/json"}), 413)
    assert "max_body_bytes" in e["message"]

    def chunks():  # no Content-Length: the streamed body is counted
        for _ in range(10):
            yield b" " * 500

    e = _err(httpx.post(f"{base}/v1/embeddings", content=chunks(), headers={**AUTH, "content-type": "application/json"}), 413)
    assert "max_body_bytes" in e["message"]


def test_response_shape_header_and_formats(stub_server):
    base, _ = stub_server
    r = _post(base, {"model": "stub", "input": ["a", "b"], "dimensions": 3})
    assert r.status_code == 200 and r.headers["x-repspace-dimensions-method"] == "truncate"
    body = r.json()
    assert body["object"] == "list" and body["model"] == "stub" and body["dimensions"] == 3
    assert [d["index"] for d in body["data"]] == [0, 1] and all(d["object"] == "embedding" for d in body["data"])
    assert len(body["data"][0]["embedding"]) == 3 and body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0
    assert len(_post(base, {"model": "stub", "input": "a", "encoding_format": "binary"}).json()["data"][0]["embedding"]) == 1
    assert isinstance(_post(base, {"model": "stub", "input": "a", "encoding_format": "base64"}).json()["data"][0]["embedding"], str)


def test_concurrent_requests_are_batched_and_metrics_count_them():
    enc = StubEncoder()
    enc.gate = threading.Event()
    app, _ = _app(enc)
    with running(app) as base:
        async def go():
            async with httpx.AsyncClient(base_url=base, headers=AUTH, timeout=10) as c:
                first = asyncio.create_task(c.post("/v1/embeddings", json={"model": "stub", "input": "first"}))
                await asyncio.sleep(0.2)
                rest = [asyncio.create_task(c.post("/v1/embeddings", json={"model": "stub", "input": [f"t{i}", f"u{i}"]}))
                        for i in range(6)]
                await asyncio.sleep(0.3)
                enc.gate.set()
                return await first, await asyncio.gather(*rest)

        first, rest = asyncio.run(go())
        assert first.status_code == 200 and all(r.status_code == 200 for r in rest)
        assert enc.batches == [1, 12]  # six queued requests encoded as one batch
        text = httpx.get(f"{base}/metrics").text
        assert 'repspace_embedding_batch_size_bucket{le="16.0",model="stub"} 2.0' in text
        assert 'repspace_http_requests_total{method="POST",route="/v1/embeddings",status="200"} 7.0' in text
        assert 'repspace_embedding_queue_depth{model="stub"} 0.0' in text
        assert 'repspace_model_ready{model="stub"} 1.0' in text


def test_queue_full_429_with_retry_after_and_timeout_504():
    enc = StubEncoder()
    enc.gate = threading.Event()
    app, _ = _app(enc, max_queue_items=4, request_timeout_s=1.0)
    with running(app) as base:
        async def go():
            async with httpx.AsyncClient(base_url=base, headers=AUTH, timeout=10) as c:
                first = asyncio.create_task(c.post("/v1/embeddings", json={"model": "stub", "input": "a"}))
                await asyncio.sleep(0.2)  # the worker holds "a"; the queue is empty
                queued = [asyncio.create_task(c.post("/v1/embeddings", json={"model": "stub", "input": ["b", "c"]}))
                          for _ in range(2)]
                await asyncio.sleep(0.2)  # 4 texts queued: full
                over = await c.post("/v1/embeddings", json={"model": "stub", "input": "d"})
                return await first, await asyncio.gather(*queued), over

        first, queued, over = asyncio.run(go())
        e = _err(over, 429)
        assert e["type"] == "rate_limit_error" and int(over.headers["retry-after"]) >= 1
        for r in [first, *queued]:  # the gate stays closed: every waiting request times out
            assert "request_timeout_s" in _err(r, 504)["message"]
        enc.gate.set()
        time.sleep(0.3)
        assert _post(base, {"model": "stub", "input": "e"}).status_code == 200
        text = httpx.get(f"{base}/metrics").text
        assert 'repspace_rejected_requests_total{reason="429"} 1.0' in text


def test_not_ready_503_while_loading():
    cfg = ServeConfig(models=["stub"], no_auth=True)
    gate = threading.Event()

    class Slow(EmbeddingModel):
        pass

    import repspace.service.app as app_mod

    real = app_mod._load_models

    def slow_load(state, preloaded):
        gate.wait(10)
        real(state, preloaded)

    app_mod._load_models = slow_load
    try:
        app = create_app(cfg, models={"stub": Slow(StubEncoder())})
        with running(app) as base:
            assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
            r = httpx.get(f"{base}/readyz")
            assert r.status_code == 503 and r.json()["models"] == {"stub": "loading"}
            e = _err(_post(base, {"model": "stub", "input": "a"}, headers={}), 503)
            assert "loading" in e["message"]
            gate.set()
            for _ in range(100):
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
                time.sleep(0.05)
            assert _post(base, {"model": "stub", "input": "a"}, headers={}).status_code == 200
    finally:
        app_mod._load_models = real


def test_failed_model_load_is_reported_not_fatal():
    cfg = ServeConfig(models=["no-such-model"], no_auth=True)
    app = create_app(cfg, background_load=False)
    with running(app) as base:
        r = httpx.get(f"{base}/readyz")
        assert r.status_code == 503 and r.json()["models"] == {"no-such-model": "failed"}
        card = httpx.get(f"{base}/v1/models").json()["data"][0]
        assert card["ready"] is False and "unknown model" in card["error"]
        assert "failed to load" in _err(_post(base, {"model": "no-such-model", "input": "a"}, headers={}), 503)["message"]


def test_unexpected_error_is_json_500_without_traceback():
    class Broken(StubEncoder):
        def encode_batch(self, batch):
            raise RuntimeError("secret internal detail")

    app, _ = _app(Broken())
    with running(app) as base:
        e = _err(_post(base, {"model": "stub", "input": "a"}), 500)
        assert e["type"] == "server_error" and "secret" not in e["message"]


def test_access_log_lines_are_json(caplog):
    import logging

    app, _ = _app()
    with caplog.at_level(logging.INFO, logger="repspace.access"):
        with running(app) as base:
            _post(base, {"model": "stub", "input": ["a", "b"]}, headers={**AUTH, "X-Request-Id": "abc123"})
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "repspace.access"]
    line = next(l for l in lines if l["request_id"] == "abc123")
    assert line["status"] == 200 and line["route"] == "/v1/embeddings" and line["model"] == "stub" and line["inputs"] == 2
    assert line["duration_ms"] >= 0


def test_config_refuses_unsafe_or_incomplete_setups(cli, tmp_path):
    from repspace.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="loopback"):
        ServeConfig(host="0.0.0.0", no_auth=True).validate()
    with pytest.raises(InvalidInputError, match="no API keys"):
        ServeConfig().validate()
    with pytest.raises(InvalidInputError, match="not served"):
        ServeConfig(no_auth=True, adaptors={"other": "x"}).validate()
    with pytest.raises(InvalidInputError, match="port must be 1-65535") as e:  # names the parameter, not the flag
        ServeConfig(no_auth=True, port=70000).validate()
    assert e.value.param == "port" and "--" not in str(e.value)
    code, _, err = cli("serve", "--no-auth", "--host", "0.0.0.0", "--port", "1")
    assert code == 2 and err.startswith("error:") and "loopback" in err and "[--no-auth]" in err
    (tmp_path / "k").write_text("short\n")
    code, _, err = cli("serve", "--api-key-file", tmp_path / "k")
    assert code == 2 and "16 characters" in err and "[--api-key-file]" in err
    code, _, err = cli("serve", "--no-auth", "--adaptor", "oops")
    assert code == 2 and "MODEL=DIR" in err and "[--adaptor]" in err


def test_keys_compared_in_constant_time_against_all():
    from repspace.service.deps import _keys_match

    keys = [b"a" * 20, b"b" * 20]
    assert _keys_match("b" * 20, keys) and not _keys_match("c" * 20, keys) and not _keys_match("", keys)


def test_another_router_shares_auth_errors_limits_and_metrics(monkeypatch):
    import repspace.service.app as app_mod

    monkeypatch.setattr(app_mod, "OPTIONAL_ROUTERS", ("tests.service.fake_router", "tests.service.no_such_module"))
    cfg = ServeConfig(models=["stub"], api_keys=[KEY], collections="/data/collections", limits=Limits(max_input_chars=10))
    app = create_app(cfg, models={"stub": EmbeddingModel(StubEncoder())}, background_load=False)
    with running(app) as base:
        _err(httpx.get(f"{base}/v1/things/a"), 401)
        assert httpx.get(f"{base}/v1/things/a", headers=AUTH).json() == {"name": "a", "root": "/data/collections"}
        e = _err(httpx.get(f"{base}/v1/things/missing", headers=AUTH), 404)
        assert e["type"] == "not_found_error" and "missing" in e["message"]
        r = httpx.post(f"{base}/v1/things/a/search", headers=AUTH, json={"model": "stub", "text": "hello", "dimensions": 4})
        assert r.json() == {"dim": 4, "method": "truncate"}
        assert "max_input_chars" in _err(httpx.post(f"{base}/v1/things/a/search", headers=AUTH,
                                                    json={"model": "stub", "text": "x" * 11}), 413)["message"]
        assert _err(httpx.post(f"{base}/v1/things/a/search", headers=AUTH, json={"model": "nope", "text": "x"}), 404)["param"] == "model"
        assert 'route="/v1/things/{name}",status="200"' in httpx.get(f"{base}/metrics").text
        e = _err(httpx.post(f"{base}/v1/things/a/backfill", headers=AUTH, json={"batch_size": 0}), 422)
        assert e["param"] == "batch_size" and e["message"] == "batch_size must be positive, got 0"  # the JSON field
        e = _err(httpx.post(f"{base}/v1/things/a/backfill", headers=AUTH, json={}), 422)
        assert e["param"] is None and "CUDA" in e["message"]  # the server's own setting, no field of the request


def test_no_auth_is_said_loudly_at_start_up(monkeypatch, capsys):
    import uvicorn

    import repspace.service.app as app_mod

    import logging

    started = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self: started.append(self.config.host))
    saved = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).propagate, logging.getLogger(n).level)
             for n in ("repspace.access", "repspace.service")}
    try:
        app_mod.serve(ServeConfig(no_auth=True, port=8123), log_level="warning")
        err = capsys.readouterr().err
    finally:
        for n, (h, p, lvl) in saved.items():
            lg = logging.getLogger(n)
            lg.handlers[:], lg.propagate, lg.level = h, p, lvl
    assert started == ["127.0.0.1"] and "WARNING: --no-auth" in err and "without an API key" in err
