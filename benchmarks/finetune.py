"""MatryoshkaLoss fine-tune of a real encoder on CPU: MiniLM-L6 on bbc-news (title, body) pairs.

Trains `MatryoshkaLoss(InfoNCELoss)` over dims 32/64/128/256/384 on the train half of the articles
(1 epoch, batch 32, 128 training tokens), then compares the dimension curve (truncation, held-out
title -> body nDCG@10) of the untouched and the fine-tuned model, side by side in one run.

Usage: python benchmarks/finetune.py [--epochs 1] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).parent))
from _common import machine  # noqa: E402
from _spaces import bench_space  # noqa: E402

from repspace.compress.finetune import finetune_matryoshka  # noqa: E402
from repspace.datasets import hash_split, load_dataset  # noqa: E402
from repspace.encoders import get_encoder  # noqa: E402
from repspace.encoders.job import encode_items  # noqa: E402
from repspace.evaluation import query_retrieval  # noqa: E402

DIMS = (16, 32, 48, 64, 96, 128, 192, 256, 384)


def curve(q, c) -> list[float]:
    return [query_retrieval(q.truncate(d) if d < q.dim else q, c.truncate(d) if d < c.dim else c)["ndcg@10"] for d in DIMS]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    print(f"machine: {machine()}")
    titles, bodies = load_dataset("bbc-news:title"), load_dataset("bbc-news:body")
    train = [k for k, i in enumerate(titles.ids) if hash_split(i) == "train"]
    test_ids = [i for i in titles.ids if hash_split(i) == "test"]
    out = Path(tempfile.mkdtemp(prefix="ft-")) / "minilm-l6-matryoshka"
    t0 = time.perf_counter()
    res = finetune_matryoshka("minilm-l6", [titles.data[k] for k in train], [bodies.data[k] for k in train], out,
                              dims=(32, 64, 128, 256), epochs=args.epochs, threads=args.threads, progress=False)
    train_s = time.perf_counter() - t0
    enc = get_encoder(str(out))
    qt = encode_items(enc, load_dataset("bbc-news:title@test"), progress=False)
    ct = encode_items(enc, load_dataset("bbc-news:body@test"), progress=False)
    base_q = bench_space("minilm-l6", "bbc-news:title").select(test_ids)
    base_c = bench_space("minilm-l6", "bbc-news:body").select(test_ids)
    before, after = curve(base_q, base_c), curve(qt, ct)
    print(f"\nfine-tune: {res['pairs']} train pairs, {args.epochs} epoch(s), {train_s:.0f} s "
          f"({train_s / args.epochs / 60:.1f} min/epoch); loss per epoch {[round(h['loss'], 4) for h in res['history']]}")
    print(f"held-out: {len(test_ids)} titles -> {len(test_ids)} bodies, nDCG@10 after truncation to each dimension\n")
    print("| dim | untouched MiniLM-L6 | retained | MatryoshkaLoss fine-tuned | retained | fine-tuned / untouched |")
    print("|---|---|---|---|---|---|")
    for d, b, a in zip(DIMS, before, after):
        print(f"| {d} | {b:.4f} | {b / before[-1]:.3f} | {a:.4f} | {a / after[-1]:.3f} | {a / b:.3f} |")


if __name__ == "__main__":
    main()
