"""What a compatible-training loss declares: the base class of every loss in `repspace.compat.losses`."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from repspace.errors import DimensionMismatchError
from repspace.nets import CompatNet


class CompatLoss(nn.Module):
    """A loss ``loss(x, y) -> scalar`` over a `CompatNet`, with the needs `train_model` reads:

    - `needs_old_model`: trains against an old model (its classifier, or its class prototypes); `alpha`
      weighs that influence and the new model takes the old one's dimension by default.
    - `fixed_classifier`: the model must be built with this classifier (e.g. "simplex"); None = the caller's.
    - `needs_extra_dims`: the model gets extra dimensions (default dim // 4) beyond the compatible ones.
    - `influence_options`: ways other than the old classifier to give the old model's influence
      (e.g. "prototypes"); empty = the old classifier only.
    - `cosine_influence`: the influence logits may be cosine at a scale (for an old cosine classifier).
    """

    needs_old_model: ClassVar[bool] = False
    fixed_classifier: ClassVar[str | None] = None
    needs_extra_dims: ClassVar[bool] = False
    influence_options: ClassVar[tuple[str, ...]] = ()
    cosine_influence: ClassVar[bool] = False

    def __init__(self, model: CompatNet) -> None:
        super().__init__()
        self.model = model

    @classmethod
    def for_training(cls, model: CompatNet, old_target: torch.Tensor | None = None, alpha: float = 1.0,
                     cosine_scale: float | None = None) -> "CompatLoss":
        """The loss for `train_model`: `old_target` (num_classes, dim) is the old classifier or the old model's
        class prototypes (losses with `needs_old_model`), `cosine_scale` set when influence logits are cosine."""
        return cls(model)


def frozen_classifier(weight: torch.Tensor, dim: int, what: str) -> torch.Tensor:
    """A detached float32 copy of an old (num_classes, dim) classifier; DimensionMismatchError otherwise."""
    w = torch.as_tensor(weight, dtype=torch.float32).detach().clone()
    if w.ndim != 2 or w.shape[1] != dim:
        raise DimensionMismatchError(f"the old classifier is {tuple(w.shape)} but the {what} is {dim}-d; "
                                     "backward-compatible training needs the old model's dimension")
    return w
