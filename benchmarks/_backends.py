"""Shared by benchmarks/encode.py --backends and benchmarks/encode_limit.py: every encoder backend side by side on
bbc-news titles (short) and bodies (long), with the machine's CPU, flags and load printed first."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np

from repspace import get_encoder, load_dataset
from repspace.encoders.backends import BACKENDS, cores, cpu_info
from repspace.studies.backends import SIMD_PREFIXES, encode_timed as _encode_timed, pair_ndcg10 as ndcg10


@dataclass
class Run:
    backend: str
    seconds: float
    vectors: np.ndarray
    batches: list[tuple[int, int]] = field(default_factory=list)  # (texts, padded length) per batch
    tokens: int = 0  # real (unpadded) tokens
    load_s: float = 0.0


def machine_header() -> str:
    model, flags = cpu_info()
    simd = sorted(f for f in flags if f.startswith(SIMD_PREFIXES))
    load = os.getloadavg()
    import onnxruntime
    import torch

    try:
        import openvino

        ov = openvino.__version__.split("-")[0]
    except ImportError:
        ov = "absent"
    return (f"cpu: {model}, {cores()} cores usable ({os.cpu_count()} online)\n"
            f"flags: {' '.join(simd)}\n"
            f"load average (1/5/15 min) at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n"
            f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, openvino {ov}")


def articles(n: int) -> tuple[list[str], list[str]]:
    """Titles and bodies of n bbc-news articles spread over the whole set (every category)."""
    titles, bodies = load_dataset("bbc-news:title"), load_dataset("bbc-news:body")
    assert titles.ids == bodies.ids
    step = max(1, len(titles) // n)
    pick = list(range(0, len(titles), step))[:n]
    return [titles.data[i] for i in pick], [bodies.data[i] for i in pick]


def encode_timed(enc, texts: list[str], batch_size: int, reps: int, count) -> Run:
    """Length-sorted batches, the best of `reps` passes after a warm-up batch (`repspace.studies.backends`)."""
    r = _encode_timed(enc, texts, batch_size, reps, count)
    return Run(enc.backend, r.seconds, r.vectors, r.batches, r.tokens)


def compat_gain(q_new: np.ndarray, q_old: np.ndarray, g_old: np.ndarray) -> tuple[float, float]:
    """(new queries -> old gallery, old -> old) nDCG@10: `repspace compat`'s criterion is new->old >= old->old."""
    return ndcg10(q_new, g_old), ndcg10(q_old, g_old)


def run_all(model: str, backends: list[str], n_short: int, n_long: int, batch_size: int, reps: int,
            threads: int | None = None) -> dict[str, dict[str, Run]]:
    titles, bodies = articles(max(n_short, n_long))
    titles, bodies = titles[:n_short], bodies[:n_long]
    counter = None
    results: dict[str, dict[str, Run]] = {}
    for b in backends:
        t0 = time.perf_counter()
        enc = get_encoder(model, backend=b, threads=threads)  # exports on first use (not timed below)
        load_s = time.perf_counter() - t0
        if counter is None and b != "torch":
            counter = enc.count_tokens
        if counter is None:
            counter = get_encoder(model, backend="onnx").count_tokens
        results[b] = {"short": encode_timed(enc, titles, batch_size, reps, counter),
                      "long": encode_timed(enc, bodies, batch_size, reps, counter)}
        results[b]["short"].load_s = load_s
        del enc
    return results


def quality_rows(results: dict[str, dict[str, Run]], n_pairs: int) -> dict[str, dict[str, float]]:
    """Per backend: cos vs torch (short, long), nDCG@10 title -> body and its ratio to torch, compat new->old."""
    ref = results["torch"]
    base = ndcg10(ref["short"].vectors[:n_pairs], ref["long"].vectors[:n_pairs])
    rows = {}
    for b, r in results.items():
        cs = (r["short"].vectors * ref["short"].vectors).sum(1)
        cl = (r["long"].vectors * ref["long"].vectors).sum(1)
        nd = ndcg10(r["short"].vectors[:n_pairs], r["long"].vectors[:n_pairs])
        new_old, old_old = compat_gain(r["short"].vectors[:n_pairs], ref["short"].vectors[:n_pairs],
                                       ref["long"].vectors[:n_pairs])
        rows[b] = {"cos_short": float(cs.mean()), "cos_long": float(cl.mean()), "cos_min": float(min(cs.min(), cl.min())),
                   "ndcg": nd, "ndcg_ratio": nd / base, "new_old": new_old, "old_old": old_old}
    return rows


def speed_table(results: dict[str, dict[str, Run]]) -> list[str]:
    ref = results["torch"]
    lines = ["| backend | titles/s | × torch | tokens/s (short) | bodies/s | × torch | tokens/s (long) | first load s |",
             "|---|---|---|---|---|---|---|---|"]
    for b, r in results.items():
        s, lg = r["short"], r["long"]
        ns, nl = len(s.vectors), len(lg.vectors)
        lines.append(f"| {b} | {ns / s.seconds:.1f} | {ref['short'].seconds / s.seconds:.2f} | {s.tokens / s.seconds:,.0f} | "
                     f"{nl / lg.seconds:.2f} | {ref['long'].seconds / lg.seconds:.2f} | {lg.tokens / lg.seconds:,.0f} | "
                     f"{s.load_s:.1f} |")
    return lines


def quality_table(rows: dict[str, dict[str, float]], n_pairs: int) -> list[str]:
    lines = [f"| backend | cos vs torch, titles | cos vs torch, bodies | min cos | nDCG@10 title→body ({n_pairs}) | "
             "÷ torch | its queries → torch gallery | torch → torch | compatible |", "|---|---|---|---|---|---|---|---|---|"]
    for b, q in rows.items():
        lines.append(f"| {b} | {q['cos_short']:.5f} | {q['cos_long']:.5f} | {q['cos_min']:.4f} | {q['ndcg']:.4f} | "
                     f"{q['ndcg_ratio']:.4f} | {q['new_old']:.4f} | {q['old_old']:.4f} | "
                     f"{'yes' if q['new_old'] >= q['old_old'] - 1e-9 else 'no'} |")
    return lines


def default_backends() -> str:
    return ",".join(BACKENDS)
