"""Trainable embedding networks and their model directory: a small CNN (grey images) and an MLP head over a
frozen encoder's space, each with a classifier (learned, a fixed d-Simplex, or none for self-supervised
encoders), and for BT² extra dimensions mixed in by a learned orthonormal basis transformation.

A model directory holds `model.json` (architecture, classes, method) and `model.safetensors`;
`repspace.encoders.trained.TrainedEncoder` loads it as an encoder. This module sits below encoders/,
compat/ (compatible training) and objectives/ (self-supervised training), which all build on it; it imports
no other part of repspace but `_io` and `errors`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from repspace._io import atomic_dir, read_meta
from repspace.errors import InvalidInputError, SpaceFormatError

FORMAT = "repspace.model"
ARCHS = ("cnn", "mlp")


def regular_simplex(num_classes: int, dim: int) -> np.ndarray:
    """(num_classes, dim) unit vectors with pairwise cosine -1/(K-1): a regular simplex in the first K-1 dims.

    Built from the centred standard basis of R^K expressed in an orthonormal basis of its span, so it is
    the same on every machine (old and new models share it without storing it)."""
    k = num_classes
    if k < 2:
        raise InvalidInputError("a d-Simplex classifier needs at least 2 classes")
    if dim < k - 1:
        raise InvalidInputError(f"a d-Simplex over {k} classes needs dim >= {k - 1}, got {dim}", param="dim")
    centred = np.eye(k) - 1.0 / k
    u, _, _ = np.linalg.svd(centred)  # first K-1 columns span the centred vectors
    coords = centred @ u[:, : k - 1]
    coords /= np.linalg.norm(coords, axis=1, keepdims=True)
    out = np.zeros((k, dim))
    out[:, : k - 1] = coords
    return out.astype(np.float32)


class SmallCNN(nn.Module):
    """(n, 1, H, W) grey images -> (n, dim): two conv blocks, pooled to 3x3, one linear layer."""

    def __init__(self, dim: int, width: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(3), nn.Flatten(),
        )
        self.fc = nn.Linear(2 * width * 9, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x))


class MLPHead(nn.Module):
    """(n, in_dim) frozen-encoder vectors -> (n, dim): Linear-GELU-Linear."""

    def __init__(self, in_dim: int, dim: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or max(2 * dim, 256)
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CompatNet(nn.Module):
    """Backbone + classifier. `features(x)` (n, dim) is trained by the classification loss;
    `embed(x)` is the retrieval vector: the features, or for BT² ``B @ [features; extra]``
    (n, dim + extra_dims) with B orthonormal, whose first `dim` coordinates face the old model; for a
    d-Simplex classifier the features' component in the simplex's span (K-1 dims, zero-padded to `dim`)."""

    def __init__(self, arch: str, dim: int, num_classes: int, classifier: str = "linear", extra_dims: int = 0,
                 in_dim: int | None = None) -> None:
        super().__init__()
        if arch not in ARCHS:
            raise InvalidInputError(f"unknown arch {arch!r}; choose from {', '.join(ARCHS)}", param="arch")
        if dim < 1:
            raise InvalidInputError(f"dim must be positive, got {dim}", param="dim")
        self.arch, self.dim, self.num_classes, self.extra_dims = arch, dim, num_classes, extra_dims
        out = dim + extra_dims
        if arch == "cnn":
            self.backbone: nn.Module = SmallCNN(out)
        else:
            if not in_dim:
                raise InvalidInputError("arch 'mlp' needs a base space for its input dimension", param="base_space")
            self.backbone = MLPHead(in_dim, out)
        self.classifier_kind = classifier
        if classifier == "simplex":
            self.register_buffer("simplex", torch.from_numpy(regular_simplex(num_classes, dim)))
        elif classifier == "cosine":
            # normalised features against normalised class weights, at a learned scale (NormFace / CosFace style):
            # the features' norm carries no class information, so retrieval by cosine sees what training saw
            self.classifier = nn.Linear(dim, num_classes, bias=False)
            self.logit_scale = nn.Parameter(torch.tensor(10.0))
        elif classifier != "none":  # "none": a self-supervised encoder (repspace.objectives), no classifier
            self.classifier = nn.Linear(dim, num_classes, bias=False)
        if extra_dims:
            self.basis = nn.utils.parametrizations.orthogonal(nn.Linear(out, out, bias=False))

    def classifier_weight(self) -> torch.Tensor:
        """(num_classes, dim)."""
        if self.classifier_kind == "none":
            raise InvalidInputError("this model was trained without labels (repspace.objectives); it has no classifier")
        return self.simplex if self.classifier_kind == "simplex" else self.classifier.weight

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.backbone(x)
        return h[:, : self.dim], (h[:, self.dim :] if self.extra_dims else None)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self._split(x)[0]

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        if self.classifier_kind == "cosine":
            w = nn.functional.normalize(self.classifier.weight, dim=1)
            return self.logit_scale * nn.functional.normalize(features, dim=1) @ w.T
        return features @ self.classifier_weight().T

    def embed_from(self, features: torch.Tensor, extra: torch.Tensor | None) -> torch.Tensor:
        if self.classifier_kind == "simplex":
            # only the simplex's span (the first K-1 coordinates) is trained; the rest would be untrained,
            # model-specific noise in cross-model search, so it is zeroed
            return torch.cat([features[:, : self.num_classes - 1], features[:, self.num_classes - 1 :] * 0], dim=1)
        if not self.extra_dims:
            return features
        return self.basis(torch.cat([features, extra], dim=1))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed_from(*self._split(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x)


def images_to_tensor(images: Any) -> torch.Tensor:
    """(n, H, W) uint8 grey images (or a list of such arrays) -> (n, 1, H, W) float32 in [-1, 1]."""
    arr = np.stack([np.asarray(a) for a in images]) if not isinstance(images, np.ndarray) else images
    if arr.ndim == 4 and arr.shape[-1] in (3, 4):
        arr = arr[..., :3].mean(axis=-1)
    if arr.ndim != 3:
        raise InvalidInputError(f"the cnn architecture takes grey (H, W) images; got a batch of shape {arr.shape}")
    return torch.from_numpy(arr.astype(np.float32) / 127.5 - 1.0).unsqueeze(1)


def training_inputs(items: Any, base_space: Any, arch: str) -> tuple[torch.Tensor, dict[str, Any]]:
    """(inputs, input description for model.json) of an architecture: grey images of an image dataset (`items`)
    for "cnn", a frozen encoder's vectors (`base_space`) for "mlp". Labels are not looked at."""
    if arch == "mlp":
        if base_space is None:
            raise InvalidInputError("arch 'mlp' trains a head on a frozen encoder's space: pass its base space",
                                    param="base_space")
        x = torch.from_numpy(np.array(base_space.vectors, dtype=np.float32))
        return x, {"modality": "text", "base_model": base_space.model, "base_model_version": base_space.model_version,
                   "in_dim": base_space.dim, "dataset": base_space.dataset}
    if arch not in ARCHS:
        raise InvalidInputError(f"unknown arch {arch!r}; choose from {', '.join(ARCHS)}", param="arch")
    if items is None or items.modality != "image":
        raise InvalidInputError("arch 'cnn' trains on an image dataset (fashion-mnist, digits)", param="items")
    x = images_to_tensor(items.data)
    return x, {"modality": "image", "shape": list(x.shape[2:]), "dataset": items.source.get("dataset")}


def build_model(config: dict[str, Any]) -> CompatNet:
    return CompatNet(config["arch"], int(config["dim"]), len(config["classes"]), config.get("classifier", "linear"),
                     int(config.get("extra_dims", 0)), config.get("in_dim"))


def save_model(path: str | Path, model: CompatNet, config: dict[str, Any]) -> Path:
    """Atomically write model.json + model.safetensors."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_dir(Path(path)) as tmp:
        (tmp / "model.json").write_text(json.dumps({"format": FORMAT, "format_version": 1, **config}, indent=2) + "\n")
        save_file(state, str(tmp / "model.safetensors"))
    return Path(path)


def load_model(path: str | Path) -> tuple[CompatNet, dict[str, Any]]:
    """(model in eval mode, config); SpaceFormatError for foreign or corrupt directories."""
    from safetensors.torch import load_file

    config = read_meta(path, "model.json", FORMAT, "trained model")
    try:
        model = build_model(config)
        state = load_file(str(Path(path) / "model.safetensors"))
        model.load_state_dict(state)
    except SpaceFormatError:
        raise
    except Exception as e:
        raise SpaceFormatError(f"{path}: the model weights are corrupt or do not match model.json ({e})") from None
    return model.eval(), config
