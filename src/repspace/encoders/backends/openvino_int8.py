"""`openvino-int8`: static int8 quantisation with NNCF, calibrated on a small sample of texts (the user's own when
given, else a built-in mixed sample), run by OpenVINO.

Which weight products stay fp32 is chosen per model, the most quantised level of `LEVELS` whose vectors pass the check
against torch: everything int8 (NNCF's transformer preset, with SmoothQuant) for MiniLM-L6; MPNet needs its
feed-forward down-projections in fp32 (cos vs torch 0.969 -> 0.992 on the probes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from repspace.encoders.backends.base import Backend, ExportContext, Runner
from repspace.encoders.backends.openvino import convert, ov_runner

MODEL_FILE = "model_int8.xml"
LEVELS = ("all-int8", "ffn-down-fp32", "ffn-fp32")


def fp32_matmuls(model, level: str) -> list[str]:
    """Names of the MatMuls with a constant weight that `level` keeps in fp32 (by weight shape: down = in > out)."""
    if level == "all-int8":
        return []
    names = []
    for op in model.get_ops():
        if op.get_type_name() != "MatMul":
            continue
        w = op.input_value(1).get_node()
        while w.get_type_name() == "Convert":
            w = w.input_value(0).get_node()
        if w.get_type_name() != "Constant" or len(w.get_output_shape(0)) != 2:
            continue
        rows, cols = (int(x) for x in w.get_output_shape(0))
        n_in, n_out = (cols, rows) if op.get_attributes().get("transpose_b") else (rows, cols)
        if n_in > n_out or (level == "ffn-fp32" and n_in != n_out):
            names.append(op.get_friendly_name())
    return names


def export_openvino_int8(ctx: ExportContext, out: Path) -> dict[str, Any]:
    import contextlib
    import io
    import logging

    import nncf
    import openvino as ov

    logging.getLogger("nncf").setLevel(logging.ERROR)
    samples = [ctx.tokenize([t]) for t in ctx.calibration]  # one text per sample: no padding in the statistics
    tried: list[dict[str, Any]] = []
    for level in LEVELS:
        model = convert(ctx)
        keep = fp32_matmuls(model, level)
        with contextlib.redirect_stdout(io.StringIO()):  # NNCF's progress bars
            model = nncf.quantize(model, nncf.Dataset(samples), model_type=nncf.ModelType.TRANSFORMER,
                                  subset_size=len(samples), ignored_scope=nncf.IgnoredScope(names=keep, validate=False))
        ov.save_model(model, str(out / MODEL_FILE), compress_to_fp16=False)
        record = {"file": MODEL_FILE, "precision": "f32"}
        cos = ctx.probe_cos(ov_runner(out / MODEL_FILE, record, ctx.threads)) if ctx.probe_cos else 1.0
        tried.append({"level": level, "fp32_matmuls": len(keep), "cos_mean": round(cos, 6)})
        if cos >= ctx.min_cos:
            break  # the most quantised level that passes (checked again by the caller)
    return {**record, "calibration_texts": len(samples), "level": tried[-1]["level"], "tried": tried}


def load_openvino_int8(directory: Path, record: dict[str, Any], threads: int) -> Runner:
    return ov_runner(directory / record["file"], record, threads)


OPENVINO_INT8 = Backend("openvino-int8", "OpenVINO, int8 (static quantisation with NNCF, calibrated on sample texts)",
                        runtime=(("openvino", "openvino"), ("nncf", "nncf")), export=export_openvino_int8,
                        load=load_openvino_int8, min_cos=0.99, int8=True, calibrated=True, versions=("openvino", "nncf"))
