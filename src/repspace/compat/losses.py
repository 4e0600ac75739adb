"""Compatible-training losses, one small nn.Module each, called as ``loss(x, y)``.

- `ClassificationLoss`: cross-entropy through the model's own classifier (``independent``).
- `BCTLoss` (Shen et al. 2020): + alpha * cross-entropy of the NEW features through the OLD model's
  frozen classifier (the influence loss); classes the old model never saw get synthesised old
  weights, the mean old-model feature of each new class (the paper's extension to new classes).
- `DSimplexLoss` (stationary representations, CoReS): cross-entropy against a fixed regular
  d-Simplex classifier shared by every model version, so features of all versions stay put.
- `BT2Loss` (Zhou et al. 2023): the new features keep their own classification loss; extra
  dimensions and a learned orthonormal basis transformation B make the first `dim` coordinates of
  ``B @ [features; extra]`` compatible with the old model (influence loss there), while B, being
  orthonormal, keeps all information of the new features in the full vector.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from repspace.compat.models import CompatNet
from repspace.errors import DimensionMismatchError, InvalidInputError


class ClassificationLoss(nn.Module):
    def __init__(self, model: CompatNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.model.logits(self.model.features(x)), y)


class DSimplexLoss(ClassificationLoss):
    """Cross-entropy against the fixed d-Simplex classifier (the model must be built with classifier='simplex')."""

    def __init__(self, model: CompatNet) -> None:
        if model.classifier_kind != "simplex":
            raise InvalidInputError("DSimplexLoss needs a model with a fixed d-Simplex classifier (classifier='simplex')")
        super().__init__(model)


def _frozen(weight: torch.Tensor, dim: int, what: str) -> torch.Tensor:
    w = torch.as_tensor(weight, dtype=torch.float32).detach().clone()
    if w.ndim != 2 or w.shape[1] != dim:
        raise DimensionMismatchError(f"the old classifier is {tuple(w.shape)} but the {what} is {dim}-d; "
                                     "backward-compatible training needs the old model's dimension")
    return w


class BCTLoss(nn.Module):
    """CE(new classifier) + alpha * CE(old classifier, frozen) on the new features.

    old_weight: (num_classes, dim) — rows indexed by the same class ids as y (see `old_classifier_for`).
    cosine_scale: when set, the influence logits are ``cosine_scale * cos(features, old_weight)`` (use with
    class prototypes of the old model as old_weight: the new features are pulled to the directions where the
    old model puts each class, which is what cosine retrieval in the old gallery compares)."""

    def __init__(self, model: CompatNet, old_weight: torch.Tensor, alpha: float = 1.0,
                 cosine_scale: float | None = None) -> None:
        super().__init__()
        self.model, self.alpha, self.cosine_scale = model, alpha, cosine_scale
        self.register_buffer("old_weight", _frozen(old_weight, model.dim, "new model"))

    def influence_logits(self, f: torch.Tensor) -> torch.Tensor:
        if self.cosine_scale is None:
            return f @ self.old_weight.T
        return self.cosine_scale * F.normalize(f, dim=1) @ F.normalize(self.old_weight, dim=1).T

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        f = self.model.features(x)
        return F.cross_entropy(self.model.logits(f), y) + self.alpha * F.cross_entropy(self.influence_logits(f), y)


class BT2Loss(nn.Module):
    """CE(new classifier) on the features + alpha * CE(old classifier) on the first `dim` coordinates of
    the basis-transformed vector B @ [features; extra]."""

    def __init__(self, model: CompatNet, old_weight: torch.Tensor, alpha: float = 1.0) -> None:
        super().__init__()
        if not model.extra_dims:
            raise InvalidInputError("BT2Loss needs a model with extra dimensions (extra_dims > 0)")
        self.model, self.alpha = model, alpha
        self.register_buffer("old_weight", _frozen(old_weight, model.dim, "compatible part of the new model"))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        f, extra = self.model._split(x)
        z = self.model.embed_from(f, extra)[:, : self.model.dim]
        return F.cross_entropy(self.model.logits(f), y) + self.alpha * F.cross_entropy(z @ self.old_weight.T, y)


LOSSES = {"independent": ClassificationLoss, "dsimplex": DSimplexLoss, "bct": BCTLoss, "bt2": BT2Loss}
