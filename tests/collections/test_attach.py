"""Attaching an application's own table (PostgreSQL written by raw psycopg SQL; LanceDB made with lancedb's own API):
nothing copied or rewritten, the app's writes seen at once, an upgrade in place or through a side table."""

import uuid

import numpy as np
import pytest

from repspace.collections import Collection
from repspace.collections.attach import attach
from repspace.errors import CollectionError, InvalidInputError, RepspaceError, UnknownNameError

DIM = 8


def _unit(rng, n, d=DIM):
    v = rng.standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


class PgApp:
    """An application's PostgreSQL table, written with its own SQL."""

    backend = "pgvector"

    def __init__(self, dsn, table, rows, dim=DIM, unique=True):
        import psycopg
        from pgvector.psycopg import register_vector

        self.dsn, self.table = dsn, table
        self.conn = psycopg.connect(dsn, autocommit=True)
        self.conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        register_vector(self.conn)
        key = "PRIMARY KEY" if unique else ""
        self.conn.execute(f'CREATE TABLE {table} (doc_id bigint {key}, "Body Text" text, meta jsonb, '
                          f"category text, embedding vector({dim}))")
        for i, (text, cat, v) in enumerate(rows):
            self.insert(i, text, cat, v)

    def insert(self, i, text, cat, v):
        from psycopg.types.json import Jsonb

        self.conn.execute(f'INSERT INTO {self.table} (doc_id, "Body Text", meta, category, embedding) '
                          "VALUES (%s, %s, %s, %s, %s)", (i, text, Jsonb({"n": i}), cat, np.asarray(v)))

    def update_vector(self, i, v):
        self.conn.execute(f"UPDATE {self.table} SET embedding = %s WHERE doc_id = %s", (np.asarray(v), i))

    def delete(self, i):
        self.conn.execute(f"DELETE FROM {self.table} WHERE doc_id = %s", (i,))

    def own_search(self, q, k):
        from pgvector import Vector

        rows = self.conn.execute(f"SELECT doc_id FROM {self.table} ORDER BY embedding <=> %s LIMIT %s",
                                 (Vector(q), k)).fetchall()
        return [str(r[0]) for r in rows]

    def columns(self):
        return [r[0] for r in self.conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped "
            "ORDER BY attnum", (self.table,)).fetchall()]

    def snapshot(self):
        return self.conn.execute(f"SELECT doc_id, md5(embedding::text) FROM {self.table} ORDER BY doc_id").fetchall()

    def close(self):
        self.conn.execute(f"DROP TABLE IF EXISTS {self.table} CASCADE")
        self.conn.close()


class LanceApp:
    """An application's LanceDB table, made and written with lancedb's own API."""

    backend = "lancedb"

    def __init__(self, root, name, rows, dim=DIM, unique=True):
        import lancedb
        import pyarrow as pa

        self.db = lancedb.connect(root)
        self.root, self.name, self.table = root, name, f"{root}::{name}"
        ids = list(range(len(rows)))
        if not unique:
            ids[1] = ids[0]
        self.t = self.db.create_table(name, data=pa.table({
            "doc_id": pa.array(ids, pa.int64()), "Body Text": [r[0] for r in rows],
            "category": [r[1] for r in rows],
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(np.stack([r[2] for r in rows]).ravel()), dim)}))

    def _row(self, i, text, cat, v):
        import pyarrow as pa

        return pa.table({"doc_id": pa.array([i], pa.int64()), "Body Text": [text], "category": [cat],
                         "embedding": pa.FixedSizeListArray.from_arrays(pa.array(np.asarray(v, np.float32)), len(v))})

    def insert(self, i, text, cat, v):
        self.t.add(self._row(i, text, cat, v))

    def update_vector(self, i, v):
        self.t.update(where=f"doc_id = {int(i)}", values={"embedding": [float(x) for x in v]})

    def delete(self, i):
        self.t.delete(f"doc_id = {int(i)}")

    def own_search(self, q, k):
        t = self.t.search(q, vector_column_name="embedding").distance_type("cosine").limit(k).to_arrow()
        return [str(i) for i in t.column("doc_id").to_pylist()]

    def columns(self):
        self.t.checkout_latest()
        return list(self.t.schema.names)

    def snapshot(self):
        self.t.checkout_latest()
        t = self.t.to_arrow().select(["doc_id", "embedding"]).sort_by("doc_id")
        return [(i, tuple(np.round(v, 6))) for i, v in zip(t.column("doc_id").to_pylist(), t.column("embedding").to_pylist())]

    def close(self):
        pass


