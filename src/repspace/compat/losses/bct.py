"""``bct``: backward-compatible training — the new model's own classification loss plus an influence loss.

Reference: Shen et al., "Towards Backward-Compatible Representation Learning", CVPR 2020. The influence loss is
the cross-entropy of the NEW features through the OLD model's frozen classifier; classes the old model never
saw get synthesised old weights (the mean old-model feature of each new class, the paper's extension). Other
influence terms (`repspace.compat.losses.influence`): the old model's class prototypes (cosine), or its gallery
(NCA of each new feature among the old model's embeddings of the training items).

Inputs: x (n, ...), y (n,) class ids; old_weight (num_classes, dim) — the old classifier's rows (or the old
model's class prototypes with `cosine_scale`), indexed by the same class ids — or any `influence` term.
Example::

    model = CompatNet("mlp", 8, 4, in_dim=6)
    loss = BCTLoss(model, old_weight=torch.randn(4, 8), alpha=1.0)
    loss(torch.randn(16, 6), torch.randint(0, 4, (16,))).backward()
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from repspace.compat.losses.base import CompatLoss
from repspace.compat.losses.influence import ClassifierInfluence, check_influence_dim
from repspace.nets import CompatNet


class BCTLoss(CompatLoss):
    """CE(new classifier) + alpha * influence(new features, y); the influence defaults to the old classifier.

    old_weight: (num_classes, dim) — rows indexed by the same class ids as y.
    cosine_scale: when set, the influence logits are ``cosine_scale * cos(features, old_weight)`` (use with
    class prototypes of the old model as old_weight: the new features are pulled to the directions where the
    old model puts each class, which is what cosine retrieval in the old gallery compares).
    influence: any term ``influence(features, y, x, rows)`` instead (e.g. `GalleryInfluence`)."""

    needs_old_model = True
    influence_options = ("nca", "prototypes", "gallery")
    cosine_influence = True

    def __init__(self, model: CompatNet, old_weight: torch.Tensor | None = None, alpha: float = 1.0,
                 cosine_scale: float | None = None, influence: nn.Module | None = None) -> None:
        super().__init__(model)
        self.alpha = alpha
        self.influence = influence if influence is not None else ClassifierInfluence(old_weight, model.dim, "new model", cosine_scale)
        check_influence_dim(self.influence, model.dim, "new model")

    @classmethod
    def for_training(cls, model: CompatNet, influence: nn.Module | None = None, alpha: float = 1.0) -> "BCTLoss":
        return cls(model, alpha=alpha, influence=influence)

    @property
    def old_weight(self) -> torch.Tensor:
        return self.influence.weight

    def influence_logits(self, f: torch.Tensor) -> torch.Tensor:
        return self.influence.logits(f)

    def forward(self, x: torch.Tensor, y: torch.Tensor, rows: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        f = self.model.features(x)
        return F.cross_entropy(self.model.logits(f), y) + self.alpha * self.influence(f, y, x, rows)

