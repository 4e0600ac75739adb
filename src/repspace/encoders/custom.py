"""Any Python callable `texts -> (n, d) array` as an encoder (`repspace.encoders.register_encoder`)."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from repspace.encoders.base import Encoder
from repspace.encoders.identity import PROBE_TEXT, probe_version
from repspace.errors import DimensionMismatchError, InvalidInputError, InvalidVectorsError


class CallableEncoder(Encoder):
    """Wraps `fn(list[str]) -> (n, d)`; its identity is the fingerprint of its vector for a fixed probe text."""

    def __init__(self, name: str, fn: Callable[[list[str]], Any], dim: int | None = None,
                 normalized: bool | None = None, modality: str = "text") -> None:
        if not callable(fn):
            raise InvalidInputError(f"encoder {name!r} must be a callable texts -> (n, d) array", param="fn")
        self.name, self.fn, self.modality = name, fn, modality
        self.dim = 0
        probe = self._call([PROBE_TEXT])[0] if modality == "text" else None
        if probe is None:
            if dim is None:
                raise InvalidInputError(f"encoder {name!r} encodes {modality}: give its dim", param="dim")
            self.dim, self.version = int(dim), "callable"
        else:
            if dim is not None and dim != probe.size:
                raise DimensionMismatchError(f"encoder {name!r} returns {probe.size}-d vectors, not {dim}", param="dim")
            self.dim, self.version = int(probe.size), probe_version(probe)
        self.normalized = (bool(abs(float(np.linalg.norm(probe)) - 1) < 1e-3) if normalized is None and probe is not None
                           else bool(normalized))

    def _call(self, batch: list[Any]) -> np.ndarray:
        out = np.asarray(self.fn(batch), dtype=np.float32)
        if out.ndim != 2 or out.shape[0] != len(batch) or (self.dim and out.shape[1] != self.dim):
            want = f"({len(batch)}, {self.dim or 'd'})"
            raise InvalidVectorsError(f"encoder {self.name!r} returned shape {out.shape} for {len(batch)} inputs; "
                                      f"expected {want}", param="fn")
        if not np.isfinite(out).all():
            raise InvalidVectorsError(f"encoder {self.name!r} returned NaN or inf", param="fn")
        return out

    def encode_batch(self, batch: Sequence[Any]) -> np.ndarray:
        return self._call(list(batch))

    def __repr__(self) -> str:
        return f"CallableEncoder({self.name!r}, dim={self.dim}, version={self.version!r})"
