"""LanceDB store paths chosen by size (issue 26): many ids are looked up by hash over the id column and taken by
row id, few by an IN-list filter — the same rows either way, deleted rows never returned; the "are these ids new?"
check of a bulk upsert."""

import numpy as np

from repspace.collections import Collection, lance_store


def test_fetch_by_hash_equals_fetch_by_filter(tmp_path, monkeypatch):
    c = Collection.create(tmp_path / "c", model="ext", dim=8)
    v = np.random.default_rng(0).random((5000, 8)).astype(np.float32)
    c.upsert([f"i{j}" for j in range(5000)], vectors=v, payloads=[{"n": j} for j in range(5000)])
    c.upsert([f"i{j}" for j in range(10)], vectors=v[:10] + 1)  # a second fragment, updated rows
    c.delete([f"i{j}" for j in range(0, 5000, 3)])
    ids = [f"i{j}" for j in range(0, 5000, 2)] + ["nope"]
    assert len(ids) > lance_store.FETCH_BY_FILTER
    by_hash = c.store.fetch(ids, ["id", "payload", "v_0"]).sort_by("id")
    monkeypatch.setattr(lance_store, "FETCH_BY_FILTER", 10**9)
    by_filter = c.store.fetch(ids, ["id", "payload", "v_0"]).sort_by("id")
    assert by_hash.equals(by_filter)
    assert by_hash.num_rows == len([j for j in range(0, 5000, 2) if j % 3])
    got = {i: r for i, r in zip(by_hash.column("id").to_pylist(), by_hash.column("v_0").to_pylist())}
    np.testing.assert_allclose(got["i2"], v[2] + 1, rtol=1e-6)
    np.testing.assert_allclose(got["i4000"], v[4000], rtol=1e-6)


def test_bulk_upsert_appends_new_ids_and_merges_known_ones(tmp_path):
    c = Collection.create(tmp_path / "c", model="ext", dim=4)
    c.upsert(["a", "b"], vectors=np.eye(4)[:2])
    assert c.store._any_exists(lance_store.pa.array(["b", "z"])) and not c.store._any_exists(lance_store.pa.array(["z"]))
    c.upsert(["b", "c"], vectors=np.eye(4)[2:])  # "b" known: a merge, not a second "b"
    assert c.count() == 3 and c.get(["b"], vectors=True)[0]["vector"] == [0.0, 0.0, 1.0, 0.0]


def test_backfills_optimize_each_time_their_rows_cross_a_multiple_of_reindex_rows():
    from repspace.collections.upgrade.backfill import reindex_after

    calls = []

    class Coll:
        def optimize(self):
            calls.append(1)

    for before, after in [(0, 99_999), (99_999, 100_000), (100_000, 150_000), (150_000, 350_000)]:
        reindex_after(Coll(), before, after)
    assert len(calls) == 2  # crossed 100k, then 200k..300k in one write: once
