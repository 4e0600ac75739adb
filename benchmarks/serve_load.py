"""Bounded load test of `repspace serve` collections on loopback (issue 14), side by side with the library.

1. A real `repspace serve` process over a LanceDB collections root; W writer and S searcher clients (httpx, threads)
   for --seconds: p50/p99 latency of upserts (10 items) and searches (k = 10), errors counted.
2. kill -9 of the server mid-load, restart: every acknowledged upsert is there, none twice.
3. A switch of the active slot under load (two slots; --switches switches): zero failed searches.
4. HTTP overhead of a search at k = 10 over the library call on the same collection.

Usage: python benchmarks/serve_load.py [--seconds 60] [--writers 2] [--searchers 4] [--n 20000]
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import free_port, machine, start_service  # noqa: E402

D = 384
KEY = "bench-key-0123456789abcdef"
H = {"Authorization": f"Bearer {KEY}"}


def start(root: Path, port: int, keyfile: Path) -> subprocess.Popen:
    return start_service(["--models", "glove-50", "--collections", str(root), "--api-key-file", str(keyfile),
                          "--log-level", "warning"], port)


def pct(xs: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(xs) * 1e3, p)) if xs else float("nan")


def load(base: str, seconds: float, writers: int, searchers: int, stop: threading.Event | None = None,
         on_ack=None, switcher=None) -> dict:
    stop = stop or threading.Event()
    lat = {"upsert": [], "search": []}
    errors = {"upsert": 0, "search": 0}
    lock = threading.Lock()

    def writer(w: int) -> None:
        rng = np.random.default_rng(100 + w)
        with httpx.Client(headers=H, timeout=30) as cl:
            b = 0
            while not stop.is_set():
                ids = [f"w{w}-{b}-{j}" for j in range(10)]
                body = {"items": [{"id": i, "vector": rng.normal(size=D).round(5).tolist(), "payload": {"w": w}} for i in ids]}
                t = time.perf_counter()
                try:
                    r = cl.post(f"{base}/v1/collections/load/points", json=body)
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                with lock:
                    if ok:
                        lat["upsert"].append(time.perf_counter() - t)
                        if on_ack:
                            on_ack(ids)
                    else:
                        errors["upsert"] += 1
                b += 1

    def searcher(s: int) -> None:
        rng = np.random.default_rng(200 + s)
        with httpx.Client(headers=H, timeout=30) as cl:
            while not stop.is_set():
                t = time.perf_counter()
                try:
                    r = cl.post(f"{base}/v1/collections/load/search", json={"vector": rng.normal(size=D).round(5).tolist(), "k": 10})
                    ok = r.status_code == 200 and len(r.json()["hits"]) == 10
                except httpx.HTTPError:
                    ok = False
                with lock:
                    if ok:
                        lat["search"].append(time.perf_counter() - t)
                    else:
                        errors["search"] += 1

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
    threads += [threading.Thread(target=searcher, args=(s,)) for s in range(searchers)]
    for t in threads:
        t.start()
    t0 = time.time()
    while time.time() - t0 < seconds and not stop.is_set():
        if switcher:
            switcher()
        time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join(60)
    return {"seconds": time.time() - t0, **{f"{k}_n": len(v) for k, v in lat.items()},
            **{f"{k}_p50_ms": pct(v, 50) for k, v in lat.items()}, **{f"{k}_p99_ms": pct(v, 99) for k, v in lat.items()},
            **{f"{k}_errors": v for k, v in errors.items()}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--writers", type=int, default=2)
    ap.add_argument("--searchers", type=int, default=4)
    ap.add_argument("--n", type=int, default=20000, help="items in the collection before the load")
    args = ap.parse_args()
    print(f"machine: {machine()}")
    from repspace.collections import Collection

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "cols"
        keyfile = Path(tmp) / "keys"
        keyfile.write_text(KEY + "\n")
        c = Collection.create(root / "load", model="ext", dim=D)
        v = np.random.default_rng(0).normal(size=(args.n, D)).astype(np.float32)
        for s in range(0, args.n, 5000):
            c.upsert([f"seed{k}" for k in range(s, min(args.n, s + 5000))], vectors=v[s : s + 5000])
        # 4. HTTP overhead of one search over the library call
        q = np.random.default_rng(9).normal(size=(200, D)).astype(np.float32)
        c.search(vectors=q[:1], k=10)
        t = time.perf_counter()
        for x in q:
            c.search(vectors=x[None, :], k=10)
        lib_ms = 1e3 * (time.perf_counter() - t) / len(q)
        c.close()
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start(root, port, keyfile)
        try:
            with httpx.Client(headers=H, timeout=30) as cl:
                cl.post(f"{base}/v1/collections/load/search", json={"vector": q[0].tolist(), "k": 10})
                t = time.perf_counter()
                for x in q:
                    cl.post(f"{base}/v1/collections/load/search", json={"vector": x.tolist(), "k": 10})
                http_ms = 1e3 * (time.perf_counter() - t) / len(q)
            print(f"\n## search at k=10 over {args.n} x {D}: library {lib_ms:.2f} ms, HTTP {http_ms:.2f} ms "
                  f"(overhead {http_ms - lib_ms:+.2f} ms, {http_ms / lib_ms:.2f}x)")
            # 1. load
            res = load(base, args.seconds, args.writers, args.searchers)
            print(f"\n## load: {args.writers} writers + {args.searchers} searchers for {res['seconds']:.0f} s")
            for k, val in res.items():
                print(f"  {k}: {val:.2f}" if isinstance(val, float) else f"  {k}: {val}")
            # 2. kill -9 mid-load
            acked: list[str] = []
            stop = threading.Event()
            th = threading.Thread(target=load, args=(base, 30, args.writers, 1, stop, acked.extend))
            th.start()
            time.sleep(min(10, args.seconds / 3))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            stop.set()
            th.join(60)
            proc = start(root, port, keyfile)
            with httpx.Client(headers=H, timeout=60) as cl:
                missing = 0
                for s in range(0, len(acked), 5000):
                    missing += len(cl.post(f"{base}/v1/collections/load/points/get", json={"ids": acked[s : s + 5000]}).json()["missing"])
                count = cl.get(f"{base}/v1/collections/load").json()["count"]
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            ids = Collection.open(root / "load").export().ids
            print(f"\n## kill -9 mid-load: {len(acked)} acknowledged upserts, {missing} missing after restart, "
                  f"count {count}, duplicates {len(ids) - len(set(ids))}")
            # 3. switch under load: two slots, the active one flipped every 0.2 s
            c = Collection.open(root / "load")
            c.add_slot("ext-b", dim=D)
            ids_all = c.export().ids
            for s in range(0, len(ids_all), 5000):
                c.update_vectors("ext-b", ids_all[s : s + 5000], np.random.default_rng(s).normal(size=(len(ids_all[s : s + 5000]), D)))
            proc = start(root, port, keyfile)
            flips = {"n": 0}

            def switcher():
                c.set_active("ext-b" if c.active == "ext" else "ext")
                flips["n"] += 1

            res = load(base, min(20, args.seconds), 0, args.searchers, switcher=switcher)
            print(f"\n## switch under load: {flips['n']} switches, {res['search_n']} searches, {res['search_errors']} failed, "
                  f"p50 {res['search_p50_ms']:.1f} ms, p99 {res['search_p99_ms']:.1f} ms")
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()


if __name__ == "__main__":
    main()
