"""LanceDB store paths chosen by size (issue 26): many ids are looked up by hash over the id column and taken by
row id, few by an IN-list filter — the same rows either way, deleted rows never returned; the "are these ids new?"
check of a bulk upsert."""

import numpy as np
import pytest

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


def test_the_writers_id_hashes_follow_the_table_and_never_admit_a_duplicate(tmp_path, monkeypatch):
    """A writer remembers the hashes of the ids the table holds at the version its last write made (`ops/idset.py`):
    later writes check new ids against them; another writer's write moves the version, and the next check reads the
    id column again; hash collisions are checked exactly."""
    v = np.random.default_rng(0).random((300, 4)).astype(np.float32)
    c = Collection.create(tmp_path / "c", model="ext", dim=4)
    c.upsert([f"i{j}" for j in range(100)], vectors=v[:100])
    assert c.store._known_ids is None  # small writes: one streamed check each, no hashes kept
    monkeypatch.setattr(lance_store, "HASH_IDS_FROM", 1)
    c.upsert([f"i{j}" for j in range(50)], vectors=v[:50])  # known ids: found through the hashes, merged
    assert c.count() == 100
    c.upsert([f"i{j}" for j in range(100, 200)], vectors=v[100:200])
    assert c.store._known_ids[0] == c.store.table().version
    assert len(np.unique(np.concatenate(c.store._known_ids[1].chunks))) == 200  # (a merge adds known ones again)
    other = Collection.open(tmp_path / "c")  # a second writer (another process, in effect)
    other.upsert(["x"], vectors=v[:1])
    c.upsert(["x", "y"], vectors=v[1:3])  # "x" came from the other writer: found after re-reading, merged
    assert c.count() == 202 and c.get(["x"], vectors=True)[0]["vector"] == pytest.approx(v[1].tolist())
    # every hash collides: each write's ids are then all checked exactly, and new ones still append
    monkeypatch.setattr(lance_store, "id_hashes", lambda ids: np.zeros(len(ids), np.uint64))
    c.upsert(["z1", "z2"], vectors=v[3:5])
    c.upsert(["z2", "z3"], vectors=v[5:7])
    ids = c.store.table().to_lance().to_table(columns=["id"]).column("id").to_pylist()
    assert len(ids) == len(set(ids)) == 205


def test_a_failed_bulk_write_drops_the_writers_id_hashes(tmp_path, monkeypatch):
    """The id set takes a write's ids while LanceDB writes them (a pool thread); a write that fails leaves no hashes
    of ids the table does not hold behind it, and the next write re-reads the table and appends them."""
    v = np.random.default_rng(0).random((40, 4)).astype(np.float32)
    monkeypatch.setattr(lance_store, "HASH_IDS_FROM", 1)
    c = Collection.create(tmp_path / "c", model="ext", dim=4)
    c.upsert([f"i{j}" for j in range(20)], vectors=v[:20])
    assert c.store._known_ids is not None
    table = c.store.table()
    real_add = type(table).add

    def failing_add(self, *a, **kw):
        raise OSError("simulated write failure")

    monkeypatch.setattr(type(table), "add", failing_add)
    with pytest.raises(OSError):
        c.upsert([f"i{j}" for j in range(20, 40)], vectors=v[20:])
    assert c.store._known_ids is None and c.count() == 20
    monkeypatch.setattr(type(table), "add", real_add)
    c.upsert([f"i{j}" for j in range(20, 40)], vectors=v[20:])
    assert c.count() == 40 and c.store._known_ids[0] == c.store.table().version
    assert len(np.unique(np.concatenate(c.store._known_ids[1].chunks))) == 40


