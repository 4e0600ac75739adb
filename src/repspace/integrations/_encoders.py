"""The encoder behind `RepspaceEmbeddings` (LangChain) and `RepspaceEmbedding` (LlamaIndex).

Uses the embeddings service's `EmbeddingModel` (`repspace.service.embeddings`: the same `dimensions`
rule as `repspace serve` — a registered nested-prefix adaptor, else prefix truncation, unit length).
Where that module is not there, a local stand-in with prefix truncation only (no adaptors)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from repspace.errors import DimensionMismatchError, InvalidInputError, NotAvailableError


def truncate_normalize(X: Any, dimensions: int | None) -> np.ndarray:
    """The first `dimensions` components of each row, re-normalised to unit length (all of them when None)."""
    X = np.asarray(X, np.float32)
    if dimensions is not None:
        X = X[:, : int(dimensions)]
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


class _TruncatingModel:
    """Stand-in for `EmbeddingModel`: encode, then keep the first `dimensions` components."""

    def __init__(self, encoder: Any, micro_batch: int) -> None:
        self.encoder, self.dim, self.micro_batch = encoder, int(encoder.dim), int(micro_batch)

    def dimensions_method(self, dimensions: int | None) -> str:
        if dimensions is None or dimensions == self.dim:
            return "full"
        if isinstance(dimensions, bool) or not isinstance(dimensions, (int, np.integer)) or dimensions < 1:
            raise InvalidInputError(f"dimensions must be a positive integer; got {dimensions!r}")
        if dimensions > self.dim:
            raise DimensionMismatchError(f"dimensions {dimensions} exceeds the model's dimension {self.dim}")
        return "truncate"

    def encode(self, texts: list[str]) -> np.ndarray:
        out = [np.asarray(self.encoder.encode_batch(texts[s:s + self.micro_batch]), np.float32)
               for s in range(0, len(texts), self.micro_batch)]
        return truncate_normalize(np.concatenate(out), None)

    def reduce(self, X: np.ndarray, dimensions: int | None) -> tuple[np.ndarray, str]:
        method = self.dimensions_method(dimensions)
        return truncate_normalize(X, None if method == "full" else dimensions), method


def load_model(model: str, adaptor: str | Path | None = None, device: str = "cpu", micro_batch: int = 32):
    try:
        from repspace.service.embeddings import EmbeddingModel
    except ImportError:  # the service is not part of this installation
        if adaptor is not None:
            raise NotAvailableError("adaptor= needs repspace.service (the embeddings service)") from None
        from repspace.encoders import get_encoder

        enc = get_encoder(model, device=device)
        if enc.modality != "text":
            raise InvalidInputError(f"model {model!r} encodes {enc.modality}s, not texts")
        return _TruncatingModel(enc, micro_batch)
    return EmbeddingModel.load(model, adaptor=adaptor, device=device, micro_batch=micro_batch)