def _rows(n, rng):
    v = _unit(rng, n)
    return [(f"document number {i} about {'sport' if i % 2 else 'politics'}", "a" if i % 2 else "b", v[i])
            for i in range(n)]


@pytest.fixture
def app(backend, request, tmp_path):
    rng = np.random.default_rng(0)
    if backend == "pgvector":
        a = PgApp(request.getfixturevalue("pg_dsn"), f'"App Docs {uuid.uuid4().hex[:6]}"', _rows(60, rng))
    else:
        a = LanceApp(str(tmp_path / "appdb"), "docs", _rows(60, rng))
    yield a
    a.close()


def _uri(app, tmp_path, name="att"):
    from repspace.collections import with_collection

    name = f"{name}{uuid.uuid4().hex[:6]}"
    return with_collection(app.dsn, name) if app.backend == "pgvector" else str(tmp_path / name)


def _attach(app, tmp_path, **kw):
    kw = {"id": "doc_id", "vector": "embedding", "text": "Body Text", "payload": ["category"],
          "model": "app-model", "dim": DIM, **kw}
    return attach(_uri(app, tmp_path), app.table, **kw)


def test_attach_searches_the_apps_rows_as_they_are_now(app, tmp_path):
    before_cols, before = app.columns(), app.snapshot()
    c = _attach(app, tmp_path)
    assert app.columns() == before_cols and app.snapshot() == before  # nothing written into the app's table
    info = c.info()
    assert info["count"] == 60 and info["attached"]["vector"] == "embedding"
    q = _unit(np.random.default_rng(1), 3)
    for j in range(3):
        assert [h["id"] for h in c.search(vectors=q[j], k=10)[0]] == app.own_search(q[j], 10)
    hit = c.search(vectors=q[0], k=1)[0][0]
    assert hit["payload"] == {"category": "a" if int(hit["id"]) % 2 else "b"}
    assert all(h["payload"]["category"] == "a" for h in c.search(vectors=q[0], k=5, filter={"category": "a"})[0])
    assert c.search(vectors=q[0], k=5, filter={"nokey": "a"}) == [[]]
    # the application writes: the next search sees it (no stale cache)
    app.insert(1000, "a new row", "a", q[1])
    assert c.search(vectors=q[1], k=1)[0][0]["id"] == "1000"
    target = hit["id"]
    app.update_vector(int(target), -q[0])
    assert target not in [h["id"] for h in c.search(vectors=q[0], k=5)[0]]
    app.delete(1000)
    assert "1000" not in [h["id"] for h in c.search(vectors=q[1], k=5)[0]]
    got = c.get(["3", "999", "x"], vectors=True)
    assert [g["id"] for g in got] == ["3"] and got[0]["text"] == "document number 3 about sport"
    assert len(got[0]["vector"]) == DIM
    assert len(c.export().ids) == 60
    with pytest.raises(CollectionError, match="attached"):
        c.upsert(["z"], vectors=q[:1])
    with pytest.raises(CollectionError, match="attached"):
        c.delete(["3"])
    # drop forgets the attachment; the app's table stays
    c.drop()
    assert app.columns() == before_cols and len(app.snapshot()) == 60
    assert not Collection.is_collection(c.uri.path) if app.backend == "lancedb" else True


def test_attach_refuses_bad_tables(app, tmp_path, backend):
    bad_table = f"{app.root}::nope" if backend == "lancedb" else '"no such table"'
    with pytest.raises(UnknownNameError):
        attach(_uri(app, tmp_path), bad_table, id="doc_id", vector="embedding", model="m", dim=DIM)
    for kw, err in [({"vector": "nope"}, UnknownNameError), ({"id": "nope"}, UnknownNameError),
                    ({"vector": "category"}, InvalidInputError), ({"dim": DIM + 1}, RepspaceError),
                    ({"spec": "int8"}, InvalidInputError)]:
        with pytest.raises(err) as e:
            _attach(app, tmp_path, **kw)
        assert e.value.param in ("vector", "id", "dim", "spec")
    assert len(app.snapshot()) == 60


