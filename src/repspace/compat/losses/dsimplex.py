"""``dsimplex``: cross-entropy against a fixed regular d-Simplex classifier shared by every model version.

Reference: Biondi et al., "CoReS: Compatible Representations via Stationarity", TPAMI 2023 (stationary
representations): the classifier never moves, so the features of all versions stay where it puts each class.

Inputs: x (n, ...), y (n,) class ids; the model must be built with ``classifier="simplex"``. Example::

    model = CompatNet("mlp", 8, 4, classifier="simplex", in_dim=6)
    DSimplexLoss(model)(torch.randn(8, 6), torch.randint(0, 4, (8,))).backward()
"""

from __future__ import annotations

from repspace.compat.losses.classification import ClassificationLoss
from repspace.errors import InvalidInputError
from repspace.nets import CompatNet


class DSimplexLoss(ClassificationLoss):
    """Cross-entropy against the fixed d-Simplex classifier (the model must be built with classifier='simplex')."""

    fixed_classifier = "simplex"

    def __init__(self, model: CompatNet) -> None:
        if model.classifier_kind != "simplex":
            raise InvalidInputError("DSimplexLoss needs a model with a fixed d-Simplex classifier (classifier='simplex')")
        super().__init__(model)