def test_searches_read_one_dataset_that_follows_every_write(tmp_path):
    """A process with the table open searches through one pylance dataset, kept while the table's version stands (its
    caches: the index pages read) and moved to each new version, its own writes and another writer's alike."""
    v = np.random.default_rng(1).random((400, 8)).astype(np.float32)
    c = Collection.create(tmp_path / "c", model="ext", dim=8, spec="IVF4,Flat")
    c.upsert([f"i{j}" for j in range(300)], vectors=v[:300])
    assert "index built" in c.optimize()["ext"]
    ds = c.store.dataset()
    assert c.store.dataset() is ds and c.search(vectors=v[5:6], k=1)[0][0]["id"] == "i5"
    other = Collection.open(tmp_path / "c")  # another writer
    other.upsert(["new"], vectors=v[300:301], payloads=[{"n": 1}])
    hit = c.search(vectors=v[300:301], k=1)[0][0]
    assert hit["id"] == "new" and hit["payload"] == {"n": 1}  # unindexed rows: searched exactly beside the index
    moved = c.store.dataset()
    assert moved is not ds and moved.version == c.store.table().version
    assert moved.session().is_same_as(ds.session())  # the same caches, not a fresh dataset's
    assert not c.store.table().to_lance().session().is_same_as(ds.session())
    c.delete(["i5"])
    assert "i5" not in [h["id"] for h in c.search(vectors=v[5:6], k=3)[0]]


@pytest.mark.parametrize("spec", ["Flat", "IVF4,Flat", "IVF4,RaBitQ+refine:4", "IVF4,HNSW_SQ", "IVF4,PQ2"])
def test_a_partly_filled_slot_returns_only_rows_with_vectors(tmp_path, spec):
    """A slot being filled (an upgrade's backfill) holds null vectors: LanceDB's search of it — exact before its index
    exists and after, through the index and the rows written since — never returns a row without a vector, even
    when k asks for more rows than have one."""
    rng = np.random.default_rng(2)
    ids = [f"i{j}" for j in range(400)]
    c = Collection.create(tmp_path / "c", model="ext", dim=8, spec=spec)
    c.store.search_in_store = True  # Flat: LanceDB's exact scan, as in a one-off process
    c.upsert(ids, vectors=rng.random((400, 8)).astype(np.float32))
    c.add_slot("other", dim=8)
    w = rng.random((400, 8)).astype(np.float32)
    filled = set(ids[:10])
    c.update_vectors("other", ids[:10], w[:10])
    got = c.search(vectors=w[:2], k=50, slot="other")
    assert all({h["id"] for h in row} == filled for row in got)
    c.update_vectors("other", ids[10:300], w[10:300])
    filled = set(ids[:300])
    searcher = c
    if spec != "Flat":
        assert "index built over 300" in c.optimize()["other"] and "v_1" in c.store._indexed()
        c.update_vectors("other", ids[300:310], w[300:310])  # written after the index: searched exactly beside it
        filled |= set(ids[300:310])
        searcher = c.tuned(nprobe=4)
    for row in searcher.search(vectors=w[:3], k=390, slot="other"):
        assert {h["id"] for h in row} == filled and len(row) == len(filled)
    assert not c._caches  # LanceDB searched, not repspace's in-memory layer


def test_a_handle_reads_a_collection_dropped_and_made_again_at_its_path(tmp_path):
    """Another process drops the collection and makes a new one at the same path (its versions start again at 1):
    an open handle's searches read the new table, not the cached dataset of the old one."""
    rng = np.random.default_rng(0)
    c = Collection.create(tmp_path / "c", model="ext", dim=8, spec="IVF4,Flat")
    for j in range(4):
        c.upsert([f"a{j}_{i}" for i in range(100)], vectors=rng.random((100, 8)).astype(np.float32))
    c.optimize()
    assert c.search(vectors=rng.random((1, 8)).astype(np.float32), k=2)[0][0]["id"].startswith("a")
    Collection.open(tmp_path / "c").drop()
    Collection.create(tmp_path / "c", model="ext", dim=8, spec="IVF4,Flat").upsert(
        [f"b{i}" for i in range(50)], vectors=rng.random((50, 8)).astype(np.float32))
    got = c.search(vectors=rng.random((1, 8)).astype(np.float32), k=5)[0]
    assert len(got) == 5 and all(h["id"].startswith("b") for h in got)
