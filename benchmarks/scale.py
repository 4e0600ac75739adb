"""A LanceDB collection at scale, side by side with LanceDB's own API (one run; issue 26).

    .venv/bin/python benchmarks/scale.py [--n 1000000] [--dim 384] [--spec IVF256,HNSW_SQ+nprobe:128+refine:4]
        [--queries 100] [--work DIR [--skip-load]] [--sweep 16,32,64] [--no-fused] [--no-anchor] [--json OUT]

Data: n synthetic unit vectors with a decaying (Matryoshka-like) spectrum, written once to a memory-mapped .npy (the
bring-your-own path); queries from the same distribution; ground truth by exact inner product (in blocks).
1. Bulk load from the memory-mapped file, in 100k-row writes, each side in its own process (time, peak RSS):
   repspace `Collection.upsert(vectors=…)` against lancedb's `create_table` + `add`.
2. The vector index: repspace `optimize()` (LanceDB's index of the spec's kind and parameters) against
   `create_index` with the same configuration.
3. Search, one query at a time: repspace `Collection.search` against `table.search(q).nprobes(P).refine_factor(F)`
   (`.ef(E)` for HNSW_SQ) at the spec's settings, queries/s and recall@10 against exact: first each side alone from
   disk (the page cache dropped before it), then both from memory query by query, alternating which side goes first;
   `--sweep` runs both at other nprobes too (the two recall/speed curves, to compare at equal recall).
4. A cold `repspace collection search` process (10 queries from a .npy): wall time and peak RSS, beside the index's
   size on disk.
5. The fused upgrade search (unless --no-fused): a second "model" (the vectors rotated and perturbed) brought as a
   file for the first half of the items (`upgrade.start_with_vectors`: 50 % backfilled), its slot indexed by
   `optimize()`; latency of the fused search (both slots' ANN candidates, the union scored exactly) against a plain
   ANN search of one slot at equal k, and recall@10 of the fused ranking against the exact fused ranking (every item
   scored by the same formula in numpy).
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


ANON = """
def anon_mib():  # resident anonymous memory (the file-backed pages of the memory-mapped input are not counted)
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return 0.0
"""

LOAD_REPSPACE = ANON + """
import sys, time, resource, json, numpy as np
from repspace.collections import Collection
path, uri, dim, spec, index_too = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5] == "1"
if not uri.startswith("postgresql"):
    import lancedb  # imported before the clock starts, as on the other side (it takes seconds)
v = np.load(path, mmap_mode="r")
old = Collection.open_if_exists(uri)  # an earlier run's (`--load-only` again): replaced
old.drop() if old is not None else None
t0 = time.perf_counter()
c = Collection.create(uri, model="synthetic", dim=dim, spec=spec)
anon = 0.0
for s in range(0, len(v), %(chunk)d):
    part = np.asarray(v[s : s + %(chunk)d])
    c.upsert([f"i{j}" for j in range(s, s + len(part))], vectors=part)
    anon = max(anon, anon_mib())
