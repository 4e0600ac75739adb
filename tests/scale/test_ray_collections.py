"""`collection upsert --engine ray` and `upgrade backfill --engine ray`: the same vectors as the local engine."""

import json

import numpy as np
import pytest

from repspace.collections import Collection
from repspace.collections import upgrade as up
from repspace.collections.ingest import upsert_items

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def items():
    from repspace.datasets import load_dataset

    return load_dataset("bbc-news:title@test").limit(120)


def test_upsert_and_backfill_on_ray_equal_local(ray_cluster, items, tmp_path, monkeypatch):
    local, remote = Collection.create(tmp_path / "local", model="glove-50"), Collection.create(tmp_path / "ray", model="glove-50")
    upsert_items(local, items, batch_size=40, encode_batch=8)
    res = upsert_items(remote, items, batch_size=40, encode_batch=8, engine="ray", address=ray_cluster, workers=1)
    assert res["upserted"] == 120 and remote.count() == 120
    a, b = local.export(), remote.export()
    assert a.ids == b.ids
    np.testing.assert_array_equal(np.asarray(a.vectors), np.asarray(b.vectors))
    assert upsert_items(remote, items, batch_size=40, encode_batch=8, engine="ray", address=ray_cluster)["skipped"] == 120
    for c in (local, remote):
        up.start(c, "minilm-l3-onnx", sample=30, evaluate_gate=False)
    filled = up.backfill(local, batch_size=16, write_items=32)["backfilled"]
    # shards of two batches; an optimize after every 50 rows written (as after every 100k at scale) and at the end
    import importlib

    bf = importlib.import_module("repspace.collections.upgrade.backfill")
    monkeypatch.setattr(bf, "REINDEX_ROWS", 50)
    optimized, optimize = [], remote.optimize
    monkeypatch.setattr(remote, "optimize", lambda *a, **kw: optimized.append(remote.count()) or optimize(*a, **kw))
    res = up.backfill(remote, batch_size=16, engine="ray", address=ray_cluster, workers=1, write_items=32)
    assert res["fraction"] == 1.0 and res["backfilled"] == filled > 50
    assert len(optimized) == filled // 50 + 1  # past each 50 rows written, and at the end
    a, b = local.export(slot="minilm-l3-onnx"), remote.export(slot="minilm-l3-onnx")
    assert a.ids == b.ids and a.count == 120
    np.testing.assert_array_equal(np.asarray(a.vectors), np.asarray(b.vectors))


def test_cli_collection_upsert_on_ray(ray_cluster, cli, items, tmp_path):
    uri = str(tmp_path / "c")
    src = tmp_path / "items.jsonl"
    src.write_text("\n".join(json.dumps({"id": i, "text": t}) for i, t in zip(items.ids[:50], items.data[:50])) + "\n")
    assert cli("collection", "create", uri, "--model", "glove-50")[0] == 0
    code, out, err = cli("collection", "upsert", uri, "--input", src, "--engine", "ray", "--ray-address", ray_cluster,
                         "--workers", 1, "--quiet", "--json")
    assert code == 0, err
    assert json.loads(out)["count"] == 50
