"""`openai:NAME@URL` against real servers on loopback: `repspace serve` (subprocess) and a fault-injecting proxy in
front of it (tests/encoders/fault_server.py). No mocks: every request is real HTTP through the `openai` client."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from repspace.errors import (CollectionError, DimensionMismatchError, EndpointError, InvalidInputError,
                             InvalidVectorsError, ModelChangedError)
from tests.encoders.fault_server import Faults, free_port, running
from tests.service.conftest import wait_ready

KEY = "proxy-secret-key-9f8e7d6c5b4a"
TEXTS = [f"item {i}: " + " ".join(["the quick brown fox", "jumps over", "a lazy dog", "in bbc news"][: 1 + i % 4])
         for i in range(37)]
FAST = dict(backoff=0.02, backoff_max=0.1, retry_total=20.0)


@pytest.fixture(scope="module")
def serve(tmp_path_factory):
    """`repspace serve` with minilm-l6 and minilm-l3-onnx (the 'other model'), no keys, on a free loopback port."""
    port = free_port()
    log = open(tmp_path_factory.mktemp("serve") / "serve.log", "wb")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "repspace.cli.main", "serve", "--port", str(port), "--no-auth",
                             "--models", "minilm-l6,minilm-l3-onnx", "--threads", "1"], stdout=log,
                            stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def direct():
    """minilm-l6 in this process: the vectors the endpoint must reproduce (unit length, as the service returns)."""
    from repspace.encoders import get_encoder

    X = get_encoder("minilm-l6").encode_batch(TEXTS)
    return X / np.linalg.norm(X, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def proxy(serve):
    faults = Faults(serve, key=KEY)
    with running(faults) as base:
        yield faults, base


@pytest.fixture
def faults(proxy, monkeypatch):
    """The proxy, reset, with its key in REPSPACE_API_KEY: (faults, model name through it)."""
    f, base = proxy
    f.reset()
    monkeypatch.setenv("REPSPACE_API_KEY", KEY)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    yield f, f"openai:minilm-l6@{base}/v1"
    f.reset()


def enc(model: str, **kw):
    from repspace.encoders import get_encoder

    return get_encoder(model, **{**FAST, **kw})


def assert_rows(X: np.ndarray, direct: np.ndarray) -> None:
    """Exactly the direct encoder's rows, in order: none lost, none duplicated."""
    assert X.shape == direct.shape
    cos = (X * direct).sum(1)
    assert cos.min() >= 0.9999, cos.min()
    assert (np.argmax(X @ direct.T, axis=1) == np.arange(len(X))).all()


def no_key(*texts: object) -> None:
    """Neither the key nor its tail in any text, nor anywhere in an exception's chain."""
    for t in texts:
        while t is not None:
            assert KEY not in str(t) and KEY[-8:] not in str(t)
            t = (t.__cause__ or t.__context__) if isinstance(t, BaseException) else None