load = time.perf_counter() - t0
t0 = time.perf_counter()
report = c.optimize() if index_too else {}
index = time.perf_counter() - t0
print(json.dumps({"load_s": load, "index_s": index, "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "anon_mib": anon, "optimize": report}))
""" % {"chunk": CHUNK}

LOAD_LANCE = ANON + """
import sys, time, resource, json, numpy as np, pyarrow as pa, lancedb
from repspace.collections.lance_store import LANCE_INDEX
from repspace.index.spec import parse_spec
path, root, spec, index_too = sys.argv[1], sys.argv[2], parse_spec(sys.argv[4]), sys.argv[5] == "1"
v = np.load(path, mmap_mode="r")
dim = v.shape[1]
t0 = time.perf_counter()
db, t, anon = lancedb.connect(root), None, 0.0
for s in range(0, len(v), %(chunk)d):
    part = np.asarray(v[s : s + %(chunk)d])
    data = pa.table({"id": [f"i{j}" for j in range(s, s + len(part))],
                     "vector": pa.FixedSizeListArray.from_arrays(pa.array(part.ravel()), dim)})
    if t is None:
        t = db.create_table("items", data=data)
    else:
        t.add(data)
    anon = max(anon, anon_mib())
load = time.perf_counter() - t0
t0 = time.perf_counter()
t.create_index("vector", config=LANCE_INDEX[spec.kind](spec)[1]) if index_too else None
index = time.perf_counter() - t0
print(json.dumps({"load_s": load, "index_s": index, "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "anon_mib": anon}))
""" % {"chunk": CHUNK}


def settle_io() -> bool:
    """Before a side's load: what ran before (the data just written, the other side's table) is written out
    (`sync`), and the page cache is dropped where this process may (root on Linux), so each side reads the input
    file from disk as the first would: at 10M the input (14.3 GiB) and a table do not both fit in memory, and the
    side that ran second read a cache the first had filled or emptied (LanceDB's own load: 75.6–98.8 s without this,
    40.0 s after a `sync` alone). Returns whether the cache was dropped."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("1\n")
        return True
    except OSError:
        return False


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


def alternating(queries: np.ndarray, *fns, rounds: int = 1) -> list[tuple[float, list]]:
    """Each side's search of every query, side by side query by query, which side goes first alternating (a shared
    machine's drift falls on both alike), after one warm-up query each: (queries/s, answers) per side, of the last of
    `rounds` rounds (the earlier ones warm the caches)."""
    for fn in fns:
        fn(queries[0])
    for _ in range(rounds):
        spent, rows = [0.0] * len(fns), [[] for _ in fns]
        for j, x in enumerate(queries):
            for side in (range(len(fns)) if j % 2 == 0 else reversed(range(len(fns)))):
                t0 = time.perf_counter()
                rows[side].append(fns[side](x))
                spent[side] += time.perf_counter() - t0
    return [(len(queries) / took, r) for took, r in zip(spent, rows)]


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def lance_query(t, spec, q, k: int, nprobe: int | None = None):
    """LanceDB's own ANN query at the spec's settings (or another nprobes)."""
    qb = t.search(q).distance_type("cosine").nprobes(nprobe or spec.nprobe).refine_factor(spec.refine)
    if hasattr(spec, "ef"):
        qb = qb.ef(max(spec.ef, k * spec.refine))
    return qb.limit(k).select(["id", "_distance"]).to_arrow().column("id").to_pylist()


def new_model_vectors(v: np.ndarray, path: Path, rows: int, seed: int = 3) -> None:
    """A second "model": the first `rows` vectors rotated and perturbed (so an adapter explains most of it)."""
    rng = np.random.default_rng(seed)
    rot, _ = np.linalg.qr(rng.standard_normal((v.shape[1], v.shape[1])))
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, v.shape[1]))
    for s in range(0, rows, CHUNK):
        x = np.asarray(v[s : min(rows, s + CHUNK)]) @ rot.astype(np.float32)
        x += 0.5 * rng.standard_normal(x.shape).astype(np.float32) / np.sqrt(v.shape[1])
        out[s : s + len(x)] = x / np.linalg.norm(x, axis=1, keepdims=True)
    out.flush()


def exact_fused(coll, v, v_new, q_old, q_new, k: int) -> list[list[str]]:
    """The fused ranking over every item by the formula the collection serves (`scorer.formula`), in numpy."""
    from repspace.collections.upgrade.adapter import load_adapter
    from repspace.collections.upgrade.fusion import NEUTRAL
    from repspace.collections.upgrade.scorer import combined_queries, formula
    from repspace.ops.search import normalize_rows

    up = coll.reload().open_upgrade()
    weights = up.fusion or NEUTRAL
    q_ad = normalize_rows(load_adapter(coll, up).transform(q_new))
    qA, qB = combined_queries(normalize_rows(q_old), q_ad, weights)
    qn = normalize_rows(q_new)
    best_s = np.full((len(q_old), k), -np.inf, np.float32)
    best_i = np.zeros((len(q_old), k), np.int64)
    for s in range(0, len(v), CHUNK):
        vo = np.asarray(v[s : s + CHUNK])
        has_n = np.arange(s, s + len(vo)) < len(v_new)
        vn = np.zeros_like(vo)
        vn[has_n] = np.asarray(v_new[s : s + int(has_n.sum())])
        sc = formula(qA @ vo.T, qB @ vo.T, qn @ vn.T, np.ones(len(vo), bool)[None], has_n[None],
                     weights["A"], weights["B"])
        i = np.argpartition(-sc, k - 1, axis=1)[:, :k]
        cs = np.concatenate([best_s, np.take_along_axis(sc, i, 1)], 1)
        ci = np.concatenate([best_i, i + s], 1)
        o = np.argsort(-cs, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(cs, o, 1), np.take_along_axis(ci, o, 1)
    return [[f"i{j}" for j in row] for row in best_i]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--spec", default="IVF256,HNSW_SQ+nprobe:128+refine:4")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--work", default=None)
    ap.add_argument("--skip-load", action="store_true", help="reuse the collection and table of an earlier run (--work)")
    ap.add_argument("--sweep", default="", help="both sides' queries at these nprobes too, e.g. 16,32,64")
    ap.add_argument("--no-fused", action="store_true", help="skip step 5 (the fused upgrade search)")
    ap.add_argument("--no-anchor", action="store_true",
                    help="repspace's side only (no LanceDB table, index or query): for steps 4-5 once 1-3 are recorded")
    ap.add_argument("--load-only", action="store_true", help="step 1 only (into fresh directories under --work)")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args()
    from repspace.collections import Collection
    from repspace.index.spec import parse_spec

    spec = parse_spec(args.spec)
    work = Path(args.work or tempfile.mkdtemp(prefix="scale-"))
    work.mkdir(parents=True, exist_ok=True)
    res: dict = {"machine": machine(), "load_before": os.getloadavg(), "n": args.n, "dim": args.dim, "spec": str(spec)}
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

    if not args.skip_load:
        index_too = "0" if args.load_only else "1"
        res["cold_input"] = settle_io()
        ours = child(LOAD_REPSPACE, str(data), str(work / "coll"), str(args.dim), str(spec), index_too)
        res["load"] = {"repspace": ours}
        print(f"1. bulk load {args.n:,}: repspace {ours['load_s']:.1f} s (peak RSS {ours['rss_mib']:.0f} MiB, anonymous "
              f"{ours['anon_mib']:.0f} MiB)", flush=True)
        if not args.no_anchor:
            settle_io()
            theirs = res["load"]["lancedb"] = child(LOAD_LANCE, str(data), str(work / "lance"), str(args.dim),
                                                    str(spec), index_too)
            print(f"   lancedb's own {theirs['load_s']:.1f} s ({theirs['rss_mib']:.0f} MiB, {theirs['anon_mib']:.0f} "
                  f"MiB): {theirs['load_s'] / ours['load_s']:.2f}x of LanceDB's speed", flush=True)
        if args.load_only:
            Path(args.json).write_text(json.dumps(res, indent=1) + "\n") if args.json else None
            return
        print(f"2. index: repspace optimize {ours['index_s']:.1f} s" + ("" if args.no_anchor else
              f", lancedb create_index {theirs['index_s']:.1f} s"), flush=True)

    c = Collection.open(work / "coll")

    def recall(rows, want=None) -> float:
        want = want if want is not None else [[f"i{j}" for j in row] for row in truth]
        return float(np.mean([len(set(r) & set(w)) / 10 for r, w in zip(rows, want)]))

    def timed(fn, queries=q):
        fn(queries[0])
        t0 = time.perf_counter()
        rows = [fn(x) for x in queries]
        return len(queries) / (time.perf_counter() - t0), rows

    # each side's queries from disk first: a pass alone after the page cache is dropped (the side searched last
    # otherwise found its table in the cache its own load left there: at 10M, 18.3 against 11.1 q/s on equal
    # indexes); then from memory, both sides query by query, alternating which goes first, so the machine's drift
    # (a shared VM's steal time moved the block-timed passes by 10 % from one sweep point to the next) falls on both
    # alike: two such rounds, the second timed (the first warms both sides' index pages and re-ranked rows again)
    def first_pass(fn):
        dropped = settle_io()
        return timed(fn)[0], dropped

    def interleaved(*fns):
        return alternating(q, *fns, rounds=2)

    ours_fn = lambda x: [h["id"] for h in c.search(vectors=x, k=10)[0]]  # noqa: E731
    first_ours, dropped = first_pass(ours_fn)
    assert not c._caches, "the search must be LanceDB's"
    if args.no_anchor:
        [(qps_ours, rows_ours)] = interleaved(ours_fn)
    else:
        import lancedb

        t = lancedb.connect(work / "lance").open_table("items")
        theirs_fn = lambda x: lance_query(t, spec, x, 10)  # noqa: E731
        first_lance, _ = first_pass(theirs_fn)
        (qps_ours, rows_ours), (qps_lance, rows_lance) = interleaved(ours_fn, theirs_fn)
    res["search"] = {"repspace_qps": qps_ours, "repspace_recall": recall(rows_ours), "repspace_first_pass_qps": first_ours,
                     "page_cache_dropped": dropped, "timed": "interleaved query by query, second round"}
    print(f"3. search: repspace {qps_ours:.1f} q/s recall@10 {recall(rows_ours):.3f} (first pass from disk "
          f"{first_ours:.1f} q/s)", flush=True)
    if not args.no_anchor:
        res["search"].update(lancedb_qps=qps_lance, lancedb_recall=recall(rows_lance), lancedb_first_pass_qps=first_lance)
        print(f"   lancedb's own {qps_lance:.1f} q/s recall@10 {recall(rows_lance):.3f} ({qps_ours / qps_lance:.2f}x; "
              f"first pass {first_lance:.1f} q/s, {first_ours / first_lance:.2f}x)", flush=True)
    # both sides over nprobes (the same refine), interleaved as above: the two recall / q/s curves, to compare at
    # equal recall (each side's index has its own k-means)
    res["sweep"] = []
    for p in [int(x) for x in args.sweep.split(",") if x and not args.no_anchor]:
        c.tuned(nprobe=p)
        (qps_o, rows_o), (qps_l, rows_l) = interleaved(ours_fn, lambda x: lance_query(t, spec, x, 10, nprobe=p))
        res["sweep"].append({"nprobes": p, "repspace_qps": qps_o, "repspace_recall": recall(rows_o),
                             "lancedb_qps": qps_l, "lancedb_recall": recall(rows_l)})
        print(f"   at nprobes {p}: repspace {qps_o:.1f} q/s recall@10 {recall(rows_o):.3f}; lancedb's own "
              f"{qps_l:.1f} q/s recall@10 {recall(rows_l):.3f} ({qps_o / qps_l:.2f}x)", flush=True)
    c.tuned()
    np.save(work / "q10.npy", q[:10])
    np.save(work / "q1.npy", q[:1])
    idx_dir = work / "coll" / "items.lance" / "_indices"
    idx = dir_bytes(idx_dir) if idx_dir.is_dir() else 0

    def cold_cli(queries: str) -> tuple[float, float]:
        t0 = time.perf_counter()
        r = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-m", "repspace.cli.main", "collection",
                            "search", str(work / "coll"), "--query-vectors", str(work / queries), "--k", "10", "--json"],
                           capture_output=True, text=True)
        wall = time.perf_counter() - t0
        got = json.loads(r.stdout) if r.returncode == 0 else None
        if got is None or len(got["results"]) != len(np.load(work / queries)):  # a failed search is not a timing
            raise SystemExit(f"cold search {queries} failed ({r.returncode}): {r.stderr[-2000:]}")
        return wall, int(r.stderr.strip().splitlines()[-1]) / 1024

    # a new process each time; first with the page cache as the searches above left it (the OS's, not the
    # process's: after the other side's search, the first run reads part of the index from disk), then once more
    # for each after dropping it (the index and Python's own files read from disk)
    res["cold_cli"] = {"index_mib": idx / 2**20}
    names = ("q1.npy", "q10.npy")
    warm = {name: [cold_cli(name) for _ in range(3)] for name in names}
    for name in names:
        runs = warm[name]
        dropped = cold_cli(name) if settle_io() else None
        res["cold_cli"][name] = {"wall_s": [w for w, _ in runs], "rss_mib": max(m for _, m in runs),
                                 "page_cache_dropped": None if dropped is None else
                                 {"wall_s": dropped[0], "rss_mib": dropped[1]}}
        after = "not dropped (not root)" if dropped is None else f"{dropped[0]:.2f} s"
        print(f"4. cold `repspace collection search` ({name[1:-4]} queries): {', '.join(f'{w:.2f}' for w, _ in runs)} s "
              f"wall, peak RSS {max(m for _, m in runs):.0f} MiB; page cache dropped: {after}; the index on disk "
              f"{idx / 2**20:.0f} MiB, the vectors {args.n * args.dim * 4 / 2**20:.0f} MiB", flush=True)

    if not args.no_fused:
        from repspace.collections.upgrade.vectors import start_with_vectors

        half = args.n // 2
        new_path = work / "new.npy"
        if c.reload().upgrade is None:
            new_model_vectors(v, new_path, half)
            (work / "new_ids.txt").write_text("\n".join(f"i{j}" for j in range(half)) + "\n")
            t0 = time.perf_counter()
            start_with_vectors(c, "synthetic-v2", new_path, dim=args.dim, ids_file=work / "new_ids.txt")
            t_start = time.perf_counter() - t0
            t0 = time.perf_counter()
            report = c.optimize()
            res["fused_setup"] = {"start_s": t_start, "optimize_s": time.perf_counter() - t0, "slots": report}
            print(f"5. upgrade started from {half:,} new vectors in {t_start:.0f} s; optimize {report} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
        else:  # an earlier run's upgrade (--skip-load): finish its backfill (resumable), fold rows into the indexes
            from repspace.collections.upgrade.vectors import backfill_from_file

            t0 = time.perf_counter()
            done = backfill_from_file(c, new_path, ids_file=work / "new_ids.txt")
            t_fill = time.perf_counter() - t0
            t0 = time.perf_counter()
            res["fused_setup"] = {"backfill": done, "backfill_s": t_fill, "slots": c.optimize(),
                                  "optimize_s": time.perf_counter() - t0}
            print(f"5. resumed {res['fused_setup']}", flush=True)
        assert c.count(c.reload().upgrade.new) == half, "the exact fused ranking assumes the first half backfilled"
        v_new = np.load(new_path, mmap_mode="r")
        rng2 = np.random.default_rng(3)
        rot, _ = np.linalg.qr(rng2.standard_normal((args.dim, args.dim)))
        q_new = (q @ rot.astype(np.float32))
        q_new /= np.linalg.norm(q_new, axis=1, keepdims=True)
        want = exact_fused(c, v, v_new, q, q_new, 10)
        old_slot = c.reload().upgrade.old
        qps_plain, _ = timed(lambda x: c.search(vectors=x, k=10, slot=old_slot))
        pairs = list(zip(q, q_new))
        qps_fused, rows_fused = timed(lambda x: [h["id"] for h in c.search(vectors=x[0], vectors_new=x[1], k=10)[0]],
                                      queries=pairs)
        assert not c._caches, "the fused search must take its candidates from LanceDB"
        res["fused"] = {"plain_ms": 1000 / qps_plain, "fused_ms": 1000 / qps_fused, "ratio": qps_plain / qps_fused,
                        "recall_vs_exact_fused": recall(rows_fused, want)}
        print(f"5. fused upgrade search (50 % backfilled): {1000 / qps_fused:.1f} ms/query vs a plain ANN search of one "
              f"slot {1000 / qps_plain:.1f} ms ({qps_plain / qps_fused:.2f}x); recall@10 of the fused ranking against "
              f"the exact fused ranking {recall(rows_fused, want):.3f}", flush=True)
    res["load_after"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
