"""Token embeddings of a packaged sentence-transformers model: the transformer's last hidden states of each item's
non-padding tokens (special tokens included), L2-normalised, plus the model's mean pooling of the same states."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from repspace.encoders.base import Encoder
from repspace.errors import InvalidInputError
from repspace.multivector.tokens import TokenSet
from repspace.ops.search import normalize_rows


@dataclass(frozen=True)
class TokenEmbeddings:
    tokens: TokenSet  # unit-norm token vectors per item
    pooled: np.ndarray  # (n, d): L2-normalised mean of each item's raw token states (the model's mean pooling)


def token_model(encoder: Encoder):
    """The SentenceTransformer behind `encoder`, or a clear error for encoders without token states."""
    model = getattr(encoder, "model", None)
    if model is None or not hasattr(model, "encode") or encoder.modality != "text":
        raise InvalidInputError(f"model {encoder.name!r} gives no token embeddings; use a sentence-transformers "
                                "model (e.g. minilm-l6, mpnet-base or a local sentence-transformers directory)",
                                param="model")
    return model


def embed_tokens(encoder: Encoder, texts: Sequence[str], batch_size: int = 32) -> TokenEmbeddings:
    """Per-text token embeddings; texts are batched longest first (little padding), results in input order."""
    if batch_size <= 0:
        raise InvalidInputError(f"batch_size must be positive, got {batch_size}", param="batch_size")
    if len(texts) == 0:
        raise InvalidInputError("no texts to embed", param="items")
    model = token_model(encoder)
    order = np.argsort([-len(t) for t in texts], kind="stable")
    per_item: list[np.ndarray] = [np.empty(0)] * len(texts)
    for b in range(0, len(order), batch_size):
        rows = order[b:b + batch_size]
        states = model.encode([texts[r] for r in rows], batch_size=len(rows), output_value="token_embeddings",
                              convert_to_numpy=False, show_progress_bar=False)
        for r, s in zip(rows, states):
            per_item[r] = s.detach().float().cpu().numpy()
    pooled = normalize_rows(np.stack([a.mean(axis=0) for a in per_item]))
    flat = np.concatenate(per_item)
    offsets = np.zeros(len(per_item) + 1, dtype=np.int64)
    np.cumsum([len(a) for a in per_item], out=offsets[1:])
    tokens = TokenSet.from_arrays(TokenSet(normalize_rows(flat), offsets), what="tokens")
    return TokenEmbeddings(tokens, pooled)
