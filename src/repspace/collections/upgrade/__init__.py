"""Upgrades that never lose: serve a live collection through a model upgrade.

During an upgrade the collection holds the old slot (every item) and a new slot (the items backfilled so far). A
query text is encoded by both models (a query is one short text; the gallery is what is expensive), and the search
combines every signal there is for each item (`search.py`: the strategies; `scorer.py`: the one fused formula over
candidates). `A(·)` is an adapter new -> old fitted at `start` on a re-embedded sample; the fused score's weights are
logistic regressions (`fusion.py`) fitted at `start` on pseudo-queries of the sample, so one merged ranking is
consistent across backfilled and not-yet-backfilled items, and a term that does not help gets little weight.

The parts: `lifecycle.py` (start, evaluate, status, switch, rollback, finish: typed transitions written by
compare-and-set), `backfill.py` (the resumable job, and `follow`: it kept up while the app writes), `vectors.py` (the
new model's vectors brought in files), `adapter.py` (the adapter blob), `fusion.py` (the fitted score
models), `search.py` and `scorer.py`. The quality-vs-backfill curve is a study: `repspace.studies.upgrade_curve`.
"""

from repspace.collections.choices import DEFAULT_STRATEGY, ORDERS, STRATEGIES
from repspace.collections.upgrade.adapter import load_adapter
from repspace.collections.upgrade.backfill import backfill, backfill_order, follow, fraction
from repspace.collections.upgrade.lifecycle import (evaluate, evaluate_encoded, finish, gate_of, measure, negative_flips,
                                                    pseudo_query, rollback, start, start_from, status, switch)
from repspace.collections.upgrade.search import search_encoded, upgrade_search
from repspace.collections.upgrade.vectors import backfill_from_file, start_with_vectors

__all__ = ["DEFAULT_STRATEGY", "ORDERS", "STRATEGIES", "backfill", "backfill_from_file", "backfill_order", "evaluate",
           "evaluate_encoded", "finish", "follow", "fraction", "gate_of", "load_adapter", "measure", "negative_flips", "pseudo_query", "rollback",
           "search_encoded", "start", "start_from", "start_with_vectors", "status", "switch", "upgrade_search"]