# ------------------------------------------------------------------------------------------------ it works
def test_repspace_serve_vectors_equal_the_direct_encoder(serve, direct, monkeypatch):
    monkeypatch.delenv("REPSPACE_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    e = enc(f"openai:minilm-l6@{serve}/v1", batch_size=4, concurrency=3)
    assert e.dim == 384 and e.normalized and e.version.startswith("probe-sha256:") and e.version.endswith(":384d")
    assert e.describe()["fingerprint"] in e.version
    assert_rows(e.encode_batch(TEXTS), direct)
    assert e.requests == 1 + 10  # the probe, then 37 texts in requests of 4
    assert e.encode_batch([]).shape == (0, 384)


def test_dimensions_are_asked_of_the_endpoint(serve, direct):
    e = enc(f"openai:minilm-l6@{serve}/v1", dim=64)
    assert e.dim == 64 and e.name.endswith("#dimensions=64") and e.dimensions == 64
    X = e.encode_batch(TEXTS[:5])
    want = direct[:5, :64] / np.linalg.norm(direct[:5, :64], axis=1, keepdims=True)
    assert (X * want).sum(1).min() >= 0.9999
    assert enc(e.name).version == e.version  # the name alone reopens the same encoder


def test_settings_from_the_environment_reach_encoders_opened_by_name(serve, monkeypatch):
    monkeypatch.setenv("REPSPACE_ENDPOINT_CONCURRENCY", "7")
    monkeypatch.setenv("REPSPACE_ENDPOINT_BATCH_SIZE", "5")
    d = enc(f"openai:minilm-l6@{serve}/v1", batch_size=9).describe()
    assert d["concurrency"] == 7 and d["batch_size"] == 9  # an explicit argument wins
    monkeypatch.setenv("REPSPACE_ENDPOINT_TIMEOUT", "soon")
    with pytest.raises(InvalidInputError, match="REPSPACE_ENDPOINT_TIMEOUT must be a number"):
        enc(f"openai:minilm-l6@{serve}/v1")


def test_token_budget_and_batch_size_cut_requests(faults, direct):
    f, model = faults
    e = enc(model, batch_size=8, max_tokens=30, concurrency=2)
    f.seen.clear()
    assert_rows(e.encode_batch(TEXTS), direct)
    assert sum(f.seen) == len(TEXTS) and max(f.seen) <= 8
    assert len(f.seen) > len(TEXTS) / 8  # the token budget cut more requests than the text count would


# ------------------------------------------------------------------------------ retries: every row once
def test_retries_on_429_and_500_lose_and_duplicate_nothing(faults, direct):
    f, model = faults
    e = enc(model, batch_size=5, concurrency=4)
    f.push("429:1", "500", "500", "429:date:1", "429")
    t0 = time.perf_counter()
    X = e.encode_batch(TEXTS)
    assert time.perf_counter() - t0 >= 0.9  # Retry-After: 1 honoured
    assert_rows(X, direct)
    assert e.retries == 5 and e.requests == 1 + 8 + 5
    assert sum(f.served[1:]) == len(TEXTS)  # the server answered each text once


def test_shuffled_indices_are_placed_by_index(faults, direct):
    f, model = faults
    e = enc(model, batch_size=6, concurrency=2)
    f.always = "shuffle"
    assert_rows(e.encode_batch(TEXTS), direct)


def test_a_timeout_is_retried_then_reported(faults, direct):
    f, model = faults
    e = enc(model, batch_size=20, concurrency=2, timeout=1.0, max_retries=2)
    f.push("sleep:2")
    assert_rows(e.encode_batch(TEXTS), direct)
    assert e.retries == 1
    f.push("sleep:1.5", "sleep:1.5", "sleep:1.5")
    with pytest.raises(EndpointError, match=r"did not answer within the timeout of 1 s \(3 attempts"):
        e.encode_batch(TEXTS[:3])


def test_retries_stop_at_max_retries_and_at_retry_total(faults):
    f, model = faults
    f.push("500")
    assert enc(model).retries == 1  # the identity probe is retried like any request (only a refused connection is not)
    e = enc(model, max_retries=2)
    f.push("429", "429", "429")
    with pytest.raises(EndpointError, match=r"kept answering HTTP 429 \(rate limited\).*3 attempts"):
        e.encode_batch(TEXTS[:2])
    f.reset()
    e = enc(model, retry_total=3.0)
    f.push("429:100")
    t0 = time.perf_counter()
    with pytest.raises(EndpointError, match="asked to wait 100 s more, past retry_total 3 s"):
        e.encode_batch(TEXTS[:2])
    assert time.perf_counter() - t0 < 2


# ------------------------------------------------------------------------------------ wrong answers
@pytest.mark.parametrize("fault, error, match", [
    ("nan", InvalidVectorsError, "returned NaN or inf for 1 of 3 texts"),
    ("dim", DimensionMismatchError, "returned 383-d vectors, expected 384"),
    ("count", EndpointError, "returned 2 vectors for 3 texts"),
    ("dup", EndpointError, "each of 0..2 must come exactly once"),
])
def test_wrong_answers_are_clear_errors(faults, fault, error, match):
    f, model = faults
    e = enc(model)
    f.push(fault)
    with pytest.raises(error, match=match) as info:
        e.encode_batch(TEXTS[:3])
    assert info.value.param == "model" and e.retries == 0
    assert e.encode_batch(TEXTS[:3]).shape == (3, 384)  # the next request is served normally


# ---------------------------------------------------------------------------------- keys and URLs
def test_a_wrong_key_names_authentication_and_never_the_key(faults, monkeypatch):
    f, model = faults
    e = enc(model)
    no_key(repr(e), e.describe(), e.name, e.version, vars(e))
    monkeypatch.setenv("REPSPACE_API_KEY", "wrong-" + KEY)  # the server echoes the key it got
    with pytest.raises(EndpointError, match="refused authentication \\(HTTP 401\\)") as info:
        enc(model)
    no_key(info.value)
    monkeypatch.delenv("REPSPACE_API_KEY")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)  # the other variable works as well
    assert enc(model).dim == 384


