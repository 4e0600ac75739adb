"""The one loss convention of `repspace.training.fit`."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class TrainingLoss(nn.Module):
    """A training loss: an ``nn.Module`` that holds the model it trains and turns one batch into a scalar.

    ``loss(x, y, rows=None, generator=None) -> scalar tensor``, the batch being

    - ``x``: the inputs at the batch's rows — a tensor (images, vectors), or a tuple of columns (e.g. the
      (queries, documents) texts of a fine-tune);
    - ``y``: the labels at those rows (class ids), or None (self-supervised objectives, pairs);
    - ``rows``: the batch's row numbers among the training items (a loss looks up what it precomputed per item);
    - ``generator``: the ``torch.Generator`` of the epoch's order, which random augmentations draw from.

    Around each optimiser step the loop reads two more things: `param_groups()` (the optimiser's groups, built
    once by the caller; a group marked ``fixed_lr`` keeps the base learning rate under `WarmupCosine`) and
    `after_step(step, total)` (after the optimiser step: EMA teachers, schedules inside the loss). Embedding-level
    criteria a loss combines (`compress.losses.InfoNCELoss`, `objectives.losses.NTXentLoss`, …) take embeddings
    instead and hold no model. New losses subclass this class: `compat.losses.CompatLoss` (with labels),
    `objectives.methods.Objective` (without), `compress.finetune.PairLoss` (text pairs).
    """

    def forward(self, x: Any, y: torch.Tensor | None = None, rows: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def param_groups(self) -> list[dict]:
        """The optimiser's parameter groups: by default one, every trainable parameter."""
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

    def after_step(self, step: int, total: int) -> None:
        """Called after optimiser step `step` (1-based) of `total`."""
