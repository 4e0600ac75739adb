"""An exported backend as an `Encoder`: the model's fast tokenizer + the runtime's runner."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from repspace.encoders.backends.base import Backend
from repspace.encoders.backends.prepare import make_tokenizer
from repspace.encoders.base import Encoder


def backend_version(base: str, backend: str, calibration: str | None = None) -> str:
    """The version a slot or space records: the weights' fingerprint, then the backend (torch: the weights alone,
    as before backends existed), then the calibration texts of a calibrated backend when they are the user's."""
    if backend == "torch":
        return base
    cal = f".cal-{calibration}" if calibration and calibration != "builtin" else ""
    return f"{base}+{backend}{cal}"


def backend_of_version(version: str | None) -> str:
    """The backend a recorded model version was made with ('torch' when it names none)."""
    _, plus, rest = (version or "").rpartition("+")
    return rest.split(".cal-")[0] if plus and rest else "torch"


def base_of_version(version: str | None) -> str:
    base, plus, _ = (version or "").rpartition("+")
    return base if plus else (version or "")


class BackendEncoder(Encoder):
    """A sentence-transformers model run by an exported backend (same vectors as torch, within the backend's check)."""

    modality = "text"

    def __init__(self, name: str, base_version: str, backend: Backend, directory: Path, record: dict[str, Any],
                 threads: int, calibration: str | None = None) -> None:
        self.name = name
        self.backend = backend.name
        self.directory = directory
        self.threads = int(threads)
        self.dim = int(record["dim"])
        self.normalized = bool(record["normalized"])
        self.max_seq_length = int(record["max_seq_length"])
        self.check = dict(record.get("check", {}))
        self.export_info = dict(record.get("export", {}))
        self.version = backend_version(base_version, backend.name, calibration)
        self.tokenize = make_tokenizer(record, directory)
        self.runner = backend.load(directory, record["export"], self.threads)

    def encode_batch(self, batch: Sequence[str]) -> np.ndarray:
        return np.asarray(self.runner(**self.tokenize(list(batch))), dtype=np.float32)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [int(x) for x in self.tokenize(list(texts))["attention_mask"].sum(1)]

    def space_extra(self) -> dict[str, Any]:
        return {"backend": self.backend}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "threads": self.threads, "export": self.export_info, "check": self.check}
