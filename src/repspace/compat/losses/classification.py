"""``independent``: cross-entropy through the model's own classifier (no compatibility constraint).

Reference: the "independent" baseline of Shen et al., "Towards Backward-Compatible Representation
Learning", CVPR 2020 — what compatible training is measured against.

Inputs: x (n, ...) the model's inputs, y (n,) class ids. Example::

    loss = ClassificationLoss(CompatNet("mlp", 8, 4, in_dim=6))
    loss(torch.randn(16, 6), torch.randint(0, 4, (16,))).backward()
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from repspace.compat.losses.base import CompatLoss


class ClassificationLoss(CompatLoss):
    """CE(model.logits(model.features(x)), y)."""

    def forward(self, x: torch.Tensor, y: torch.Tensor, rows: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        return F.cross_entropy(self.model.logits(self.model.features(x)), y)
