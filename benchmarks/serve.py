"""/v1/embeddings throughput and latency: repspace serve vs direct encode, a naive server and infinity-emb.

Side by side in one run, same texts (bbc-news titles), same model (minilm-l6, the packaged
sentence-transformers directory), same machine, each server in its own process on 127.0.0.1,
one at a time, rounds alternating so that load drift on a shared machine cancels, every one
with the same torch thread count (--threads, default 1: on a busy 2-core machine two OpenMP
threads spin at barriers and a small-batch encode gets 5-8x slower):

  direct    SentenceTransformer.encode(texts, batch_size=32) in this process (the anchor)
  repspace  `repspace serve` (dynamic batching across requests, one encoding worker thread)
  repspace-w2  the same with `--workers 2` (two encoding threads on one queue)
  repspace-wait5  the same with `--batch-wait-ms 5` (a batch that is not full waits up to 5 ms)
  naive     FastAPI, one request = one `model.encode` (sync route, FastAPI's thread pool)
  infinity  infinity-emb v2 (PyPI, in its own venv: needs transformers<5), POST /embeddings

Clients: asyncio + httpx in this process, C concurrent clients, each request R texts (1: one
query per request, as search traffic; 8: small client-side batches), JSON
float vectors for every server. Reported: texts/s at 16 clients, p50/p99 request latency at
1 and 16 clients, and the ratios repspace/direct (target >= 0.9), repspace/naive (target >= 2),
repspace/infinity.

Usage: python benchmarks/serve.py [--texts 1024] [--per-request 1,8] [--rounds 2] [--threads 1]
                                  [--infinity /tmp/infinity-venv/bin/infinity_emb] [--naive-server PORT]

Per encoder backend (issue 27): `--backends torch,onnx,onnx-int8,openvino,openvino-int8` runs one `repspace serve
--backend B` per backend at the service's default workers x threads (unless --threads / --workers), 1 text per
request, 16 clients, beside the direct torch encode in this process (measured with 1 thread and with every core;
the anchor is the faster) and infinity-emb's CPU engines (`--infinity-engines torch,optimum,optimum-int8`; the
optimum engines need optimum + onnxruntime in infinity's environment, `--infinity-python`, and an ONNX copy of the
model made offline into `--infinity-onnx-dir` by optimum's exporter, plus its dynamic int8 quantisation for
optimum-int8). Targets: torch backend >= 1.0x direct, fastest backend >= 2x direct and >= 1.5x infinity's best.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import free_port, machine  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def model_dir() -> str:
    from repspace.encoders.sentence import minilm_l6_path

    return str(minilm_l6_path())


# ------------------------------------------------------------------ the naive server
def naive_server(port: int) -> None:
    import uvicorn
    from fastapi import FastAPI
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_dir(), device="cpu", local_files_only=True)
    app = FastAPI()

    @app.get("/health")
    def health() -> dict:
        return {"ok": True}

    @app.post("/v1/embeddings")
    def embed(body: dict) -> dict:  # sync: FastAPI runs it in its thread pool, one encode per request
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        X = model.encode(texts, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)
        return {"object": "list", "model": body.get("model"),
                "data": [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(X)],
                "usage": {"prompt_tokens": 0, "total_tokens": 0}}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# ------------------------------------------------------------------ servers
class Server:
    def __init__(self, name: str, cmd: list[str], url: str, health: str, model: str, env: dict | None = None) -> None:
        self.name, self.cmd, self.url, self.health, self.model = name, cmd, url, health, model
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(env or {})}
        self.proc = None
        self.log = tempfile.NamedTemporaryFile(prefix=f"bench-{name}-", suffix=".log", delete=False)

    def __enter__(self) -> "Server":
        import httpx

        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT, env=self.env, cwd=ROOT)
        deadline = time.time() + 300
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: see {self.log.name}")
            try:
                if httpx.get(self.health, timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"{self.name} did not become ready: see {self.log.name}")

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def load(url: str, model: str, texts: list[str], per_request: int, clients: int) -> dict:
    import httpx

    batches = [texts[i:i + per_request] for i in range(0, len(texts), per_request)]
    queue: asyncio.Queue = asyncio.Queue()
    for b in batches:
        queue.put_nowait(b)
    lat: list[float] = []
    errors = 0

    async def client(c: httpx.AsyncClient) -> None:
        nonlocal errors
        while True:
            try:
                b = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            t0 = time.perf_counter()
            r = await c.post(url, json={"model": model, "input": b, "encoding_format": "float"})
            lat.append(time.perf_counter() - t0)
            if r.status_code != 200 or len(r.json()["data"]) != len(b):
                errors += 1

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=300, limits=limits) as c:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(c) for _ in range(clients)))
        wall = time.perf_counter() - t0
    lat.sort()
    return {"texts_s": len(texts) / wall, "p50_ms": 1000 * lat[len(lat) // 2],
            "p99_ms": 1000 * lat[min(len(lat) - 1, int(round(0.99 * (len(lat) - 1))))], "errors": errors,
            "requests": len(batches)}


def direct(texts: list[str], batch_size: int = 32, threads: int | None = None) -> dict:
    from sentence_transformers import SentenceTransformer

    global _ST
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    if "_ST" not in globals():
        _ST = SentenceTransformer(model_dir(), device="cpu", local_files_only=True)
        _ST.encode(texts[:64], batch_size=batch_size)
    t0 = time.perf_counter()
    _ST.encode(texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)
    return {"texts_s": len(texts) / (time.perf_counter() - t0)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--texts", type=int, default=1024, help="texts per 16-client run")
    ap.add_argument("--latency-requests", type=int, default=48, help="requests in each 1-client run")
    ap.add_argument("--per-request", default="1,8", help="texts per request, comma-separated shapes")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--infinity", default="/tmp/infinity-venv/bin/infinity_emb")
    ap.add_argument("--only", default="direct,repspace,repspace-w2,repspace-wait5,naive,infinity")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads for every system (OMP_NUM_THREADS; default 1 on a shared 2-core machine); with "
                         "--backends: threads per encoding worker (default: the service's)")
    ap.add_argument("--naive-server", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--backends", default=None, help="comma-separated encoder backends: one repspace server each")
    ap.add_argument("--workers", type=int, default=None, help="--backends: encoding workers per server (default: the service's)")
    ap.add_argument("--infinity-engines", default="torch,torch-1t,optimum,optimum-int8")
    ap.add_argument("--systems", default=None, help="--backends: only the servers whose name contains one of these")
    ap.add_argument("--infinity-python", default=None, help="python of infinity's environment (default: beside --infinity)")
    ap.add_argument("--infinity-onnx-dir", default="/tmp/repspace-bench-infinity-onnx")
    args = ap.parse_args()
    if args.naive_server:
        naive_server(args.naive_server)
        return
    if args.backends:
        from _serve_backends import main_backends

        main_backends(args, Server, load, direct, model_dir)
        return
    args.threads = args.threads or 1
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # inherited by every server process
    from repspace.datasets import load_dataset

    import torch

    torch.set_num_threads(args.threads)
    print(f"machine: {machine()}; load average at start {os.getloadavg()[0]:.2f}")
    titles = list(load_dataset("bbc-news:title").data)
    texts = (titles * (1 + args.texts // len(titles)))[: args.texts]
    lat_texts = titles[-args.latency_requests * 8:]
    mdir = model_dir()
    print(f"{len(texts)} bbc-news titles (mean {statistics.mean(map(len, texts)):.0f} chars), {args.per_request} per request, "
          f"{args.clients} clients; minilm-l6 at {mdir}; torch threads {torch.get_num_threads()}")

    servers = {}
    p = free_port()
    servers["repspace"] = lambda p=p: Server("repspace", [PY, "-m", "repspace.cli.main", "serve", "--no-auth", "--port", str(p),
                                                         "--models", "minilm-l6", "--log-level", "warning",
                                                         "--threads", str(args.threads)],
                                             f"http://127.0.0.1:{p}/v1/embeddings", f"http://127.0.0.1:{p}/readyz", "minilm-l6")
    pw = free_port()
    servers["repspace-w2"] = lambda p=pw: Server("repspace-w2", [PY, "-m", "repspace.cli.main", "serve", "--no-auth", "--port", str(p),
                                                               "--models", "minilm-l6", "--log-level", "warning",
                                                               "--threads", str(args.threads), "--workers", "2"],
                                                f"http://127.0.0.1:{p}/v1/embeddings", f"http://127.0.0.1:{p}/readyz", "minilm-l6")
    pwt = free_port()
    servers["repspace-wait5"] = lambda p=pwt: Server("repspace-wait5", [PY, "-m", "repspace.cli.main", "serve", "--no-auth", "--port",
                                                                     str(p), "--models", "minilm-l6", "--log-level", "warning",
                                                                     "--threads", str(args.threads), "--batch-wait-ms", "5"],
                                                     f"http://127.0.0.1:{p}/v1/embeddings", f"http://127.0.0.1:{p}/readyz", "minilm-l6")
    p2 = free_port()
    servers["naive"] = lambda p=p2: Server("naive", [PY, __file__, "--naive-server", str(p)],
                                           f"http://127.0.0.1:{p}/v1/embeddings", f"http://127.0.0.1:{p}/health", "minilm-l6")
    infinity_note = None
    if shutil.which(args.infinity) or Path(args.infinity).is_file():
        p3 = free_port()
        servers["infinity"] = lambda p=p3: Server(
            "infinity", [args.infinity, "v2", "--model-id", mdir, "--served-model-name", "minilm-l6", "--engine", "torch",
                         "--device", "cpu", "--host", "127.0.0.1", "--port", str(p), "--no-model-warmup"],
            f"http://127.0.0.1:{p}/embeddings", f"http://127.0.0.1:{p}/health", "minilm-l6",
            env={"INFINITY_ANONYMOUS_USAGE_STATS": "0", "DO_NOT_TRACK": "1"})
    else:
        infinity_note = f"infinity-emb not run: {args.infinity} not found (install it in a separate venv with transformers<5)"
        print(infinity_note)
    only = args.only.split(",")
    shapes = [int(x) for x in str(args.per_request).split(",")]
    names = [k for k in ["direct", *servers] if k in only]
    results: dict[tuple, list[dict]] = {}
    lat1: dict[tuple, list[dict]] = {}
    for r in range(args.rounds):
        for name in names:
            if name == "direct":
                res = direct(texts)
                results.setdefault(("direct", 0), []).append(res)
                print(f"round {r} direct: {res['texts_s']:.1f} texts/s", flush=True)
                continue
            try:
                with servers[name]() as s:
                    asyncio.run(load(s.url, s.model, texts[:64], 8, 4))  # warm-up
                    for per in shapes:
                        m0 = _batch_stats(s.url) if name.startswith("repspace") else None
                        res = asyncio.run(load(s.url, s.model, texts, per, args.clients))
                        if m0 is not None:
                            m1 = _batch_stats(s.url)
                            res["mean_batch"] = (m1[1] - m0[1]) / max(1.0, m1[0] - m0[0])
                        one = asyncio.run(load(s.url, s.model, lat_texts[: args.latency_requests * per], per, 1))
                        results.setdefault((name, per), []).append(res)
                        lat1.setdefault((name, per), []).append(one)
                        print(f"round {r} {name} {per}/request: {res['texts_s']:.1f} texts/s at {args.clients} clients, "
                              f"p50 {res['p50_ms']:.0f} ms, p99 {res['p99_ms']:.0f} ms, errors {res['errors']}"
                              f"{', mean batch %.1f' % res['mean_batch'] if 'mean_batch' in res else ''}; 1 client: "
                              f"{one['texts_s']:.1f} texts/s p50 {one['p50_ms']:.0f} ms p99 {one['p99_ms']:.0f} ms "
                              f"errors {one['errors']}", flush=True)
            except RuntimeError as e:
                print(f"round {r} {name}: FAILED {e}", flush=True)

    def med(rows, key):
        vals = [x[key] for x in rows if key in x]
        return statistics.median(vals) if vals else float("nan")

    print(f"\nload average at end {os.getloadavg()[0]:.2f}; medians over {args.rounds} rounds; torch threads {args.threads}\n")
    print(f"| system | texts per request | texts/s at {args.clients} clients | p50 ms ({args.clients}) | p99 ms ({args.clients}) | "
          "texts/s at 1 client | p50 ms (1) | p99 ms (1) | errors |")
    print("|---|---|---|---|---|---|---|---|---|")
    d = med(results.get(("direct", 0), []), "texts_s")
    if ("direct", 0) in results:
        print(f"| direct `SentenceTransformer.encode(batch_size=32)` | all | {d:.1f} | – | – | – | – | – | – |")
    for per in shapes:
        for name in names:
            if name == "direct" or (name, per) not in results:
                continue
            rows, one = results[(name, per)], lat1[(name, per)]
            errs = sum(x.get("errors", 0) for x in rows + one)
            print(f"| {name} | {per} | {med(rows, 'texts_s'):.1f} | {med(rows, 'p50_ms'):.0f} | {med(rows, 'p99_ms'):.0f} | "
                  f"{med(one, 'texts_s'):.1f} | {med(one, 'p50_ms'):.0f} | {med(one, 'p99_ms'):.0f} | {errs} |")
    print()
    for per in shapes:
      for mine in ("repspace", "repspace-w2", "repspace-wait5"):
        if (mine, per) not in results:
            continue
        rs = med(results[(mine, per)], "texts_s")
        for other, target in (("direct", 0.9), ("naive", 2.0), ("infinity", 1.0)):
            key = (other, 0 if other == "direct" else per)
            if key in results:
                ratio = rs / med(results[key], "texts_s")
                print(f"{per} text(s)/request: {mine} / {other} at {args.clients} clients: {ratio:.2f}x "
                      f"(target >= {target}: {'met' if ratio >= target else 'missed'})")
        if ("infinity", per) in results and ("repspace", per) in results:
            print(f"{per} text(s)/request: p99 repspace vs infinity: {args.clients} clients "
                  f"{med(results[('repspace', per)], 'p99_ms'):.0f} vs {med(results[('infinity', per)], 'p99_ms'):.0f} ms; "
                  f"1 client {med(lat1[('repspace', per)], 'p99_ms'):.0f} vs {med(lat1[('infinity', per)], 'p99_ms'):.0f} ms")
    if infinity_note:
        print(infinity_note)


def _batch_stats(url: str) -> tuple[float, float]:
    import httpx

    m = httpx.get(url.replace("/v1/embeddings", "/metrics")).text
    get = lambda p: next(float(l.split()[-1]) for l in m.splitlines() if l.startswith(p))  # noqa: E731
    return get("repspace_embedding_batch_size_count"), get("repspace_embedding_batch_size_sum")


if __name__ == "__main__":
    main()
