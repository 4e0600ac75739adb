"""A LanceDB collection at scale, side by side with LanceDB's own API (one run; issue 26).

    .venv/bin/python benchmarks/scale.py [--n 1000000] [--dim 384] [--spec IVF1024,PQ48+refine:4] [--queries 100]

Data: n synthetic unit vectors with a decaying (Matryoshka-like) spectrum, written once to a memory-mapped .npy (the
bring-your-own path); queries from the same distribution; ground truth by exact inner product (faiss, in blocks).
1. Bulk load from the memory-mapped file, in 100k-row writes, each side in its own process (time, peak RSS):
   repspace `Collection.upsert(vectors=…)` against lancedb's `create_table` + `add`.
2. The vector index: repspace `optimize()` (LanceDB's IVF_PQ, the spec's parameters) against `create_index` with
   the same parameters.
3. Search, one query at a time: repspace `Collection.search` against `table.search(q).nprobes(P).refine_factor(F)`,
   queries/s and recall@10 against exact.
4. A cold `repspace collection search` process (10 queries from a .npy): wall time and peak RSS, beside the index's
   size on disk.
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

os.environ.setdefault("LANCE_LOG", "error")
CHUNK = 100_000


def make_data(path: Path, n: int, dim: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    scale = np.exp(-np.arange(dim) / (dim / 4)).astype(np.float32)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
    for s in range(0, n, CHUNK):
        v = rng.standard_normal((min(CHUNK, n - s), dim)).astype(np.float32) * scale
        out[s : s + len(v)] = v / np.linalg.norm(v, axis=1, keepdims=True)
    out.flush()


LOAD_REPSPACE = """
import sys, time, resource, json, numpy as np
from repspace.collections import Collection
path, uri, dim, spec = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
v = np.load(path, mmap_mode="r")
t0 = time.perf_counter()
c = Collection.create(uri, model="synthetic", dim=dim, spec=spec)
for s in range(0, len(v), %(chunk)d):
    part = np.asarray(v[s : s + %(chunk)d])
    c.upsert([f"i{j}" for j in range(s, s + len(part))], vectors=part)
