"""`ops/idset.py`: the hashes a LanceDB writer keeps of a table's ids (`collections/lance_store.py`'s bulk upsert), and
the id -> row map of the in-memory search layer (`IdRows`, `collections/cache.py`)."""

import numpy as np
import pyarrow as pa

from repspace.ops.idset import IdHashSet, IdRows, id_hashes


def test_id_hashes_are_one_function_of_the_string():
    words = ["", "a", "b", "ab", "ba", "i1", "i10", "i01", "é", "a" * 300, "a"]
    h = id_hashes(pa.array(words))
    assert len(set(h.tolist())) == len(words) - 1 and h[1] == h[-1]  # "a" twice: one hash
    assert (id_hashes(pa.chunked_array([words[:4], words[4:]])) == h).all()  # chunks, slices, large strings alike
    assert (id_hashes(pa.array(words).slice(3, 4)) == h[3:7]).all()
    assert (id_hashes(pa.array(words, pa.large_string())) == h).all()
    many = id_hashes(pa.array([f"i{j}" for j in range(200_000)]))
    assert len(np.unique(many)) == len(many)
    s = IdHashSet()
    for part in np.split(many[:102_400], 50):  # 50 equal writes, merged like a binary counter: 50 = 0b110010
        s.add(part)
    assert [len(c) // 2048 for c in s.chunks] == [32, 16, 2]
    assert all((c[1:] >= c[:-1]).all() for c in s.chunks)
    got = s.maybe_contains(np.concatenate([many[150_000:], many[:50]]))
    assert not got[:50_000].any() and got[50_000:].all()


def test_backfills_optimize_each_time_their_rows_cross_a_multiple_of_reindex_rows():
    """LanceDB: every REINDEX_ROWS rows; PostgreSQL (`reindex_during_backfill` False): never midway (pgvector keeps
    its indexes itself; a new slot's index built at 10 % would take the other 90 % one insert at a time)."""
    from repspace.collections.pg_store import PgStore
    from repspace.collections.upgrade.backfill import reindex_after

    calls = []

    class Coll:
        def __init__(self, midway):
            self.store = type("S", (), {"reindex_during_backfill": midway})()

        def optimize(self):
            calls.append(1)

    for before, after in [(0, 99_999), (99_999, 100_000), (100_000, 150_000), (150_000, 350_000)]:
        reindex_after(Coll(True), before, after)
        reindex_after(Coll(PgStore.reindex_during_backfill), before, after)
    assert len(calls) == 2  # crossed 100k, then 200k..300k in one write: once; PostgreSQL never


def test_id_rows_find_each_id_against_a_dict():
    ids = [f"i{j}" for j in range(5000)] + ["", "é", "a" * 300, "i7"]  # "i7" twice: its first row
    rows = IdRows(pa.chunked_array([ids[:100], ids[100:]]))
    want = {}
    for r, i in enumerate(ids):
        want.setdefault(i, r)
    asked = ids[::-1] + ["nope", "i5000", "a" * 299]
    assert rows.rows(asked).tolist() == [want.get(i, -1) for i in asked]
    assert rows.rows(pa.array(asked)).tolist() == rows.rows(asked).tolist()  # Arrow or Python strings alike
    assert len(rows) == len(ids) and rows[3] == "i3" and rows[-1] == "i7" and rows.take([1, 0]) == ["i1", "i0"]
    assert IdRows([]).rows(["x"]).tolist() == [-1] and rows.rows([]).tolist() == []
    assert "i4999" in rows and "nope" not in rows and 3 not in rows and list(rows)[:2] == ["i0", "i1"]


def test_id_rows_confirm_a_hash_hit_against_the_string(monkeypatch):
    """Every id given the same hash (a collision for each pair): the answer is still exact, never a wrong row."""
    import repspace.ops.idset as idset

    monkeypatch.setattr(idset, "id_hashes", lambda a: np.zeros(len(a), np.uint64))
    rows = IdRows(["b", "a", "c", "a"])
    assert rows.rows(["a", "c", "x", "b"]).tolist() == [1, 2, -1, 0]
