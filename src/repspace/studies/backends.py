"""Every encoder backend of one model side by side: the measurement behind the demo's "Encoder backends" section.

    from repspace.studies.backends import backend_study
    res = backend_study(torch_titles, torch_bodies, title_text, body_text)   # plain dicts, nothing rendered
    res["speed_rows"][0]["titles/s"], res["quality_rows"][1]["compatible"]

The torch spaces (`queries`: titles, `gallery`: bodies of the same articles, encoded by the torch backend) are the
gallery every backend is checked against. A spread of `n_short` titles and `n_long` bodies is encoded by each backend
(exported on first use; that time is reported, not timed with the rest) in the same length-sorted batches:
texts/s and × torch; achieved GFLOP/s on the padded batches and its fraction of this machine's fp32 GEMM peak; cos
vs torch; nDCG@10 title → body among the `n_long` articles, ÷ torch's; and `repspace compat`'s criterion — the
backend's titles searching the whole torch body gallery do at least as well as torch's titles (recall@10 and
nDCG@10, no tolerance). A backend whose runtime is missing, or whose export is refused, is listed in `skipped`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from repspace.spaces import Space

SIMD_PREFIXES = ("avx", "amx", "fma", "f16c", "sse4", "asimd", "sve")


@dataclass
class TimedRun:
    """One backend's pass over some texts: the best time, the vectors (input order), (texts, padded length) per
    batch and the real (unpadded) token count."""

    seconds: float
    vectors: np.ndarray
    batches: list[tuple[int, int]] = field(default_factory=list)
    tokens: int = 0


def token_counter(encoder: Any) -> Callable[[Sequence[str]], list[int]]:
    """Tokens per text as the model sees them (the exported backends' tokenizer, or sentence-transformers')."""
    if hasattr(encoder, "count_tokens"):
        return encoder.count_tokens
    return lambda texts: [int(x) for x in encoder.model.tokenize(list(texts))["attention_mask"].sum(1)]


def encode_timed(encoder: Any, texts: Sequence[str], batch_size: int = 32, reps: int = 1,
                 count: Callable[[Sequence[str]], list[int]] | None = None) -> TimedRun:
    """Length-sorted batches (as `encode_items` does); the best of `reps` timed passes after one warm-up batch."""
    order = np.argsort([-len(t) for t in texts], kind="stable")
    batches = [[texts[i] for i in order[s:s + batch_size]] for s in range(0, len(texts), batch_size)]
    encoder.encode_batch(batches[-1][:8])
    best, parts = float("inf"), []
    for _ in range(max(1, reps)):
        t0 = time.perf_counter()
        parts = [encoder.encode_batch(b) for b in batches]
        best = min(best, time.perf_counter() - t0)
    vectors = np.empty((len(texts), parts[0].shape[1]), np.float32)
    vectors[order] = np.concatenate(parts)
    lens = [(count or token_counter(encoder))(b) for b in batches]
    return TimedRun(best, vectors, [(len(b), max(n)) for b, n in zip(batches, lens)], sum(sum(n) for n in lens))


def machine() -> dict[str, Any]:
    """CPU model, its SIMD flags, the cores this process may use and the load average now."""
    from repspace.encoders.backends import cores, cpu_info

    model, flags = cpu_info()
    return {"cpu": model, "flags": sorted(f for f in flags if f.startswith(SIMD_PREFIXES)), "cores": cores(),
            "load": [round(x, 2) for x in os.getloadavg()]}


def pair_ndcg10(q: np.ndarray, g: np.ndarray) -> float:
    """nDCG@10 when query i's one relevant item is gallery item i."""
    s = q @ g.T
    rank = (s > s[np.arange(len(q)), np.arange(len(q))][:, None]).sum(1)
    return float(np.mean(np.where(rank < 10, 1.0 / np.log2(rank + 2), 0.0)))


def _spread(ids: Sequence[str], n: int) -> list[str]:
    """n ids evenly spaced over `ids` (every topic of a sorted dataset is present)."""
    if n >= len(ids):
        return list(ids)
    return [ids[int(k)] for k in np.linspace(0, len(ids) - 1, n).astype(int)]