def test_a_down_endpoint_is_named_at_once():
    port = free_port()
    t0 = time.perf_counter()
    with pytest.raises(EndpointError, match=f"endpoint http://127.0.0.1:{port}/v1 is down or unreachable"):
        enc(f"openai:minilm-l6@http://127.0.0.1:{port}/v1")
    assert time.perf_counter() - t0 < 5


def test_bad_model_names_are_refused_without_echoing_credentials():
    with pytest.raises(InvalidInputError, match="carries credentials") as info:
        enc("openai:m@https://user:hunter2-secret@example.invalid/v1")
    assert "hunter2" not in str(info.value) and info.value.param == "model"
    for bad in ("openai:just-a-name", "openai:m@ftp://host/v1", "openai:m@http://h/v1#dims=3", "openai:m@http://h/v1?k=1"):
        with pytest.raises(InvalidInputError):
            enc(bad)
    with pytest.raises(InvalidInputError, match="apply to remote models"):
        enc("minilm-l6", concurrency=2)


def test_an_unknown_served_model_is_named(serve):
    with pytest.raises(EndpointError, match="HTTP 404"):
        enc(f"openai:no-such-model@{serve}/v1")


# -------------------------------------------------------------------------- a changed server model
def test_a_changed_model_is_refused_by_spaces(faults, tmp_path, monkeypatch):
    from repspace.datasets.items import Items
    from repspace.encoders.job import encode_items

    f, model = faults
    items = Items(data=TEXTS[:6], ids=[f"t{i}" for i in range(6)], modality="text")
    out = tmp_path / "space"
    space = encode_items(enc(model), items, out=out, progress=False)
    assert space.model == model and space.model_version.startswith("probe-sha256:")
    assert encode_items(enc(model), items, out=out, progress=False).count == 6  # same model: the finished space
    f.swap_model = "minilm-l3-onnx"  # the server now answers with another model of the same dimension
    changed = enc(model)
    assert changed.version != space.model_version and changed.dim == 384
    with pytest.raises(ModelChangedError) as info:
        encode_items(changed, items, out=out, progress=False)
    msg = str(info.value)
    assert space.model_version in msg and changed.version in msg and info.value.param == "model"


def test_a_changed_model_is_refused_by_collection_slots(faults, tmp_path):
    from repspace.collections import Collection

    f, model = faults
    uri = str(tmp_path / "coll")
    with Collection.create(uri, model) as c:
        slot = c.slot()
        assert slot.model == model and slot.model_version.startswith("probe-sha256:") and slot.dim == 384
        c.upsert([f"t{i}" for i in range(4)], texts=TEXTS[:4])
    f.swap_model = "minilm-l3-onnx"
    with Collection.open(uri) as c:
        with pytest.raises(CollectionError) as info:
            c.upsert(["t9"], texts=["one more"])
    now = enc(model).version
    assert slot.model_version in str(info.value) and now in str(info.value)


# --------------------------------------------------------------------------------- callables
def test_a_registered_callable_is_an_encoder_everywhere(tmp_path):
    from repspace.collections import Collection
    from repspace.datasets.items import Items
    from repspace.encoders import get_encoder, is_model, register_encoder
    from repspace.encoders.job import encode_items

    def bag_of_letters(texts):
        return np.array([[t.count(c) + 1 for c in "etaoin"] for t in texts], dtype=np.float32)

    e = register_encoder("letters-test", bag_of_letters, replace=True)
    assert e.dim == 6 and not e.normalized and is_model("letters-test") and get_encoder("letters-test") is e
    items = Items(data=TEXTS[:5], ids=[f"t{i}" for i in range(5)], modality="text")
    space = encode_items(get_encoder("letters-test"), items, out=tmp_path / "s", progress=False)
    assert np.allclose(space.vectors, bag_of_letters(TEXTS[:5]))
    with Collection.create(str(tmp_path / "c"), "letters-test") as c:
        c.upsert(["a", "b"], texts=TEXTS[:2])
        assert c.slot().dim == 6
    register_encoder("letters-test", lambda t: bag_of_letters(t)[:, ::-1], replace=True)  # a changed function
    with pytest.raises(ModelChangedError):
        encode_items(get_encoder("letters-test"), items, out=tmp_path / "s", progress=False)
    with pytest.raises(InvalidInputError, match="registered already"):
        register_encoder("letters-test", bag_of_letters)
    with pytest.raises(InvalidInputError, match="taken"):
        register_encoder("minilm-l6", bag_of_letters)


