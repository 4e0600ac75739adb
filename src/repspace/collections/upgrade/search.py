"""Searching a collection during an upgrade: every strategy of `choices.STRATEGIES` on encoded queries.

    old       q_old · old_i                                   (not upgrading at all)
    adapted   A(q_new) · old_i                                (Drift-Adapter style: new queries, old gallery)
    mixed     q_new · new_i where backfilled, else A(q_new) · old_i (raw cosines)
    fused     backfilled: B(q_old · old_i, A(q_new) · old_i, q_new · new_i); else A(q_old · old_i, A(q_new) · old_i)
    new       q_new · new_i over the backfilled items only

`old`, `adapted` and `new` search one slot; `mixed` and `fused` go through the one scorer (`scorer.py`). A fusion
fitted on pseudo-queries serves B(f) = (1 − f)·B + f·B_end at backfilled share f (`fusion.served`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from repspace.collections.cache import hits_of
from repspace.collections.choices import DEFAULT_STRATEGY, STRATEGIES
from repspace.collections.upgrade.adapter import load_adapter
from repspace.collections.upgrade.backfill import backfilled_share
from repspace.collections.upgrade.fusion import MIXED, served
import repspace.collections.upgrade.scorer as scorer
from repspace.collections.upgrade.scorer import JoinedSlots, fused_search
from repspace.errors import InvalidInputError
from repspace.ops.search import normalize_rows


STORE_CANDIDATES = 40  # candidates per slot a store's ANN index gives the fused search at least (benchmarks/scale.py)


def check_strategy(strategy: str | None) -> str:
    strategy = strategy or DEFAULT_STRATEGY
    if strategy not in STRATEGIES:
        raise InvalidInputError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}", param="strategy")
    return strategy


def upgrade_search(coll, meta, texts, vectors, k: int, flt: dict[str, str], strategy: str | None,
                   candidates: int | None = None, vectors_new=None) -> list[list[dict[str, Any]]]:
    """`Collection.search` while an upgrade serves (`meta`: the metadata snapshot the search runs on): texts are
    encoded by the models each strategy needs; or the queries come as vectors of both models (`vectors` old,
    `vectors_new` new: what a collection that cannot encode texts is searched with)."""
    from repspace.collections.payload import query_texts

    up = meta.upgrade
    strategy = check_strategy(strategy)
    if vectors_new is not None:
        if texts is not None:
            raise InvalidInputError("give texts or query vectors, not both", param="texts")
        q_new = coll.query_vectors(None, vectors_new, meta.slot(up.new))
        q_old = coll.query_vectors(None, vectors, meta.slot(up.old)) if vectors is not None else None
        if q_old is None and strategy in ("old", "fused"):
            raise InvalidInputError(f"strategy {strategy!r} needs the old model's query vectors too", param="vectors")
        if q_old is not None and len(q_old) != len(q_new):
            raise InvalidInputError(f"{len(q_old)} old and {len(q_new)} new query vectors", param="vectors_new")
        return search_encoded(coll, q_old, q_new, k, flt, strategy, candidates, meta=meta)
    if vectors is not None:
        if strategy not in ("old", DEFAULT_STRATEGY) or texts is not None:
            raise InvalidInputError("during an upgrade, the old model's query vectors alone search the active slot "
                                    "only: give texts, or the new model's query vectors too (vectors_new)",
                                    param="vectors")
        s = meta.slot()
        return coll.search_slot(s, coll.query_vectors(None, vectors, s), k, flt)
    if texts is None:
        raise InvalidInputError("search needs texts or vectors", param="texts")
    texts = query_texts(texts)
    now = fused_weights(coll, up) if strategy == "fused" else None
    old_needed = strategy == "old" or (now is not None and not now[1])  # (at 100 % fused is the new slot's search)
    q_old = coll.encode(texts, meta.slot(up.old)) if old_needed else None
    q_new = coll.encode(texts, meta.slot(up.new)) if strategy != "old" else None
    return search_encoded(coll, q_old, q_new, k, flt, strategy, candidates, meta=meta, fused_now=now)


def search_encoded(coll, q_old: np.ndarray | None, q_new: np.ndarray | None, k: int,
                   flt: dict[str, str] | None = None, strategy: str = DEFAULT_STRATEGY,
                   candidates: int | None = None, meta=None, fused_now=None) -> list[list[dict[str, Any]]]:
    """The upgrade's strategies on queries already encoded by the old (`q_old`) and new (`q_new`) models (on the
    metadata snapshot `meta`, default the collection's). `fused_now`: `fused_weights`' answer when the caller has
    it (else read here: one version read, on PostgreSQL a round trip)."""
    meta = meta or coll.meta
    up = meta.open_upgrade()
    strategy = check_strategy(strategy)
    if coll.store.native_fused(coll.spec):
        return _store_search(coll, meta, up, q_old, q_new, k, flt or {}, strategy, candidates, fused_now)
    version = coll.store.version()
    if strategy == "fused" and fused_now is None:
        fused_now = fused_weights(coll, up, version)  # counted outside the lock
    with coll.lock:  # the collection's in-memory layer (caches, per-version artefacts)
        ctx = _Context(coll, up, coll.cache(meta.slot(up.old), version), coll.cache(meta.slot(up.new), version),
                       q_old, q_new, flt or {}, candidates, fused_now)
        return SEARCHES[strategy](ctx, k)


def _store_search(coll, meta, up, q_old, q_new, k: int, flt: dict[str, str], strategy: str,
                  candidates: int | None, fused_now=None) -> list[list[dict[str, Any]]]:
    """The strategies where the store searches each slot itself (`Store.native_fused`: an attached table, or an ANN
    index of the store's): candidates from each slot's search, the union scored exactly (`scorer.store_top_k`)."""
    old, new = meta.slot(up.old), meta.slot(up.new)
    if strategy == "old":
        return coll.search_slot(old, q_old, k, flt)
    if strategy == "new":
        return coll.search_slot(new, q_new, k, flt)
    q_ad = load_adapter(coll, up).transform(q_new)
    if strategy == "adapted":
        return coll.search_slot(old, q_ad, k, flt)
    weights, new_only = (MIXED, False) if strategy == "mixed" else (fused_now or fused_weights(coll, up))
    if new_only:
        return _as_fused(coll.search_slot(new, normalize_rows(q_new), k, flt), weights["B"])
    return scorer.store_top_k(coll, meta, normalize_rows(q_old) if q_old is not None else None, normalize_rows(q_ad),
                       normalize_rows(q_new), k, weights, flt, candidates or max(STORE_CANDIDATES, 4 * k))


_UNREAD = object()


def fused_weights(coll, up, version: Any = _UNREAD) -> tuple[dict[str, Any], bool]:
    """The fusion's weights at the backfilled fraction of now (`fusion.served`), and whether they are the new model's
    term alone over a fully backfilled collection (then `fused` is the new slot's own search, its scores mapped by
    B, exact: `candidates` does not apply). The fraction is `backfill.backfilled_share` (recounted at most every few
    seconds), only for a fusion that fades, outside the collection's lock (two searches may both count: harmless)."""
    if not up.fusion or "B_end" not in up.fusion:
        return served(up.fusion, 0.0), False
    share = backfilled_share(coll, up, coll.store.version() if version is _UNREAD else version)
    weights = served(up.fusion, share)
    return weights, share >= 1.0 and not any(weights["B"][:2])


def _as_fused(hits: list[list[dict[str, Any]]], wb) -> list[list[dict[str, Any]]]:
    """The new slot's hits scored as B scores them: wb2 · cosine + wb3 (an increasing map: the same ranking)."""
    return [[{**h, "score": float(wb[2] * h["score"] + wb[3])} for h in row] for row in hits]


class _Context:
    """What a strategy searches with: the two slots' caches and the encoded queries (adapted on first use)."""

    def __init__(self, coll, up, old_c, new_c, q_old, q_new, flt, candidates, fused_now=None) -> None:
        self.coll, self.up, self.old_c, self.new_c, self.q_old, self.q_new = coll, up, old_c, new_c, q_old, q_new
        self.flt, self.candidates = flt, candidates
        self.fused_now = fused_now  # `fused_weights(...)`: (weights, new_only), for the fused strategy
        self._q_ad = None

    @property
    def q_ad(self) -> np.ndarray:
        if self._q_ad is None:
            self._q_ad = load_adapter(self.coll, self.up).transform(self.q_new)
        return self._q_ad

    def fused(self, weights, new_only: bool, k: int) -> list[list[dict[str, Any]]]:
        if new_only:
            return _as_fused(hits_of(self.new_c.search(normalize_rows(self.q_new), k, self.flt)), weights["B"])
        return fused_search(JoinedSlots(self.coll, self.old_c, self.new_c),
                            normalize_rows(self.q_old) if self.q_old is not None else None, normalize_rows(self.q_ad),
                            normalize_rows(self.q_new), k, weights, self.flt, self.candidates)


# one function per strategy (its name in `choices.STRATEGIES`)
SEARCHES = {
    "old": lambda c, k: hits_of(c.old_c.search(c.q_old, k, c.flt)),
    "adapted": lambda c, k: hits_of(c.old_c.search(c.q_ad, k, c.flt)),
    "mixed": lambda c, k: c.fused(MIXED, False, k),
    "fused": lambda c, k: c.fused(*c.fused_now, k),
    "new": lambda c, k: hits_of(c.new_c.search(c.q_new, k, c.flt)),
}
assert tuple(SEARCHES) == STRATEGIES