def backend_study(queries: Space, gallery: Space, query_texts: Mapping[str, str], gallery_texts: Mapping[str, str], *,
                  backends: Sequence[str] | None = None, n_short: int = 256, n_long: int = 64, batch_size: int = 32,
                  reps: int = 1, threads: int | None = None, peak_seconds: float = 0.5) -> dict[str, Any]:
    """Measure every backend of `gallery.model` (a sentence-transformers model) against its torch spaces.

    An int8 backend's fraction of the fp32 peak may pass 100 %: its matrix multiplies run on integer dot products.
    Returns {"model", "machine", "peak_gflops", "peak", "shape", "n_short", "n_long", "gallery_items",
    "speed_rows", "quality_rows", "skipped": [{"backend", "reason"}], "load_after"}."""
    from repspace.encoders import get_encoder
    from repspace.encoders.backends import BACKENDS, cores
    from repspace.encoders.backends.limit import flops_of, fp32_peak, model_shape, ort_gemm_peak
    from repspace.errors import RepspaceError
    from repspace.evaluation import query_retrieval

    model = gallery.model
    backends = ["torch"] + [b for b in (backends or list(BACKENDS)) if b != "torch"]
    in_gallery = set(gallery.ids)
    shared = [i for i in queries.ids if i in in_gallery and i in query_texts and i in gallery_texts]
    short_ids = _spread(shared, n_short)
    long_ids = _spread(short_ids, n_long)  # the bodies' articles are among the titles'
    pos = [short_ids.index(i) for i in long_ids]
    titles = [query_texts[i] for i in short_ids]
    bodies = [gallery_texts[i] for i in long_ids]
    info = machine()

    def measure_peak() -> dict[str, float]:
        square = ((2048, 2048, 2048),)
        out = fp32_peak(threads or cores(), seconds=peak_seconds, shapes=square, with_numpy=False)
        try:
            out.update(ort_gemm_peak(threads or cores(), int8=False, seconds=peak_seconds, shapes=square))
        except ImportError:
            pass
        return out

    peak = measure_peak()
    t0 = time.perf_counter()
    torch_enc = get_encoder(model, threads=threads)
    torch_load = time.perf_counter() - t0
    shape = model_shape(torch_enc)
    runs: dict[str, tuple[TimedRun, TimedRun, float]] = {}
    skipped = []
    count = token_counter(torch_enc)
    for b in backends:
        t0 = time.perf_counter()
        try:
            enc = torch_enc if b == "torch" else get_encoder(model, backend=b, threads=threads)
        except RepspaceError as e:  # a missing runtime, or an export refused by its check against torch
            skipped.append({"backend": b, "reason": str(e).splitlines()[0]})
            continue
        load_s = torch_load if b == "torch" else time.perf_counter() - t0
        runs[b] = (encode_timed(enc, titles, batch_size, reps, count), encode_timed(enc, bodies, batch_size, reps, count),
                   load_s)
        del enc

    # the peak is the best seen before and after the backends ran (other load on a shared machine lowers either)
    peak = {k: max(v, peak.get(k, 0.0)) for k, v in measure_peak().items()}
    peak_gflops = max(peak.values())
    params, layers, hidden = shape
    ref_s, ref_l, _ = runs["torch"]
    old_q = queries.select(short_ids)
    old_m = query_retrieval(old_q, gallery)
    ref_pair = pair_ndcg10(ref_s.vectors[pos], ref_l.vectors)
    speed_rows, quality_rows = [], []
    for b, (s, lg, load_s) in runs.items():
        row = {"backend": b, "titles/s": len(titles) / s.seconds, "× torch (titles)": ref_s.seconds / s.seconds,
               "bodies/s": len(bodies) / lg.seconds, "× torch (bodies)": ref_l.seconds / lg.seconds}
        for label, run in (("titles", s), ("bodies", lg)):
            gf = flops_of(run.batches, params, layers, hidden) / run.seconds / 1e9
            row[f"GFLOP/s ({label})"] = gf
            row[f"of fp32 peak ({label})"] = f"{gf / peak_gflops:.0%}"
        row["export + load s"] = round(load_s, 1)
        speed_rows.append(row)

        cs, cl = (s.vectors * ref_s.vectors).sum(1), (lg.vectors * ref_l.vectors).sum(1)
        nd = pair_ndcg10(s.vectors[pos], lg.vectors)
        new_m = query_retrieval(old_q.with_vectors(s.vectors), gallery)
        ok = all(new_m[k] >= old_m[k] for k in ("recall@10", "ndcg@10"))
        quality_rows.append({"backend": b, "cos vs torch (titles)": float(cs.mean()), "cos vs torch (bodies)": float(cl.mean()),
                             "min cos": float(min(cs.min(), cl.min())), f"nDCG@10 title→body ({len(long_ids)})": nd,
                             "÷ torch": nd / ref_pair if ref_pair else float("nan"),
                             "its titles → torch bodies R@10": new_m["recall@10"],
                             "its titles → torch bodies nDCG@10": new_m["ndcg@10"], "compatible": ok})
    return {"model": model, "machine": info, "peak_gflops": peak_gflops, "peak": peak,
            "shape": {"params": params, "layers": layers, "hidden": hidden, "mflop_per_token": 2 * params / 1e6},
            "n_short": len(titles), "n_long": len(bodies), "gallery_items": gallery.count,
            "torch_to_torch": {"recall@10": old_m["recall@10"], "ndcg@10": old_m["ndcg@10"]},
            "speed_rows": speed_rows, "quality_rows": quality_rows, "skipped": skipped,
            "load_after": [round(x, 2) for x in os.getloadavg()]}

