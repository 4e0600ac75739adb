"""The collection core's enumerations, defined once: the CLI's help texts, the service's OpenAPI enums and the
library's validation all read them from here."""

from __future__ import annotations

from repspace.compat.methods import ADAPTER_METHODS

BACKENDS = ("lancedb", "pgvector")
STRATEGIES = ("old", "adapted", "mixed", "fused", "new")  # how an upgrade serves (see upgrade/search.py)
DEFAULT_STRATEGY = "fused"
SEARCH_STRATEGIES = STRATEGIES + ("active",)  # "active": the active slot alone, even during an upgrade
ORDERS = ("random", "uncertainty")  # backfill orders



def check_strategy_without_upgrade(strategy: str | None) -> None:
    """A search's strategy where no upgrade serves: only the default, "active" and "old" (the one slot) apply."""
    if strategy in (None, "active", "old"):
        return
    from repspace.errors import InvalidInputError

    if strategy not in SEARCH_STRATEGIES:
        raise InvalidInputError(f"unknown strategy {strategy!r}; choose from {', '.join(SEARCH_STRATEGIES)}",
                                param="strategy")
    raise InvalidInputError(f"strategy {strategy!r} needs an open upgrade (start one first)", param="strategy")


__all__ = ["ADAPTER_METHODS", "BACKENDS", "DEFAULT_STRATEGY", "ORDERS", "SEARCH_STRATEGIES", "STRATEGIES",
           "check_strategy_without_upgrade"]
