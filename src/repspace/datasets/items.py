"""`Items`: what an encoder reads — ids, texts or images, optional labels, and their source."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from repspace.errors import InvalidInputError
from repspace.spaces.space import check_ids

Modality = Literal["text", "image"]


@dataclass
class Items:
    """Items to encode. `data` holds texts (list of str) or images: (n, H, W[, C]) uint8,
    or a list of image file paths. `source` records dataset/view/split for the manifest."""

    ids: list[str]
    data: Sequence[Any]
    modality: Modality
    labels: np.ndarray | None = None
    source: dict[str, str | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.ids) == 0:
            raise InvalidInputError(f"no items to encode (empty input{self._where()})")
        self.ids = check_ids(self.ids)
        if len(self.data) != len(self.ids):
            raise InvalidInputError(f"{len(self.ids)} ids for {len(self.data)} items")
        if self.labels is not None:
            self.labels = np.asarray(self.labels).astype(str)
            if len(self.labels) != len(self.ids):
                raise InvalidInputError(f"{len(self.labels)} labels for {len(self.ids)} items")

    def _where(self) -> str:
        src = self.source.get("dataset") or self.source.get("input")
        return f": {src}" if src else ""

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, rows: Sequence[int]) -> "Items":
        rows = list(rows)
        data = self.data[np.asarray(rows)] if isinstance(self.data, np.ndarray) else [self.data[r] for r in rows]
        labels = None if self.labels is None else self.labels[np.asarray(rows, dtype=np.int64)]
        return Items([self.ids[r] for r in rows], data, self.modality, labels, dict(self.source))

    def limit(self, n: int | None) -> "Items":
        if n is None or n >= len(self):
            return self
        if n <= 0:
            raise InvalidInputError(f"limit must be positive, got {n}", param="limit")
        return self.subset(range(n))

    def fingerprint(self) -> str:
        """sha256 over ids and content: identifies the exact input of an encode job."""
        h = hashlib.sha256(self.modality.encode())
        for i, item in zip(self.ids, self.data):
            h.update(i.encode("utf-8") + b"\x00")
            if isinstance(item, str) and self.modality == "text":
                h.update(item.encode("utf-8"))
            elif isinstance(item, (str, Path)):
                p = Path(item)
                st = p.stat()
                h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}".encode())
            else:
                arr = np.ascontiguousarray(item)
                h.update(f"{arr.shape}{arr.dtype.str}".encode())
                h.update(arr.tobytes())
            h.update(b"\x01")
        return h.hexdigest()
