"""Embeddings at any dimension and in compact formats: the part of `repspace serve` that is library.

`EmbeddingModel` wraps an encoder (a built-in model name or a local model directory) and,
optionally, a fitted nested-prefix compressor (`repspace compress fit --method matryoshka|pca`):

    m = EmbeddingModel.load("minilm-l6", adaptor="adaptors/minilm-mat")
    r = m.embed(["a text", "another"], dimensions=64)
    r.vectors            # (2, 64) float32, L2-normalised
    r.dimensions_method  # "adaptor" | "truncate" | "full"
    format_embeddings(r.vectors, "base64")   # what /v1/embeddings returns per item

The `dimensions` rule (documented in docs/service.md, reported by every response):
  * `dimensions` absent or equal to the model's dimension: the model's vectors ("full");
  * a registered adaptor supports `dimensions` (one of its fitted dims below the model's): adaptor output ("adaptor");
  * otherwise: the first `dimensions` components of the model's vector ("truncate").
Every returned vector is re-normalised to unit length, so cosine = dot product at every dimension.

Encoding formats: `float` (list of floats), `base64` (little-endian float32 bytes, as OpenAI),
and the repspace extensions `int8` (per-vector symmetric scale: round(127 * x / max|x|), compare
with cosine) and `binary` (sign bits packed MSB-first into bytes, ceil(d / 8) uint8 per vector,
like `Index` binary codes: compare with Hamming distance).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from repspace.errors import DimensionMismatchError, InvalidInputError

ENCODING_FORMATS = ("float", "base64", "int8", "binary")
NESTED_COMPRESSORS = ("matryoshka", "pca")


@dataclass
class EmbeddingResult:
    vectors: np.ndarray  # (n, dimensions) float32, unit length
    dimensions_method: str  # full | adaptor | truncate
    tokens: list[int]


def normalize_rows(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.maximum(norms, 1e-12)


class EmbeddingModel:
    """An encoder (+ optional nested-prefix adaptor): texts -> unit vectors at any dimension."""

    def __init__(self, encoder: Any, name: str | None = None, adaptor: Any = None, micro_batch: int = 32) -> None:
        self.encoder = encoder
        self.name = name or encoder.name
        self.dim = int(encoder.dim)
        self.micro_batch = int(micro_batch)
        self.adaptor = None
        if adaptor is not None:
            self.set_adaptor(adaptor)

    @classmethod
    def load(cls, model: str, adaptor: str | Path | None = None, device: str = "cpu", name: str | None = None,
             micro_batch: int = 32, backend: str = "torch", threads: int | None = None) -> "EmbeddingModel":
        from repspace.encoders import get_encoder

        enc = get_encoder(model, device=device, backend=backend, threads=threads)
        if enc.modality != "text":
            raise InvalidInputError(f"model {model!r} encodes {enc.modality}s; the embeddings service serves text models")
        return cls(enc, name=name or model, adaptor=adaptor, micro_batch=micro_batch)

    # -------------------------------------------------------------- adaptor
    def set_adaptor(self, adaptor: Any) -> None:
        """Register a fitted nested-prefix compressor (object or directory) for `dimensions`."""
        from repspace.compress import Compressor

        comp = Compressor.load(adaptor) if isinstance(adaptor, (str, Path)) else adaptor
        if comp.name not in NESTED_COMPRESSORS:
            raise InvalidInputError(f"adaptor {adaptor} is a {comp.name!r} compressor; `dimensions` needs nested prefixes "
                                    f"({' or '.join(NESTED_COMPRESSORS)})")
        if int(comp.source_dim_) != self.dim:
            raise DimensionMismatchError(f"adaptor {adaptor} maps {comp.source_dim_}-d vectors; model {self.name!r} is {self.dim}-d")
        src = comp.source_model_
        if src and src not in (self.name, getattr(self.encoder, "name", None)):
            raise InvalidInputError(f"adaptor {adaptor} was fitted on model {src!r}, not {self.name!r}")
        self.adaptor = comp

    @property
    def adaptor_dims(self) -> list[int]:
        return [int(d) for d in self.adaptor.dims_] if self.adaptor is not None else []

    def dimensions_method(self, dimensions: int | None) -> str:
        """Which rule serves `dimensions` (full | adaptor | truncate); raises on an impossible value."""
        if dimensions is None:
            return "full"
        if isinstance(dimensions, bool) or not isinstance(dimensions, (int, np.integer)) or dimensions < 1:
            raise InvalidInputError(f"dimensions must be a positive integer; got {dimensions!r}")
        if dimensions == self.dim:
            return "full"
        if dimensions > self.dim:
            raise DimensionMismatchError(f"dimensions {dimensions} exceeds model {self.name!r}'s dimension {self.dim}")
        return "adaptor" if dimensions in self.adaptor_dims else "truncate"

    def describe(self) -> dict[str, Any]:
        return {"id": self.name, "dim": self.dim, "backend": getattr(self.encoder, "backend", "torch"), "adaptor": self.adaptor.name if self.adaptor is not None else None,
                "adaptor_dims": self.adaptor_dims, "dimensions": f"1-{self.dim}"}

    # ------------------------------------------------------------- encoding
    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens the model sees per text (its own tokenizer, truncated to its max length; else words + 2)."""
        own = getattr(self.encoder, "count_tokens", None)  # exported backends tokenize without sentence-transformers
        if callable(own):
            return own(texts)
        st = getattr(self.encoder, "model", None)
        prep = getattr(st, "preprocess", None) or getattr(st, "tokenize", None)  # sentence-transformers >= 6 | older
        if st is not None and callable(prep):
            # the model's own preprocessing (same padding/truncation settings as encode: the fast tokenizer's
            # state is not changed, so encoding threads can share it)
            mask = prep(list(texts)).get("attention_mask")
            if mask is not None:
                return [int(x) for x in mask.sum(1).tolist()]
        return [len(t.split()) + 2 for t in texts]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32 unit vectors; texts are encoded in length-sorted micro-batches (less padding)."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise InvalidInputError(f"input[{i}] must be a string, got {type(t).__name__}")
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.dim), np.float32)
        for s in range(0, len(texts), self.micro_batch):
            rows = order[s:s + self.micro_batch]
            out[rows] = self.encoder.encode_batch([texts[r] for r in rows])
        return normalize_rows(out)

    def reduce(self, X: np.ndarray, dimensions: int | None) -> tuple[np.ndarray, str]:
        """Full-dimension vectors -> (vectors at `dimensions`, method), re-normalised."""
        method = self.dimensions_method(dimensions)
        if method == "full":
            return normalize_rows(X), method
        if method == "adaptor":
            return normalize_rows(self.adaptor.transform(X, int(dimensions))), method
        return normalize_rows(np.asarray(X)[:, : int(dimensions)]), method

    def embed(self, texts: Sequence[str], dimensions: int | None = None) -> EmbeddingResult:
        self.dimensions_method(dimensions)  # fail before encoding
        X, method = self.reduce(self.encode(texts), dimensions)
        return EmbeddingResult(X, method, self.count_tokens(texts))


