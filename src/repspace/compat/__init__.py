"""Model upgrades: query-side adapters from a new model into an old model's space."""

from repspace.compat.upgrade import ADAPTER_METHODS, check_adapter_target, evaluate_upgrade, fit_adapter

__all__ = ["ADAPTER_METHODS", "check_adapter_target", "evaluate_upgrade", "fit_adapter"]
