"""The arithmetic limit an encoder is measured against: this machine's GEMM peak and a model's FLOPs per token.

    from repspace.encoders.backends.limit import fp32_peak, model_shape, flops_of
    peak = max(fp32_peak(threads=2).values())          # GFLOP/s, best of a few matrix multiply shapes
    params, layers, hidden = model_shape(get_encoder("minilm-l6"))
    gflops = flops_of([(32, 24)] * 8, params, layers, hidden) / seconds / 1e9

Used by `repspace.studies.backends` (the demo's backends section) and `benchmarks/encode_limit.py`.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

# (m, k, n): a square GEMM and the shapes of MiniLM's and MPNet's feed-forward layers at 4,096 tokens
GEMM_SHAPES = ((2048, 2048, 2048), (4096, 384, 1536), (4096, 768, 3072))


def best_rate(fn: Callable[[], Any], flops: float, seconds: float = 1.5) -> float:
    """GFLOP/s of fn(): the best of repeated calls for about `seconds` after a warm-up call."""
    fn()
    best, t_end = float("inf"), time.perf_counter() + seconds
    while True:
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        if time.perf_counter() >= t_end:
            break
    return flops / best / 1e9


def fp32_peak(threads: int | None = None, seconds: float = 1.5, shapes: Sequence[tuple[int, int, int]] = GEMM_SHAPES,
              with_numpy: bool = True) -> dict[str, float]:
    """GFLOP/s of fp32 matrix multiplies (torch, and numpy's BLAS) per shape, with `threads` torch threads (default:
    torch's own); torch's thread count is restored afterwards. The peak is the best value (`max(...values())`)."""
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    out = {}
    try:
        for m, k, n in shapes:
            g = torch.Generator().manual_seed(0)
            a, b = torch.randn(m, k, generator=g), torch.randn(k, n, generator=g)
            out[f"torch {m}x{k}x{n}"] = best_rate(lambda: torch.mm(a, b), 2.0 * m * k * n, seconds)
            if with_numpy:
                an, bn = a.numpy(), b.numpy()
                out[f"numpy {m}x{k}x{n}"] = best_rate(lambda: an @ bn, 2.0 * m * k * n, seconds)
    finally:
        torch.set_num_threads(before)
    return out


def ort_gemm_peak(threads: int, int8: bool, seconds: float = 1.5,
                  shapes: Sequence[tuple[int, int, int]] = GEMM_SHAPES) -> dict[str, float]:
    """onnxruntime's own GEMM rate per shape: a one-node graph, MatMulInteger (u8 x s8 -> s32, GOP/s) or MatMul
    (fp32, GFLOP/s). Needs the PyPI packages onnx and onnxruntime."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    out = {}
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for m, k, n in shapes:
            if int8:
                w = rng.integers(-127, 128, size=(k, n), dtype=np.int8)
                a = rng.integers(0, 256, size=(m, k), dtype=np.uint8)
                op, tin, tout = "MatMulInteger", TensorProto.UINT8, TensorProto.INT32
            else:
                w, a = rng.standard_normal((k, n), dtype=np.float32), rng.standard_normal((m, k), dtype=np.float32)
                op, tin, tout = "MatMul", TensorProto.FLOAT, TensorProto.FLOAT
            graph = helper.make_graph([helper.make_node(op, ["a", "w"], ["y"])], "gemm",
                                      [helper.make_tensor_value_info("a", tin, [m, k])],
                                      [helper.make_tensor_value_info("y", tout, [m, n])],
                                      [numpy_helper.from_array(w, "w")])
            path = Path(tmp) / f"gemm-{m}-{k}-{n}.onnx"
            onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = int(threads)
            sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            out[f"ort {op} {m}x{k}x{n}"] = best_rate(lambda: sess.run(None, {"a": a}), 2.0 * m * k * n, seconds)
    return out


def model_shape(encoder: Any) -> tuple[int, int, int]:
    """(parameters in the encoder's matrix multiplies, layers, hidden size) of a sentence-transformers model, from
    its torch encoder (`get_encoder(name)` with the torch backend)."""
    import torch

    hf = encoder.model[0].auto_model
    params = sum(m.weight.numel() for m in hf.encoder.modules() if isinstance(m, torch.nn.Linear))
    return int(params), int(hf.config.num_hidden_layers), int(hf.config.hidden_size)


def flops_per_token(params: int, layers: int, hidden: int, length: int) -> float:
    """FLOPs of one token in a batch padded to `length`: 2 P (the matrix multiplies) + layers x 4 L d (QK^T and AV)."""
    return 2.0 * params + layers * 4.0 * length * hidden


def flops_of(batches: Sequence[tuple[int, int]], params: int, layers: int, hidden: int) -> float:
    """FLOPs of padded batches (b texts of padded length L each): sum of b L x flops_per_token(L)."""
    return float(sum(b * L * flops_per_token(params, layers, hidden, L) for b, L in batches))
