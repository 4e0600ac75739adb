"""`TokenSet`: variable-length token vectors of n items, stored flat with offsets (safetensors on disk, no pickle)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from repspace.errors import InvalidVectorsError, SpaceFormatError

TOKENS_FILE = "tokens.safetensors"


@dataclass(frozen=True)
class TokenSet:
    """Item i's tokens are `flat[offsets[i]:offsets[i + 1]]`: flat (N, d) float32, offsets (n + 1,) int64."""

    flat: np.ndarray
    offsets: np.ndarray

    @classmethod
    def from_arrays(cls, items: Sequence[np.ndarray] | TokenSet, dim: int | None = None,
                    what: str = "tokens") -> TokenSet:
        """Validate a list of (n_i, d) arrays (or a TokenSet): one clear error for ragged dimensions, items without
        tokens, non-numeric or non-finite values."""
        if isinstance(items, TokenSet):
            arrays: Sequence[np.ndarray] = items
        elif isinstance(items, np.ndarray) and items.ndim == 3:
            arrays = list(items)
        else:
            arrays = items
        if len(arrays) == 0:
            raise InvalidVectorsError(f"no {what} items given", param=what)
        if dim is None:
            first = np.asarray(arrays[0])
            dim = int(first.shape[1]) if first.ndim == 2 else -1
        lengths = np.empty(len(arrays), dtype=np.int64)
        for i, a in enumerate(arrays):  # shape checks only: one step per item, none per token
            a = np.asarray(a)
            if a.ndim != 2 or a.shape[1] != dim or dim <= 0:
                raise InvalidVectorsError(f"{what} item {i} has shape {a.shape}; every item must be (n_tokens, {dim})",
                                          param=what)
            if a.shape[0] == 0:
                raise InvalidVectorsError(f"{what} item {i} has no tokens; every item needs at least one", param=what)
            if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
                raise InvalidVectorsError(f"{what} item {i} is not real-valued (dtype {a.dtype})", param=what)
            lengths[i] = a.shape[0]
        flat = items.flat if isinstance(items, TokenSet) else np.concatenate([np.asarray(a) for a in arrays])
        flat = np.ascontiguousarray(flat, dtype=np.float32)
        bad = ~np.isfinite(flat).all(axis=1)
        offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        if bad.any():
            item = int(np.searchsorted(offsets, np.flatnonzero(bad)[0], side="right")) - 1
            raise InvalidVectorsError(f"{what} item {item} holds NaN or infinite values", param=what)
        return cls(flat, offsets)

    @property
    def dim(self) -> int:
        return int(self.flat.shape[1])

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.flat[self.offsets[i]:self.offsets[i + 1]]

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[i] for i in range(len(self)))

    def take(self, rows: Sequence[int] | np.ndarray) -> TokenSet:
        rows = np.asarray(rows, dtype=np.int64)
        lengths = self.lengths[rows]
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        gather = np.repeat(self.offsets[rows] - offsets[:-1], lengths) + np.arange(offsets[-1])
        return TokenSet(self.flat[gather], offsets)

    def save(self, path: str | Path) -> Path:
        """Write flat + offsets as one safetensors file (atomically)."""
        from safetensors.numpy import save

        from repspace._io import atomic_file

        with atomic_file(path, "wb") as fh:
            fh.write(save({"flat": self.flat, "offsets": self.offsets}))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> TokenSet:
        from safetensors.numpy import load_file

        path = Path(path)
        if not path.is_file():
            raise SpaceFormatError(f"{path} is missing: no token embeddings to re-rank with")
        try:
            data = load_file(str(path))
            flat, offsets = data["flat"], data["offsets"]
        except Exception as e:  # noqa: BLE001 - truncated or foreign file
            raise SpaceFormatError(f"{path} is not a token file of repspace: {e}") from None
        if flat.ndim != 2 or offsets.ndim != 1 or len(offsets) < 2 or offsets[0] != 0 or offsets[-1] != len(flat) \
                or (np.diff(offsets) <= 0).any():
            raise SpaceFormatError(f"{path} is corrupt: offsets do not cut the {len(flat)} tokens into items")
        return cls(flat.astype(np.float32, copy=False), offsets.astype(np.int64, copy=False))
