"""The Ray engine on a local 2-CPU cluster: same vectors and ids as the local engine, resume after a
killed driver, a crashed actor retried, failures named by shard, sharded search = one-process search."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from repspace import Space, encode_items, get_encoder, load_dataset
from repspace.errors import NotAvailableError, UnknownNameError
from repspace.evaluation.search import topk
from repspace.scale import EngineError, encode_space, merge_topk, ray_encode, search_engine, sharded_topk
from tests.conftest import kill_after_chunks, make_space

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def titles():
    return load_dataset("bbc-news:title").limit(200)


def test_encode_identical_to_local_engine(ray_cluster, titles, tmp_path):
    enc = get_encoder("minilm-l3-onnx")
    local = encode_items(enc, titles, out=tmp_path / "local", batch_size=16, chunk_items=32, progress=False)
    t0 = time.perf_counter()
    dist = encode_space("minilm-l3-onnx", titles, out=tmp_path / "ray", batch_size=16, chunk_items=48,
                        workers=2, encoder=enc, progress=False)
    print(f"\n[ray] 200 titles, 2 actors (incl. actor start): {time.perf_counter() - t0:.2f} s", file=sys.stderr)
    assert dist.ids == local.ids
    assert np.array_equal(np.asarray(dist.vectors), np.asarray(local.vectors))  # bit-identical, any chunk size
    saved = Space.load(tmp_path / "ray")
    assert saved.checksum == Space.load(tmp_path / "local").checksum
    assert not (tmp_path / ".ray.partial").exists()


def test_ray_encode_streams_each_shard_once(ray_cluster, titles):
    enc = get_encoder("glove-50")
    local = encode_items(enc, titles, batch_size=8, progress=False)
    seen = {}

    def on_shard(shard, ids, vectors):
        assert shard not in seen and vectors.shape == (len(ids), 50)
        seen[shard] = (ids, vectors)

    plan = ray_encode("glove-50", titles, batch_size=8, workers=2, on_shard=on_shard, shard_items=20,
                      skip=[1], encoder=enc, progress=False)
    assert plan.shard_items == 24 and sorted(seen) == [s for s in range(plan.n_shards) if s != 1]
    for shard, (ids, vectors) in seen.items():
        assert ids == [titles.ids[p] for p in plan.positions(shard)]
        np.testing.assert_array_equal(vectors, local.vectors[local.index_of(ids)])


def test_killed_driver_resumes_each_item_once(ray_cluster, tmp_path, repspace_home):
    out, partial = tmp_path / "space", tmp_path / ".space.partial"
    args = ["encode", "--model", "minilm-l3-onnx", "--dataset", "bbc-news:title", "--limit", "480",
            "--batch-size", "8", "--chunk-items", "16", "--engine", "ray", "--ray-address", ray_cluster,
            "--workers", "1"]
    cmd = [sys.executable, "-m", "repspace.cli.main", *args, "--out", str(out)]
    env = {**os.environ, "REPSPACE_HOME": repspace_home}
    done_before = kill_after_chunks(cmd + ["--quiet"], env, partial, chunks=3)
    assert 3 <= done_before < 30 and not out.exists()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    resumed_from = int(res.stderr.split("resuming: ")[1].split(" of ")[0])
    assert resumed_from >= done_before  # shards finished before the kill were not encoded again
    assert "Traceback" not in res.stderr and "core_worker" not in res.stderr and "INFO" not in res.stderr
    space = Space.load(out)
    items = load_dataset("bbc-news:title").limit(480)
    reference = encode_items(get_encoder("minilm-l3-onnx"), items, batch_size=8, progress=False)
    assert space.ids == reference.ids and len(set(space.ids)) == 480
    assert np.array_equal(np.asarray(space.vectors), reference.vectors)
    assert not partial.exists()


def test_crashed_actor_is_retried(ray_cluster, titles, tmp_path):
    marker = tmp_path / "crashed"
    enc = get_encoder("glove-50")
    got = {}
    ray_encode("glove-50", titles, batch_size=8, workers=2, shard_items=40, encoder=enc, progress=False,
               on_shard=lambda s, ids, v: got.setdefault(s, v), _fault_marker=str(marker))
    assert marker.stat().st_size in (1, 2)  # an actor died mid-job (both may, racing) ...
    assert sorted(got) == list(range(5))  # ... and its shard was retried: every shard once
    local = encode_items(enc, titles, batch_size=8, chunk_items=40, progress=False)
    plan_rows = np.concatenate([v for _, v in sorted(got.items())])
    order = np.argsort([-enc.sort_key(t) for t in titles.data], kind="stable")
    np.testing.assert_array_equal(plan_rows, local.vectors[order])


def test_job_that_cannot_finish_names_the_shard(ray_cluster, titles, tmp_path):
    marker = tmp_path / "always"
    with pytest.raises(EngineError, match=r"shard \d+ .*re-run the same command"):
        ray_encode("glove-50", titles.limit(20), batch_size=8, workers=1, shard_items=8, progress=False,
                   max_retries=1, _fault_marker=str(marker), _fault_crashes=100, _fault_after=0)
    enc = get_encoder("glove-50")
    enc.version = "sha256:not-the-workers"
    with pytest.raises(EngineError, match=r"shard \d+ .*version"):
        ray_encode("glove-50", titles.limit(20), batch_size=8, workers=1, encoder=enc, progress=False)


def test_sharded_search_equals_single_process(ray_cluster, rng):
    corpus = rng.normal(size=(5000, 32)).astype(np.float32)
    queries = rng.normal(size=(300, 32)).astype(np.float32)
    s1, i1 = topk(queries, corpus, 10)
    for workers in (1, 2, 3):
        s2, i2 = sharded_topk(queries, corpus, 10, workers=workers, shards=workers)
        np.testing.assert_array_equal(i2, i1)
        np.testing.assert_allclose(s2, s1, rtol=0, atol=1e-5)  # BLAS thread count moves the last bits only
    rows = np.arange(300)
    s1, i1 = topk(corpus[:300], corpus, 7, exclude=rows)  # leave-one-out, as label retrieval does
    s2, i2 = sharded_topk(corpus[:300], corpus, 7, exclude=rows, workers=2)
    np.testing.assert_array_equal(i2, i1)


def test_ties_are_broken_by_row(ray_cluster):
    corpus = np.tile(np.eye(4, dtype=np.float32), (700, 1))  # 2,800 rows, every score tied 700 ways
    q = np.eye(4, dtype=np.float32)
    s, i = sharded_topk(q, corpus, 5, workers=2, shards=3)
    np.testing.assert_array_equal(i, np.arange(4)[:, None] + 4 * np.arange(5)[None, :])
    assert (s == 1).all()
    ms, mi = merge_topk([np.array([[1.0, 0.5]]), np.array([[1.0, 0.7]])], [np.array([[9, 2]]), np.array([[3, 4]])], 3)
    assert mi.tolist() == [[3, 9, 4]] and np.array_equal(ms, np.float32([[1.0, 1.0, 0.7]]))


def test_cli_eval_and_compat_same_as_local(ray_cluster, cli, tmp_path):
    corpus, queries = make_space(n=600, d=16, seed=1), make_space(n=600, d=16, seed=2)
    corpus.save(tmp_path / "c"), queries.save(tmp_path / "q")
    ray = ["--engine", "ray", "--ray-address", ray_cluster, "--workers", "2"]
    for args in (["eval", tmp_path / "c", "--queries", tmp_path / "q", "--task", "retrieval", "--json"],
                 ["eval", tmp_path / "c", "--task", "retrieval", "--json"],
                 ["compat", tmp_path / "c", tmp_path / "q", "--json"]):
        code, local, _ = cli(*args)
        code2, dist, err = cli(*args, *ray)
        assert code == code2 == 0, err
        local, dist = json.loads(local), json.loads(dist)
        if "matrix" in local:
            assert dist["compatible"] == local["compatible"]
            local, dist = [[v or 0.0 for v in r] for r in local["matrix"]], [[v or 0.0 for v in r] for r in dist["matrix"]]
            local, dist = dict(enumerate(sum(local, []))), dict(enumerate(sum(dist, [])))
        assert dist == pytest.approx(local, rel=0, abs=1e-12)  # random vectors: no ties, same neighbours


def test_unknown_engine_and_missing_ray(cli, monkeypatch, tmp_path):
    code, _, err = cli("encode", "--model", "glove-50", "--dataset", "bbc-news:title", "--out", tmp_path / "x",
                       "--engine", "spark")
    assert code == 2 and err.startswith("error: unknown engine 'spark'") and "Traceback" not in err
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the ray extra were not installed
    from repspace.scale import check_engine

    with pytest.raises(NotAvailableError, match=r"repspace\[ray\]"):
        check_engine("ray")
    with pytest.raises(UnknownNameError):
        check_engine("dask")
    code, _, err = cli("eval", tmp_path / "missing", "--engine", "ray")
    assert code == 2 and "Traceback" not in err
    with search_engine("local"):
        pass


def test_import_and_local_cli_need_no_ray():
    code = ("import sys, builtins\n"
            "real = builtins.__import__\n"
            "def guard(name, *a, **k):\n"
            "    if name == 'ray' or name.startswith('ray.'):\n"
            "        raise ImportError('no ray here')\n"
            "    return real(name, *a, **k)\n"
            "builtins.__import__ = guard\n"
            "import repspace, repspace.scale, repspace.cli.main\n"
            "from repspace.cli.main import run\n"
            "assert run(['models', '--json']) == 0\n"
            "assert run(['encode', '--model', 'glove-50', '--dataset', 'bbc-news:title', '--limit', '5',"
            " '--out', sys.argv[1], '--engine', 'ray']) == 2\n"
            "assert 'ray' not in sys.modules\n")
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        res = subprocess.run([sys.executable, "-c", code, os.path.join(d, "out")], capture_output=True, text=True,
                             timeout=120)
    assert res.returncode == 0, res.stderr
    assert "needs Ray Data" in res.stderr and "Traceback" not in res.stderr


def test_shard_payloads_round_trip():
    from repspace.datasets.items import Items
    from repspace.scale.encode import _payload, _unpack
    from repspace.scale.search import shard_bounds

    images = Items([f"i{k}" for k in range(6)], np.arange(6 * 8 * 8, dtype=np.uint8).reshape(6, 8, 8), "image")
    pos = np.array([4, 1, 2])
    np.testing.assert_array_equal(_unpack(_payload(images, pos)), images.data[pos])
    texts = Items(["a", "b", "c"], ["x", "", "zz é"], "text")
    assert _unpack(_payload(texts, np.array([2, 1]))) == ["zz é", ""]
    assert shard_bounds(5000, 2) == [(0, 3072), (3072, 5000)] and shard_bounds(10, 4) == [(0, 10)]
