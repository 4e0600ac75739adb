"""`POST /v1/collections/attach` and an attached table's search and upgrade over HTTP (a real uvicorn server on
loopback; the app's table written by raw psycopg SQL / lancedb's own API)."""

from __future__ import annotations

import uuid

import httpx
import numpy as np
import pytest

from repspace.service import EmbeddingModel, ServeConfig
from repspace.service.app import create_app
from tests.collections.test_attach import DIM, LanceApp, PgApp, _rows, _unit
from tests.service.conftest import KEY, StubEncoder, running

AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(params=["lancedb", "pgvector"])
def setup(request, tmp_path):
    rng = np.random.default_rng(0)
    if request.param == "lancedb":
        root, app = str(tmp_path / "collections"), LanceApp(str(tmp_path / "appdb"), "docs", _rows(30, rng))
    else:
        root = request.getfixturevalue("pg_dsn")
        app = PgApp(root, f"http_{uuid.uuid4().hex[:6]}", _rows(30, rng))
    cfg = ServeConfig(models=["stub"], api_keys=[KEY], collections=root)
    server = create_app(cfg, models={"stub": EmbeddingModel(StubEncoder())}, background_load=False)
    with running(server) as base:
        yield base, app
    app.close()


def _post(base, path, body, status=200):
    r = httpx.post(base + path, json=body, headers=AUTH, timeout=60)
    assert r.status_code == status, r.text
    return r.json()


def test_attach_search_and_bring_vectors_over_http(setup):
    base, app = setup
    name = f"a{uuid.uuid4().hex[:6]}"
    body = {"name": name, "table": app.table, "id": "doc_id", "vector": "embedding", "text": "Body Text",
            "payload": ["category"], "model": "app-model", "dim": DIM}
    info = _post(base, "/v1/collections/attach", body, 201)
    assert info["count"] == 30 and info["attached"]["vector"] == "embedding"
    q = _unit(np.random.default_rng(5), 1)[0]
    hits = _post(base, f"/v1/collections/{name}/search", {"vector": q.tolist(), "k": 5})["hits"]
    assert [h["id"] for h in hits] == app.own_search(q, 5)
    app.insert(500, "new", "a", q)
    assert _post(base, f"/v1/collections/{name}/search", {"vector": q.tolist(), "k": 1})["hits"][0]["id"] == "500"
    err = _post(base, "/v1/collections/attach", {**body, "name": "b" + name, "vector": "nope"}, 404)
    assert err["error"]["param"] == "vector"
    err = _post(base, f"/v1/collections/{name}/points", {"items": [{"id": "x", "vector": q.tolist()}]}, 409)
    assert "attached" in str(err)
    err = _post(base, f"/v1/collections/{name}/search", {"vector_new": q.tolist(), "k": 1}, 422)
    assert err["error"]["param"] == "vector_new"


def test_endpoint_models_only_where_the_server_allows_them(pg_dsn, tmp_path):
    from tests.encoders.fault_server import free_port

    allowed = f"http://127.0.0.1:{free_port()}/v1"
    cfg = ServeConfig(models=["stub"], api_keys=[KEY], collections=str(tmp_path / "c"), allowed_endpoints=[allowed])
    server = create_app(cfg, models={"stub": EmbeddingModel(StubEncoder())}, background_load=False)
    with running(server) as base:
        err = _post(base, "/v1/collections", {"name": "x", "model": "openai:m@http://10.0.0.1/v1"}, 400)
        assert err["error"]["param"] == "model" and "allowed endpoints" in err["error"]["message"]
        err = _post(base, "/v1/collections", {"name": "x", "model": f"openai:m@{allowed}"}, 503)
        assert err["error"]["param"] in ("model", None)  # allowed, then the (absent) endpoint is named down


@pytest.mark.real
def test_upgrade_an_attached_table_over_http(pg_dsn):
    """attach, upgrade start (side table), backfill, status, switch, finish — every step over HTTP."""
    import time

    from repspace.encoders import get_encoder
    from tests.collections.conftest import bbc_leads

    _, texts, labels = bbc_leads(60)
    old = get_encoder("minilm-l3-onnx").encode_batch(texts)
    app = PgApp(pg_dsn, f"httpup_{uuid.uuid4().hex[:6]}", list(zip(texts, labels, old)), dim=384)
    cols = app.columns()
    cfg = ServeConfig(models=["stub"], api_keys=[KEY], collections=pg_dsn)
    server = create_app(cfg, models={"stub": EmbeddingModel(StubEncoder())}, background_load=False)
    name = f"u{uuid.uuid4().hex[:6]}"
    with running(server) as base:
        _post(base, "/v1/collections/attach", {"name": name, "table": app.table, "id": "doc_id", "vector": "embedding",
                                               "text": "Body Text", "model": "minilm-l3-onnx"}, 201)
        st = _post(base, f"/v1/collections/{name}/upgrade/start", {"model": "minilm-l6", "sample": 30, "side_table": True})
        assert st["state"] == "open" and app.columns() == cols
        _post(base, f"/v1/collections/{name}/upgrade/backfill", {"batch_size": 32}, 202)
        deadline = time.time() + 120
        while time.time() < deadline:
            st = httpx.get(f"{base}/v1/collections/{name}/upgrade", headers=AUTH, timeout=30).json()
            if not (st.get("backfill") or {}).get("running"):
                break
            time.sleep(0.3)
        assert st["fraction"] == 1.0 and st["without_text"] == 0
        hits = _post(base, f"/v1/collections/{name}/search", {"text": texts[4], "k": 1})["hits"]
        assert hits[0]["id"] == "4"
        _post(base, f"/v1/collections/{name}/upgrade/switch", {"force": True})
        fin = _post(base, f"/v1/collections/{name}/upgrade/finish", {"drop_old": False})
        assert fin["kept_old_column"] and "rs_" in fin["app_query"]
    assert app.columns() == cols
    app.close()