load = time.perf_counter() - t0
t0 = time.perf_counter()
c.optimize()
index = time.perf_counter() - t0
print(json.dumps({"load_s": load, "index_s": index, "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""" % {"chunk": CHUNK}

LOAD_LANCE = """
import sys, time, resource, json, numpy as np, pyarrow as pa, lancedb
from repspace.index.spec import parse_spec
path, root, spec = sys.argv[1], sys.argv[2], parse_spec(sys.argv[4])
v = np.load(path, mmap_mode="r")
dim = v.shape[1]
t0 = time.perf_counter()
db, t = lancedb.connect(root), None
for s in range(0, len(v), %(chunk)d):
    part = np.asarray(v[s : s + %(chunk)d])
    data = pa.table({"id": [f"i{j}" for j in range(s, s + len(part))],
                     "vector": pa.FixedSizeListArray.from_arrays(pa.array(part.ravel()), dim)})
    if t is None:
        t = db.create_table("items", data=data)
    else:
        t.add(data)
load = time.perf_counter() - t0
t0 = time.perf_counter()
t.create_index(metric="cosine", num_partitions=spec.nlist, num_sub_vectors=spec.pq_m, vector_column_name="vector",
               index_type="IVF_PQ")
index = time.perf_counter() - t0
print(json.dumps({"load_s": load, "index_s": index, "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""" % {"chunk": CHUNK}


def child(code: str, *args: str) -> dict:
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(r.stderr[-3000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def exact_top(v: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    best_s = np.full((len(q), k), -np.inf, np.float32)
    best_i = np.zeros((len(q), k), np.int64)
    for s in range(0, len(v), CHUNK):
        sc = q @ np.asarray(v[s : s + CHUNK]).T
        i = np.argpartition(-sc, k - 1, axis=1)[:, :k]
        cs = np.concatenate([best_s, np.take_along_axis(sc, i, 1)], 1)
        ci = np.concatenate([best_i, i + s], 1)
        o = np.argsort(-cs, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(cs, o, 1), np.take_along_axis(ci, o, 1)
    return best_i


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--spec", default="IVF1024,PQ48+refine:4")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--work", default=None)
    ap.add_argument("--skip-load", action="store_true", help="reuse the collection and table of an earlier run (--work)")
    args = ap.parse_args()
    from repspace.collections import Collection
    from repspace.index.spec import parse_spec

    spec = parse_spec(args.spec)
    work = Path(args.work or tempfile.mkdtemp(prefix="scale-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}; load average {os.getloadavg()}; n={args.n:,} dim={args.dim} spec={spec}", flush=True)
    data = work / "vectors.npy"
    if not data.is_file():
        t0 = time.perf_counter()
        make_data(data, args.n, args.dim)
        print(f"data: {data} ({data.stat().st_size / 2**30:.2f} GiB) written in {time.perf_counter() - t0:.0f} s", flush=True)
    v = np.load(data, mmap_mode="r")
    rng = np.random.default_rng(7)
    scale = np.exp(-np.arange(args.dim) / (args.dim / 4)).astype(np.float32)
    q = rng.standard_normal((args.queries, args.dim)).astype(np.float32) * scale
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    truth = exact_top(v, q, 10)

    if args.skip_load:
        ours = theirs = None
    else:
        ours = child(LOAD_REPSPACE, str(data), str(work / "coll"), str(args.dim), str(spec))
        theirs = child(LOAD_LANCE, str(data), str(work / "lance"), str(args.dim), str(spec))
    if ours:
        print(f"1. bulk load {args.n:,}: repspace {ours['load_s']:.1f} s (peak RSS {ours['rss_mib']:.0f} MiB), lancedb's "
              f"own {theirs['load_s']:.1f} s ({theirs['rss_mib']:.0f} MiB): {theirs['load_s'] / ours['load_s']:.2f}x of "
              "LanceDB's speed", flush=True)
        print(f"2. IVF_PQ index: repspace optimize {ours['index_s']:.1f} s, lancedb create_index {theirs['index_s']:.1f} s",
              flush=True)

    import lancedb

    c = Collection.open(work / "coll")
    t = lancedb.connect(work / "lance").open_table("items")

    def recall(rows) -> float:
        return float(np.mean([len(set(r) & {f"i{j}" for j in truth[x]}) / 10 for x, r in enumerate(rows)]))

    def timed(fn):
        fn(q[0])
        t0 = time.perf_counter()
        rows = [fn(x) for x in q]
        return len(q) / (time.perf_counter() - t0), rows

    qps_ours, rows_ours = timed(lambda x: [h["id"] for h in c.search(vectors=x, k=10)[0]])
    qps_lance, rows_lance = timed(lambda x: t.search(x).distance_type("cosine").nprobes(spec.nprobe)
                                  .refine_factor(spec.refine).limit(10).select(["id", "_distance"]).to_arrow()
                                  .column("id").to_pylist())
    assert not c._caches, "the search must be LanceDB's"
    print(f"3. search: repspace {qps_ours:.1f} q/s recall@10 {recall(rows_ours):.3f}; lancedb's own {qps_lance:.1f} q/s "
          f"recall@10 {recall(rows_lance):.3f} ({qps_ours / qps_lance:.2f}x)", flush=True)
    np.save(work / "q10.npy", q[:10])
    t0 = time.perf_counter()
    r = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-m", "repspace.cli.main", "collection", "search",
                        str(work / "coll"), "--query-vectors", str(work / "q10.npy"), "--k", "10", "--json"],
                       capture_output=True, text=True)
    wall = time.perf_counter() - t0
    rss = int(r.stderr.strip().splitlines()[-1]) / 1024
    idx = dir_bytes(work / "coll" / "items.lance" / "_indices") if (work / "coll" / "items.lance" / "_indices").is_dir() else 0
    print(f"4. cold `repspace collection search` (10 queries): {wall:.1f} s wall, peak RSS {rss:.0f} MiB; the index on "
          f"disk {idx / 2**20:.0f} MiB, the vectors {args.n * args.dim * 4 / 2**20:.0f} MiB", flush=True)


if __name__ == "__main__":
    main()