def test_attach_refuses_a_key_that_is_not_unique(backend, tmp_path, request):
    rng = np.random.default_rng(0)
    if backend == "pgvector":
        a = PgApp(request.getfixturevalue("pg_dsn"), f"dup_{uuid.uuid4().hex[:6]}", _rows(5, rng), unique=False)
        a.insert(0, "again", "a", _unit(rng, 1)[0])
    else:
        a = LanceApp(str(tmp_path / "dupdb"), "docs", _rows(5, rng), unique=False)
    with pytest.raises(InvalidInputError, match="duplicate") as e:
        _attach(a, tmp_path)
    assert e.value.param == "id"
    a.close()


def test_sql_in_names_is_only_ever_a_name(pg_dsn, tmp_path):
    rng = np.random.default_rng(0)
    a = PgApp(pg_dsn, f'"x; DROP TABLE t{uuid.uuid4().hex[:4]}"', _rows(5, rng))
    c = _attach(a, tmp_path, payload=["category", "meta"])
    assert c.count() == 5
    assert c.get(["2"])[0]["payload"] == {"category": "b", "meta": {"n": 2}}
    c.drop()
    a.close()


@pytest.fixture(scope="module")
def leads():
    from repspace.encoders import get_encoder
    from tests.collections.conftest import bbc_leads

    ids, texts, labels = bbc_leads(90)
    old = get_encoder("minilm-l3-onnx").encode_batch(texts)
    return texts, labels, np.asarray(old, np.float32)


def _app_of(backend, request, tmp_path, leads):
    texts, labels, old = leads
    rows = [(t, lab, v) for t, lab, v in zip(texts, labels, old)]
    if backend == "pgvector":
        return PgApp(request.getfixturevalue("pg_dsn"), f"docs_{uuid.uuid4().hex[:6]}", rows, dim=old.shape[1])
    return LanceApp(str(tmp_path / "appdb"), "docs", rows, dim=old.shape[1])


@pytest.mark.real
@pytest.mark.parametrize("side_table", [False, True])
def test_upgrade_an_attached_table(backend, request, tmp_path, leads, side_table):
    from repspace.collections import upgrade

    app = _app_of(backend, request, tmp_path, leads)
    cols, before = app.columns(), app.snapshot()
    c = _attach(app, tmp_path, model="minilm-l3-onnx", dim=None)
    st = upgrade.start(c, "minilm-l6", sample=40, side_table=side_table)
    assert st["state"] == "open" and st["without_text"] == 0
    added = [x for x in app.columns() if x not in cols]
    assert added == ([] if side_table else ["embedding_v_1"])
    # the app keeps writing during the upgrade: its new row is searched (old model) and backfilled
    texts = leads[0]
    app.insert(5000, "a row the application added during the upgrade", "x", leads[2][0])
    hits = c.search(texts=[texts[3]], k=5)[0]
    assert hits and all(set(h) == {"id", "score", "payload"} for h in hits)
    out = upgrade.backfill(c)
    assert out["fraction"] == 1.0 and c.count("minilm-l6") == 91
    assert [h["id"] for h in c.search(texts=[texts[7]], k=3, strategy="new")[0]][0] == str(
        [i for i, t in enumerate(texts) if t == texts[7]][0])
    upgrade.switch(c, force=True)
    fin = upgrade.finish(c)
    assert fin["kept_old_column"] and "<=>" in fin["app_query"] if backend == "pgvector" else fin["app_query"]
    assert "embedding" in app.columns() and [r[0] for r in app.snapshot()][:90] == [r[0] for r in before]
    assert c.search(texts=[texts[7]], k=1)[0][0]["id"] == "7"
    c.drop()
    assert "embedding" in app.columns()
    app.close()


@pytest.mark.real
def test_rollback_and_drop_old_on_an_attached_table(pg_dsn, request, tmp_path, leads):
    from repspace.collections import upgrade

    app = _app_of("pgvector", request, tmp_path, leads)
    cols = app.columns()
    c = _attach(app, tmp_path, model="minilm-l3-onnx", dim=None)
    upgrade.start(c, "minilm-l6", sample=30)
    upgrade.rollback(c)
    assert app.columns() == cols  # the column repspace added is gone, the app's are untouched
    upgrade.start(c, "minilm-l6", sample=30)
    upgrade.backfill(c)
    upgrade.switch(c, force=True)
    app.conn.execute(f"CREATE INDEX app_emb_idx ON {app.table} USING hnsw (embedding vector_cosine_ops)")
    with pytest.raises(CollectionError, match="app_emb_idx") as e:
        upgrade.finish(c, drop_old=True)
    assert e.value.param == "drop_old" and "embedding" in app.columns() and c.upgrade is not None
    app.conn.execute("DROP INDEX app_emb_idx")
    upgrade.finish(c, drop_old=True)
    assert "embedding" not in app.columns() and "embedding_v_2" in app.columns()
    assert c.search(texts=[leads[0][4]], k=1)[0][0]["id"] == "4"
    c.drop()
    assert "embedding_v_2" in app.columns()  # the active slot's column: the app may query it now
    app.close()


