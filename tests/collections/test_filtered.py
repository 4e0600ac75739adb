"""Filtered search (issue 26 item 5): payload indexes on both backends, the exact and the ANN plan, results equal to
the exact filtered top k and to the store's own filtered query, a key no item has, awkward values."""

import json

import numpy as np
import pytest

from repspace.collections import Collection
from repspace.collections import payload_index as pi

N, DIM = 600, 16
AWKWARD = "it's \"quoted\" -- ; DROP TABLE x; ünïcødé ✓ \\ end"


def _data(seed=0):
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((N, DIM)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    cats = np.where(np.arange(N) % 50 == 0, "rare", np.where(np.arange(N) % 2 == 0, "half", "other"))
    payloads = [{"cat": str(c), "n": int(j % 7)} for j, c in enumerate(cats)]
    payloads[5]["cat"] = AWKWARD
    payloads[9]["cat"] = AWKWARD
    payloads[11] = {}  # an item without the key
    return [f"i{j}" for j in range(N)], v, payloads


def _exact(v, payloads, q, k, flt):
    from repspace.collections.payload import check_filter, matches

    rows = [j for j, p in enumerate(payloads) if matches(p, check_filter(flt))]
    s = v[rows] @ (q / np.linalg.norm(q))
    order = np.argsort(-s, kind="stable")[:k]
    return [f"i{rows[j]}" for j in order]


def _make(uri, spec="Flat", keys=("cat",)):
    ids, v, payloads = _data()
    c = Collection.create(uri, model="synthetic", dim=DIM, spec=spec, payload_index=list(keys))
    c.upsert(ids[:400], vectors=v[:400], payloads=payloads[:400])
    c.optimize()  # builds the payload indexes (LanceDB: none on an empty table)
    c.upsert(ids[400:], vectors=v[400:], payloads=payloads[400:])  # rows the indexes have not seen yet
    return c, v, payloads


def _queries(n=4, seed=3):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, DIM)).astype(np.float32)


@pytest.mark.parametrize("one_off", [False, True])
def test_filtered_equals_exact(new_uri, one_off):
    c, v, payloads = _make(new_uri())
    if one_off:
        c.one_off()
    assert c.meta.payload_index == ("cat",)
    for flt in ({"cat": "rare"}, {"cat": "half"}, {"cat": AWKWARD}, {"cat": "half", "n": 3}, {"n": "2"}):
        for q in _queries():
            got = [h["id"] for h in c.search(vectors=q, k=10, filter=flt)[0]]
            assert got == _exact(v, payloads, q, 10, flt), flt
            for h in c.search(vectors=q, k=10, filter=flt)[0]:
                assert all(str(h["payload"][a]) == str(b) for a, b in flt.items())
    c.close()


def test_key_no_item_has_is_empty(new_uri):
    c, _, _ = _make(new_uri(), keys=("cat", "missing"))
    q = _queries(2)
    assert c.search(vectors=q, k=5, filter={"missing": "x"}) == [[], []]
    assert c.search(vectors=q, k=5, filter={"nobody": "x"}) == [[], []]
    assert c.search(vectors=q, k=5, filter={"cat": "no such value"}) == [[], []]
    c.one_off()
    assert c.search(vectors=q, k=5, filter={"missing": "x"}) == [[], []]
    c.close()


def test_declared_later_and_upserts_keep_it(new_uri):
    ids, v, payloads = _data()
    uri = new_uri()
    c = Collection.create(uri, model="synthetic", dim=DIM)
    c.upsert(ids[:300], vectors=v[:300], payloads=payloads[:300])
    assert c.index_payload(["cat"]) == ["cat"]
    assert c.index_payload("cat") == ["cat"]  # declaring again changes nothing
    c.upsert(ids[300:], vectors=v[300:], payloads=payloads[300:])  # written after the index: the column too
    c.upsert(["i0"], vectors=v[:1], payloads=[{"cat": "moved"}])  # replaced: the old value no longer matches
    payloads = [dict(p) for p in payloads]
    payloads[0] = {"cat": "moved"}
    c2 = Collection.open(uri).one_off()
    assert c2.meta.payload_index == ("cat",)
    for flt in ({"cat": "rare"}, {"cat": "moved"}):
        q = _queries(1)[0]
        assert [h["id"] for h in c2.search(vectors=q, k=10, filter=flt)[0]] == _exact(v, payloads, q, 10, flt)
    c.close()
    c2.close()


def test_bad_keys_refused():
    from repspace.errors import InvalidInputError

    with pytest.raises(InvalidInputError) as e:
        pi.check_keys(["ok", "no spaces"])
    assert e.value.param == "payload_index"


