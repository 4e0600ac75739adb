"""The collection core's enumerations, defined once: the CLI's help texts, the service's OpenAPI enums and the
library's validation all read them from here."""

from __future__ import annotations

from repspace.compat.methods import ADAPTER_METHODS

BACKENDS = ("lancedb", "pgvector")
STRATEGIES = ("old", "adapted", "mixed", "fused", "new")  # how an upgrade serves (see upgrade/search.py)
DEFAULT_STRATEGY = "fused"
SEARCH_STRATEGIES = STRATEGIES + ("active",)  # "active": the active slot alone, even during an upgrade
ORDERS = ("random", "uncertainty")  # backfill orders

__all__ = ["ADAPTER_METHODS", "BACKENDS", "DEFAULT_STRATEGY", "ORDERS", "SEARCH_STRATEGIES", "STRATEGIES"]
