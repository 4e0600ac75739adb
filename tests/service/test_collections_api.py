"""`/v1/collections` on a real uvicorn server (loopback), over real LanceDB and PostgreSQL + pgvector collections:
the CLI's operations and JSON, errors as JSON, a kill -9 of the server mid-load, and a switch under load."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest

from repspace.service import EmbeddingModel, ServeConfig
from repspace.service.app import create_app
from tests.service.conftest import KEY, StubEncoder, free_port, running, wait_ready

AUTH = {"Authorization": f"Bearer {KEY}"}
D = 8


@pytest.fixture(params=["lancedb", "pgvector"])
def root(request, tmp_path):
    if request.param == "lancedb":
        return str(tmp_path / "collections")
    return request.getfixturevalue("pg_dsn")


@pytest.fixture
def server(root):
    cfg = ServeConfig(models=["stub"], api_keys=[KEY], collections=root)
    app = create_app(cfg, models={"stub": EmbeddingModel(StubEncoder())}, background_load=False)
    with running(app) as base:
        yield base


def _p(base, path, body=None, status=200):
    r = httpx.post(base + path, json=body, headers=AUTH, timeout=60) if body is not None or path.endswith(("rollback",)) \
        else httpx.get(base + path, headers=AUTH, timeout=60)
    assert r.status_code == status, r.text
    return r.json()


def test_collection_routes_end_to_end(server):
    base = server
    name = f"c{os.getpid()}{int(time.time() * 1000) % 100000}"
    info = _p(base, "/v1/collections", {"name": name, "model": "ext", "dim": D}, 201)
    assert {"count", "slots", "active", "spec", "backend"} <= set(info) and info["count"] == 0
    v = np.random.default_rng(0).normal(size=(20, D))
    items = [{"id": f"p{k}", "vector": v[k].tolist(), "payload": {"label": f"l{k % 2}"}} for k in range(20)]
    res = _p(base, f"/v1/collections/{name}/points", {"items": items})
    assert res["upserted"] == 20 and res["count"] == 20
    assert _p(base, f"/v1/collections/{name}")["count"] == 20
    hits = _p(base, f"/v1/collections/{name}/search", {"vector": v[3].tolist(), "k": 3})["hits"]
    assert hits[0]["id"] == "p3" and hits[0]["payload"] == {"label": "l1"} and set(hits[0]) == {"id", "score", "payload"}
    hits = _p(base, f"/v1/collections/{name}/search", {"vector": v[3].tolist(), "k": 20, "filter": {"label": "l0"}})["hits"]
    assert len(hits) == 10 and all(h["payload"]["label"] == "l0" for h in hits)
    got = _p(base, f"/v1/collections/{name}/points/get", {"ids": ["p1", "nope"]})
    assert got["items"][0]["id"] == "p1" and got["missing"] == ["nope"]
    assert _p(base, f"/v1/collections/{name}/points/delete", {"ids": ["p1", "p2"]}) == {"deleted": 2, "count": 18}
    # errors: JSON, the right status, the field named
    for path, body, status in [
        ("/v1/collections/none-such/search", {"vector": v[0].tolist()}, 404),
        (f"/v1/collections/{name}/search", {"vector": v[0].tolist()[:3]}, 422),
        (f"/v1/collections/{name}/search", {"vector": v[0].tolist(), "k": 0}, 422),
        (f"/v1/collections/{name}/search", {"k": 3}, 400),
        (f"/v1/collections/{name}/search", {"text": "hi"}, 422),  # an external model cannot encode
        (f"/v1/collections/{name}/points", {"items": [{"id": "x", "vector": [float("nan")] * D}]}, 422),
        (f"/v1/collections/{name}/points", {"items": [{"id": "d", "vector": [0.0] * D}, {"id": "d", "vector": [1.0] * D}]}, 422),
        (f"/v1/collections/{name}/points", {"items": [{"id": "x", "vector": [0.0] * D}, {"id": "y", "text": "t"}]}, 400),
        ("/v1/collections", {"name": name, "model": "ext", "dim": D}, 409),
        ("/v1/collections", {"name": "bad name!", "model": "ext", "dim": D}, 422),
        (f"/v1/collections/{name}/upgrade/start", {"model": "minilm-l6"}, 409),  # external vectors: nothing to serve
    ]:
        r = httpx.post(base + path, content=json.dumps(body, allow_nan=True), headers={**AUTH, "Content-Type": "application/json"},
                       timeout=60)
        assert r.status_code == status, (path, body, r.text)
        assert set(r.json()) == {"error"} and "Traceback" not in r.text
    assert httpx.get(f"{base}/v1/collections/{name}", timeout=10).status_code == 401
    assert _p(base, f"/v1/collections/{name}")["count"] == 18
    # one request's index options (`options`): refused where the spec has none, naming the field
    r = httpx.post(f"{base}/v1/collections/{name}/search", json={"vector": v[0].tolist(), "options": {"nprobe": 4}},
                   headers=AUTH, timeout=60)
    assert r.status_code == 422 and r.json()["error"]["param"] == "options", r.text


def test_search_options_per_request(server):
    """`options` in a search's body: this request's index options over the spec's (an HNSW graph searched wider),
    never the next request's; bad ones refused naming the field."""
    base = server
    name = f"h{os.getpid()}{int(time.time() * 1000) % 100000}"
    _p(base, "/v1/collections", {"name": name, "model": "ext", "dim": D, "spec": "HNSW4+ef:1"}, 201)
    scale = np.exp(-np.arange(D) / 4)  # a decaying spectrum: a narrow walk of a sparse graph misses neighbours
    v = np.random.default_rng(1).normal(size=(1500, D)) * scale
    for s in range(0, 1500, 500):
        _p(base, f"/v1/collections/{name}/points", {"items": [{"id": f"p{k}", "vector": v[k].tolist()}
                                                             for k in range(s, s + 500)]})
    q = np.random.default_rng(2).normal(size=(20, D)) * scale
    vn = v / np.linalg.norm(v, axis=1, keepdims=True)

    def recall(options=None):
        got = 0
        for x in q:
            body = {"vector": x.tolist(), "k": 10, **({"options": options} if options else {})}
            hits = _p(base, f"/v1/collections/{name}/search", body)["hits"]
            got += len({h["id"] for h in hits} & {f"p{j}" for j in np.argsort(-(vn @ x))[:10]})
        return got / (10 * len(q))

    narrow = recall()
    assert recall({"ef": 400}) == 1.0 >= narrow
    assert recall() == narrow  # the next requests: the spec's own breadth again
    for bad in ({"ef": 0}, {"nprobe": 8}):
        r = httpx.post(f"{base}/v1/collections/{name}/search", json={"vector": q[0].tolist(), "options": bad},
                       headers=AUTH, timeout=60)
        assert r.status_code == 422 and r.json()["error"]["param"].startswith("options"), r.text  # options.ef


