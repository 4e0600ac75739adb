"""Model upgrades: query-side adapters from a new model into an old model's space; compatible training
(`repspace.compat.training`, losses in `repspace.compat.losses`).

The names below load on first use (PEP 562), so importing a submodule (e.g. the torch-free method names in
`repspace.compat.methods`) does not load the adapters' dependencies.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {"ADAPTER_METHODS", "check_adapter_target", "evaluate_upgrade", "fit_adapter"}

if TYPE_CHECKING:  # pragma: no cover
    from repspace.compat.upgrade import ADAPTER_METHODS, check_adapter_target, evaluate_upgrade, fit_adapter


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module("repspace.compat.upgrade"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ADAPTER_METHODS", "check_adapter_target", "evaluate_upgrade", "fit_adapter"]
