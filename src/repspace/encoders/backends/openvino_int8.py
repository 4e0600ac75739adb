"""`openvino-int8`: static int8 quantisation with NNCF, calibrated on a small sample of texts (the user's own when
given, else a built-in mixed sample), run by OpenVINO."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from repspace.encoders.backends.base import Backend, ExportContext, Runner
from repspace.encoders.backends.openvino import convert, ov_runner

MODEL_FILE = "model_int8.xml"


def export_openvino_int8(ctx: ExportContext, out: Path) -> dict[str, Any]:
    import contextlib
    import io
    import logging

    import nncf
    import openvino as ov

    logging.getLogger("nncf").setLevel(logging.ERROR)
    samples = [ctx.tokenize([t]) for t in ctx.calibration]  # one text per sample: no padding in the statistics
    with contextlib.redirect_stdout(io.StringIO()):  # NNCF's progress bars
        model = nncf.quantize(convert(ctx), nncf.Dataset(samples), model_type=nncf.ModelType.TRANSFORMER,
                              subset_size=len(samples))
    ov.save_model(model, str(out / MODEL_FILE), compress_to_fp16=False)
    return {"file": MODEL_FILE, "precision": "f32", "calibration_texts": len(samples)}


def load_openvino_int8(directory: Path, record: dict[str, Any], threads: int) -> Runner:
    return ov_runner(directory / record["file"], record, threads)


OPENVINO_INT8 = Backend("openvino-int8", "OpenVINO, int8 (static quantisation with NNCF, calibrated on sample texts)",
                        runtime=(("openvino", "openvino"), ("nncf", "nncf")), export=export_openvino_int8,
                        load=load_openvino_int8, min_cos=0.99, int8=True, calibrated=True, versions=("openvino", "nncf"))
