"""Encoder backends: one sentence-transformers model, several runtimes.

    get_encoder("minilm-l6", backend="onnx-int8")

`BACKENDS` is the registry (its order is the order of help texts and benchmarks): `torch` is the model's own
PyTorch path; the others are exported offline on first use, cached under REPSPACE_HOME and checked against torch
(see `prepare.py`). A new backend is one module here defining a `Backend` and one line below.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from repspace.encoders.backends.base import Backend, cores, cpu_flags, cpu_info, default_threads
from repspace.encoders.backends.encoder import BackendEncoder, backend_of_version, backend_version, base_of_version
from repspace.encoders.backends.onnx import ONNX
from repspace.encoders.backends.onnx_int8 import ONNX_INT8
from repspace.encoders.backends.openvino import OPENVINO
from repspace.encoders.backends.openvino_int8 import OPENVINO_INT8
from repspace.encoders.base import Encoder
from repspace.errors import InvalidInputError, UnknownNameError

DEFAULT_BACKEND = "torch"
TORCH = Backend("torch", "PyTorch via sentence-transformers (the reference; also the only backend of non-transformer models)")

BACKENDS: dict[str, Backend] = {b.name: b for b in (TORCH, ONNX, ONNX_INT8, OPENVINO, OPENVINO_INT8)}


def get_backend(name: str) -> Backend:
    if name not in BACKENDS:
        raise UnknownNameError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}", param="backend")
    return BACKENDS[name]


def check_threads(threads: int | None) -> int | None:
    if threads is not None and (isinstance(threads, bool) or int(threads) < 1):
        raise InvalidInputError(f"threads must be a positive integer; got {threads!r}", param="threads")
    return None if threads is None else int(threads)


def load_backend_encoder(path: Path, name: str, backend: str, device: str = "cpu", threads: int | None = None,
                         calibration: Sequence[str] | None = None) -> Encoder:
    """The sentence-transformers model in directory `path` (called `name`) on an exported backend."""
    from repspace.encoders.backends.prepare import calibration_sample, export_checked, export_dir, export_key, read_verified
    from repspace.encoders.base import resolve_device
    from repspace.encoders.sentence import weights_version
    from repspace.errors import NotAvailableError

    b = get_backend(backend)
    if resolve_device(device) != "cpu":
        raise NotAvailableError(f"backend {b.name!r} runs on the CPU here; use device 'cpu', or backend 'torch' for "
                                f"{device}", param="device")
    b.require_runtime()
    threads = check_threads(threads) or default_threads()
    texts, cal = calibration_sample(calibration) if b.calibrated else (None, None)
    base = weights_version(path)
    key = export_key(base, b, cal)
    directory = export_dir(name, b, key)
    record = read_verified(directory, key) or export_checked(path, name, b, key, directory, threads, texts or [])
    return BackendEncoder(name, base, b, directory, record, threads, calibration=cal)


__all__ = ["BACKENDS", "DEFAULT_BACKEND", "Backend", "BackendEncoder", "backend_of_version", "backend_version",
           "base_of_version", "check_threads", "cores", "cpu_flags", "cpu_info", "default_threads", "get_backend",
           "load_backend_encoder"]