def test_lance_columns_and_scalar_index(tmp_path):
    c, v, payloads = _make(str(tmp_path / "c"))
    t = c.store.table()
    assert {i.name: i.num_unindexed_rows for i in t.list_indices()} == {"p_cat_idx": 200}
    c.optimize()
    assert {i.name: i.num_unindexed_rows for i in t.list_indices()} == {"p_cat_idx": 0}
    assert "p_cat" in t.schema.names and c.store.columns() == ["v_0"]
    idx = {tuple(i.columns): i.index_type for i in t.list_indices()}
    assert idx[("p_cat",)] == "Bitmap"
    assert not c.store._indexed()  # a scalar index is no vector index
    # LanceDB's own filtered query on the same column agrees with repspace's
    q = _queries(1)[0]
    own = (t.search(q, vector_column_name="v_0").distance_type("cosine").where("p_cat = 'rare'", prefilter=True)
           .limit(10).select(["id"]).to_arrow().column("id").to_pylist())
    c.one_off()
    assert [h["id"] for h in c.search(vectors=q, k=10, filter={"cat": "rare"})[0]] == own
    # the scalar index answers the filter
    plan = t.to_lance().scanner(columns=["id"], filter=pi_expr({"cat": "rare"})).explain_plan()
    assert "ScalarIndexQuery" in plan
    c.close()


def pi_expr(flt):
    from repspace.collections.lance_filter import expression

    return expression(flt)


def test_lance_plans(tmp_path, monkeypatch):
    """An IVF_PQ slot: few matches → LanceDB's exact kNN over them; many → the IVF_PQ index with the pre-filter."""
    from repspace.collections import lance_filter

    ids, v, payloads = _data()
    c = Collection.create(str(tmp_path / "c"), model="synthetic", dim=DIM, spec="IVF2,PQ4+refine:8",
                          payload_index=["cat"])
    c.upsert(ids, vectors=v, payloads=payloads)
    c.optimize()
    assert c.store._indexed() == {"v_0"}
    q = _queries(3)
    plans = []
    real = lance_filter.exact_plan
    monkeypatch.setattr(lance_filter, "exact_plan", lambda n, lim: plans.append(real(n, lim)) or plans[-1])
    for flt in ({"cat": "rare"}, {"cat": "half"}):
        got = [[h["id"] for h in r] for r in c.search(vectors=q, k=10, filter=flt)]
        assert got == [_exact(v, payloads, x, 10, flt) for x in q]
    assert plans == [True, True]
    monkeypatch.setattr(lance_filter, "EXACT_ROWS", 10)
    monkeypatch.setattr(lance_filter, "exact_plan", lambda n, lim: plans.append(real(n, lim)) or plans[-1])
    got = [[h["id"] for h in r] for r in c.search(vectors=q, k=10, filter={"cat": "half"})]
    want = [_exact(v, payloads, x, 10, {"cat": "half"}) for x in q]
    assert plans[-1] is False and all(len(r) == 10 for r in got) and not c._caches
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, want)]) >= 0.7
    c.close()


def test_pg_expression_index_used_and_both_plans(pg_dsn, monkeypatch):
    import uuid

    from repspace.collections import with_collection
    from repspace.collections import pg_filter

    c, v, payloads = _make(with_collection(pg_dsn, f"f{uuid.uuid4().hex[:8]}"), spec="HNSW16")
    store = c.store
    name = pg_filter.index_name(store, "cat")
    from psycopg import sql

    with store._conn() as conn:
        assert name in store._catalog_at(conn).indexes
        conn.execute("SET LOCAL enable_seqscan = off")  # a table this small: show that the index can serve it
        where, names = pg_filter.filter_where(sql.Identifier("v_0"), {"cat": "rare"})
        plan = "\n".join(r[0] for r in conn.execute(sql.SQL("EXPLAIN SELECT id FROM {} WHERE {}").format(
            store._t(), where), names).fetchall())
    assert name in plan, plan
    q = _queries(3)
    plans = []
    real = pg_filter.exact_plan
    monkeypatch.setattr(pg_filter, "exact_plan", lambda n: plans.append(real(n)) or plans[-1])
    for flt in ({"cat": "rare"}, {"cat": AWKWARD}):
        got = [[h["id"] for h in r] for r in c.search(vectors=q, k=5, filter=flt)]
        assert got == [_exact(v, payloads, x, 5, flt) for x in q]
    assert plans == [True, True]
    monkeypatch.setattr(pg_filter, "exact_plan", lambda n: plans.append(False) or False)  # HNSW + iterative scan
    got = [[h["id"] for h in r] for r in c.search(vectors=q, k=5, filter={"cat": "half"})]
    want = [_exact(v, payloads, x, 5, {"cat": "half"}) for x in q]
    assert np.mean([len(set(a) & set(b)) / 5 for a, b in zip(got, want)]) >= 0.8
    assert all(len(r) == 5 for r in got)
    # the store's own SQL (exact: no HNSW scan, which would filter only its ef_search candidates) agrees
    with store._conn() as conn:
        from pgvector import Vector

        from repspace.collections.pg_codec import esc  # repspace's stored form of a backslash (reversible escape)

        conn.execute("SET LOCAL enable_indexscan = off")
        own = [r[0] for r in conn.execute(sql.SQL("SELECT id FROM {} WHERE payload->>'cat' = %s ORDER BY v_0 <=> %s "
                                                  "LIMIT 5").format(store._t()), (esc(AWKWARD), Vector(q[0]))).fetchall()]
    assert own == _exact(v, payloads, q[0], 5, {"cat": AWKWARD})
    c.drop()


