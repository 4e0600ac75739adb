"""`onnx`: the model exported to ONNX (fp32) with `torch.onnx.export`, run by onnxruntime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from repspace.encoders.backends.base import Backend, ExportContext, Runner

MODEL_FILE = "model.onnx"
OPSET = 17


def export_onnx(ctx: ExportContext, out: Path, name: str = MODEL_FILE) -> dict[str, Any]:
    """The torch module -> ONNX with dynamic batch and sequence axes (pooling + normalisation in the graph)."""
    import warnings

    import torch

    ids = torch.ones(2, 8, dtype=torch.long)
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(ctx.module, (ids, torch.ones_like(ids)), str(out / name), input_names=["input_ids", "attention_mask"],
                          output_names=["embedding"], opset_version=OPSET, dynamo=False,
                          dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
                                        "embedding": {0: "batch"}})
    return {"file": name, "opset": OPSET}


def ort_runner(path: Path, threads: int) -> Runner:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def run(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        (out,) = session.run(["embedding"], {"input_ids": input_ids, "attention_mask": attention_mask})
        return out

    return run


def load_onnx(directory: Path, record: dict[str, Any], threads: int) -> Runner:
    return ort_runner(directory / record["file"], threads)


ONNX = Backend("onnx", "ONNX Runtime, fp32 (exported with torch.onnx.export)", runtime=(("onnxruntime", "onnxruntime"), ("onnx", "onnx")),
               export=export_onnx, load=load_onnx, versions=("onnxruntime", "onnx"))
