"""PostgreSQL store internals on the real server: metadata compare-and-set, the connection pool under concurrent
callers, catalog facts read once per version, binary rows to Arrow."""

import threading
import uuid

import numpy as np
import pyarrow as pa
import pytest
from psycopg import sql

from repspace.collections import Collection, with_collection
from repspace.collections.store import vector_array
from repspace.errors import CollectionNotFoundError, ConcurrentChangeError, InvalidInputError
from repspace.index.spec import parse_spec

D = 8


@pytest.fixture
def pg_uri(pg_dsn):
    return with_collection(pg_dsn, f"p{uuid.uuid4().hex[:10]}")


def _store(uri, **kw):
    from repspace.collections.pg_store import PgStore
    from repspace.collections.uri import parse_uri

    p = parse_uri(uri)
    return PgStore(p.dsn, p.name, **kw)


def _rows(ids, vectors=None, column="v_0", payloads=None, texts=None):
    n = len(ids)
    cols = {"id": pa.array(ids, pa.string()), "text": pa.array(texts or [None] * n, pa.string()),
            "payload": pa.array(payloads or ["{}"] * n, pa.string())}
    if vectors is not None:
        cols[column] = vector_array(vectors, vectors.shape[1], n)
    return pa.table(cols)


def _connections(pg_dsn, application_name):
    import psycopg

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                            (application_name,)).fetchone()[0]


# ------------------------------------------------------------ compare-and-set
def test_meta_compare_and_set(pg_uri):
    c = Collection.create(pg_uri, model="ext", dim=D)
    a, b = _store(pg_uri), _store(pg_uri)
    try:
        assert a.read_meta()["revision"] == 1  # create stores revision 1
        ma, mb = a.read_meta(), b.read_meta()
        ma["spec"], mb["spec"] = "HNSW16", "HNSW32"
        written = a.write_meta(ma, expected=1)
        assert written is ma and written["revision"] == 2
        with pytest.raises(ConcurrentChangeError, match=r"'%s' changed since it was read \(revision 1, now 2\); "
                           r"nothing was written: re-read and retry" % c.name):
            b.write_meta(mb, expected=1)
        assert mb["revision"] == 1  # a refused write leaves the caller's dict alone
        stored = b.read_meta()
        assert stored["spec"] == "HNSW16" and stored["revision"] == 2
        mb = b.read_meta()
        mb["spec"] = "HNSW32"
        assert b.write_meta(mb, expected=2)["revision"] == 3
        assert a.read_meta()["spec"] == "HNSW32"
        # each write of the metadata is a new version too (caches refresh)
        v = a.version()
        a.write_meta(a.read_meta(), expected=3)
        assert a.version() == v + 1 and b.read_meta()["revision"] == 4
    finally:
        a.close(), b.close(), c.close()


def test_meta_without_revision_is_revision_0(pg_uri, pg_dsn):
    import json

    import psycopg

    c = Collection.create(pg_uri, model="ext", dim=D)
    name = c.name
    c.close()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:  # a collection stored before revisions existed
        conn.execute("UPDATE repspace_collections SET meta = meta - 'revision' WHERE name = %s", (name,))
        assert "revision" not in json.loads(json.dumps(conn.execute(
            "SELECT meta FROM repspace_collections WHERE name = %s", (name,)).fetchone()[0]))
    s = _store(pg_uri)
    try:
        m = s.read_meta()
        assert m["revision"] == 0
        with pytest.raises(ConcurrentChangeError):
            s.write_meta(dict(m), expected=1)
        assert s.write_meta(m, expected=0)["revision"] == 1
        assert Collection.open(pg_uri).slots[0].dim == D  # the collection still opens
    finally:
        s.close()


def test_cas_on_a_missing_collection_says_not_found(pg_uri):
    s = _store(pg_uri)
    try:
        with pytest.raises(CollectionNotFoundError):
            s.write_meta({"format": "x"}, expected=0)
    finally:
        s.close()


