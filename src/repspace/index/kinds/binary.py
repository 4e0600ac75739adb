"""`binary+rescore:R`: 1-bit sign codes (faiss `BFlat`, Hamming) of randomly rotated vectors, top R rescored in float."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from repspace.errors import InvalidInputError, SpaceFormatError
from repspace.index.kinds.base import Built, IndexSpec, rescore
from repspace.ops.search import _faiss


@dataclass(frozen=True)
class Binary(IndexSpec, name="binary", pattern=r"binary\+rescore:(\d+)",
             usage="binary+rescore:R", examples="binary+rescore:200"):
    """`binary+rescore:200`: 32x fewer bytes than float; the shortlist is re-ranked exactly.

    Sign codes need the energy spread over all dimensions (FIELD-NOTES: on PCA-ordered vectors recall
    collapses); a random rotation (seed 0, saved as rotation.npy), which keeps inner products, spreads it."""

    rescore: int = 0  # candidates rescored in float (parsed specs: at least 1; 0 = k)

    @classmethod
    def from_match(cls, m: re.Match[str], text: str) -> Binary:
        if int(m.group(1)) < 1:
            raise InvalidInputError("binary+rescore needs a positive number of candidates")
        return cls(rescore=int(m.group(1)))

    def __str__(self) -> str:
        return f"binary+rescore:{self.rescore}"

    def build(self, base: np.ndarray, rotation: np.ndarray | None = None) -> tuple[Any, np.ndarray]:
        if rotation is None:
            d = base.shape[1]
            q, r = np.linalg.qr(np.random.default_rng(0).normal(size=(d, d)))
            rotation = (q * np.sign(np.diag(r))).astype(np.float32)
        idx = _faiss().index_binary_factory(_bits(base.shape[1]), "BFlat")
        idx.add(_codes(base @ rotation))
        return idx, rotation

    def search(self, state: Any, base: np.ndarray, q: np.ndarray, k: int, ef_search: int) -> tuple[np.ndarray, np.ndarray]:
        idx, rotation = state
        _, i = idx.search(_codes(q @ rotation), min(max(self.rescore, k), len(base)))
        return rescore(q, base, i.astype(np.int64), k)

    def first_stage_bytes(self, n: int, dim: int) -> int:
        return n * ((dim + 7) // 8)

    def save(self, state: Any, base: Any, path: Path) -> None:
        np.save(path / "rotation.npy", state[1], allow_pickle=False)

    def load(self, path: Path, n: int, dim: int, encode: Callable[[], Any]) -> Built:
        try:
            rotation = np.load(path / "rotation.npy", allow_pickle=False)
        except Exception as e:
            raise SpaceFormatError(f"{path}/rotation.npy is corrupt or missing: {e}") from None
        if rotation.shape != (dim, dim):
            raise SpaceFormatError(f"{path}/rotation.npy has shape {rotation.shape}; the index is corrupt")
        base = encode()
        return base, self.build(base, rotation)


def _bits(d: int) -> int:
    return ((d + 7) // 8) * 8


def _codes(x: np.ndarray) -> np.ndarray:
    """Sign bits of the rows of x, packed 8 to a byte (zero-padded to whole bytes)."""
    bits = x > 0
    pad = _bits(bits.shape[1]) - bits.shape[1]
    if pad:
        bits = np.hstack([bits, np.zeros((len(bits), pad), bool)])
    return np.packbits(bits, axis=1)
