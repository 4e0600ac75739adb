"""`openvino`: the torch module converted with `openvino.convert_model` (fp32), run by OpenVINO on the CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from repspace.encoders.backends.base import Backend, ExportContext, Runner

MODEL_FILE = "model.xml"


def convert(ctx: ExportContext):
    """The torch module as an OpenVINO model with dynamic (batch, tokens) int64 inputs."""
    import warnings

    import openvino as ov
    import torch

    ids = torch.ones(2, 8, dtype=torch.long)
    shape = ov.PartialShape([-1, -1])
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        return ov.convert_model(ctx.module, example_input={"input_ids": ids, "attention_mask": torch.ones_like(ids)},
                                input=[("input_ids", shape, ov.Type.i64), ("attention_mask", shape, ov.Type.i64)])


def export_openvino(ctx: ExportContext, out: Path) -> dict[str, Any]:
    import openvino as ov

    ov.save_model(convert(ctx), str(out / MODEL_FILE), compress_to_fp16=False)
    return {"file": MODEL_FILE, "precision": "f32"}


def ov_runner(path: Path, record: dict[str, Any], threads: int) -> Runner:
    import openvino as ov

    # f32 inference precision: on CPUs with bf16 (AVX-512 BF16, AMX) OpenVINO would otherwise pick bf16 for the
    # float parts, which moves vectors more than the fp32 check allows
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_NUM_THREADS": int(threads), "PERFORMANCE_HINT": "LATENCY",
                                                          "INFERENCE_PRECISION_HINT": record.get("precision", "f32")})
    import threading

    local = threading.local()  # an infer request is not thread-safe: one per calling thread

    def run(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        req = getattr(local, "req", None)
        if req is None:
            req = local.req = compiled.create_infer_request()
        return np.array(req.infer({"input_ids": input_ids, "attention_mask": attention_mask})[0], dtype=np.float32)

    return run


def load_openvino(directory: Path, record: dict[str, Any], threads: int) -> Runner:
    return ov_runner(directory / record["file"], record, threads)


OPENVINO = Backend("openvino", "OpenVINO, fp32 (converted from the torch module)", runtime=(("openvino", "openvino"),),
                   export=export_openvino, load=load_openvino, versions=("openvino",))
