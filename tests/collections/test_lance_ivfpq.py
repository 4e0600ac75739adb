"""`IVFn,PQm[+refine:F]` on a LanceDB collection: LanceDB's own on-disk IVF_PQ index, built once a slot holds enough
vectors to train it, searched by LanceDB (nothing of the slot loaded into repspace's memory), rows written after the
index searched exactly until the next optimize; recall against exact."""

import numpy as np
import pytest

from repspace.collections import Collection

D, N = 32, 3000


def _data(n, seed=0):
    r = np.random.default_rng(seed)
    scale = np.exp(-np.arange(D) / 10)
    return (r.normal(size=(n, D)) * scale).astype(np.float32)


def _exact(v, q, k):
    vn = v / np.linalg.norm(v, axis=1, keepdims=True)
    return np.argsort(-(q @ vn.T), axis=1)[:, :k]


def test_lancedb_ivfpq_index(tmp_path):
    v, q = _data(N), _data(30, seed=1)
    ids = [f"i{j}" for j in range(N)]
    c = Collection.create(tmp_path / "c", model="ext", dim=D, spec="IVF16,PQ8+refine:8")
    c.upsert(ids[:100], vectors=v[:100])
    c.optimize()
    assert not c.store._indexed()  # 100 vectors: too few to train, searched exactly
    c.upsert(ids[100:], vectors=v[100:], payloads=[{"n": j} for j in range(100, N)])
    c.optimize()
    assert c.store._indexed() == {"v_0"}
    hits = c.search(vectors=q, k=10)
    assert not c._caches  # LanceDB searched it
    want = _exact(v, q, 10)
    recall = np.mean([len({h["id"] for h in row} & {ids[j] for j in want[r]}) / 10 for r, row in enumerate(hits)])
    assert recall >= 0.9, recall
    assert hits[0][0]["payload"] == ({"n": int(hits[0][0]["id"][1:])} if int(hits[0][0]["id"][1:]) >= 100 else {})
    # written after the index: found (LanceDB searches the rows its index does not hold yet exactly)
    c.upsert(["new"], vectors=q[:1])
    assert c.search(vectors=q[:1], k=1)[0][0]["id"] == "new"
    # a filtered search goes through repspace's layer, exact over the matching items
    got = c.search(vectors=q[:1], k=3, filter={"n": 500})
    assert [h["id"] for h in got[0]] == ["i500"]
    c.close()


def test_lancedb_ivf_hnsw_sq_index_is_kept_up_to_date_by_optimize(tmp_path):
    """`IVFn,HNSW_SQ`: LanceDB's IVF_HNSW_SQ with the spec's nprobes/ef/refine; `optimize` says why a slot has no index
    yet, builds it once it can be trained and adds the rows written since; every answer is exact on what is committed."""
    from repspace.cli.main import app
    from typer.testing import CliRunner

    v, q = _data(N), _data(30, seed=1)
    ids = [f"i{j}" for j in range(N)]
    c = Collection.create(tmp_path / "c", model="ext", dim=D, spec="IVF8,HNSW_SQ+nprobe:4+refine:4")
    c.upsert(ids[:200], vectors=v[:200])
    report = c.optimize()
    assert "no index yet, searched exactly" in report["ext"] and "312" in report["ext"], report
    c.upsert(ids[200:2500], vectors=v[200:2500])
    assert c.optimize() == {"ext": "IVF_HNSW_SQ index built over 2,500 vectors"}
    assert c.store._indexed() == {"v_0"}
    c.upsert(ids[2500:], vectors=v[2500:])
    assert c.store._unindexed() == 500  # written since: LanceDB searches them exactly until the next optimize
    hits = c.search(vectors=q, k=10)
    assert not c._caches
    want = _exact(v, q, 10)
    recall = np.mean([len({h["id"] for h in row} & {ids[j] for j in want[r]}) / 10 for r, row in enumerate(hits)])
    assert recall >= 0.9, recall
    c.close()
    res = CliRunner().invoke(app, ["collection", "optimize", str(tmp_path / "c"), "--json"])
    assert res.exit_code == 0, res.output
    import json

    out = json.loads(res.stdout)
    assert out["spec"] == "IVF8,HNSW_SQ+nprobe:4+refine:4" and out["slots"]["ext"].startswith("IVF_HNSW_SQ index")
    assert Collection.open(tmp_path / "c").store._unindexed() == 0
    # a large share of new rows (here all of a second write as big as the index) retrains rather than adds a delta
    d = Collection.open(tmp_path / "c")
    d.upsert([f"n{j}" for j in range(N)], vectors=_data(N, seed=9))
    assert d.optimize() == {"ext": "IVF_HNSW_SQ index built over 6,000 vectors"}
    assert d.optimize(rebuild=True) == {"ext": "IVF_HNSW_SQ index built over 6,000 vectors"}
    assert d.store._unindexed() == 0
    # each optimize after a small write adds a delta segment (no retrain); past `max_segments` (a backfill's last
    # optimize: `upgrade.backfill.settle`) the index is retrained into one segment
    segments = lambda: next(i.num_segments for i in d.store.table().list_indices() if "v_0" in i.columns)  # noqa: E731
    for r in range(3):
        d.upsert([f"s{r}-{j}" for j in range(100)], vectors=_data(100, seed=20 + r))
        d.optimize()
    assert segments() == 4 and d.store._unindexed() == 0
    assert d.optimize(max_segments=2) == {"ext": "IVF_HNSW_SQ index built over 6,300 vectors"}
    assert segments() == 1


