"""repspace encode vs raw SentenceTransformer.encode, side by side, same texts and batch size.

Usage: python benchmarks/encode.py [--n 2000] [--view body] [--reps 1]

Prints absolute times, the overhead ratio (repspace / raw, target <= 1.05) and the resume
overhead (an encode interrupted half-way plus its resume, over an uninterrupted one).

    python benchmarks/encode.py --backends [torch,onnx,onnx-int8,openvino,openvino-int8] [--model minilm-l6]
                                [--n-short 256] [--n-long 256] [--reps 2] [--threads N]

compares the encoder backends side by side in one run instead: texts/s and tokens/s on bbc-news titles (short) and
bodies (long), cos vs torch, nDCG@10 title -> body relative to torch, and compatibility with the torch gallery
(its queries -> torch bodies >= torch -> torch, `repspace compat`'s criterion). Exports are made (and cached) first.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, timed  # noqa: E402

from repspace import encode_items, get_encoder, load_dataset  # noqa: E402


class _Interrupt(Exception):
    pass


def backends_main(argv: list[str]) -> None:
    from _backends import machine_header, quality_rows, quality_table, run_all, speed_table

    ap = argparse.ArgumentParser()
    ap.add_argument("--backends", nargs="?", const="torch,onnx,onnx-int8,openvino,openvino-int8")
    ap.add_argument("--model", default="minilm-l6")
    ap.add_argument("--n-short", type=int, default=256)
    ap.add_argument("--n-long", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    backends = args.backends.split(",")
    if backends[0] != "torch":
        backends = ["torch"] + [b for b in backends if b != "torch"]
    print(machine_header())
    print(f"model {args.model}, {args.n_short} titles, {args.n_long} bodies, batch {args.batch_size}, best of {args.reps}")
    res = run_all(args.model, backends, args.n_short, args.n_long, args.batch_size, args.reps, args.threads)
    print("\n".join(speed_table(res)))
    n_pairs = min(args.n_short, args.n_long)
    print("\n".join(quality_table(quality_rows(res, n_pairs), n_pairs)))
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in __import__('os').getloadavg())}")


def main() -> None:
    if any(a.startswith("--backends") for a in sys.argv[1:]):
        return backends_main(sys.argv[1:])
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--view", default="body")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--reps", type=int, default=1)
    args = ap.parse_args()

    items = load_dataset(f"bbc-news:{args.view}").limit(args.n)
    texts = list(items.data)
    encoder = get_encoder("minilm-l6")
    model = encoder.model  # the very same SentenceTransformer object for both sides
    model.encode(texts[:64], batch_size=args.batch_size)  # warm-up
    tmp = Path(tempfile.mkdtemp())
    raw_t, rep_t = [], []
    try:
        for r in range(args.reps):
            t, ref = timed(lambda: model.encode(texts, batch_size=args.batch_size, show_progress_bar=False))
            raw_t.append(t)
            out = tmp / f"rep{r}"
            t, space = timed(lambda: encode_items(encoder, items, out=out, batch_size=args.batch_size, progress=False))
            rep_t.append(t)
            cos = np.sum(space.vectors * ref, axis=1)
            assert cos.min() > 0.9999, cos.min()
        raw, rep = float(np.median(raw_t)), float(np.median(rep_t))

        # resume: interrupt after about half the items, then re-run the same job
        calls = {"n": 0}
        orig = encoder.encode_batch

        def flaky(batch):
            calls["n"] += len(batch)
            if calls["n"] > len(texts) // 2:
                raise _Interrupt()
            return orig(batch)

        encoder.encode_batch = flaky
        out = tmp / "resume"
        t_first = timed(lambda: _swallow(lambda: encode_items(encoder, items, out=out, batch_size=args.batch_size, progress=False)))[0]
        encoder.encode_batch = orig
        t_second, _ = timed(lambda: encode_items(encoder, items, out=out, batch_size=args.batch_size, progress=False))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"machine: {machine()}")
    print(f"texts: {len(texts)} bbc-news {args.view}, model minilm-l6, batch {args.batch_size}, reps {args.reps}")
    print(f"raw SentenceTransformer.encode: {raw:8.2f} s  ({len(texts) / raw:7.1f} texts/s)")
    print(f"repspace encode_items (+disk):  {rep:8.2f} s  ({len(texts) / rep:7.1f} texts/s)")
    print(f"overhead ratio repspace/raw:    {rep / raw:8.3f}  (target <= 1.05)")
    print(f"interrupted at ~50% + resume:   {t_first + t_second:8.2f} s = {(t_first + t_second) / rep:.3f} x uninterrupted")


def _swallow(fn):
    try:
        fn()
    except _Interrupt:
        pass


if __name__ == "__main__":
    main()
