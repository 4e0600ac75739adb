"""benchmarks/serve.py --backends: `/v1/embeddings` per encoder backend beside a direct torch encode and infinity-emb.

One `repspace serve --backend B` per backend (the service's default workers x threads unless --workers/--threads),
16 clients, 1 text per request (search traffic), bbc-news titles; one server at a time, rounds alternating; medians.
Anchors: SentenceTransformer.encode(batch_size=32) in this process with 1 thread and with every core (the anchor is
the faster of the two), and infinity-emb's CPU engines: torch, and optimum (ONNX Runtime) fp32 and dynamic int8 on an
ONNX copy of the same model exported offline by optimum in infinity's own environment.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _backends import machine_header
from _common import free_port

PY = sys.executable

EXPORT = r"""
import shutil, sys
from pathlib import Path
from optimum.onnxruntime import ORTModelForFeatureExtraction, ORTQuantizer
from optimum.onnxruntime.configuration import AutoQuantizationConfig
from transformers import AutoTokenizer

src, out, cfg = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
fp32, int8 = out / "fp32", out / "int8"
ORTModelForFeatureExtraction.from_pretrained(str(src), export=True).save_pretrained(fp32)
AutoTokenizer.from_pretrained(str(src)).save_pretrained(fp32)
for extra in ("modules.json", "sentence_bert_config.json", "1_Pooling"):
    p = src / extra
    if p.is_dir():
        shutil.copytree(p, fp32 / extra, dirs_exist_ok=True)
    elif p.is_file():
        shutil.copy2(p, fp32 / extra)
qcfg = getattr(AutoQuantizationConfig, cfg)(is_static=False, per_channel=True)
ORTQuantizer.from_pretrained(fp32).quantize(save_dir=int8, quantization_config=qcfg)
for p in fp32.iterdir():
    if p.suffix != ".onnx" and not (int8 / p.name).exists():
        (shutil.copytree if p.is_dir() else shutil.copy2)(p, int8 / p.name)
