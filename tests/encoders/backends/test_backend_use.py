"""Backends where they are used: the CLI, a collection's slot (recorded, mixing refused), the service model."""

import numpy as np
import pytest

from repspace.errors import CollectionError
from tests.encoders.backends.conftest import require

pytestmark = pytest.mark.real


def test_cli_encode_with_onnx(home, tmp_path, cli):
    require("onnx", "onnxruntime")
    from repspace import Space

    code, _, err = cli("encode", "--model", "minilm-l6", "--dataset", "bbc-news:title", "--limit", "12",
                       "--out", tmp_path / "sp", "--backend", "onnx", "--threads", "1", "--quiet")
    assert code == 0, err
    sp = Space.load(tmp_path / "sp")
    assert sp.model_version.endswith("+onnx") and sp.manifest["extra"]["backend"] == "onnx"
    code, _, err = cli("encode", "--model", "minilm-l6", "--dataset", "bbc-news:title", "--limit", "2",
                       "--out", tmp_path / "x", "--backend", "nope")
    assert code == 2 and "unknown backend 'nope'" in err and "[--backend]" in err


def test_slot_records_backend_and_refuses_another(home, tmp_path):
    require("onnx", "onnxruntime")
    from repspace.collections import Collection

    uri = tmp_path / "c"
    with Collection.create(uri, "minilm-l6", backend="onnx-int8") as c:
        assert c.slot().model_version.endswith("+onnx-int8")
        c.upsert(["a", "b"], texts=["first text", "second text"])
    with Collection.open(uri) as c:  # no backend given: the recorded one
        c.upsert(["c"], texts=["third"])
        assert c.encoder().backend == "onnx-int8"
        hits = c.search(texts=["first text"], k=1)
        assert hits[0][0]["id"] == "a"
    with Collection.open(uri, backend="torch") as c:
        with pytest.raises(CollectionError, match=r"backend 'onnx-int8'.*would mix.*repspace compat.*upgrade start") as e:
            c.upsert(["d"], texts=["fourth"])
        assert e.value.param == "backend"
        assert c.count() == 3


def test_service_model_on_a_backend(home):
    require("onnx", "onnxruntime")
    from repspace.service.embeddings import EmbeddingModel

    m = EmbeddingModel.load("minilm-l6", backend="onnx", threads=1)
    r = m.embed(["hello world", "a longer text about markets"], dimensions=64)
    assert r.vectors.shape == (2, 64) and np.allclose(np.linalg.norm(r.vectors, axis=1), 1, atol=1e-5)
    assert r.tokens == [4, 7] and m.describe()["backend"] == "onnx"


def test_serve_plans_workers_from_cores():
    from repspace.service.config import plan_workers

    assert plan_workers("torch", 2) == (2, 1)
    assert plan_workers("onnx-int8", 16) == (4, 4)
    assert plan_workers("openvino", 8) == (1, 8)
    assert plan_workers("onnx", 2, workers=1) == (1, 1)
    assert plan_workers("onnx", 2, threads=2) == (1, 2)


def test_backend_switch_is_a_compatible_upgrade(home, tmp_path):
    """minilm-l6 torch -> onnx on a collection: measured compatible, switched without backfill, slot takes onnx."""
    require("onnx", "onnxruntime")
    from repspace import load_dataset
    from repspace.collections import Collection
    from repspace.collections import upgrade as up

    items = load_dataset("bbc-news:title").limit(120)
    uri = tmp_path / "c"
    with Collection.create(uri, "minilm-l6") as c:
        c.upsert(list(items.ids), texts=list(items.data))
    with Collection.open(uri) as c:
        st = up.start(c, "minilm-l6", backend="onnx", sample=60)
        comp = st["gate"]["compatible_upgrade"]
        assert comp["compatible"] and comp["from_backend"] == "torch" and comp["to_backend"] == "onnx"
        assert comp["new_on_old"]["ndcg@10"] >= comp["old_on_old"]["ndcg@10"]
        assert up.status(c)["gate"]["compatible_upgrade"]["compatible"]
        res = up.switch(c)
        assert res["state"] == "adopted" and res["backfilled"] is False
    with Collection.open(uri) as c:
        s = c.slot()
        assert [x.name for x in c.meta.slots] == [s.name] and s.model_version.endswith("+onnx")
        assert s.extra["compatible_from"] == [s.model_version.removesuffix("+onnx")]
        assert c.count() == 120 and c.meta.upgrade is None
        c.upsert(["new"], texts=["a brand new headline about markets"])  # encoded with onnx, the recorded backend
        assert c.encoder().backend == "onnx"
        assert c.search(texts=[items.data[3]], k=1)[0][0]["id"] == items.ids[3]


def test_adoption_needs_a_measured_compatible_upgrade():
    from repspace.collections.meta import CollectionMeta, Slot, UpgradeState
    from repspace.errors import CollectionError

    a = Slot("m", "v_0", "minilm-l6", "sha256:x", 384, encodes=True)
    b = Slot("m@2", "v_1", "minilm-l6", "sha256:x+onnx-int8", 384, encodes=True)
    up = UpgradeState("m", "m@2", "procrustes", 0, 10, "t", state="open",
                      gate={"compatible_upgrade": {"compatible": False}})
    meta = CollectionMeta("c", "Flat", "m", (a, b), 2, upgrade=up)
    with pytest.raises(CollectionError, match="not an open compatible upgrade"):
        meta.adopted()
    ok = meta.__class__(**{**meta.__dict__, "upgrade": UpgradeState(
        "m", "m@2", "procrustes", 0, 10, "t", state="open", gate={"compatible_upgrade": {"compatible": True}})})
    new = ok.adopted()
    assert new.upgrade is None and [s.name for s in new.slots] == ["m"]
    assert new.slot().model_version == "sha256:x+onnx-int8" and new.slot().extra["compatible_from"] == ["sha256:x"]
