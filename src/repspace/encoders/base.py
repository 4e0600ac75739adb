"""The encoder interface every model implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Sequence

import numpy as np

from repspace.errors import InvalidInputError, NotAvailableError


def resolve_device(device: str) -> str:
    """Validate a device name ('cpu', 'cuda', 'cuda:N'); clear error when CUDA is absent."""
    if device == "cpu":
        return device
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise NotAvailableError(f"device {device!r} requested but CUDA is not available here; use device 'cpu'",
                                    param="device")
        _, _, index = device.partition(":")
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise InvalidInputError(f"device {device!r} does not exist; this machine has "
                                    f"{torch.cuda.device_count()} CUDA device(s)", param="device")
        return device
    raise InvalidInputError(f"unknown device {device!r}; use cpu or cuda", param="device")


class Encoder(ABC):
    """Maps a batch of items (texts or images) to (n, dim) float32 vectors."""

    name: str
    modality: str  # "text" | "image"
    dim: int
    normalized: bool
    version: str
    backend: str = "torch"  # the runtime that computes the vectors (see encoders/backends); part of `version` unless torch

    @abstractmethod
    def encode_batch(self, batch: Sequence[Any]) -> np.ndarray:
        """One batch -> (len(batch), dim) float32."""

    def sort_key(self, item: Any) -> int:
        """Length used to group similar items into batches (less padding); 0 = keep order."""
        return len(item) if isinstance(item, str) else 0

    def space_extra(self) -> dict[str, Any]:
        """Extra manifest entries for spaces this encoder writes (e.g. a compatible prefix)."""
        return {}

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "modality": self.modality, "dim": self.dim,
                "normalized": self.normalized, "version": self.version, "backend": self.backend}
