"""Backfill throughput vs plain encoding (upgrade issue target: within 5 %).

Anchor: `encode_items` of the same items with the new model, in memory (no chunk files, no index).
repspace: `upgrade backfill` of an index over those items — re-reads the corpus from the index's
manifest, checks its fingerprint, encodes in resumable chunks saved atomically, builds the index
and writes it atomically. Runs alternate (anchor, backfill, anchor, backfill, ...) so load drifts cancel.

Usage: python benchmarks/backfill.py [--view title] [--rounds 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine  # noqa: E402

from repspace.compat.backfill import backfill  # noqa: E402
from repspace.datasets import load_dataset  # noqa: E402
from repspace.encoders import get_encoder  # noqa: E402
from repspace.encoders.job import encode_items  # noqa: E402
from repspace.index import Index  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--view", default="title")
    ap.add_argument("--old", default="minilm-l3-onnx")
    ap.add_argument("--new", default="minilm-l6")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    print(f"machine: {machine()}")
    items = load_dataset(f"bbc-news:{args.view}")
    work = Path(tempfile.mkdtemp(prefix="backfill-bench-"))
    old = encode_items(get_encoder(args.old), items, out=work / "old-space", progress=False)
    Index.build(old, "Flat").save(work / "old-index")
    enc = get_encoder(args.new)
    encode_items(enc, items.limit(64), progress=False)  # warm-up
    plain, bf = [], []
    for r in range(args.rounds):
        t0 = time.perf_counter()
        encode_items(enc, items, progress=False)
        plain.append(time.perf_counter() - t0)
        out = work / f"new-index-{r}"
        t0 = time.perf_counter()
        backfill(work / "old-index", args.new, out, progress=False)
        bf.append(time.perf_counter() - t0)
        shutil.rmtree(out)
        print(f"round {r}: plain {plain[-1]:.2f} s, backfill {bf[-1]:.2f} s", file=sys.stderr, flush=True)
    p, b = statistics.median(plain), statistics.median(bf)
    print(f"\n| items | model | plain encode (s, median of {args.rounds}) | backfill (s) | items/s plain | items/s backfill | "
          "backfill / plain time |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {len(items)} bbc-news {args.view}s | {args.old} -> {args.new} | {p:.2f} | {b:.2f} | {len(items) / p:.1f} | "
          f"{len(items) / b:.1f} | {b / p:.3f} |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