def test_cache_value_index_matches_scan():
    from repspace.collections.cache import SlotCache
    from repspace.index.spec import parse_spec

    ids, v, payloads = _data()
    c = SlotCache("v_0", DIM, parse_spec("Flat"))
    c._set_base(ids, v, [json.dumps(p) for p in payloads])
    c.apply_delete(["i0", "i50"])  # tombstones are no matches
    rows = c.matching({"cat": "rare"})
    assert [ids[r] for r in rows] == [f"i{j}" for j in range(100, N, 50)]
    assert len(c.matching({"cat": "half", "n": "0"})) == len([1 for j, p in enumerate(payloads) if j not in (0, 50)
                                                             and p.get("cat") == "half" and p.get("n") == 0])


def test_cli_payload_index(cli, new_uri, tmp_path):
    uri = new_uri()
    code, out, err = cli("collection", "create", uri, "--model", "ext", "--dim", 8, "--payload-index", "label,lang",
                         "--json")
    assert code == 0, err and json.loads(out)["payload_index"] == ["label", "lang"]
    rows = [{"id": f"q{k}", "vector": np.eye(8)[k % 8].tolist(), "label": f"l{k % 3}"} for k in range(30)]
    (tmp_path / "v.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert cli("collection", "upsert", uri, "--input", tmp_path / "v.jsonl", "--quiet")[0] == 0
    code, out, err = cli("collection", "index-payload", uri, "kind", "--json")
    assert code == 0, err
    assert json.loads(out) == {"payload_index": ["label", "lang", "kind"]}
    code, out, err = cli("collection", "index-payload", uri, "bad key")
    assert code == 2 and "payload index key" in err and "--" not in err.split("payload index key")[0][-5:]
    code, out, err = cli("collection", "create", new_uri(), "--model", "ext", "--dim", 8, "--payload-index", "a b")
    assert code == 2 and "--payload-index" in err


def test_cache_holds_no_python_object_per_item():
    """The in-memory layer keeps ids and payloads in Arrow and the rest in numpy (issue 26 item 1): loading 20,000
    items allocates a bounded number of Python objects (it was three per item: the id, the payload, the dict entry),
    and lookups, own writes and filters work on them."""
    import gc
    import sys

    import pyarrow as pa

    from repspace.collections.cache import SlotCache
    from repspace.index.spec import parse_spec
    from repspace.ops.idset import IdRows

    n = 20_000
    rng = np.random.default_rng(0)
    v = rng.standard_normal((n, DIM)).astype(np.float32)

    class Store:
        def version(self):
            return 1

        def scan(self, columns):
            for s in range(0, n, 5000):
                yield pa.record_batch({"id": pa.array([f"i{j}" for j in range(s, s + 5000)]),
                                       "payload": pa.array([None if j % 3 else f'{{"c": "{j % 2}"}}'
                                                            for j in range(s, s + 5000)]),
                                       "v_0": pa.FixedSizeListArray.from_arrays(pa.array(v[s : s + 5000].ravel()), DIM)})

    store = Store()
    warm = SlotCache("v_0", DIM, parse_spec("Flat"))
    warm.load(store)  # imports, first-use caches
    c = SlotCache("v_0", DIM, parse_spec("Flat"))
    gc.collect()
    before = sys.getallocatedblocks()
    c.load(store)
    gc.collect()
    assert sys.getallocatedblocks() - before < 2000  # the Python lists and dict held 46,422 blocks here
    assert isinstance(c.ids, IdRows) and isinstance(c.payloads, pa.Array) and c.count == n
    assert c.payloads_of(["i3", "i4", "zz"]) == ['{"c": "1"}', "{}", None]
    assert len(c.matching({"c": "0"})) == len(range(0, n, 6))
    c.apply_delete(["i0"])
    c.apply_upsert(["i6", "new"], v[:2], ['{"c": "0"}', '{"c": "0"}'])
    has, got = c.vectors_for(["i0", "i6", "new", "i9"])
    assert has.tolist() == [False, True, True, True] and np.allclose(got[1], v[0] / np.linalg.norm(v[0]), atol=1e-6)
    hits = c.search(v[9:10], 1, {})
    assert hits[0][0][0] == "i9" and hits[0][0][2] == '{"c": "1"}'
    assert c.search(v[:1], 1, {"c": "0"})[0][0][0] == "i6"  # its new vector is the query; a fresh row, filtered
    c.compacted()
    assert c.count == n and len(c.ids) == n and c.ids.rows(["new", "i0", "i6"]).tolist()[1] == -1