@pytest.mark.real
def test_upgrade_routes_and_switch_under_load(tmp_path):
    """glove-50 -> minilm-l3-onnx through the API; searches racing the background backfill and the switch never fail."""
    from repspace.collections import Collection
    from repspace.collections.ingest import upsert_items
    from repspace.datasets import load_dataset

    root = tmp_path / "cols"
    c = Collection.create(root / "news", model="glove-50")
    upsert_items(c, load_dataset("bbc-news:text@test").limit(120), batch_size=60)
    c.close()
    cfg = ServeConfig(models=["stub"], api_keys=[KEY], collections=str(root))
    app = create_app(cfg, models={"stub": EmbeddingModel(StubEncoder())}, background_load=False)
    with running(app) as base:
        st = _p(base, "/v1/collections/news/upgrade/start", {"model": "minilm-l3-onnx", "sample": 40})
        assert {"fraction", "gate", "metrics"} <= set(st)
        failures, answered, stop = [], [], threading.Event()

        def searcher():
            with httpx.Client(headers=AUTH, timeout=60) as cl:
                while not stop.is_set():
                    r = cl.post(f"{base}/v1/collections/news/search", json={"text": "markets and shares", "k": 5})
                    (answered if r.status_code == 200 and len(r.json()["hits"]) == 5 else failures).append(r.status_code)

        threads = [threading.Thread(target=searcher) for _ in range(2)]
        for t in threads:
            t.start()
        try:
            job = _p(base, "/v1/collections/news/upgrade/backfill", {"batch_size": 16}, 202)
            assert job["running"] is True
            deadline = time.time() + 180
            while _p(base, "/v1/collections/news/upgrade")["backfill"]["running"] and time.time() < deadline:
                time.sleep(0.2)
            st = _p(base, "/v1/collections/news/upgrade")
            assert st["fraction"] == 1.0 and st["backfill"]["error"] is None
            assert st["evaluated_at_fraction"] < 1.0  # status is cheap: the gate as measured at start
            ev = _p(base, "/v1/collections/news/upgrade/evaluate", {})  # measured now, while searches are answered
            assert ev["evaluated_at_fraction"] == 1.0 and set(ev["metrics"]) == {"old", "adapted", "mixed", "fused", "new"}
            assert _p(base, "/v1/collections/news/upgrade")["gate"] == ev["gate"]
            assert _p(base, "/v1/collections/news/upgrade/switch", {"force": True})["active"] == "minilm-l3-onnx"
            time.sleep(0.5)
            assert _p(base, "/v1/collections/news/upgrade/finish", {})["dropped"] == "glove-50"
            time.sleep(0.5)
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        assert not failures, failures[:5]
        assert len(answered) > 5
        r = httpx.get(f"{base}/v1/collections/news/upgrade", headers=AUTH, timeout=10)
        assert r.status_code == 409 and "no open upgrade" in r.json()["error"]["message"]


