"""How close each encoder backend comes to this machine's arithmetic limit.

Usage: python benchmarks/encode_limit.py [--model minilm-l6] [--backends torch,onnx,...] [--n-short 256]
                                         [--n-long 128] [--reps 2] [--threads N]

1. The machine: CPU model, SIMD flags, load average; the fp32 GEMM peak (torch and numpy matmul and an onnxruntime
   MatMul graph, best of a few shapes) and the int8 GEMM peak through onnxruntime (a MatMulInteger graph,
   u8 x s8 -> s32), with every core, measured before and after the backends (the best is the peak: on a shared
   machine other load lowers either).
2. The model's FLOPs per token: 2 x (parameters in the encoder's matrix multiplies) per token, plus attention
   (QK^T and AV: 4 x L x d per token per layer, L the padded length of the token's batch) — counted on the padded
   batches each backend actually ran.
3. Each backend side by side (same texts, same batches): texts/s, tokens/s, achieved GFLOP/s and its fraction of
   the fp32 peak (and, for int8 backends, of the int8 peak), on bbc-news titles (short) and bodies (long).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _backends import machine_header, quality_rows, quality_table, run_all, speed_table  # noqa: E402

from repspace.encoders import get_encoder  # noqa: E402
from repspace.encoders.backends import BACKENDS, cores  # noqa: E402
from repspace.encoders.backends.limit import flops_of, fp32_peak, model_shape, ort_gemm_peak  # noqa: E402


def peaks(threads: int) -> tuple[dict[str, float], dict[str, float]]:
    return {**fp32_peak(threads), **ort_gemm_peak(threads, int8=False)}, ort_gemm_peak(threads, int8=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="minilm-l6")
    ap.add_argument("--backends", default=",".join(BACKENDS))
    ap.add_argument("--n-short", type=int, default=256)
    ap.add_argument("--n-long", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    threads = args.threads or cores()
    backends = ["torch"] + [b for b in args.backends.split(",") if b != "torch"]

    print(machine_header())
    f32, i8 = peaks(threads)
    print(f"fp32 GEMM ({threads} threads): " + ", ".join(f"{k} {v:.1f}" for k, v in f32.items()) + " GFLOP/s")
    print(f"int8 GEMM ({threads} threads): " + ", ".join(f"{k} {v:.1f}" for k, v in i8.items()) + " GOP/s")

    params, layers, hidden = model_shape(get_encoder(args.model))
    print(f"model {args.model}: {params / 1e6:.2f} M parameters in matrix multiplies, {layers} layers, d={hidden}: "
          f"{2 * params / 1e6:.1f} MFLOP/token + attention 4·L·d per layer (L=128: "
          f"{layers * 4 * 128 * hidden / 1e6:.1f} MFLOP/token)")
    print(f"{args.n_short} titles, {args.n_long} bodies, batch {args.batch_size}, best of {args.reps}, threads "
          f"{args.threads or 'default'}")
    res = run_all(args.model, backends, args.n_short, args.n_long, args.batch_size, args.reps, args.threads)
    f32b, i8b = peaks(threads)  # again after the backends: the peak is the best seen (other load varies)
    print(f"fp32 GEMM again after the backends: best {max(f32b.values()):.1f} GFLOP/s; int8 {max(i8b.values()):.1f} GOP/s")
    peak32, peak8 = max(*f32.values(), *f32b.values()), max(*i8.values(), *i8b.values())
    print(f"peaks (best of both): fp32 {peak32:.1f} GFLOP/s, int8 {peak8:.1f} GOP/s ({peak8 / peak32:.2f}x fp32)")
    print("\n" + "\n".join(speed_table(res)) + "\n")
    lines = ["| backend | length | padded tokens/s | GFLOP/s | of fp32 peak | of int8 peak |", "|---|---|---|---|---|---|"]
    for b, r in res.items():
        for kind in ("short", "long"):
            run = r[kind]
            gf = flops_of(run.batches, params, layers, hidden) / run.seconds / 1e9
            padded = sum(n * L for n, L in run.batches) / run.seconds
            of8 = f"{gf / peak8:.1%}" if BACKENDS[b].int8 else "-"
            lines.append(f"| {b} | {kind} | {padded:,.0f} | {gf:.1f} | {gf / peak32:.1%} | {of8} |")
    print("\n".join(lines) + "\n")
    n_pairs = min(args.n_short, args.n_long)
    print("\n".join(quality_table(quality_rows(res, n_pairs), n_pairs)))
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
