"""`IVFn,PQm[+refine:F]` on a LanceDB collection: LanceDB's own on-disk IVF_PQ index, built once a slot holds enough
vectors to train it, searched by LanceDB (nothing of the slot loaded into repspace's memory), rows written after the
index searched exactly until the next optimize; recall against exact."""

import numpy as np

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
