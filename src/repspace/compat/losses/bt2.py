"""``bt2``: backward-compatible training with a basis transformation and extra dimensions.

Reference: Zhou et al., "BT^2: Backward-compatible Training with Basis Transformation", ICCV 2023. The new
features keep their own classification loss; extra dimensions and a learned orthonormal basis transformation B
make the first `dim` coordinates of ``B @ [features; extra]`` compatible with the old model (influence loss
there: the old classifier, or another `repspace.compat.losses.influence` term), while B, being orthonormal, keeps all information of the new features in the full vector.

Inputs: x (n, ...), y (n,) class ids; old_weight (num_classes, dim) the old classifier; the model must have
``extra_dims > 0``. Example::

    model = CompatNet("mlp", 8, 4, extra_dims=2, in_dim=6)
    BT2Loss(model, old_weight=torch.randn(4, 8))(torch.randn(16, 6), torch.randint(0, 4, (16,))).backward()
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from repspace.compat.losses.base import CompatLoss
from repspace.compat.losses.influence import ClassifierInfluence, check_influence_dim
from repspace.errors import InvalidInputError
from repspace.nets import CompatNet


class BT2Loss(CompatLoss):
    """CE(new classifier) on the features + alpha * influence (default: CE through the old classifier) on the
    first `dim` coordinates of the basis-transformed vector B @ [features; extra].

    `train_model` weighs the influence 3 by default (`default_alpha`): it acts on the compatible part only while
    the new classifier trains every dimension, and at weight 1 the compatible part lost top-1 to the old model
    on Fashion-MNIST (84.61 vs 84.90 new→old against old→old; 85.06 at 3, benchmarks/RESULTS.md)."""

    needs_old_model = True
    needs_extra_dims = True
    influence_options = ("nca", "gallery")
    default_alpha = 3.0

    def __init__(self, model: CompatNet, old_weight: torch.Tensor | None = None, alpha: float = 1.0,
                 influence: nn.Module | None = None) -> None:
        if not model.extra_dims:
            raise InvalidInputError("BT2Loss needs a model with extra dimensions (extra_dims > 0)")
        super().__init__(model)
        self.alpha = alpha
        what = "compatible part of the new model"
        self.influence = influence if influence is not None else ClassifierInfluence(old_weight, model.dim, what)
        check_influence_dim(self.influence, model.dim, what)

    @classmethod
    def for_training(cls, model: CompatNet, influence: nn.Module | None = None, alpha: float = 1.0) -> "BT2Loss":
        return cls(model, alpha=alpha, influence=influence)

    def forward(self, x: torch.Tensor, y: torch.Tensor, rows: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        f, extra = self.model._split(x)
        z = self.model.embed_from(f, extra)[:, : self.model.dim]
        return F.cross_entropy(self.model.logits(f), y) + self.alpha * self.influence(z, y, x, rows)

