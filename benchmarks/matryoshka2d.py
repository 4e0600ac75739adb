"""2D Matryoshka on CPU: MiniLM-L6 fine-tuned over (layers x dims), beside 1D Matryoshka and the untouched model.

Trains on the train half of bbc-news (title, body) pairs (1 epoch, batch 32, 128 training tokens, lr 2e-5):
  1D: MatryoshkaLoss(InfoNCE) over dims 32/64/128/256/384 (the full model only), as `compress finetune`;
  2D: the same loss on layers 1/2/3 and 6 (`compress finetune --layers 1,2,3,6`, LayerPairLoss).
With `--distill DATASET`: the 2D model is then distilled (`compress.finetune.distill_layers`, as `compress finetune
--distill`) on the dataset's texts for `--distill-rounds` rounds of one epoch each (the depths `--distill-layers` and
the last learn the 2D model's own full embeddings; each round continues the last, its own seed), every round kept
and scored: the curve of quality against the distillation budget.
Then, for each model and each depth L in 1, 2, 3, 6, encodes the held-out test titles and bodies with only L
layers (`get_encoder(model, layers=L)`, as `repspace encode --layers L`) and scores title -> body nDCG@10 at each
prefix dimension. texts/s: the first test bodies (the corpus side, up to 256 tokens) encoded by the L-layer model
(speed depends on the depth only), the depths interleaved over rounds, best round each, same run. Trained models are kept in the benchmark cache (resumable).

Usage: python benchmarks/matryoshka2d.py [--epochs 1] [--lr 2e-5] [--kinds 1d,2d] [--threads 2] [--layers 1,2,3,6]
       [--speed-texts 256] [--speed-rounds 3] [--distill bbc-sentences@train] [--distill-texts N]
       [--distill-rounds 3] [--distill-layers 2,3] [--distill-lr 1e-4] [--distill-length 64] [--eval-layers 1,2,3,6]
       [--distill-from DIR] [--score distilled]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine  # noqa: E402
from _spaces import CACHE  # noqa: E402

from repspace.compress.finetune import distill_layers, finetune_matryoshka  # noqa: E402
from repspace.datasets import load_dataset  # noqa: E402
from repspace.encoders import get_encoder  # noqa: E402
from repspace.encoders.job import encode_items  # noqa: E402
from repspace.evaluation import query_retrieval  # noqa: E402

DIMS = (32, 64, 128, 256, 384)


def train(kind: str, layers: list[int], epochs: int, threads: int | None, lr: float) -> tuple[str, float | None]:
    out = CACHE / f"minilm-l6-{kind}-e{epochs}" if lr == 2e-5 else CACHE / f"minilm-l6-{kind}-e{epochs}-lr{lr:g}"
    if (out / "modules.json").is_file():
        return str(out), None
    titles, bodies = load_dataset("bbc-news:title@train"), load_dataset("bbc-news:body@train")
    t0 = time.perf_counter()
    finetune_matryoshka("minilm-l6", titles.data, bodies.data, out, dims=DIMS[:-1], epochs=epochs, threads=threads, lr=lr,
                        layers=layers if kind == "2d" else None, progress=False)
    return str(out), time.perf_counter() - t0


def distilled(base: str, args: argparse.Namespace) -> dict[str, tuple[str, float | None]]:
    texts = [t for spec in args.distill.split(",") for t in load_dataset(spec).data]
    texts = texts[: args.distill_texts] if args.distill_texts else texts
    tag = f"{args.distill.replace(':', '-').replace('@', '-').replace(',', '+')}-{len(texts)}-" \
          f"{args.distill_layers.replace(',', '')}-lr{args.distill_lr:g}-s{args.distill_length}"
    out, current = {}, args.distill_from or base
    if args.distill_from:
        tag += f"-from-{Path(args.distill_from).name[-24:]}"
    for r in range(1, args.distill_rounds + 1):
        path = CACHE / f"{Path(base).name}-distill-{tag}-r{r}"
        secs = None
        if not (path / "modules.json").is_file():
            t0 = time.perf_counter()
            distill_layers(current, texts, path, [int(x) for x in args.distill_layers.split(",")], dims=DIMS[:-1],
                           teacher=base, epochs=1, batch_size=64, lr=args.distill_lr,
                           max_seq_length=args.distill_length, seed=r, threads=args.threads, progress=False)
            secs = time.perf_counter() - t0
        start = f"{Path(args.distill_from).name[-6:]} + " if args.distill_from else ""
        out[f"2D + {start}distilled {r} x {len(texts)}"] = (str(path), secs)
        print(f"distillation round {r}: {'cached' if secs is None else f'{secs:.0f} s'} -> {path}", flush=True)
        current = str(path)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--layers", default="1,2,3,6")
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--kinds", default="1d,2d")
    ap.add_argument("--speed-texts", type=int, default=256)
    ap.add_argument("--speed-rounds", type=int, default=3)
    ap.add_argument("--distill", default=None)
    ap.add_argument("--distill-texts", type=int, default=None)
    ap.add_argument("--distill-rounds", type=int, default=3)
    ap.add_argument("--distill-layers", default="2,3")
    ap.add_argument("--distill-lr", type=float, default=1e-4)
    ap.add_argument("--distill-length", type=int, default=64)
    ap.add_argument("--eval-layers", default=None)
    ap.add_argument("--distill-from", default=None, help="continue from this distilled model (the teacher stays the 2D "
                    "model)")
    ap.add_argument("--score", default=None, help="score only these models (untouched is always scored: the baseline)")
    args = ap.parse_args()
    layers = [int(x) for x in args.layers.split(",")]
    print(f"machine: {machine()}")
    models = {"untouched": ("minilm-l6", None)}
    for kind in args.kinds.split(","):
        path, secs = train(kind, layers, args.epochs, args.threads, args.lr)
        models[kind] = (path, secs)
        print(f"{kind} fine-tune: {'cached' if secs is None else f'{secs:.0f} s'} -> {path}", flush=True)
    if args.distill:
        if "2d" not in models:
            ap.error("--distill continues the 2D model: give --kinds with 2d")
        models.update(distilled(models["2d"][0], args))
    eval_layers = sorted({int(x) for x in (args.eval_layers or args.layers).split(",")} | {max(layers)})
    qi, ci = load_dataset("bbc-news:title@test"), load_dataset("bbc-news:body@test")
    rows = []
    if args.score:
        keep = {"untouched", *args.score.split(",")}
        models = {k: v for k, v in models.items() if k in keep or (k.startswith("2D +") and "distilled" in keep)}
    for kind, (path, _) in models.items():
        for L in eval_layers:
            enc = get_encoder(path, layers=L if L < max(layers) else None)
            q, c = encode_items(enc, qi, progress=False), encode_items(enc, ci, progress=False)
            nd = [query_retrieval(q.truncate(d) if d < q.dim else q, c.truncate(d) if d < c.dim else c)["ndcg@10"]
                  for d in DIMS]
            rows.append((kind, L, nd))
            print(f"{kind} L={L}: nDCG@10 " + " ".join(f"{d}:{v:.4f}" for d, v in zip(DIMS, nd)), flush=True)
    # speed depends on the depth only: the untouched model's L-layer copies, interleaved rounds, best of each
    speed = ci.subset(np.arange(min(args.speed_texts, len(ci))))
    encoders = {L: get_encoder("minilm-l6", layers=L if L < max(layers) else None) for L in eval_layers}
    best = {L: 0.0 for L in eval_layers}
    for _ in range(args.speed_rounds):
        for L, enc in encoders.items():
            t0 = time.perf_counter()
            encode_items(enc, speed, batch_size=32, progress=False)
            best[L] = max(best[L], len(speed) / (time.perf_counter() - t0))
    print("texts/s (best of rounds): " + " ".join(f"L={L}: {v:.1f}" for L, v in best.items()), flush=True)
    rows = [(kind, L, best[L], nd) for kind, L, nd in rows]
    full = next(r for r in rows if r[0] == "untouched" and r[1] == max(layers))
    base_tps, base_nd = full[2], full[3][-1]
    print(f"\nheld-out {len(qi)} titles -> {len(ci)} bodies; nDCG@10 (retained vs the untouched full model "
          f"{base_nd:.4f}); speed = texts/s on {len(speed)} test bodies relative to the untouched 6-layer model "
          f"({base_tps:.1f} texts/s)\n")
    print("| model | layers | speed-up | " + " | ".join(f"{d}-d" for d in DIMS) + " |")
    print("|---|---|---|" + "---|" * len(DIMS))
    for kind, L, tps, nd in rows:
        print(f"| {kind} | {L} | {tps / base_tps:.2f}x | " + " | ".join(f"{v:.4f} ({v / base_nd:.3f})" for v in nd) + " |")


if __name__ == "__main__":
    main()
