"""The MiniLM-L6 -> MPNet upgrade curve on bbc-sentences, encoded with a fast encoder backend (issue 27).

Step 1 (`--check N`): each candidate backend of both models encodes the same N bbc-sentences (spread over the set):
texts/s, cos vs torch, and the hours the whole set (38,169 sentences + 2,225 titles) would take on it.
Step 2: both models encode the corpus (all sentences, or `--items N`: a fixed random sample of N sentences) and the
bbc-news titles with `--backend` into the bench cache (resumable: a run cut by a time limit goes on where it stopped).
Step 3: `repspace.studies.upgrade_curve.curve` on a LanceDB collection with the same protocol as the bbc-sentences
rows of benchmarks/upgrade_live.py: golden queries = titles of the held-out test articles, relevant = all of that
article's sentences in the corpus; adapter and fusion from 1,000 train-half sentences; backfill in random order to
0/10/25/50/75/100 %; never lose = fused >= old - 1 SE.

Usage: python benchmarks/upgrade_sentences.py --check 300
       python benchmarks/upgrade_sentences.py --backend openvino-int8 [--items 10000] [--encode-only]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _backends import machine_header  # noqa: E402
from _spaces import bench_space  # noqa: E402
from upgrade_live import golden, report  # noqa: E402

from repspace import get_encoder, load_dataset  # noqa: E402
from repspace.datasets import hash_split  # noqa: E402
from repspace.studies.backends import encode_timed  # noqa: E402
from repspace.studies.upgrade_curve import curve  # noqa: E402

MODELS = ("minilm-l6", "mpnet-base")


def check(n: int, backends: list[str]) -> None:
    items = load_dataset("bbc-sentences")
    total = len(items) + len(load_dataset("bbc-news:title"))
    texts = [items.data[k] for k in np.linspace(0, len(items) - 1, n).astype(int)]
    print(f"{n} bbc-sentences spread over the {len(items):,}; estimate for {total:,} texts (sentences + titles)")
    print("| model | backend | sentences/s | cos vs torch mean | min | whole set, hours |")
    print("|---|---|---|---|---|---|")
    for model in MODELS:
        ref = None
        for b in ["torch"] + [x for x in backends if x != "torch"]:
            enc = get_encoder(model, backend=b)
            run = encode_timed(enc, texts, 32, 1)
            if ref is None:
                ref = run.vectors
            cos = (run.vectors * ref).sum(1)
            rate = n / run.seconds
            print(f"| {model} | {b} | {rate:.1f} | {cos.mean():.5f} | {cos.min():.4f} | {total / rate / 3600:.2f} |",
                  flush=True)
            del enc


def encode(backend: str, items: int | None) -> dict[str, float]:
    seconds = {}
    for model in MODELS:
        for dataset, sample in (("bbc-news:title", None), ("bbc-sentences", items)):
            t0 = time.perf_counter()
            sp = bench_space(model, dataset, sample=sample, backend=backend, progress=False)
            seconds[f"{model} {dataset}"] = time.perf_counter() - t0
            print(f"{model} {dataset}: {sp.count:,} x {sp.dim} ({sp.model_version[-30:]}) in "
                  f"{seconds[f'{model} {dataset}']:.0f} s (0 if cached)", flush=True)
    return seconds


def run_curve(backend: str, items: int | None, sample: int, queries: int | None) -> dict:
    old_sp = bench_space(MODELS[0], "bbc-sentences", sample=items, backend=backend)
    new_sp = bench_space(MODELS[1], "bbc-sentences", sample=items, backend=backend)
    t_old = bench_space(MODELS[0], "bbc-news:title", backend=backend)
    t_new = bench_space(MODELS[1], "bbc-news:title", backend=backend)
    sentences = load_dataset("bbc-sentences")
    texts = dict(zip(sentences.ids, sentences.data))
    q_old, q_new, rel = golden("bbc-sentences", old_sp.ids, t_old, t_new, queries)
    train_items = [i for i in old_sp.ids if hash_split("/".join(i.split("/")[:2])) == "train"]
    sample_ids = [train_items[j] for j in np.random.default_rng(0).permutation(len(train_items))[:sample]]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        res = curve(old_sp, new_sp, texts, q_old, q_new, rel, work=Path(tmp) / "sentences", order="random",
                    sample_ids=sample_ids, backend=backend)
        res["seconds"] = time.perf_counter() - t0
        res.pop("collection").close()
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", type=int, default=None, help="step 1 only: N sentences per backend")
    ap.add_argument("--check-backends", default="onnx-int8,openvino-int8")
    ap.add_argument("--backend", default="openvino-int8")
    ap.add_argument("--items", type=int, default=None, help="a fixed random sample of N sentences (default: all)")
    ap.add_argument("--sample", type=int, default=1000, help="items re-embedded by upgrade start (adapter, fusion)")
    ap.add_argument("--queries", type=int, default=None)
    ap.add_argument("--encode-only", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    print(machine_header(), flush=True)
    if args.check:
        check(args.check, args.check_backends.split(","))
        return
    seconds = encode(args.backend, args.items)
    print(f"encoding (this run): {sum(seconds.values()):.0f} s; load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.encode_only:
        return
    res = run_curve(args.backend, args.items, args.sample, args.queries)
    res["corpus"] = "bbc-sentences" + (f" (sample of {args.items:,})" if args.items else "")
    res["cost"] = {"batch": {"added_us": float("nan"), "plain_us": float("nan"), "fused_us": float("nan")},
                   "single": {"added_us": float("nan"), "plain_us": float("nan")}}
    print("\n".join(report(res)[:-1]))
    print(f"never lose (fused >= old - 1 SE at every fraction): {'yes' if res['never_loses'] else 'NO'}; "
          f"curve {res['seconds']:.0f} s (start {res['start_s']:.1f} s); backend {args.backend} for both models")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
