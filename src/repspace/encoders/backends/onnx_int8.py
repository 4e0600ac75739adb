"""`onnx-int8`: the ONNX export with its weight matrix multiplies quantised to int8 (dynamic quantisation, onnxruntime).

The configuration follows the CPU's flags, read at export time (and part of the cache key):
  * integer dot products (AVX-512 VNNI, AVX-VNNI, AMX, Arm dot product): signed int8 weights, full range;
  * AVX2 / AVX-512 without VNNI: signed int8 weights with reduce_range (7 bits: the u8 x s8 pair instruction
    saturates otherwise);
  * anything else: unsigned int8 weights.
Weights are quantised per output channel; activation-by-activation products (attention) stay fp32.
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


def export_onnx_int8(ctx: ExportContext, out: Path) -> dict[str, Any]:
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    export_onnx(ctx, out, "fp32.onnx")
    fp32 = out / "fp32.onnx"
    graph = onnx.load(str(fp32)).graph
    weights = {t.name for t in graph.initializer}
    # only products with a weight matrix: quantising attention (activation x activation) costs quality for no speed
    skip = [n.name for n in graph.node if n.op_type == "MatMul" and not any(x in weights for x in n.input)]
    cfg = quant_config(ctx.flags)
    quiet = logging.getLogger()
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # the quantiser logs a pre-processing suggestion on every call
    try:
        quantize_dynamic(str(fp32), str(out / MODEL_FILE), weight_type=getattr(QuantType, cfg["weight_type"]),
                         per_channel=cfg["per_channel"], reduce_range=cfg["reduce_range"], op_types_to_quantize=["MatMul"],
                         nodes_to_exclude=skip, extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        quiet.setLevel(level)
    fp32.unlink()
    return {"file": MODEL_FILE, **cfg}


def load_onnx_int8(directory: Path, record: dict[str, Any], threads: int) -> Runner:
    return ort_runner(directory / record["file"], threads)


ONNX_INT8 = Backend("onnx-int8", "ONNX Runtime, int8 weights (dynamic quantisation, configured from the CPU flags)",
                    runtime=(("onnxruntime", "onnxruntime"), ("onnx", "onnx")), export=export_onnx_int8,
                    load=load_onnx_int8, min_cos=0.99, int8=True, versions=("onnxruntime", "onnx"))
