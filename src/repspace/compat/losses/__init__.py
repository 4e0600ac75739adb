"""Compatible-training losses, one small module and ``nn.Module`` each, called as ``loss(x, y)``.

Each loss declares what it needs (`repspace.compat.losses.base.CompatLoss`): an old model to train against,
a fixed classifier, extra dimensions; `repspace.compat.training.train_model` reads those declarations and
never switches on method names.

- ``independent`` `ClassificationLoss`: cross-entropy through the model's own classifier.
- ``dsimplex`` `DSimplexLoss` (stationary representations, CoReS): a fixed regular d-Simplex classifier.
- ``bct`` `BCTLoss` (Shen et al. 2020): + an influence loss through the OLD model's frozen classifier.
- ``bt2`` `BT2Loss` (Zhou et al. 2023): extra dimensions behind a learned orthonormal basis transformation.

Adding a loss: one new module here with its class, and one line in `_REGISTRY`. Listing the names
(`METHODS`, e.g. for CLI help) never imports torch; the classes load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from repspace.errors import UnknownNameError

# method name -> (module in this package, class)
_REGISTRY: dict[str, tuple[str, str]] = {
    "independent": ("classification", "ClassificationLoss"),
    "dsimplex": ("dsimplex", "DSimplexLoss"),
    "bct": ("bct", "BCTLoss"),
    "bt2": ("bt2", "BT2Loss"),
}
METHODS: tuple[str, ...] = tuple(_REGISTRY)
_CLASSES = {cls: mod for mod, cls in [*_REGISTRY.values(), ("base", "CompatLoss")]}

if TYPE_CHECKING:  # pragma: no cover
    from repspace.compat.losses.base import CompatLoss
    from repspace.compat.losses.bct import BCTLoss
    from repspace.compat.losses.bt2 import BT2Loss
    from repspace.compat.losses.classification import ClassificationLoss
    from repspace.compat.losses.dsimplex import DSimplexLoss


def get_loss(method: str) -> type["CompatLoss"]:
    """The loss class registered as `method`."""
    if method not in _REGISTRY:
        raise UnknownNameError(f"unknown compatible-training method {method!r}; choose from {', '.join(METHODS)}")
    module, cls = _REGISTRY[method]
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def __getattr__(name: str) -> Any:
    if name in _CLASSES:
        return getattr(importlib.import_module(f"{__name__}.{_CLASSES[name]}"), name)
    if name == "LOSSES":  # {method: class}
        return {m: get_loss(m) for m in METHODS}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BCTLoss", "BT2Loss", "ClassificationLoss", "CompatLoss", "DSimplexLoss", "LOSSES", "METHODS", "get_loss"]
