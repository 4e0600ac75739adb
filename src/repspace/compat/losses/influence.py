"""Influence terms: how a new model is pulled towards an old one (the second half of BCT's and BT²'s loss).

Reference: Shen et al., "Towards Backward-Compatible Representation Learning", CVPR 2020 (influence through the
old classifier); the gallery term follows the backward-compatible contrastive loss of Zhang et al., "Hot-Refresh
Model Upgrades with Regression-Alleviating Compatible Training in Image Retrieval", ICLR 2022 (new features
against the old model's features of other items), with every same-class old feature a positive, i.e.
Goldberger et al.'s neighbourhood component analysis (NCA, NeurIPS 2004) across the two models. Terms add up
with `InfluenceSum` (influence "nca": the old classifier plus the gallery's class term).

Inputs: ``f`` (n, dim) the new model's compatible features, ``y`` (n,) class ids. Example::

    term = GalleryInfluence(bank=F.normalize(torch.randn(500, 8), dim=1), labels=torch.randint(0, 4, (500,)))
    term(torch.randn(16, 8, requires_grad=True), torch.randint(0, 4, (16,))).backward()
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from repspace.errors import DimensionMismatchError, InvalidInputError


def frozen_classifier(weight: torch.Tensor, dim: int, what: str) -> torch.Tensor:
    """A detached float32 copy of an old (num_classes, dim) classifier; DimensionMismatchError otherwise."""
    if weight is None:
        raise InvalidInputError(f"the {what} is trained against an old model: give its classifier or an influence term")
    w = torch.as_tensor(weight, dtype=torch.float32).detach().clone()
    if w.ndim != 2 or w.shape[1] != dim:
        raise DimensionMismatchError(f"the old classifier is {tuple(w.shape)} but the {what} is {dim}-d; "
                                     "backward-compatible training needs the old model's dimension")
    return w


def old_embeddings(old: nn.Module, x: torch.Tensor, block: int = 1024) -> torch.Tensor:
    """The old model's L2-normalised retrieval vectors (its compatible `dim` coordinates) of the inputs x, in
    eval mode and without gradient (the gallery its users search, and each batch's own items)."""
    was = old.training
    old.eval()
    try:
        with torch.no_grad():
            f = torch.cat([old.embed(b) for b in x.split(block)])[:, : old.dim]
    finally:
        old.train(was)
    return F.normalize(f, dim=1)


def check_influence_dim(influence: nn.Module, dim: int, what: str) -> None:
    """An influence term (anything with `dim`) built for another dimension than the model's compatible part is refused."""
    got = influence.dim
    if got != dim:
        raise DimensionMismatchError(f"the old model's influence term is {got}-d but the {what} is {dim}-d; "
                                     "backward-compatible training needs the old model's dimension")


class ClassifierInfluence(nn.Module):
    """Cross-entropy of the new features through the old model's frozen classifier (BCT's influence loss).

    ``weight`` (num_classes, dim): the old classifier's rows (synthesised rows for classes it never learned), or
    the old model's class prototypes with ``cosine_scale`` (logits = scale * cos(f, row))."""

    def __init__(self, weight: torch.Tensor, dim: int, what: str = "new model", cosine_scale: float | None = None) -> None:
        super().__init__()
        self.cosine_scale = cosine_scale
        self.register_buffer("weight", frozen_classifier(weight, dim, what))

    @property
    def dim(self) -> int:
        return self.weight.shape[1]

    def logits(self, f: torch.Tensor) -> torch.Tensor:
        if self.cosine_scale is None:
            return f @ self.weight.T
        return self.cosine_scale * F.normalize(f, dim=1) @ F.normalize(self.weight, dim=1).T

    def forward(self, f: torch.Tensor, y: torch.Tensor, x: torch.Tensor | None = None,
                rows: torch.Tensor | None = None) -> torch.Tensor:
        return F.cross_entropy(self.logits(f), y)


class InfluenceSum(nn.Module):
    """The sum of influence terms of one dimension, ``sum_i weights_i * terms_i(f, y, x, rows)``.

    Example (influence "nca")::

        InfluenceSum(ClassifierInfluence(old_w, dim), GalleryInfluence(bank, labels, scale=32.0, own_weight=0.0))
    """

    def __init__(self, *terms: nn.Module, weights: tuple[float, ...] | None = None) -> None:
        super().__init__()
        if not terms:
            raise InvalidInputError("an influence sum needs at least one term")
        weights = tuple(float(w) for w in weights) if weights is not None else (1.0,) * len(terms)
        if len(weights) != len(terms) or any(not w >= 0 for w in weights):
            raise InvalidInputError("an influence sum needs one non-negative weight per term")
        for t in terms[1:]:
            check_influence_dim(t, terms[0].dim, "first influence term")
        self.terms, self.weights = nn.ModuleList(terms), weights

    @property
    def dim(self) -> int:
        return self.terms[0].dim

    def forward(self, f: torch.Tensor, y: torch.Tensor, x: torch.Tensor | None = None,
                rows: torch.Tensor | None = None) -> torch.Tensor:
        return sum(w * t(f, y, x, rows) for w, t in zip(self.weights, self.terms))


class GalleryInfluence(nn.Module):
    """The new features against the old model's gallery: each must find its own item and its class there.

    ``bank`` (N, dim): the old model's L2-normalised embeddings of the training items (the gallery the new
    model's queries will search before it is backfilled); ``labels`` (N,) their class ids; ``old_model``: the
    frozen old model, which embeds each batch's own items. With s_j = scale * cos(f, bank_j) over a random
    sample of ``sample`` bank rows, for a new feature f of an item x of class y:

    - class term (NCA): -log(sum_{j: labels_j = y} softmax(s)_j), the soft leave-one-out 1-NN error of a new
      query in the old gallery — what M(new, old) measures with top-1 and mAP@R;
    - own term (Hot-Refresh's backward-compatible contrastive loss): -log(e^{s_own} / (e^{s_own} +
      sum_{j: labels_j != y} e^{s_j})), s_own = scale * cos(f, old(x)): the new feature must sit at its own
      item's old embedding rather than at any other class's items (same-class items are not pushed away).

    loss = class_weight * class term + own_weight * own term. The own item's old embedding is the bank row
    ``rows`` when given (`train_model` builds the bank from the training items in order and passes each batch's
    row numbers: compat training does not augment, so that row is exactly old(x)), else ``old_model(x)``; the
    own term is skipped when neither is available.
    The scale is sharp by default (128, a temperature of 1/128): the old model packs the classes it never
    learned into tight regions, and only a sharp softmax tells their items apart; measured on Fashion-MNIST
    class extension (docs/objectives.md), top-1 new→old rose from 62.6 (scale 16, class term only) to 78.7."""

    def __init__(self, bank: torch.Tensor, labels: torch.Tensor, scale: float = 128.0, sample: int = 8192,
                 old_model: nn.Module | None = None, own_weight: float = 1.0, class_weight: float = 1.0) -> None:
        super().__init__()
        bank = torch.as_tensor(bank, dtype=torch.float32).detach()
        labels = torch.as_tensor(labels, dtype=torch.long).detach()
        if bank.ndim != 2 or labels.shape != (bank.shape[0],) or bank.shape[0] < 2:
            raise InvalidInputError(f"the old gallery must be (N >= 2, dim) with one label per row, got "
                                    f"{tuple(bank.shape)} and {tuple(labels.shape)} labels")
        if scale <= 0 or sample < 1 or own_weight < 0 or class_weight < 0:
            raise InvalidInputError("the gallery influence needs a positive scale and sample size and non-negative "
                                    "weights", param="influence_scale")
        self.scale, self.sample = float(scale), int(sample)
        self.own_weight, self.class_weight = float(own_weight), float(class_weight)
        self.register_buffer("bank", F.normalize(bank, dim=1))
        self.register_buffer("labels", labels)
        self._old = [old_model]  # a list, not a submodule: never trained, never in the loss's state

    @property
    def dim(self) -> int:
        return self.bank.shape[1]

    def own_embeddings(self, x: torch.Tensor | None, rows: torch.Tensor | None) -> torch.Tensor | None:
        """The old model's normalised embeddings of the batch's own items: bank rows, or computed from x."""
        if rows is not None:
            if rows.ndim != 1 or (len(rows) and (int(rows.min()) < 0 or int(rows.max()) >= self.bank.shape[0])):
                raise InvalidInputError(f"rows must be row numbers of the old gallery (0-{self.bank.shape[0] - 1})")
            return self.bank[rows]
        if x is not None and self._old[0] is not None:
            return old_embeddings(self._old[0], x)
        return None

    def forward(self, f: torch.Tensor, y: torch.Tensor, x: torch.Tensor | None = None,
                rows: torch.Tensor | None = None) -> torch.Tensor:
        n = self.bank.shape[0]
        idx = torch.randint(0, n, (self.sample,), device=f.device) if n > self.sample else None
        bank, labels = (self.bank, self.labels) if idx is None else (self.bank[idx], self.labels[idx])
        fn = F.normalize(f, dim=1)
        s = self.scale * fn @ bank.T
        pos = y[:, None] == labels[None, :]
        loss = s.sum() * 0.0
        found = pos.any(1)
        if self.class_weight and bool(found.any()):
            nll = torch.logsumexp(s, 1) - torch.logsumexp(s.masked_fill(~pos, float("-inf")), 1)
            loss = loss + self.class_weight * nll[found].mean()
        own_old = self.own_embeddings(x, rows) if self.own_weight else None
        if own_old is not None:
            own = self.scale * (fn * own_old).sum(1, keepdim=True)
            others = s.masked_fill(pos, float("-inf"))
            loss = loss + self.own_weight * (torch.logsumexp(torch.cat([own, others], 1), 1) - own[:, 0]).mean()
        return loss