@pytest.mark.real
def test_follow_backfills_rows_the_app_adds_and_changes(backend, request, tmp_path, leads):
    from repspace.collections import upgrade
    from repspace.encoders import get_encoder

    app = _app_of(backend, request, tmp_path, leads)
    c = _attach(app, tmp_path, model="minilm-l3-onnx", dim=None)
    upgrade.start(c, "minilm-l6", sample=30)
    upgrade.backfill(c)
    app.insert(7000, "a story the application wrote after the backfill", "x", leads[2][0])
    changed = "a rewritten body for row five"
    if backend == "pgvector":
        app.conn.execute(f'UPDATE {app.table} SET "Body Text" = %s WHERE doc_id = 5', (changed,))
    else:
        app.t.update(where="doc_id = 5", values={"Body Text": changed})
    assert c.store.stale("v_1") == ["5"]
    out = upgrade.follow(c, rounds=1)
    assert out["fraction"] == 1.0 and out["backfilled"] == 2 and not c.store.stale("v_1")
    enc = get_encoder("minilm-l6")
    got = {g["id"]: np.asarray(g["vector"]) for g in c.get(["5", "7000"], vectors=True, slot="minilm-l6")}
    for i, text in (("5", changed), ("7000", "a story the application wrote after the backfill")):
        v = enc.encode_batch([text])[0]
        assert float(got[i] @ v / np.linalg.norm(got[i]) / np.linalg.norm(v)) > 0.9999
    c.drop()
    app.close()