def test_a_one_off_search_loads_nothing(tmp_path):
    """`Collection.one_off()` (a CLI search): a Flat LanceDB slot is searched by LanceDB's exact scan, with the same
    answer as repspace's in-memory layer, and nothing of the slot is loaded; an upgrade's fused search too."""
    v, q = _data(500), _data(5, seed=2)
    ids = [f"i{j}" for j in range(500)]
    c = Collection.create(tmp_path / "c", model="ext", dim=D)
    c.upsert(ids, vectors=v)
    want = c.search(vectors=q, k=10)
    assert c._caches
    c.close()
    d = Collection.open(tmp_path / "c").one_off()
    got = d.search(vectors=q, k=10)
    assert not d._caches
    assert [[h["id"] for h in row] for row in got] == [[h["id"] for h in row] for row in want]
    np.testing.assert_allclose([[h["score"] for h in row] for row in got], [[h["score"] for h in row] for row in want],
                               atol=1e-5)
    d.close()


@pytest.mark.parametrize("spec", ["HNSW8", "int8+rescore:20", "funnel:8/32:50"])
def test_a_one_off_search_of_an_in_memory_spec_streams_the_slot(tmp_path, spec):
    """A one-off process's search of a spec LanceDB has no index for (HNSW, int8, funnel): one streamed pass over the
    slot in the store's batches (`scan_search`), the exact answers with their payloads, nothing loaded or built."""
    v, q = _data(2500), _data(6, seed=3)
    ids = [f"i{j}" for j in range(2500)]
    c = Collection.create(tmp_path / "c", model="ext", dim=D, spec=spec)
    c.upsert(ids, vectors=v, payloads=[{"n": j} for j in range(2500)])
    c.close()
    d = Collection.open(tmp_path / "c").one_off()
    got = d.search(vectors=q, k=7)
    assert not d._caches
    vn = v / np.linalg.norm(v, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    for row, x in zip(got, qn):
        want = np.argsort(-(vn @ x))[:7]
        assert [h["id"] for h in row] == [ids[j] for j in want]
        assert [h["payload"] for h in row] == [{"n": int(j)} for j in want]
        np.testing.assert_allclose([h["score"] for h in row], vn[want] @ x, atol=1e-5)
    from repspace.collections.scan_search import scan_search

    assert scan_search(d.store, "v_0", D, q, 7, batch_rows=300) == got  # best k merged across batches
    d.close()


OPTIMIZE_CHILD = """
import sys
from repspace.collections import Collection
c = Collection.open(sys.argv[1])
print("building", flush=True)
c.optimize()
print("built", flush=True)
"""


def test_an_optimize_killed_midway_leaves_the_collection_readable_and_the_next_one_finishes(tmp_path):
    """kill -9 during the index build: the collection opens and searches exactly what is committed; the next optimize
    builds the index. A search while another process builds answers from what is committed."""
    import signal
    import subprocess
    import sys
    import time

    n = 8000
    r = np.random.default_rng(5)
    v = r.normal(size=(n, 32)).astype(np.float32)
    ids = [f"i{j}" for j in range(n)]
    c = Collection.create(tmp_path / "c", model="ext", dim=32, spec="IVF32,PQ8+nprobe:32+refine:10")
    c.upsert(ids, vectors=v)
    q = v[:5] + 0.01
    want = [[h["id"] for h in row] for row in c.one_off().search(vectors=q, k=5)]
    c.close()
    proc = subprocess.Popen([sys.executable, "-c", OPTIMIZE_CHILD, str(tmp_path / "c")], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "building"
    during = Collection.open(tmp_path / "c").one_off()
    got = [[h["id"] for h in row] for row in during.search(vectors=q, k=5)]  # while it builds: exact, committed rows
    assert got == want
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    finished = "built" in proc.communicate(timeout=60)[0]
    after = Collection.open(tmp_path / "c").one_off()
    assert after.count() == n
    if not finished:  # killed midway: nothing of the index committed, the answers are still exact
        assert not after.store._indexed()
        assert [[h["id"] for h in row] for row in after.search(vectors=q, k=5)] == want
    assert after.optimize()["ext"].startswith("IVF_PQ index")  # built now (or kept, if the kill came too late)
    assert after.store._indexed() == {"v_0"}
    assert [row[0]["id"] for row in after.search(vectors=q, k=5)] == [w[0] for w in want]


ONE_OFF_CHILD = """
import json, sys
import numpy as np
import pytest
from repspace.collections import Collection
c = Collection.open(sys.argv[1]).one_off()
q = np.load(sys.argv[2])
rows = c.search(vectors=q, k=5) + c.search(vectors=q, k=5, filter={"g": "1"})
print(json.dumps({"lancedb": "lancedb" in sys.modules, "rows": [[[h["id"], h["score"]] for h in r] for r in rows]}))
"""


def test_a_one_off_search_reads_through_pylance_with_the_same_answers(tmp_path):
    """A one-off process (the CLI's search) opens the table with pylance, not lancedb (whose import alone is ~2 s):
    the index search, the exact search of rows written since, and a payload-filtered search answer exactly as the
    long-lived (lancedb) path does."""
    import json
    import subprocess
    import sys

    v, q = _data(N), _data(4, seed=3)
    ids = [f"i{j}" for j in range(N)]
    c = Collection.create(tmp_path / "c", model="ext", dim=D, spec="IVF16,PQ8+refine:8", payload_index=["g"])
    c.upsert(ids, vectors=v, payloads=[{"g": str(j % 3)} for j in range(N)])
    c.optimize()
    c.upsert(["late"], vectors=q[:1], payloads=[{"g": "1"}])  # after the index: searched exactly
    want = c.search(vectors=q, k=5) + c.search(vectors=q, k=5, filter={"g": "1"})
    c.close()
    np.save(tmp_path / "q.npy", q)
    out = subprocess.run([sys.executable, "-c", ONE_OFF_CHILD, str(tmp_path / "c"), str(tmp_path / "q.npy")],
                         capture_output=True, text=True, check=True).stdout
    got = json.loads(out.strip().splitlines()[-1])
    assert not got["lancedb"]
    assert got["rows"][0][0][0] == "late"
    assert [[i for i, _ in r] for r in got["rows"]] == [[h["id"] for h in r] for r in want]
    np.testing.assert_allclose([[s for _, s in r] for r in got["rows"]], [[h["score"] for h in r] for r in want],
                               atol=1e-6)


def test_lancedb_ivf_rq_index(tmp_path):
    """`IVFn,RaBitQ`: LanceDB's IVF_RQ (1-bit codes) with the spec's nprobes and refine; the same answers through a
    one-off process's pylance path and the long-lived lancedb path; a filtered search stays exact."""
    v, q = _data(N), _data(30, seed=1)
    ids = [f"i{j}" for j in range(N)]
    c = Collection.create(tmp_path / "c", model="ext", dim=D, spec="IVF8,RaBitQ+nprobe:8+refine:20")
    c.upsert(ids, vectors=v, payloads=[{"n": j % 100} for j in range(N)])
    assert c.optimize() == {"ext": "IVF_RQ index built over 3,000 vectors"}
    assert [i.index_type for i in c.store.table().list_indices() if "v_0" in i.columns] == ["IvfRq"]
    hits = c.search(vectors=q, k=10)
    assert not c._caches  # LanceDB searched it
    want = _exact(v, q, 10)
    recall = np.mean([len({h["id"] for h in row} & {ids[j] for j in want[r]}) / 10 for r, row in enumerate(hits)])
    assert recall >= 0.9, recall
    c.close()
    one = Collection.open(tmp_path / "c").one_off()
    again = one.search(vectors=q, k=10)
    assert [[h["id"] for h in row] for row in again] == [[h["id"] for h in row] for row in hits]
    got = one.search(vectors=q[:3], k=5, filter={"n": "7"})
    vn = v / np.linalg.norm(v, axis=1, keepdims=True)
    match = np.array([j for j in range(N) if j % 100 == 7])
    for row, qq in zip(got, q[:3]):
        assert [h["id"] for h in row] == [ids[j] for j in match[np.argsort(-(vn[match] @ qq))[:5]]]


def test_lancedb_ivf_flat_index(tmp_path):
    """`IVFn,Flat`: LanceDB's IVF_FLAT (the float vectors in lists, scored exactly): with every list probed, the exact
    answers."""
    v, q = _data(N), _data(10, seed=2)
    ids = [f"i{j}" for j in range(N)]
    c = Collection.create(tmp_path / "c", model="ext", dim=D, spec="IVF8,Flat+nprobe:8")
    c.upsert(ids, vectors=v)
    assert c.optimize() == {"ext": "IVF_FLAT index built over 3,000 vectors"}
    assert [i.index_type for i in c.store.table().list_indices() if "v_0" in i.columns] == ["IvfFlat"]
    hits = c.search(vectors=q, k=10)
    assert not c._caches  # LanceDB searched it
    assert [[h["id"] for h in row] for row in hits] == [[ids[j] for j in row] for row in _exact(v, q, 10)]
    c.close()


def test_optimize_deletes_versions_past_the_retention_window(tmp_path, monkeypatch):
    """`optimize` deletes table versions older than `KEEP_VERSIONS` and the index files only they used (a retrained
    index's old files); recent versions stay for readers; the answers do not change."""
    from datetime import timedelta

    from repspace.collections import lance_store

    v, q = _data(N), _data(5, seed=1)
    c = Collection.create(tmp_path / "c", model="ext", dim=D, spec="IVF8,RaBitQ+nprobe:8+refine:20")
    c.upsert([f"i{j}" for j in range(N)], vectors=v)
    c.optimize()
    c.optimize(rebuild=True)
    ds = c.store.table().to_lance()
    assert len(ds.versions()) > 2 and len(list((tmp_path / "c" / "items.lance" / "_indices").iterdir())) == 2
    before = c.search(vectors=q, k=5)
    monkeypatch.setattr(lance_store, "KEEP_VERSIONS", timedelta(0))
    c.optimize()
    assert len(c.store.table().to_lance().versions()) == 1
    assert len(list((tmp_path / "c" / "items.lance" / "_indices").iterdir())) == 1
    assert c.search(vectors=q, k=5) == before
    c.close()
    assert Collection.open(tmp_path / "c").one_off().search(vectors=q, k=5) == before


def test_search_options_of_the_same_index_per_collection_handle(tmp_path, cli):
    """`Collection.tuned(nprobe=, refine=, ef=)` and `collection search --nprobe/--refine/--ef`: the same index searched
    with other options (nothing rebuilt or stored); an option the spec has not is refused, naming the flags."""
    from repspace.errors import InvalidInputError
    from repspace.index.spec import parse_spec

    v, q = _data(N), _data(30, seed=1)
    ids = [f"i{j}" for j in range(N)]
    c = Collection.create(tmp_path / "c", model="ext", dim=D, spec="IVF8,RaBitQ+nprobe:8+refine:20")
    c.upsert(ids, vectors=v)
    c.optimize()
    want = _exact(v, q, 10)

    def recall(coll):
        rows = coll.search(vectors=q, k=10)
        return np.mean([len({h["id"] for h in row} & {ids[j] for j in want[r]}) / 10 for r, row in enumerate(rows)])

    full = recall(c)
    low = Collection.open(tmp_path / "c").tuned(nprobe=1, refine=1)
    assert low.spec == parse_spec("IVF8,RaBitQ+nprobe:1+refine:1") and recall(low) < full
    assert Collection.open(tmp_path / "c").spec == parse_spec("IVF8,RaBitQ+nprobe:8+refine:20")  # nothing stored
    for bad in ({"ef": 50}, {"nprobe": 0}):
        with pytest.raises(InvalidInputError) as e:
            Collection.open(tmp_path / "c").tuned(**bad)
        assert e.value.param == "options"
    flat = Collection.create(tmp_path / "f", model="ext", dim=D)
    with pytest.raises(InvalidInputError, match="no search options"):
        flat.tuned(nprobe=4)
    np.save(tmp_path / "q.npy", q[:3])
    code, out, _ = cli("collection", "search", str(tmp_path / "c"), "--query-vectors", str(tmp_path / "q.npy"),
                       "--nprobe", "1", "--refine", "1", "--json")
    assert code == 0, out
    code, _, err = cli("collection", "search", str(tmp_path / "c"), "--query-vectors", str(tmp_path / "q.npy"),
                       "--ef", "50")
    assert code == 2 and "ef" in err and "--nprobe/--refine/--ef" in err


def test_tuned_after_a_search_retunes_the_in_memory_layer(tmp_path):
    """An HNSW slot searched in memory (faiss): `tuned(ef=…)` after the first search searches the graph already built
    with the new breadth (nothing rebuilt), and the answers follow it."""
    v, q = _data(2000), _data(30, seed=1)
    ids = [f"i{j}" for j in range(2000)]
    c = Collection.create(tmp_path / "h", model="ext", dim=D, spec="HNSW4+ef:1")
    c.upsert(ids, vectors=v)
    want = _exact(v, q, 10)

    def recall():
        rows = c.search(vectors=q, k=10)
        return np.mean([len({h["id"] for h in row} & {ids[j] for j in want[r]}) / 10 for r, row in enumerate(rows)])

    narrow = recall()
    built = c._caches[c.active]._index
    wide = c.tuned(ef=400) and recall()
    assert c._caches[c.active]._index is built and built.spec.ef == 400  # the same graph, the new breadth
    assert wide > narrow and wide >= 0.95


def test_search_options_of_one_call_on_a_shared_handle(tmp_path):
    """`search(options=…)`: one call's options over the spec's (the in-memory layer retuned for it, the store's search
    given them), on a handle other threads share: another thread's call in the meantime keeps its own."""
    import threading

    from repspace.collections.slots import CALL_OPTIONS, call_options
    from repspace.errors import InvalidInputError
    from repspace.index.spec import parse_spec

    v, q = _data(2000), _data(30, seed=1)
    ids = [f"i{j}" for j in range(2000)]
    c = Collection.create(tmp_path / "h", model="ext", dim=D, spec="HNSW4+ef:1")
    c.upsert(ids, vectors=v)
    want = _exact(v, q, 10)

    def recall(**kw):
        rows = c.search(vectors=q, k=10, **kw)
        return np.mean([len({h["id"] for h in row} & {ids[j] for j in want[r]}) / 10 for r, row in enumerate(rows)])

    narrow = recall()
    assert recall(options={"ef": 400}) >= 0.95 > narrow and recall() == narrow
    assert c.spec == parse_spec("HNSW4+ef:1") and CALL_OPTIONS.get() == {}
    with pytest.raises(InvalidInputError) as e:
        c.search(vectors=q[:1], options={"nprobe": 4})
    assert e.value.param == "options"
    inside, seen = threading.Event(), {}

    def other():
        inside.wait(10)
        seen["spec"] = str(c.spec)

    t = threading.Thread(target=other)
    t.start()
    with call_options(c.meta.spec, {"ef": 300}):
        assert c.spec.ef == 300
        inside.set()
        t.join(10)
    assert seen["spec"] == "HNSW4+ef:1"  # the other thread never saw this call's options
    lance = Collection.create(tmp_path / "l", model="ext", dim=D, spec="IVF8,RaBitQ+nprobe:8+refine:20")
    lance.upsert(ids, vectors=v)
    lance.optimize()
    full = lance.search(vectors=q, k=10)
    assert lance.search(vectors=q, k=10, options={"nprobe": 1, "refine": 1}) != full
    assert lance.search(vectors=q, k=10) == full