print("exported", sorted(x.name for x in int8.iterdir()))
"""


def quantization_config() -> str:
    """optimum's AutoQuantizationConfig for this CPU (the same choice repspace's onnx-int8 makes from the flags)."""
    from repspace.encoders.backends import cpu_flags

    flags = cpu_flags()
    if flags & {"avx512_vnni", "avx_vnni", "amx_int8"}:
        return "avx512_vnni"
    if "avx512f" in flags:
        return "avx512"
    return "arm64" if "asimd" in flags else "avx2"


def infinity_onnx(py: str, mdir: str, out: Path) -> tuple[Path | None, Path | None, str | None]:
    """(fp32 dir, int8 dir, note): an ONNX copy of the model for infinity's optimum engine, made once, offline."""
    fp32, int8 = out / "fp32", out / "int8"
    if (fp32 / "model.onnx").is_file() and any(int8.glob("*.onnx")):
        return fp32, int8, None
    cfg = quantization_config()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    r = subprocess.run([py, "-c", EXPORT, mdir, str(out), cfg], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        return None, None, f"optimum export failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}"
    print(f"infinity optimum model: exported into {out} (int8: AutoQuantizationConfig.{cfg}, dynamic, per channel)")
    return fp32, int8, None


def main_backends(args, Server, load, direct, model_dir) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from repspace.datasets import load_dataset
    from repspace.encoders import get_encoder
    from repspace.encoders.backends import cores
    from repspace.service.config import plan_workers

    print(machine_header())
    titles = list(load_dataset("bbc-news:title").data)
    texts = (titles * (1 + args.texts // len(titles)))[: args.texts]
    lat_texts = titles[-args.latency_requests:]
    mdir = model_dir()
    backends = args.backends.split(",")
    for b in backends:  # exports made (and cached) before anything is timed
        t0 = time.perf_counter()
        get_encoder("minilm-l6", backend=b)
        print(f"backend {b}: ready in {time.perf_counter() - t0:.1f} s (export on first use)")
    n = cores()
    print(f"{len(texts)} bbc-news titles (mean {statistics.mean(map(len, texts)):.0f} chars), 1 per request, "
          f"{args.clients} clients; minilm-l6; {n} cores")

    servers, plans = {}, {}
    for b in backends:
        w, t = plan_workers(b, n, args.workers, args.threads)
        plans[b] = (w, t)
        p = free_port()
        servers[f"repspace {b}"] = lambda p=p, b=b, w=w, t=t: Server(
            f"repspace-{b}", [PY, "-m", "repspace.cli.main", "serve", "--no-auth", "--port", str(p), "--models",
                              "minilm-l6", "--log-level", "warning", "--backend", b, "--workers", str(w), "--threads", str(t)],
            f"http://127.0.0.1:{p}/v1/embeddings", f"http://127.0.0.1:{p}/readyz", "minilm-l6")
    notes = []
    inf_py = args.infinity_python or str(Path(args.infinity).parent / "python")
    if Path(args.infinity).is_file():
        engines = args.infinity_engines.split(",")
        fp32 = int8 = None
        if any(e.startswith("optimum") for e in engines):
            fp32, int8, note = infinity_onnx(inf_py, mdir, Path(args.infinity_onnx_dir))
            if note:
                notes.append(f"infinity optimum engines not run: {note}")
        for e in engines:
            model_id = {"torch": mdir, "torch-1t": mdir, "optimum": fp32, "optimum-int8": int8}.get(e)
            if model_id is None:
                continue
            p = free_port()
            env = {"INFINITY_ANONYMOUS_USAGE_STATS": "0", "DO_NOT_TRACK": "1"}
            if e == "torch-1t":  # one OpenMP thread: two spin at barriers on a busy 2-core machine
                env["OMP_NUM_THREADS"] = "1"
            # infinity 0.0.78 passes optimum 2.x the ONNX file's path with the model directory in it, which optimum
            # refuses: run it inside the model directory with model id "." (the file name alone)
            servers[f"infinity {e}"] = lambda p=p, e=e, m=str(model_id), env=env: Server(
                f"infinity-{e}", [inf_py, "-c", "import os, sys; os.chdir(sys.argv.pop(1)); "
                                  "from infinity_emb.cli import cli; cli()", m, "v2", "--model-id", ".",
                                  "--served-model-name", "minilm-l6", "--engine", e.split("-")[0], "--device", "cpu",
                                  "--host", "127.0.0.1", "--port", str(p), "--no-model-warmup"],
                f"http://127.0.0.1:{p}/embeddings", f"http://127.0.0.1:{p}/health", "minilm-l6", env=env)
    else:
        notes.append(f"infinity-emb not run: {args.infinity} not found")
    for x in notes:
        print(x)
    if args.systems:
        keep = args.systems.split(",")
        servers = {k: v for k, v in servers.items() if any(w in k for w in keep)}

    thread_counts = sorted({1, n})
    res: dict[str, list[dict]] = {}
    one: dict[str, list[dict]] = {}
    for r in range(args.rounds):
        for th in thread_counts:
            d = direct(texts, threads=th)
            res.setdefault(f"direct torch {th}t", []).append(d)
            print(f"round {r} direct torch encode, {th} thread(s): {d['texts_s']:.1f} texts/s", flush=True)
        for name, make in servers.items():
            try:
                with make() as s:
                    asyncio.run(load(s.url, s.model, texts[:64], 1, 4))  # warm-up
                    x = asyncio.run(load(s.url, s.model, texts, 1, args.clients))
                    o = asyncio.run(load(s.url, s.model, lat_texts, 1, 1))
            except RuntimeError as e:
                print(f"round {r} {name}: FAILED {e}", flush=True)
                continue
            res.setdefault(name, []).append(x)
            one.setdefault(name, []).append(o)
            print(f"round {r} {name}: {x['texts_s']:.1f} texts/s at {args.clients} clients, p50 {x['p50_ms']:.0f} ms, "
                  f"p99 {x['p99_ms']:.0f} ms, errors {x['errors']}; 1 client p50 {o['p50_ms']:.0f} p99 {o['p99_ms']:.0f} ms",
                  flush=True)

    def med(name, key, src=res):
        vals = [v[key] for v in src.get(name, []) if key in v]
        return statistics.median(vals) if vals else float("nan")

    anchor = max(med(f"direct torch {th}t", "texts_s") for th in thread_counts)
    inf = {k: med(k, "texts_s") for k in res if k.startswith("infinity")}
    best_inf = max(inf.values()) if inf else float("nan")
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; medians of {args.rounds} rounds\n")
    print(f"| system | workers × threads | texts/s at {args.clients} clients | × direct torch | × infinity's best | "
          f"p50 / p99 ms ({args.clients}) | p50 / p99 ms (1 client) | errors |")
    print("|---|---|---|---|---|---|---|---|")
    for th in thread_counts:
        k = f"direct torch {th}t"
        print(f"| direct `SentenceTransformer.encode(batch_size=32)`, {th} thread(s) | – | {med(k, 'texts_s'):.1f} | "
              f"{med(k, 'texts_s') / anchor:.2f} | – | – | – | – |")
    for name in servers:
        if name not in res:
            continue
        b = name.split(" ", 1)[1]
        wt = f"{plans[b][0]} × {plans[b][1]}" if name.startswith("repspace") else "default"
        errs = sum(v.get("errors", 0) for v in res[name] + one.get(name, []))
        print(f"| {name} | {wt} | {med(name, 'texts_s'):.1f} | {med(name, 'texts_s') / anchor:.2f} | "
              f"{med(name, 'texts_s') / best_inf:.2f} | {med(name, 'p50_ms'):.0f} / {med(name, 'p99_ms'):.0f} | "
              f"{med(name, 'p50_ms', one):.0f} / {med(name, 'p99_ms', one):.0f} | {errs} |")
    mine = {k: med(k, "texts_s") for k in res if k.startswith("repspace")}
    if mine:
        fastest = max(mine, key=mine.get)
        checks = [("repspace torch", mine.get("repspace torch", float("nan")) / anchor, 1.0, "direct torch encode"),
                  (fastest, mine[fastest] / anchor, 2.0, "direct torch encode"),
                  (fastest, mine[fastest] / best_inf, 1.5, f"infinity's best ({max(inf, key=inf.get) if inf else 'not run'})")]
        print()
        for who, ratio, target, what in checks:
            verdict = "met" if ratio >= target else ("not measured" if ratio != ratio else "MISSED")
            print(f"{who} / {what}: {ratio:.2f}x (target >= {target}: {verdict})")
    for x in notes:
        print(x)