def test_bring_the_new_models_vectors(backend, request, tmp_path):
    """An app that embeds elsewhere: both models external, the new vectors from files, queries as vectors of both."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from repspace.collections import upgrade
    from repspace.errors import InvalidVectorsError

    rng = np.random.default_rng(0)
    rows = _rows(60, rng)
    app = (PgApp(request.getfixturevalue("pg_dsn"), f"byo_{uuid.uuid4().hex[:6]}", rows) if backend == "pgvector"
           else LanceApp(str(tmp_path / "appdb"), "docs", rows))
    c = _attach(app, tmp_path)
    new = _unit(rng, 60, 12)
    ids = [str(i) for i in range(60)]

    def write(path, rows_, vecs):
        pq.write_table(pa.table({"id": [ids[r] for r in rows_], "vector": list(vecs[rows_])}), path)

    write(tmp_path / "first.parquet", list(range(40)), new)
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"id": ["0", "nope"], "vector": list(new[:2])}), bad)
    with pytest.raises(InvalidInputError, match="does not hold") as e:
        upgrade.start_with_vectors(c, "app-model-v2", bad, dim=12, sample=20)
    assert e.value.param == "vectors" and c.upgrade is None
    nan = new[:30].copy()
    nan[3, 0] = np.nan
    pq.write_table(pa.table({"id": ids[:30], "vector": list(nan)}), tmp_path / "nan.parquet")
    with pytest.raises(InvalidVectorsError):
        upgrade.start_with_vectors(c, "app-model-v2", tmp_path / "nan.parquet", dim=12, sample=20)
    st = upgrade.start_with_vectors(c, "app-model-v2", tmp_path / "first.parquet", dim=12, sample=30)
    assert st["state"] == "open" and c.count("app-model-v2") == 40 and st["fraction"] == 40 / 60
    np.save(tmp_path / "rest.npy", new[20:])
    (tmp_path / "rest.ids").write_text("\n".join(ids[20:]))
    out = upgrade.backfill_from_file(c, tmp_path / "rest.npy", ids_file=tmp_path / "rest.ids")
    assert out == {"backfilled": 20, "already": 20, "fraction": 1.0}
    assert upgrade.backfill_from_file(c, tmp_path / "rest.npy", ids_file=tmp_path / "rest.ids")["backfilled"] == 0
    q_old, q_new = np.stack([r[2] for r in rows[:2]]), new[:2]
    hits = c.search(vectors=q_old, vectors_new=q_new, k=3)
    assert [h[0]["id"] for h in hits] == ["0", "1"]
    assert [h["id"] for h in c.search(vectors_new=q_new, k=1, strategy="new")[0]] == ["0"]
    with pytest.raises(InvalidInputError) as e:
        c.search(vectors_new=q_new, k=1)  # fused needs the old model's query vectors too
    assert e.value.param == "vectors"
    upgrade.switch(c, force=True)
    upgrade.finish(c)
    assert c.search(vectors=q_new[:1], k=1)[0][0]["id"] == "0"
    c.drop()
    app.close()


@pytest.mark.real
def test_rows_without_text_and_an_index_built_concurrently(pg_dsn, request, tmp_path, leads):
    from repspace.collections import upgrade

    app = _app_of("pgvector", request, tmp_path, leads)
    app.conn.execute(f'UPDATE {app.table} SET "Body Text" = NULL WHERE doc_id IN (1, 2, 3)')
    c = _attach(app, tmp_path, model="minilm-l3-onnx", dim=None, spec="HNSW16")
    st = upgrade.start(c, "minilm-l6", sample=40)
    assert st["without_text"] == 3
    out = upgrade.backfill(c)
    assert out["without_text"] == 3 and c.count("minilm-l6") == 87
    assert upgrade.status(c)["without_text"] == 3
    idx = [r[0] for r in app.conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s",
                                         (app.table,)).fetchall()]
    assert any("v_1_hnsw" in i for i in idx), idx  # the new column's index, built CONCURRENTLY
    assert c.search(texts=[leads[0][9]], k=1)[0][0]["id"] == "9"
    c.drop()
    app.close()


@pytest.mark.parametrize("key_type, make_key", [("uuid", lambda i: str(uuid.UUID(int=i + 1))), ("text", lambda i: f"doc-{i}")])
def test_any_primary_key_type(pg_dsn, tmp_path, key_type, make_key):
    import psycopg
    from pgvector.psycopg import register_vector

    table = f"keys_{uuid.uuid4().hex[:6]}"
    v = _unit(np.random.default_rng(0), 20)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        register_vector(conn)
        conn.execute(f"CREATE TABLE {table} (k {key_type} PRIMARY KEY, body text, embedding vector({DIM}))")
        for i in range(20):
            conn.execute(f"INSERT INTO {table} VALUES (%s, %s, %s)", (make_key(i), f"text {i}", v[i]))
    c = attach(_uri(type("A", (), {"backend": "pgvector", "dsn": pg_dsn})(), tmp_path), table, id="k",
               vector="embedding", text="body", model="m", dim=DIM)
    assert c.search(vectors=v[7], k=1)[0][0]["id"] == make_key(7)
    assert [g["id"] for g in c.get([make_key(3), "not-a-key", "99"])] == [make_key(3)]
    c.drop()


def test_a_lance_dataset_path(tmp_path):
    LanceApp(str(tmp_path / "appdb"), "docs", _rows(10, np.random.default_rng(0)))
    c = attach(tmp_path / "coll", str(tmp_path / "appdb" / "docs.lance"), id="doc_id", vector="embedding",
               model="m", dim=DIM)
    assert c.count() == 10 and c.info()["attached"]["table"][1] == "docs"
    with pytest.raises(InvalidInputError) as e:
        attach(tmp_path / "coll2", str(tmp_path / "appdb"), id="doc_id", vector="embedding", model="m", dim=DIM)
    assert e.value.param == "table"
    c.drop()


def test_an_apps_own_ivfflat_index_serves_an_ivfflat_spec_with_payloads(pg_dsn, tmp_path):
    rows = _rows(60, np.random.default_rng(0))
    app = PgApp(pg_dsn, f"ivf_{uuid.uuid4().hex[:6]}", rows)
    app.conn.execute(f"CREATE INDEX ON {app.table} USING ivfflat (embedding vector_cosine_ops) WITH (lists = 4)")
    c = _attach(app, tmp_path, spec="IVF4,Flat+nprobe:4")  # every list probed: the exact answers
    q = _unit(np.random.default_rng(1), 2)
    for j in range(2):
        hits = c.search(vectors=q[j], k=5)[0]
        exact = np.argsort(-(np.stack([r[2] for r in rows]) @ q[j]), kind="stable")[:5]
        assert [h["id"] for h in hits] == [str(i) for i in exact]
        assert all(h["payload"] == {"category": "a" if int(h["id"]) % 2 else "b"} for h in hits)
    c.drop()
    app.close()
