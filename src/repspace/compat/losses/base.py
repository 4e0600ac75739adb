"""What a compatible-training loss declares: the base class of every loss in `repspace.compat.losses`."""

from __future__ import annotations

from typing import ClassVar

from torch import nn

from repspace.nets import CompatNet
from repspace.training import TrainingLoss


class CompatLoss(TrainingLoss):
    """A loss ``loss(x, y, rows=None, generator=None) -> scalar`` over a `CompatNet` (the convention of
    `repspace.training.TrainingLoss`; x the inputs, y class ids), with the needs `train_model` reads.

    ``rows`` (optional): the batch's row numbers among the training items, which the loop passes on to the
    influence term so a term can look up what it precomputed per training item (`GalleryInfluence`'s old
    embeddings) instead of recomputing it every step; ``generator`` is unused (no augmentation). Only the
    model's parameters train (`param_groups`). The declarations:

    - `needs_old_model`: trains against an old model (its classifier, or its class prototypes); `alpha`
      weighs that influence and the new model takes the old one's dimension by default.
    - `fixed_classifier`: the model must be built with this classifier (e.g. "simplex"); None = the caller's.
    - `needs_extra_dims`: the model gets extra dimensions (default dim // 4) beyond the compatible ones.
    - `influence_options`: ways other than the old classifier to give the old model's influence
      (e.g. "prototypes", "gallery"); empty = the old classifier only.
    - `cosine_influence`: the influence logits may be cosine at a scale (for an old cosine classifier).
    - `default_alpha`: the influence weight `train_model` uses when none is given.
    """

    needs_old_model: ClassVar[bool] = False
    fixed_classifier: ClassVar[str | None] = None
    needs_extra_dims: ClassVar[bool] = False
    influence_options: ClassVar[tuple[str, ...]] = ()
    cosine_influence: ClassVar[bool] = False
    default_alpha: ClassVar[float] = 1.0

    def __init__(self, model: CompatNet) -> None:
        super().__init__()
        self.model = model

    def param_groups(self) -> list[dict]:
        return [{"params": [p for p in self.model.parameters() if p.requires_grad]}]

    @classmethod
    def for_training(cls, model: CompatNet, influence: nn.Module | None = None, alpha: float = 1.0) -> "CompatLoss":
        """The loss for `train_model`: `influence` (losses with `needs_old_model`) is the term that pulls the new
        model towards the old one, ``influence(features, y, x, rows) -> scalar`` (`repspace.compat.losses.influence`)."""
        return cls(model)