def test_racing_cas_writers_lose_no_update(pg_uri):
    """Eight threads each add one key by read / compare-and-set / retry: every key lands exactly once."""
    Collection.create(pg_uri, model="ext", dim=D).close()
    stores = [_store(pg_uri) for _ in range(4)]
    conflicts = []

    def add(j):
        s = stores[j % len(stores)]
        while True:
            m = s.read_meta()
            m.setdefault("marks", []).append(j)
            try:
                s.write_meta(m, expected=m["revision"])
                return
            except ConcurrentChangeError:
                conflicts.append(j)

    threads = [threading.Thread(target=add, args=(j,)) for j in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    m = stores[0].read_meta()
    assert sorted(m["marks"]) == list(range(8)) and m["revision"] == 1 + 8
    for s in stores:
        s.close()


# ------------------------------------------------------------------- pool
def test_pool_serves_concurrent_searches_and_upserts(pg_uri):
    n0, threads_n, rounds = 300, 6, 15
    r = np.random.default_rng(0)
    v = r.normal(size=(n0, D)).astype(np.float32)
    c = Collection.create(pg_uri, model="ext", dim=D)
    c.upsert([f"base-{k}" for k in range(n0)], vectors=v)
    c.close()
    store = _store(pg_uri, pool_max=4)
    spec = parse_spec("Flat")
    errors, seen_sizes = [], []
    start = threading.Barrier(threads_n)

    def work(t):
        try:
            start.wait()
            for i in range(rounds):
                if t % 2:
                    hits = store.native_search("v_0", D, v[i : i + 1], 5, {}, spec)
                    assert hits[0][0][0] == f"base-{i}" and abs(hits[0][0][1] - 1.0) < 1e-5
                else:
                    w = np.full((3, D), t + i + 1, np.float32)
                    store.upsert(_rows([f"t{t}-{i}-{j}" for j in range(3)], w))
                seen_sizes.append(store.connections._pool.get_stats()["pool_size"])
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert store.count() == n0 + (threads_n // 2) * rounds * 3
    assert max(seen_sizes) <= 4  # bounded
    got = store.fetch(["t0-0-0", "t2-3-1"], ["id", "v_0"]).sort_by("id")
    np.testing.assert_array_equal(np.asarray(got.column("v_0").to_pylist(), np.float32),
                                  [[1.0] * D, [6.0] * D])
    store.close()
    assert store.connections._pool is None
    assert store.count() == n0 + (threads_n // 2) * rounds * 3  # a later call opens a fresh pool
    store.close()


def test_pool_bounds_and_close_release_connections(pg_dsn):
    import time

    uri = with_collection(pg_dsn + ("&" if "?" in pg_dsn else "?") + "application_name=rs_pool_test",
                          f"p{uuid.uuid4().hex[:10]}")
    Collection.create(uri, model="ext", dim=D).close()
    s = _store(uri, pool_max=3)
    held = []
    try:
        for _ in range(3):  # check three connections out at once
            cm = s._conn(tx=False)
            held.append((cm, cm.__enter__()))
        assert _connections(pg_dsn, "rs_pool_test") == 3
        assert s.connections._pool.get_stats()["pool_size"] == 3
    finally:
        for cm, _ in held:
            cm.__exit__(None, None, None)
    s.close()
    deadline = time.time() + 5
    while _connections(pg_dsn, "rs_pool_test") and time.time() < deadline:
        time.sleep(0.05)
    assert _connections(pg_dsn, "rs_pool_test") == 0
    with pytest.raises(InvalidInputError):
        _store(uri, pool_max=0)


def test_a_lone_caller_keeps_one_warm_connection(pg_uri):
    """After a busy spell grew the pool, one caller at a time is served by the same backend (not round robin)."""
    Collection.create(pg_uri, model="ext", dim=D).close()
    s = _store(pg_uri, pool_max=4)
    held = [s._conn(tx=False) for _ in range(4)]
    for cm in held:
        cm.__enter__()
    for cm in held:
        cm.__exit__(None, None, None)
    assert s.connections._pool.get_stats()["pool_size"] == 4
    pids = set()
    for _ in range(8):
        with s._conn(tx=False) as conn:
            pids.add(conn.execute("SELECT pg_backend_pid()").fetchone()[0])
    assert len(pids) == 1
    s.close()


def test_pool_size_from_the_environment(pg_uri, monkeypatch):
    monkeypatch.setenv("REPSPACE_PG_POOL_MAX", "3")
    assert _store(pg_uri).pool_max == 3
    monkeypatch.setenv("REPSPACE_PG_POOL_MAX", "lots")
    with pytest.raises(InvalidInputError, match="REPSPACE_PG_POOL_MAX"):
        _store(pg_uri)


# ---------------------------------------------------------------- catalog
def test_catalog_facts_read_once_per_version(pg_uri):
    c = Collection.create(pg_uri, model="ext", dim=D)
    v = np.ones((4, D), np.float32)
    c.upsert(["a", "b", "c", "d"], vectors=v)
    s, other = _store(pg_uri), _store(pg_uri)
    try:
        s.upsert(_rows(["a", "b"], v[:2] * 2))  # an id that exists: the ON CONFLICT path reads the catalog
        cat = s._catalog[1]
        assert cat.columns == {"v_0": D}
        for k in range(5):
            s.upsert(_rows(["a", "b"], v[:2] * (3 + k)))
            s.delete(["zz"])
        assert s._catalog[1] is cat  # our own writes keep the facts: no catalog read per operation
        other.add_vector_column("v_1", 3)  # another handle changes the schema
        s.upsert(_rows(["a"], v[:1]))
        assert s._catalog[1] is not cat and s._catalog[1].columns == {"v_0": D, "v_1": 3}
        other.update_vectors("v_1", ["a", "b"], np.ones((2, 3), np.float32))
        s.upsert(_rows(["a"], v[:1] * 7))  # a whole-row replace nulls the vector columns it does not give
        t = s.fetch(["a", "b"], ["id", "v_0", "v_1"]).sort_by("id")
        assert t.column("v_1").to_pylist() == [None, [1.0, 1.0, 1.0]]
        assert t.column("v_0").to_pylist()[0] == [7.0] * D
        # a column dropped by another handle after this one read the catalog: its vectors are left out, as before
        s.upsert(_rows(["a"], np.ones((1, 3), np.float32), column="v_1"))
        other.drop_vector_column("v_1")
        s.upsert(_rows(["a", "e"], np.ones((2, 3), np.float32), column="v_1"))
        assert s.count() == 5 and s._catalog[1].columns == {"v_0": D}
        # index existence is a catalog fact too: building a spec's index twice creates it once
        from repspace.collections.pg_index import build

        assert build(s, "v_0", D, parse_spec("HNSW16")).startswith("hnsw index built")
        assert build(s, "v_0", D, parse_spec("HNSW16")) == "hnsw index kept"
        assert any(i.endswith("_hnsw") for i in s._catalog[1].indexes)
    finally:
        s.close(), other.close(), c.close()


# ------------------------------------------------------------ rows to Arrow
@pytest.mark.parametrize("dim", [D, 384])
def test_binary_rows_to_arrow(pg_uri, dim):
    c = Collection.create(pg_uri, model="ext", dim=dim)
    c.add_slot("second", dim=3)
    r = np.random.default_rng(1)
    v = r.normal(size=(50, dim)).astype(np.float32)
    ids = [f"i{k:03d}" for k in range(50)]
    texts = [None if k % 5 == 0 else f"text {k} \\0 back\\slash nul\x00" for k in range(50)]
    pls = [{"k": k, "s": f"a\x00b\\{k}", "é": [1.5, None, True]} if k % 3 else {} for k in range(50)]
    c.upsert(ids, vectors=v, texts=texts, payloads=pls)
    c.update_vectors("second", ids[::2], np.full((25, 3), 0.5, np.float32))
    s = _store(pg_uri)
    try:
        batches = list(s.scan(["id", "text", "payload", "v_0", "v_1"], batch_rows=16))
        assert [b.num_rows for b in batches] == [16, 16, 16, 2]
        t = pa.Table.from_batches(batches)
        assert t.schema.field("v_0").type == pa.list_(pa.float32(), dim)
        assert t.schema.field("v_1").type == pa.list_(pa.float32(), 3)
        assert t.column("id").to_pylist() == ids
        assert t.column("text").to_pylist() == texts
        import json

        assert [json.loads(p) for p in t.column("payload").to_pylist()] == pls
        np.testing.assert_array_equal(np.asarray(t.column("v_0").to_pylist(), np.float32), v)
        assert t.column("v_1").to_pylist() == [[0.5] * 3 if k % 2 == 0 else None for k in range(50)]
        # a batch where no row has a vector still knows the dimension
        f = s.fetch(["i001", "i003"], ["id", "v_1"])
        assert f.schema.field("v_1").type == pa.list_(pa.float32(), 3) and f.column("v_1").null_count == 2
        assert s.fetch([], ["id", "v_0"]).num_rows == 0
    finally:
        s.close(), c.close()


def test_no_fstring_sql():
    import inspect
    import re

    from repspace.collections import pg_store

    src = inspect.getsource(pg_store)
    assert not re.search(r"""execute\(\s*f["']""", src)
    assert not re.search(r"""f["'][^"']*\b(SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP)\b""", src)


# ------------------------------------------------------------ the vector index, built after the rows are in
@pytest.mark.parametrize("spec", ["HNSW16", "IVF4,Flat+nprobe:4", "binary+rescore:300", "funnel:16/32:300"])
def test_index_built_by_optimize_answers_as_the_exact_scan_did(pg_uri, spec):
    """pgvector's advice: load, then index (a parallel in-memory build, not row-by-row inserts). Until optimize()
    a slot is searched exactly; after it through the index, with the same answers on a small collection."""
    from pgvector import Vector

    from repspace.collections.pg_index import index_kind, index_name

    c = Collection.create(pg_uri, model="ext", dim=32, spec=spec)
    v = np.random.default_rng(3).normal(size=(300, 32)).astype(np.float32)
    c.upsert([f"i{j}" for j in range(300)], vectors=v)
    kind = parse_spec(spec).kind
    name = index_name(c.store, "v_0", index_kind(parse_spec(spec)))

    def indexes():
        with c.store._conn(tx=False) as conn:
            return {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s",
                                               (c.store.table_name,)).fetchall()}

    assert name not in indexes()
    before = [[h["id"] for h in hits] for hits in c.one_off().search(vectors=v[:5], k=5)]
    report = c.optimize()
    assert report[c.active].startswith(f"{kind} index built") and name in indexes()
    assert c.optimize()[c.active] == f"{kind} index kept"
    after = [[h["id"] for h in hits] for hits in Collection.open(pg_uri).one_off().search(vectors=v[:5], k=5)]
    assert after == before
    if kind == "funnel":  # the shortlist's ORDER BY is the index's expression: PostgreSQL can walk the index
        from repspace.collections.pg_index import funnel_shortlist

        with c.store._conn() as conn:
            conn.execute("SET LOCAL enable_seqscan = off")
            plan = " ".join(r[0] for r in conn.execute(sql.SQL("EXPLAIN SELECT id FROM {} ORDER BY {} LIMIT 5").format(
                sql.Identifier(c.store.table_name), funnel_shortlist(c.store, conn, "v_0", 16)),
                {"q16": Vector(v[0, :16])}).fetchall())
        assert name in plan and "Seq Scan" not in plan, plan
    c.upsert(["late"], vectors=v[:1] * 2)  # rows written after go into the index (pgvector inserts them)
    assert Collection.open(pg_uri).one_off().search(vectors=v[:1], k=1)[0][0]["id"] in ("i0", "late")
    c.close()


def test_ivfflat_trains_once_there_are_enough_rows_and_serves_filtered_searches(pg_uri, monkeypatch):
    """`IVFn,Flat` on PostgreSQL: pgvector's ivfflat, not built while the slot holds too few vectors to train n lists;
    `nprobe` sets `ivfflat.probes` (all lists: the exact answers); a filtered search that matches many rows walks
    the index with ivfflat's iterative scan, its hits in score order."""
    from repspace.collections import payload_index, pg_filter
    from repspace.collections.pg_index import index_name

    c = Collection.create(pg_uri, model="ext", dim=16, spec="IVF8,Flat+nprobe:8")
    v = np.random.default_rng(5).normal(size=(400, 16)).astype(np.float32)
    c.upsert([f"i{j}" for j in range(100)], vectors=v[:100], payloads=[{"h": j % 2} for j in range(100)])
    assert c.optimize()[c.active].startswith("no index yet, searched exactly: IVF8,Flat+nprobe:8 trains on at least 312")
    c.upsert([f"i{j}" for j in range(100, 400)], vectors=v[100:], payloads=[{"h": j % 2} for j in range(100, 400)])
    assert c.optimize()[c.active].startswith("ivfflat index built")
    with c.store._conn(tx=False) as conn:
        assert conn.execute("SELECT count(*) FROM pg_indexes WHERE indexname = %s",
                            (index_name(c.store, "v_0", "ivfflat"),)).fetchone()[0] == 1
    vn = v / np.linalg.norm(v, axis=1, keepdims=True)
    q = np.random.default_rng(6).normal(size=(4, 16)).astype(np.float32)
    hits = Collection.open(pg_uri).one_off().search(vectors=q, k=5)
    assert [[h["id"] for h in row] for row in hits] == [[f"i{j}" for j in np.argsort(-(vn @ x))[:5]] for x in q]
    monkeypatch.setattr(payload_index, "EXACT_ROWS", 10)  # 200 matches: "many", the index's iterative scan
    monkeypatch.setattr(pg_filter, "EXACT_ROWS", 10)
    got = c.search(vectors=q, k=5, filter={"h": "1"})
    odd = np.arange(1, 400, 2)
    for row, x in zip(got, q):
        assert [h["id"] for h in row] == [f"i{j}" for j in odd[np.argsort(-(vn[odd] @ x))[:5]]]
        assert [h["score"] for h in row] == sorted((h["score"] for h in row), reverse=True)
    c.close()


def test_a_one_off_search_of_a_spec_pgvector_has_no_index_for_streams_the_slot(pg_uri):
    """`int8` on PostgreSQL (no pgvector index of its kind): a one-off process streams the slot in batches and answers
    exactly, loading nothing into repspace's in-memory layer."""
    c = Collection.create(pg_uri, model="ext", dim=16, spec="int8+rescore:20")
    v = np.random.default_rng(8).normal(size=(700, 16)).astype(np.float32)
    c.upsert([f"i{j}" for j in range(700)], vectors=v, payloads=[{"n": j} for j in range(700)])
    d = Collection.open(pg_uri).one_off()
    q = np.random.default_rng(9).normal(size=(3, 16)).astype(np.float32)
    got = d.search(vectors=q, k=5)
    assert not d._caches
    vn = v / np.linalg.norm(v, axis=1, keepdims=True)
    for row, x in zip(got, q):
        want = np.argsort(-(vn @ x))[:5]
        assert [h["id"] for h in row] == [f"i{j}" for j in want] and row[0]["payload"] == {"n": int(want[0])}
    d.close()
    c.close()


def test_maintenance_memory_fits_the_graph():
    from repspace.collections.pg_index import MAX_MAINTENANCE_MB, MIN_MAINTENANCE_MB, maintenance_mb

    assert maintenance_mb(0, 1536) == MIN_MAINTENANCE_MB
    # 1M × 384 floats: 1,544 + 512 + 200 bytes an element (graph_bytes), a quarter more = 2,689 MiB
    assert maintenance_mb(1_000_000, 1544) == int(1_000_000 * (1544 + 2 * 16 * 16 + 200) * 1.25 / 2**20) == 2689
    assert maintenance_mb(10_000_000, 1536) == MAX_MAINTENANCE_MB


def test_rows_estimate_follows_a_table_grown_since_its_last_analyze(pg_uri):
    """The graph's memory is sized from the planner's estimate of the rows now (rows per page of the last ANALYZE
    × pages now), not from reltuples, which autovacuum may have taken early in a bulk load."""
    from repspace.collections.pg_index import estimated_rows

    c = Collection.create(pg_uri, model="ext", dim=D)
    x = np.random.default_rng(0).normal(size=(5000, D)).astype(np.float32)
    c.upsert([f"i{j}" for j in range(500)], vectors=x[:500])
    with c.store._conn() as conn:
        assert estimated_rows(conn, c.store) == 500  # never analysed: counted
        conn.execute(sql.SQL("ANALYZE {}").format(c.store._t()))
    c.upsert([f"i{j}" for j in range(500, 5000)], vectors=x[500:])
    with c.store._conn() as conn:
        # reltuples still says 500; rows per page from a 500-row table are coarse, an overestimate errs on the safe side
        assert 5000 <= estimated_rows(conn, c.store) <= 10000
    c.store.drop()
    c.close()


def test_maintenance_memory_estimate_holds_pgvectors_graph(pg_dsn):
    """The per-element cost behind `maintenance_mb`, checked against pgvector itself: a serial build of n × 768
    floats fits in 1.25 × `graph_bytes` (no "no longer fits" notice) and overflows at 0.8 × it."""
    import psycopg

    from repspace.collections.pg_index import graph_bytes

    n, d, name = 3000, 768, f"mem_{uuid.uuid4().hex[:8]}"
    x = np.random.default_rng(0).normal(size=(n, d)).astype(np.float32)
    notices: list[str] = []
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute(f"CREATE TABLE {name} (id int, v vector({d}))")
        try:
            with conn.cursor().copy(f"COPY {name} (id, v) FROM STDIN") as cp:
                for i in range(n):
                    cp.write_row((i, "[" + ",".join(map(str, x[i].tolist())) + "]"))
            need = graph_bytes(n, 4 * d + 8) / 1024  # kB
            for kb, overflows in ((int(1.25 * need), False), (int(0.8 * need), True)):
                notices.clear()
                conn.execute(f"SET maintenance_work_mem = '{kb}kB'; SET max_parallel_maintenance_workers = 0")
                conn.execute(f"DROP INDEX IF EXISTS {name}_ix")
                conn.execute(f"CREATE INDEX {name}_ix ON {name} USING hnsw (v vector_cosine_ops)")
                assert any("no longer fits" in m for m in notices) == overflows, (kb, notices)
        finally:
            conn.execute(f"DROP TABLE {name}")


def test_a_funnel_index_made_before_half_precision_is_still_walked(pg_uri):
    """A collection whose funnel index is the float prefix (made before 2026-12-07) keeps being searched through it;
    the next optimize() adds the half-precision one, which searches then take."""

    from repspace.collections.pg_index import funnel_shortlist, index_name

    c = Collection.create(pg_uri, model="ext", dim=32, spec="funnel:16/32:50")
    v = np.random.default_rng(4).normal(size=(200, 32)).astype(np.float32)
    c.upsert([f"i{j}" for j in range(200)], vectors=v)
    old = index_name(c.store, "v_0", "funnel")
    with c.store._conn() as conn:
        conn.execute(sql.SQL("CREATE INDEX {} ON {} USING hnsw ((subvector(v_0, 1, 16)::vector(16)) vector_cosine_ops)")
                     .format(sql.Identifier(old), sql.Identifier(c.store.table_name)))
        c.store._bump(conn)

    def as_text():
        with c.store._conn(tx=False) as conn:
            return funnel_shortlist(c.store, conn, "v_0", 16).as_string(None)

    assert "::vector(16)" in as_text()
    want = [[h["id"] for h in r] for r in c.search(vectors=v[:3], k=5)]
    c.optimize()
    assert "::halfvec(16)" in as_text()
    assert [[h["id"] for h in r] for r in Collection.open(pg_uri).search(vectors=v[:3], k=5)] == want
    c.close()