def test_kill_9_mid_load_keeps_every_acknowledged_upsert(tmp_path):
    """A real `repspace serve` process under concurrent upserts is killed with SIGKILL and restarted: every upsert
    it acknowledged is there, none twice."""
    root = tmp_path / "cols"
    keyfile = tmp_path / "keys"
    keyfile.write_text(KEY + "\n")
    port = free_port()
    cmd = [sys.executable, "-m", "repspace.cli.main", "serve", "--port", str(port), "--models", "glove-50",
           "--collections", str(root), "--api-key-file", str(keyfile), "--log-level", "warning"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(base, proc)
        _p(base, "/v1/collections", {"name": "load", "model": "ext", "dim": D}, 201)
        acked: list[str] = []
        lock = threading.Lock()
        stop = threading.Event()

        def writer(w: int):
            rng = np.random.default_rng(w)
            with httpx.Client(headers=AUTH, timeout=10) as cl:
                b = 0
                while not stop.is_set() and b < 200:
                    ids = [f"w{w}-b{b}-{j}" for j in range(10)]
                    body = {"items": [{"id": i, "vector": rng.normal(size=D).tolist()} for i in ids]}
                    try:
                        r = cl.post(f"{base}/v1/collections/load/points", json=body)
                    except httpx.HTTPError:
                        return  # the server died mid-request: not acknowledged
                    if r.status_code == 200:
                        with lock:
                            acked.extend(ids)
                    b += 1

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
        for t in threads:
            t.start()
        deadline = time.time() + 60
        while len(acked) < 150 and time.time() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        stop.set()
        for t in threads:
            t.join(20)
        assert len(acked) >= 150
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_ready(base, proc)
        got = _p(base, "/v1/collections/load/points/get", {"ids": acked[:10000]})
        assert not got["missing"], f"{len(got['missing'])} acknowledged upserts lost"
        info = _p(base, "/v1/collections/load")
        assert info["count"] >= len(acked)
        from repspace.collections import Collection

        space = Collection.open(root / "load").export()
        assert len(space.ids) == len(set(space.ids)) == info["count"]  # none twice
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


@pytest.mark.real
def test_upgrade_start_takes_golden_and_fit_queries(tmp_path):
    """`queries` become the gate's golden queries and `fit_queries` fit the score fusion, as on the CLI."""
    from repspace.collections import Collection
    from repspace.collections.ingest import upsert_items
    from repspace.datasets import load_dataset

    items = load_dataset("bbc-news:text@test").limit(80)
    root = tmp_path / "cols"
    c = Collection.create(root / "news", model="glove-50")
    upsert_items(c, items, batch_size=40)
    c.close()
    pairs = [{"text": t.split(".")[0][:200], "id": i} for i, t in zip(items.ids, items.data)]
    cfg = ServeConfig(models=["stub"], api_keys=[KEY], collections=str(root))
    app = create_app(cfg, models={"stub": EmbeddingModel(StubEncoder())}, background_load=False)
    with running(app) as base:
        st = _p(base, "/v1/collections/news/upgrade/start",
                {"model": "minilm-l3-onnx", "sample": 60, "queries": pairs[:12], "fit_queries": pairs[12:]})
        assert all(m["queries"] == 12 for m in st["metrics"].values())
        _p(base, "/v1/collections/news/upgrade/start", {"model": "minilm-l3-onnx", "queries": [{"text": ""}]}, 422)
    with Collection.open(root / "news") as c:
        assert c.meta.upgrade.fusion["from"] == "fit queries"


def test_create_with_payload_index(server):
    name = f"pi{os.getpid()}{int(time.time() * 1000) % 100000}"
    info = _p(server, "/v1/collections", {"name": name, "model": "ext", "dim": D, "payload_index": ["label"]}, 201)
    assert info["payload_index"] == ["label"]
    err = _p(server, "/v1/collections", {"name": name + "x", "model": "ext", "dim": D, "payload_index": ["a b"]}, 422)
    assert "payload_index" in json.dumps(err)