# ---------------------------------------------------------------------------------------- CLI
def test_cli_encode_through_an_endpoint(cli, serve, direct, tmp_path, monkeypatch):
    from repspace.spaces import Space

    monkeypatch.delenv("REPSPACE_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    src = tmp_path / "texts.txt"
    src.write_text("\n".join(TEXTS) + "\n")
    model = f"openai:minilm-l6@{serve}/v1"
    code, out, err = cli("encode", "--model", model, "--input", src, "--out", tmp_path / "sp", "--batch-size", "4",
                         "--concurrency", "3", "--chunk-items", "16", "--quiet")
    assert code == 0, err
    space = Space.load(tmp_path / "sp")
    assert space.model == model and space.model_version.startswith("probe-sha256:")
    assert_rows(space.vectors, direct)
    code, out, err = cli("encode", "--model", model, "--input", src, "--out", tmp_path / "sp64", "--dim", "64", "--quiet")
    assert code == 0, err
    assert Space.load(tmp_path / "sp64").dim == 64
    code, out, err = cli("encode", "--model", f"openai:minilm-l6@http://127.0.0.1:{free_port()}/v1", "--input", src,
                         "--out", tmp_path / "down", "--quiet")
    assert code == 2 and "is down or unreachable" in err


def test_cli_collection_through_an_endpoint(cli, serve, tmp_path, monkeypatch):
    import json

    monkeypatch.delenv("REPSPACE_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    model, uri = f"openai:minilm-l6@{serve}/v1", str(tmp_path / "coll")
    src = tmp_path / "texts.jsonl"
    src.write_text("\n".join(json.dumps({"id": f"t{i}", "text": t}) for i, t in enumerate(TEXTS[:12])) + "\n")
    code, out, err = cli("collection", "create", uri, "--model", model, "--dim", "64", "--json")
    assert code == 0, err
    slot = json.loads(out)["slots"][0]
    assert slot["model"] == model + "#dimensions=64" and slot["model_version"].endswith(":64d")
    code, out, err = cli("collection", "upsert", uri, "--input", src, "--encode-batch", "64", "--quiet", "--json")
    assert code == 0, err
    code, out, err = cli("collection", "search", uri, "--text", TEXTS[5], "--k", "1", "--json")
    assert code == 0, err
    assert json.loads(out)["results"][0]["hits"][0]["id"] == "t5"


def test_an_attached_table_upgraded_through_an_endpoint_loses_no_row(faults, tmp_path):
    """The app's LanceDB table (lancedb's own API), upgraded to minilm-l6 served behind the faulty proxy: 429s and
    500s during start and backfill; every row ends with exactly its own new vector."""
    import lancedb
    import pyarrow as pa

    from repspace.collections import upgrade
    from repspace.collections.attach import attach
    from repspace.encoders import get_encoder

    f, model = faults
    old = get_encoder("minilm-l3-onnx").encode_batch(TEXTS)
    lancedb.connect(tmp_path / "app").create_table("docs", data=pa.table({
        "id": pa.array(range(len(TEXTS)), pa.int64()), "body": TEXTS,
        "emb": pa.FixedSizeListArray.from_arrays(pa.array(np.asarray(old, np.float32).ravel()), old.shape[1])}))
    c = attach(tmp_path / "coll", f"{tmp_path / 'app'}::docs", id="id", vector="emb", text="body",
               model="minilm-l3-onnx")
    f.push("429:0", "500")
    upgrade.start(c, model, sample=30)
    f.push("500", "429:0", "500")
    assert upgrade.backfill(c, batch_size=8)["fraction"] == 1.0
    got = {g["id"]: g["vector"] for g in c.get([str(i) for i in range(len(TEXTS))], vectors=True, slot=c.upgrade.new)}
    direct = get_encoder("minilm-l6").encode_batch(TEXTS)
    X = np.asarray([got[str(i)] for i in range(len(TEXTS))], np.float32)
    assert_rows(X / np.linalg.norm(X, axis=1, keepdims=True), direct / np.linalg.norm(direct, axis=1, keepdims=True))
    c.drop()
