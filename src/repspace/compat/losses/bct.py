"""``bct``: backward-compatible training — the new model's own classification loss plus an influence loss.

Reference: Shen et al., "Towards Backward-Compatible Representation Learning", CVPR 2020. The influence loss is
the cross-entropy of the NEW features through the OLD model's frozen classifier; classes the old model never
saw get synthesised old weights (the mean old-model feature of each new class, the paper's extension).

Inputs: x (n, ...), y (n,) class ids; old_weight (num_classes, dim) — the old classifier's rows (or the old
model's class prototypes with `cosine_scale`), indexed by the same class ids. Example::

    model = CompatNet("mlp", 8, 4, in_dim=6)
    loss = BCTLoss(model, old_weight=torch.randn(4, 8), alpha=1.0)
    loss(torch.randn(16, 6), torch.randint(0, 4, (16,))).backward()
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from repspace.compat.losses.base import CompatLoss, frozen_classifier
from repspace.nets import CompatNet


class BCTLoss(CompatLoss):
    """CE(new classifier) + alpha * CE(old classifier, frozen) on the new features.

    old_weight: (num_classes, dim) — rows indexed by the same class ids as y.
    cosine_scale: when set, the influence logits are ``cosine_scale * cos(features, old_weight)`` (use with
    class prototypes of the old model as old_weight: the new features are pulled to the directions where the
    old model puts each class, which is what cosine retrieval in the old gallery compares)."""

    needs_old_model = True
    influence_options = ("prototypes",)
    cosine_influence = True

    def __init__(self, model: CompatNet, old_weight: torch.Tensor, alpha: float = 1.0,
                 cosine_scale: float | None = None) -> None:
        super().__init__(model)
        self.alpha, self.cosine_scale = alpha, cosine_scale
        self.register_buffer("old_weight", frozen_classifier(old_weight, model.dim, "new model"))

    @classmethod
    def for_training(cls, model: CompatNet, old_target: torch.Tensor | None = None, alpha: float = 1.0,
                     cosine_scale: float | None = None) -> "BCTLoss":
        return cls(model, old_target, alpha=alpha, cosine_scale=cosine_scale)

    def influence_logits(self, f: torch.Tensor) -> torch.Tensor:
        if self.cosine_scale is None:
            return f @ self.old_weight.T
        return self.cosine_scale * F.normalize(f, dim=1) @ F.normalize(self.old_weight, dim=1).T

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        f = self.model.features(x)
        return F.cross_entropy(self.model.logits(f), y) + self.alpha * F.cross_entropy(self.influence_logits(f), y)
