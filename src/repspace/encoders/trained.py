"""A model directory written by `repspace train` (repspace.nets), used as an encoder."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from repspace.encoders.base import Encoder, resolve_device
from repspace.encoders.cache import weights_fingerprint
from repspace.errors import InvalidInputError


def _grey(item: Any, shape: tuple[int, int]) -> np.ndarray:
    """An image path or array -> (H, W) uint8 grey at the model's input shape."""
    from PIL import Image

    from repspace.encoders.efficientnet import to_rgb_array

    arr = np.asarray(item)
    if arr.ndim != 2:
        arr = to_rgb_array(item).mean(axis=2).astype(np.uint8)
    if arr.shape != shape:
        arr = np.asarray(Image.fromarray(arr.astype(np.uint8)).resize(shape[::-1], Image.BILINEAR))
    return arr


class TrainedEncoder(Encoder):
    """CNN (grey images) or MLP head over a built-in text encoder; outputs `model.embed(x)`.

    For BT² models the first `compatible_dim` coordinates face the old model (recorded in each space)."""

    normalized = False

    def __init__(self, path: str | Path, device: str = "cpu",
                 base_encoder: Callable[[str, str], Encoder] | None = None) -> None:
        """`base_encoder(name, device)` builds the frozen encoder under a text head (the registry passes
        `repspace.encoders.get_encoder`; needed only for heads over a text encoder)."""
        import torch

        from repspace.nets import load_model

        self.path = Path(path)
        self.device = resolve_device(device)
        self.model, self.config = load_model(self.path)
        self.model.to(self.device)
        self._torch = torch
        self.name = self.config.get("name") or self.path.name
        self.dim = int(self.config["dim"]) + int(self.config.get("extra_dims", 0))
        self.version = weights_fingerprint(self.path / "model.safetensors")
        source = self.config["input"]
        self.modality = source["modality"]
        self._base: Encoder | None = None
        if self.modality == "text":
            if base_encoder is None:
                raise InvalidInputError(f"{self.path} is a head over {source['base_model']!r}: load it with "
                                        "repspace.encoders.get_encoder, which supplies the base encoder")
            self._base = base_encoder(source["base_model"], device)
            if self._base.dim != source["in_dim"]:
                raise InvalidInputError(f"{self.path}: base model {source['base_model']!r} is {self._base.dim}-d, "
                                        f"the head expects {source['in_dim']}")

    def sort_key(self, item: Any) -> int:
        return self._base.sort_key(item) if self._base is not None else 0

    def encode_batch(self, batch: Sequence[Any]) -> np.ndarray:
        torch = self._torch
        if self._base is not None:
            x = torch.from_numpy(np.asarray(self._base.encode_batch(batch), dtype=np.float32))
        else:
            from repspace.nets import images_to_tensor

            shape = tuple(self.config["input"]["shape"])
            x = images_to_tensor(np.stack([_grey(item, shape) for item in batch]))
        with torch.no_grad():
            return self.model.embed(x.to(self.device)).cpu().numpy().astype(np.float32)

    def space_extra(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"trained_method": self.config.get("method")}
        if self.config.get("extra_dims"):
            extra["compatible_dim"] = int(self.config["dim"])
            extra["compatible_with"] = self.config.get("old_name")
        return extra
