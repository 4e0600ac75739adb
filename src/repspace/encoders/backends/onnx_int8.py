"""`onnx-int8`: the ONNX export with its weight matrix multiplies quantised to int8 (dynamic quantisation, onnxruntime).

The configuration follows the CPU's flags, read at export time (and part of the cache key):
  * integer dot products (AVX-512 VNNI, AVX-VNNI, AMX, Arm dot product): signed int8 weights, full range;
  * AVX2 / AVX-512 without VNNI: signed int8 weights with reduce_range (7 bits: the u8 x s8 pair instruction
    saturates otherwise);
  * anything else: unsigned int8 weights.
Weights are quantised per output channel. Which products stay fp32 is chosen per model: the most quantised level of
`LEVELS` whose vectors pass the check against torch (attention scores always stay fp32).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from repspace.encoders.backends.base import Backend, ExportContext, Runner
from repspace.encoders.backends.onnx import export_onnx, ort_runner

MODEL_FILE = "model_qint8.onnx"
VNNI = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp")


def quant_config(flags: frozenset[str]) -> dict[str, Any]:
    """The dynamic-quantisation settings for a CPU with `flags` (named like optimum's configurations)."""
    if any(f in flags for f in VNNI):
        return {"config": "vnni", "weight_type": "QInt8", "reduce_range": False, "per_channel": True}
    if "avx2" in flags or "avx512bw" in flags:
        return {"config": "avx512" if "avx512bw" in flags else "avx2", "weight_type": "QInt8", "reduce_range": True,
                "per_channel": True}
    return {"config": "generic", "weight_type": "QUInt8", "reduce_range": False, "per_channel": True}


# which weight products stay fp32, most quantised first: activation x activation products (attention scores: no
# speed to gain) always; the feed-forward down-projection (post-GELU inputs with outliers; MiniLM-L6 cos vs torch
# 0.993 -> 0.996); then the whole feed-forward block (MPNet: 0.988 -> 0.998, for most of the speed-up)
LEVELS = ("ffn-down-fp32", "ffn-fp32")


def keep_fp32(level: str, weights: list[tuple[int, ...]]) -> bool:
    if not weights or len(weights[0]) != 2:
        return True
    rows, cols = weights[0]
    if level == "ffn-down-fp32":
        return rows > cols
    return rows != cols  # ffn-fp32: only the square (attention projection) weights are int8


def quantize(fp32: Path, out: Path, cfg: dict[str, Any], skip: list[str]) -> None:
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quiet = logging.getLogger()
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # the quantiser logs a pre-processing suggestion on every call
    try:
        quantize_dynamic(str(fp32), str(out), weight_type=getattr(QuantType, cfg["weight_type"]),
                         per_channel=cfg["per_channel"], reduce_range=cfg["reduce_range"], op_types_to_quantize=["MatMul"],
                         nodes_to_exclude=skip, extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        quiet.setLevel(level)


def export_onnx_int8(ctx: ExportContext, out: Path) -> dict[str, Any]:
    import onnx

    export_onnx(ctx, out, "fp32.onnx")
    fp32 = out / "fp32.onnx"
    graph = onnx.load(str(fp32), load_external_data=False).graph
    shapes = {t.name: tuple(t.dims) for t in graph.initializer}
    cfg = quant_config(ctx.flags)
    matmuls = [n for n in graph.node if n.op_type == "MatMul"]
    tried: list[dict[str, Any]] = []
    for level in LEVELS:
        skip = [n.name for n in matmuls if keep_fp32(level, [shapes[x] for x in n.input if x in shapes])]
        quantize(fp32, out / MODEL_FILE, cfg, skip)
        cos = ctx.probe_cos(ort_runner(out / MODEL_FILE, ctx.threads)) if ctx.probe_cos else 1.0
        tried.append({"level": level, "fp32_matmuls": len(skip), "cos_mean": round(cos, 6)})
        if cos >= ctx.min_cos:
            break  # the most quantised level that passes (the last one tried is checked again by the caller)
    fp32.unlink()
    return {"file": MODEL_FILE, **cfg, "level": tried[-1]["level"], "tried": tried}


def load_onnx_int8(directory: Path, record: dict[str, Any], threads: int) -> Runner:
    return ort_runner(directory / record["file"], threads)


ONNX_INT8 = Backend("onnx-int8", "ONNX Runtime, int8 weights (dynamic quantisation, configured from the CPU flags)",
                    runtime=(("onnxruntime", "onnxruntime"), ("onnx", "onnx")), export=export_onnx_int8,
                    load=load_onnx_int8, min_cos=0.99, int8=True, versions=("onnxruntime", "onnx"))