# ------------------------------------------------------------------ formats
def quantize_int8(X: np.ndarray) -> np.ndarray:
    """Per-vector symmetric int8: round(127 * x / max|x|) (cosine between codes ~ cosine of floats)."""
    X = np.asarray(X, np.float32)
    scale = np.maximum(np.abs(X).max(axis=1, keepdims=True), 1e-12)
    return np.clip(np.rint(X * (127.0 / scale)), -127, 127).astype(np.int8)


def pack_binary(X: np.ndarray) -> np.ndarray:
    """Sign bits (x > 0) packed MSB-first: (n, ceil(d / 8)) uint8."""
    return np.packbits(np.asarray(X) > 0, axis=1)


def format_embeddings(X: np.ndarray, encoding_format: str = "float") -> list[Any]:
    """One JSON-ready value per row: float list | base64 str (float32 LE) | int8 list | uint8 list."""
    if encoding_format == "float":
        return np.asarray(X, np.float32).tolist()
    if encoding_format == "base64":
        X = np.ascontiguousarray(X, dtype="<f4")
        return [base64.b64encode(row.tobytes()).decode("ascii") for row in X]
    if encoding_format == "int8":
        return quantize_int8(X).tolist()
    if encoding_format == "binary":
        return pack_binary(X).tolist()
    raise InvalidInputError(f"encoding_format must be one of {', '.join(ENCODING_FORMATS)}; got {encoding_format!r}")


def embedding_response(X: np.ndarray, encoding_format: str, model: str, prompt_tokens: int,
                       dimensions_method: str) -> bytes:
    """The OpenAI `/v1/embeddings` response body as JSON bytes (orjson when installed: ~20x faster for floats).

    Floats are written as the shortest decimal that round-trips to the same float32.
    """
    X = np.asarray(X, np.float32)
    meta = {"model": model, "usage": {"prompt_tokens": int(prompt_tokens), "total_tokens": int(prompt_tokens)},
            "dimensions": int(X.shape[1]), "dimensions_method": dimensions_method}
    try:
        import orjson
    except ImportError:
        orjson = None
    if orjson is not None and encoding_format == "float":
        X = np.ascontiguousarray(X)
        data = [{"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(X)]
        return orjson.dumps({"object": "list", "data": data, **meta}, option=orjson.OPT_SERIALIZE_NUMPY)
    data = [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(format_embeddings(X, encoding_format))]
    body = {"object": "list", "data": data, **meta}
    if orjson is not None:
        return orjson.dumps(body)
    import json

    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


def decode_base64(value: str) -> np.ndarray:
    """The inverse of the base64 format: a float32 vector."""
    return np.frombuffer(base64.b64decode(value), dtype="<f4").astype(np.float32)
