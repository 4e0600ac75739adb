"""Encoding through an OpenAI-compatible endpoint: repspace's `openai:NAME@URL` encoder vs the `openai` client alone.

Side by side in one run, against one server on 127.0.0.1 (`repspace serve --models minilm-l6`; with --infinity also
infinity-emb, in its own venv), the same texts (bbc-news bodies, then titles), the same request size (--batch texts)
and the same number of requests in flight (--concurrency):

  direct     a ThreadPoolExecutor(concurrency) mapping `client.embeddings.create(input=batch, model=…)` over all
             batches at once (official client, its defaults: base64 on the wire, decoded to lists), then one array
  backfill   repspace `EndpointEncoder.encode_batch` on blocks of --block texts one after the other, as
             `upgrade backfill` and `Collection.encode` call it (each block waits for its slowest request)
  whole      the same encoder given every text in one call (no block barrier)

Rounds alternate (ABC, CBA, …) so that load drift on a shared machine cancels; medians are reported, with the ratio
backfill / direct (target >= 0.9) and the load average before and after. The encoder's probe request (its identity
check) is made once, before timing. Vectors of both sides are checked equal (cos >= 0.9999).

Usage: python benchmarks/endpoint.py [--bodies 128] [--titles 1024] [--batch 32] [--concurrency 4] [--block 256]
                                     [--rounds 3] [--threads 1] [--infinity /tmp/infvenv/bin/infinity_emb]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import free_port, machine, start_service  # noqa: E402


def direct(client, model: str, texts: list[str], batch: int, concurrency: int) -> np.ndarray:
    batches = [texts[s : s + batch] for s in range(0, len(texts), batch)]
    with ThreadPoolExecutor(concurrency) as pool:
        answers = list(pool.map(lambda b: client.embeddings.create(input=b, model=model), batches))
    return np.asarray([d.embedding for a in answers for d in sorted(a.data, key=lambda d: d.index)], np.float32)


def backfill(enc, texts: list[str], block: int) -> np.ndarray:
    out = np.empty((len(texts), enc.dim), np.float32)
    for s in range(0, len(texts), block):
        out[s : s + block] = enc.encode_batch(texts[s : s + block])
    return out


def run_side(name: str, fn) -> tuple[float, float, np.ndarray]:
    """(wall seconds, this process's CPU seconds — the client's own cost, all threads — , vectors)."""
    t0, c0 = time.perf_counter(), time.process_time()
    X = fn()
    return time.perf_counter() - t0, time.process_time() - c0, X


def bench(label: str, base: str, model: str, corpora: dict[str, list[str]], args) -> list[dict]:
    from openai import OpenAI

    from repspace.encoders.endpoint import EndpointEncoder

    client = OpenAI(base_url=base, api_key="not-needed", max_retries=0, timeout=300)
    enc = EndpointEncoder(model, base, batch_size=args.batch, concurrency=args.concurrency, timeout=300)
    sides = {"direct": lambda t: direct(client, model, t, args.batch, args.concurrency),
             "backfill": lambda t: backfill(enc, t, args.block),
             "whole": lambda t: enc.encode_batch(t)}
    rows = []
    for corpus, texts in corpora.items():
        sides["direct"](texts[: args.batch * 2])  # warm-up: connections, server caches
        times: dict[str, list[float]] = {s: [] for s in sides}
        cpu: dict[str, list[float]] = {s: [] for s in sides}
        ref = None
        load0 = os.getloadavg()[0]
        for r in range(args.rounds):
            order = list(sides) if r % 2 == 0 else list(sides)[::-1]
            for s in order:
                dt, ct, X = run_side(s, lambda: sides[s](texts))
                times[s].append(dt)
                cpu[s].append(ct)
                Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
                if ref is None:
                    ref = Xn
                cos = float((Xn * ref).sum(1).min())
                assert X.shape == (len(texts), enc.dim) and cos >= 0.9999, (s, X.shape, cos)
                print(f"  {label} {corpus} round {r + 1} {s}: {dt:.2f} s, {len(texts) / dt:.1f} texts/s, client CPU "
                      f"{ct:.2f} s", flush=True)
        load1 = os.getloadavg()[0]
        tps = {s: len(texts) / statistics.median(v) for s, v in times.items()}
        row = {"server": label, "corpus": corpus, "n": len(texts), "load": f"{load0:.1f} → {load1:.1f}",
               **{f"{s}_tps": tps[s] for s in sides},
               **{f"{s}_cpu_ms": 1000 * statistics.median(cpu[s]) / len(texts) for s in sides},
               "ratio": tps["backfill"] / tps["direct"], "ratio_whole": tps["whole"] / tps["direct"],
               "per_round": [round(b / d, 3) for b, d in zip(times["direct"], times["backfill"])]}
        rows.append(row)
        print(f"{label} {corpus} (n={len(texts)}, load {row['load']}): direct {tps['direct']:.1f}, backfill "
              f"{tps['backfill']:.1f}, whole {tps['whole']:.1f} texts/s; backfill/direct {row['ratio']:.3f} "
              f"(rounds {row['per_round']}), whole/direct {row['ratio_whole']:.3f}; client CPU ms/text direct "
              f"{row['direct_cpu_ms']:.2f}, backfill {row['backfill_cpu_ms']:.2f}", flush=True)
    enc.close()
    client.close()
    return rows


def start_infinity(exe: str, port: int, threads: int) -> subprocess.Popen:
    import httpx

    from repspace.encoders.sentence import minilm_l6_path

    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1", "INFINITY_ANONYMOUS_USAGE_STATS": "0",
           "DO_NOT_TRACK": "1"}
    env.pop("PYTHONPATH", None)
    log = open("/tmp/infinity-bench.log", "wb")
    proc = subprocess.Popen([exe, "v2", "--model-id", str(minilm_l6_path()), "--served-model-name", "minilm-l6",
                             "--engine", "torch", "--device", "cpu", "--host", "127.0.0.1", "--port", str(port),
                             "--no-bettertransformer"], stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.time() + 240
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"infinity ended: {open('/tmp/infinity-bench.log').read()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit("infinity did not become ready")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bodies", type=int, default=128)
    ap.add_argument("--titles", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--block", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the server")
    ap.add_argument("--infinity", default=None, help="infinity_emb executable (own venv); skipped when absent")
    ap.add_argument("--no-repspace", action="store_true", help="skip the repspace serve half (e.g. infinity only)")
    args = ap.parse_args()

    from repspace.datasets import load_dataset

    print(f"machine: {machine()}; load average {os.getloadavg()}")
    bodies = [t for t in load_dataset("bbc-news:body").data[: args.bodies]]
    titles = [t for t in load_dataset("bbc-news:title").data[: args.titles]]
    corpora = {k: v for k, v in (("bodies", bodies), ("titles", titles)) if v}
    print(f"batch {args.batch} texts/request, concurrency {args.concurrency}, backfill block {args.block}, "
          f"{args.rounds} rounds; bodies mean {np.mean([len(t) for t in bodies]):.0f} chars, titles "
          f"{np.mean([len(t) for t in titles]):.0f}")
    rows = []
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    if not args.no_repspace:
        proc = start_service(["--no-auth", "--models", "minilm-l6", "--threads", str(args.threads)], port, env=env)
        try:
            rows += bench("repspace serve", f"http://127.0.0.1:{port}/v1", "minilm-l6", corpora, args)
        finally:
            proc.terminate()
            proc.wait(30)
    if args.infinity:
        if not Path(args.infinity).is_file():
            print(f"infinity-emb not run: {args.infinity} not found")
        else:
            port = free_port()
            proc = start_infinity(args.infinity, port, args.threads)
            try:
                rows += bench("infinity-emb", f"http://127.0.0.1:{port}", "minilm-l6", corpora, args)
            finally:
                proc.terminate()
                proc.wait(30)
    print("\n| server | texts | n | load | direct texts/s | backfill texts/s | whole texts/s | backfill / direct | whole / direct "
          "| client CPU ms/text direct | backfill |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['server']} | {r['corpus']} | {r['n']} | {r['load']} | {r['direct_tps']:.1f} | {r['backfill_tps']:.1f} | "
              f"{r['whole_tps']:.1f} | {r['ratio']:.3f} | {r['ratio_whole']:.3f} | {r['direct_cpu_ms']:.2f} | "
              f"{r['backfill_cpu_ms']:.2f} |")


if __name__ == "__main__":
    main()
