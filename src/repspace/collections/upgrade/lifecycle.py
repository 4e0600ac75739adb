"""An upgrade's life: start (claim, fit), evaluate (the gate), status, switch, rollback, finish.

Each step is one transition of the typed state (`meta.CollectionMeta`) written by compare-and-set, so two commands
at once end in one consistent state and the loser gets `ConcurrentChangeError` (or the state's own refusal):

    none --start--> starting --fitted--> open --switch--> switched --finish--> none
                    any state --rollback--> none

`start` claims the new slot first (one write: slot + upgrade "starting"), then re-embeds the sample, fits the adapter
new -> old, the uncertainty model and the score fusion, and opens the upgrade; if anything fails, it is rolled back
(no orphan slot, no half-started upgrade). A `starting` state left by a killed process serves the old slot alone and
is cleared by `rollback`. The *gate* compares the default strategy (fused) with old on golden queries held out from
the sample: it passes when fused is not below old by more than one standard error on recall@10 and nDCG@10. Golden
queries are pairs (query text, relevant item id): given by the user, or made from the held-out items' own texts
(`pseudo_query`: an inverse-cloze query).
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable, Sequence

import numpy as np

from repspace.collections.choices import ADAPTER_METHODS, DEFAULT_STRATEGY, STRATEGIES
from repspace.collections.upgrade.adapter import save_adapter
from repspace.collections.upgrade.backfill import (backfill_order, fraction, item_hash, progress, scan_texts,
                                                   serving_upgrade, texts_of)
from repspace.collections.upgrade.fusion import (ResidualRidge, density_of, fit_end, fit_fusion, fusion_pairs,
                                                  served)
from repspace.collections.upgrade.search import search_encoded
from repspace.errors import CollectionError, InvalidInputError, UnknownNameError
from repspace.ops.search import normalize_rows

MIN_FIT_QUERIES = 20
MIN_SAMPLE = 20
MIN_WORDS = 4  # a pseudo-query's first sentence is at least this long (else joined with the next)


def pseudo_query(text: str, words: int = 24) -> str:
    """An inverse-cloze query for an item: its first sentence (at most `words` words); for an item that is a single
    short sentence, the first half of its words, so the query is never the item itself. Leading sentences shorter than
    `MIN_WORDS` words (a dictionary's "n.", a heading) are joined with the next."""
    parts = re.split(r"(?<=[.!?])\s+", text.strip())
    toks, used = parts[0].split(), 1
    while len(toks) < MIN_WORDS and used < len(parts):
        toks, used = toks + parts[used].split(), used + 1
    if used == len(parts) and len(toks) <= 2 * words:
        toks = toks[: max(1, (len(toks) + 1) // 2)]
    return " ".join(toks[:words])


# ----------------------------------------------------------------------- start
def start(coll, model: str, *, sample: int = 1000, method: str = "procrustes", seed: int = 0,
          golden: Sequence[tuple[str, str]] | None = None, golden_fraction: float = 0.2,
          fit_queries: Sequence[tuple[str, str]] | None = None, batch_size: int = 64, progress: bool = False,
          evaluate_gate: bool = True, side_table: bool = False, backend: str = "torch") -> dict[str, Any]:
    """Add the new model's slot, re-embed a seeded sample of the stored texts (a fifth held out as golden queries
    unless `golden` is given), fit the adapter, the uncertainty model and the score fusion (on pseudo-queries, or on
    `fit_queries`: real (text, relevant id) pairs whose item is in the sample), and measure the gate."""
    read = coll.reload()
    if sample < MIN_SAMPLE:
        raise InvalidInputError(f"the sample must be at least {MIN_SAMPLE} items (a part of them is held out as "
                                "golden queries)", param="sample")
    _check_start(coll, read, method)
    ids, has_text, _ = scan_texts(coll, read.slot().column)
    with_text = [i for i, t in zip(ids, has_text) if t]
    if not with_text:
        raise CollectionError(f"collection {coll.name!r} stores no texts: vectors alone cannot be re-encoded by a new "
                              "model. Upsert the items again with their texts (collection upsert with a text column, "
                              "or a dataset) before upgrading")
    chosen = sorted(with_text, key=lambda i: item_hash(f"{seed}:{i}"))[:sample]
    n_gold = max(10, int(round(len(chosen) * golden_fraction))) if golden is None else 0
    gold_ids, fit_ids = chosen[:n_gold], chosen[n_gold:]
    if len(fit_ids) < 10:
        raise InvalidInputError(f"only {len(chosen)} items with texts: too few to fit an adapter (need ≥ 10 beyond "
                                "the golden queries)", param="sample")

    def encode(order: list[str], texts: dict[str, str]) -> np.ndarray:
        return coll.encode([texts[i] for i in order], coll.meta.upgrade.new, batch_size=batch_size)

    def golden_of(texts: dict[str, str]) -> list[tuple[str, str]]:
        return list(golden) if golden is not None else [(pseudo_query(texts[i]), i) for i in gold_ids if i in texts]

    return start_from(coll, read, model, fit_ids, encode, method=method, seed=seed, sample=len(chosen), keep=True,
                      golden=golden_of, fit_queries=fit_queries, evaluate_gate=evaluate_gate,
                      extra_ids=gold_ids, side_table=side_table, backend=backend)


def start_from(coll, read, model: str, fit_ids: Sequence[str],
               new_vectors: Callable[[list[str], dict[str, str]], np.ndarray], *, method: str = "procrustes",
               seed: int = 0, sample: int | None = None, keep: bool = True,
               golden: Callable[[dict[str, str]], list[tuple[str, str]]] | None = None,
               fit_queries: Sequence[tuple[str, str]] | None = None, evaluate_gate: bool = True,
               extra_ids: Sequence[str] = (), side_table: bool = False, dim: int | None = None,
               backend: str = "torch") -> dict[str, Any]:
    """Start an upgrade whose adapter and fusion are fitted on `fit_ids` with the new model's vectors from
    `new_vectors(ids, texts)` (encoded here, or brought by the caller); `keep` stores them in the new slot (else the
    backfill starts from 0 %). `golden(texts)` gives the gate's queries (none: no gate is measured). `side_table`: an
    attached table's new vectors go to a table of repspace's keyed by the app's id, not a new column of the app's."""
    from repspace.collections.slots import describe_model

    _check_start(coll, read, method, encodes=False)
    info = describe_model(model, dim, None, coll.device, backend, coll.threads)
    claimed = coll.commit(read, read.with_side_table(side_table).start_upgrade(
        info, method=method, seed=seed, sample=sample or len(fit_ids)))
    up = claimed.upgrade
    try:
        coll.create_column(claimed.slot(up.new))
        encodes = claimed.slot(up.new).encodes
        if encodes:
            texts = texts_of(coll, list(fit_ids) + list(extra_ids))
            order = [i for i in fit_ids if i in texts]  # deleted since the scan: left out
        else:  # brought vectors: any item that still exists, text or not
            texts = {}
            order = [g["id"] for g in coll.get(list(fit_ids))]
        if len(order) < 10:
            raise InvalidInputError("too few sampled items still exist (with texts) to fit an adapter", param="sample")
        vec_new = np.asarray(new_vectors(order, texts), np.float32)
        if keep:
            coll.update_vectors(up.new, order, vec_new, texts=[texts[i] for i in order] if encodes else None)
        fitted = _fit(coll, up, order, vec_new, texts, fit_queries)
        gold = [(q, r) for q, r in (golden(texts) if golden else []) if q.strip()]
        coll.transition(lambda m: m.fitted_upgrade(up.started, golden=gold, **fitted))
    except BaseException:
        _abort(coll, up)
        raise
    return evaluate(coll) if evaluate_gate and gold else status(coll)


def _check_start(coll, read, method: str, encodes: bool = True) -> None:
    """Refuse a start from this state (`encodes`: the old model must encode queries — not so where both models'
    query vectors are brought)."""
    if read.upgrade is not None:
        raise CollectionError(f"an upgrade to {read.upgrade.new!r} is already open on {coll.name!r}; switch/finish "
                              "or roll it back first")
    if method not in ADAPTER_METHODS:
        raise UnknownNameError(f"unknown adapter method {method!r}; choose from {', '.join(ADAPTER_METHODS)}",
                               param="method")
    if encodes and not read.slot().encodes:
        raise CollectionError(f"the active slot {read.active!r} holds external vectors: queries cannot be encoded by "
                              "the old model: bring the new model's vectors (and search with both models' query vectors), or "
                              "re-embed")


def _fit(coll, up, order: list[str], vec_new: np.ndarray, texts: dict[str, str], fit_queries) -> dict[str, Any]:
    """Adapter (saved as the collection's blob), uncertainty model and fusion, from the sample's vectors."""
    from repspace.alignment.api import make_translator
    from repspace.spaces import Space

    has, vec_old = coll.vectors_for(up.old, order)
    X, Y = vec_new[has], vec_old[has]
    new, old = coll.slot(up.new), coll.slot(up.old)
    adapter = make_translator(up.method, seed=up.seed).fit(
        X, Y, source=Space(X, [f"s{j}" for j in range(len(X))], model=new.model, validate=False),
        target=Space(Y, [f"t{j}" for j in range(len(Y))], model=old.model, validate=False))
    # uncertainty: how badly the adapter explains an item's old vector, predicted from the old vector
    resid = 1.0 - np.sum(normalize_rows(adapter.transform(X)) * normalize_rows(Y), axis=1)
    ridge = ResidualRidge().fit(Y, resid).to_list()
    save_adapter(coll, adapter)
    if not new.encodes or not old.encodes:  # no queries to fit on: the neutral fusion serves
        return {"uncertainty": {"w": ridge[:-1], "b": ridge[-1]}, "fusion": None}
    gallery = [order[r] for r in np.flatnonzero(has)]
    queries, relevant, source = _fusion_queries(gallery, texts, fit_queries)
    rows = np.sort(np.random.default_rng(up.seed).permutation(len(queries))[:300])
    qs = [queries[r] for r in rows]
    q_old, q_new = coll.encode(qs, up.old), coll.encode(qs, up.new)
    q_ad = adapter.transform(q_new)
    # real queries: calibrated to the collection (each sample item stands for N / n items of the old slot:
    # fusion.fusion_pairs); pseudo-queries: class-balanced, as measured better for them (RESULTS.md, issue 26 item 4)
    density = density_of(coll.count(up.old), len(gallery))
    F, y, w = fusion_pairs(normalize_rows(q_old), normalize_rows(q_ad), normalize_rows(q_new), normalize_rows(Y),
                           normalize_rows(X), [relevant[r] for r in rows], density=density)
    calibrated = source == "fit queries"
    fusion = {"queries": int(len(rows)), "pairs": int(len(y)), "from": source,
              "calibration": "collection density" if calibrated else "class balance", "density": density,
              **fit_fusion(F, y, sample_weight=w if calibrated else None)}
    if not calibrated:  # pseudo-queries: B fades into the new model's term alone as the backfill completes
        fusion["B_end"] = fit_end(F, y)
    return {"uncertainty": {"w": ridge[:-1], "b": ridge[-1]}, "fusion": fusion}


def _fusion_queries(gallery: list[str], texts: dict[str, str], fit_queries):
    """(query texts, relevant gallery rows per query, where they come from): the real fit queries whose items are
    in the gallery, grouped by text; else one pseudo-query per gallery item (relevant: that item)."""
    if fit_queries:
        row = {i: r for r, i in enumerate(gallery)}
        grouped: dict[str, list[int]] = {}
        for q, i in fit_queries:
            if q and q.strip() and i in row:
                grouped.setdefault(q, []).append(row[i])
        if len(grouped) >= MIN_FIT_QUERIES:
            return list(grouped), list(grouped.values()), "fit queries"
    return [pseudo_query(texts[i]) for i in gallery], [[r] for r in range(len(gallery))], "pseudo-queries"


def _abort(coll, up) -> None:
    """Undo a start that failed after its claim (only if the upgrade is still this one)."""
    try:
        meta = coll.reload()
        if meta.upgrade is not None and meta.upgrade.started == up.started and meta.upgrade.new == up.new:
            slot = meta.slot(up.new)
            coll.commit(meta, meta.rolled_back())
            coll.drop_column(slot)
    except Exception:  # noqa: BLE001 - best effort; the original error matters (rollback clears what is left)
        pass


# ------------------------------------------------------------ evaluate, gate
def measure(coll, strategies: Sequence[str] = STRATEGIES) -> dict[str, Any]:
    """Per-strategy metrics on the upgrade's golden queries (nothing written)."""
    up = serving_upgrade(coll)
    if not up.golden:
        return {}
    texts, rel = [g[0] for g in up.golden], [g[1] for g in up.golden]
    return evaluate_encoded(coll, coll.encode(texts, up.old), coll.encode(texts, up.new), rel, strategies)


def evaluate_encoded(coll, q_old: np.ndarray, q_new: np.ndarray, relevant: Sequence[str | Sequence[str]],
                     strategies: Sequence[str] = STRATEGIES) -> dict[str, Any]:
    """Per-strategy recall@10, nDCG@10 (with standard errors) and negative flip rate on encoded queries."""
    hits = {s: search_encoded(coll, q_old, q_new, 10, {}, s) for s in strategies}
    rel = list(relevant)
    out = {s: _metrics(h, rel) for s, h in hits.items()}
    for s in strategies:
        out[s]["negative_flip_rate"] = negative_flips(hits["old"], hits[s], rel) if "old" in hits else None
    return out


def _metrics(hits: list[list[dict]], relevant: Sequence[str | Sequence[str]]) -> dict[str, float]:
    from repspace.evaluation.metrics import ranking_metrics

    m = ranking_metrics([[h["id"] for h in row] for row in hits], list(relevant), 10)
    n = len(hits)
    out: dict[str, float] = {"queries": n}
    for key in ("recall@10", "ndcg@10"):
        out[key] = float(m[key].mean()) if n else 0.0
        out[f"{key}_se"] = float(m[key].std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0
    return out


def negative_flips(old_hits: list[list[dict]], new_hits: list[list[dict]], relevant: Sequence[str], k: int = 1) -> float:
    """RACT's negative flip rate: queries the old system answered right (relevant item in its top k) that
    the new path answers wrong."""
    flips = 0
    for o, n, rel in zip(old_hits, new_hits, relevant):
        rel = {rel} if isinstance(rel, str) else set(rel)
        if rel & {h["id"] for h in o[:k]} and not rel & {h["id"] for h in n[:k]}:
            flips += 1
    return flips / max(1, len(relevant))


def gate_of(metrics: dict[str, Any], strategy: str = DEFAULT_STRATEGY) -> dict[str, Any]:
    if not metrics:
        return {"passed": False, "reason": "no golden queries"}
    old, cand = metrics["old"], metrics[strategy]
    checks = {key: cand[key] >= old[key] - old[f"{key}_se"] for key in ("recall@10", "ndcg@10")}
    return {"passed": all(checks.values()), "strategy": strategy, "against": "old", "tolerance": "one standard error",
            **{f"{k}_ok": v for k, v in checks.items()}}


def evaluate(coll) -> dict[str, Any]:
    """Measure the gate now (encodes the golden queries with both models, runs every strategy) and record its verdict
    and metrics in the upgrade's state; returns the status with them. Runs without any lock: the record is written
    by compare-and-set into the same upgrade only."""
    from repspace.collections.upgrade.compatible import measure_compatible

    up = serving_upgrade(coll)
    metrics = measure(coll)
    gate = gate_of(metrics)
    compatible = measure_compatible(coll, up, _metrics)  # a backend switch: may need no backfill
    if compatible is not None:
        gate["compatible_upgrade"] = compatible
    coll.transition(lambda m: m.with_gate(up.started, {**gate, "metrics": metrics, "fraction": fraction(coll)}))
    return status(coll)


def status(coll) -> dict[str, Any]:
    """The upgrade's state and counts, and the gate as last measured (`evaluate`): cheap, nothing is encoded."""
    meta = coll.reload()
    up = meta.open_upgrade()
    recorded = dict(up.gate or {})
    metrics = recorded.pop("metrics", {})
    recorded.pop("fraction", None)
    count, backfilled, frac = progress(coll, up)
    now = served(up.fusion, frac)
    return {"collection": coll.name, "old": up.old, "new": up.new, "state": up.state, "active": meta.active,
            "method": up.method, "fraction": frac, "count": count, "backfilled": backfilled,
            "fusion_weights": {"A": now["A"], "B": now["B"], "fades": "B_end" in (up.fusion or {})},
            "without_text": coll.store.count_without_text(),
            "gate": recorded or None, "metrics": metrics, "evaluated_at_fraction": (up.gate or {}).get("fraction"),
            "default_strategy": DEFAULT_STRATEGY, "golden_queries": len(up.golden)}


# ------------------------------------------------------- switch, rollback, finish
def switch(coll, *, force: bool = False) -> dict[str, Any]:
    """Make the new slot active (searches racing the switch see the old or the new slot, never an error). Unless
    `force`, the gate is measured now and must pass."""
    from repspace.collections.upgrade.compatible import adopt

    read = coll.reload()
    up = read.open_upgrade()
    if up.state == "open" and ((up.gate or {}).get("compatible_upgrade") or {}).get("compatible"):
        return adopt(coll, read, up)  # measured compatible: the old vectors stay, no backfill
    if not force:
        gate = gate_of(measure(coll))
        if not gate["passed"]:
            import json

            raise CollectionError(f"the gate does not pass ({json.dumps(gate)}); backfill further, or force the "
                                  "switch", param="force")
    coll.commit(read, read.switched())
    return {"active": coll.active, "previous": up.old, "state": "switched"}


def rollback(coll) -> dict[str, Any]:
    """Back to the old model: the old slot active, the upgrade closed, the new slot dropped."""
    read = coll.reload()
    up = read.open_upgrade()
    slot = read.slot(up.new)
    coll.commit(read, read.rolled_back())
    coll.drop_column(slot)
    return {"active": coll.active, "dropped": up.new}


def finish(coll, *, force: bool = False, drop_old: bool = False) -> dict[str, Any]:
    """Close the upgrade: the new slot active, the old slot dropped (needs the switch; and every item with a text
    backfilled, unless `force`). On an attached table the application's own old column stays unless `drop_old`
    (refused while an index of the app's is on it); the result gives the SQL the app queries the new column with."""
    read = coll.reload()
    attached = read.attached is not None
    if drop_old and not attached:
        raise InvalidInputError("drop_old is for attached tables (repspace's own collections drop the old slot "
                                "anyway)", param="drop_old")
    up = read.open_upgrade()
    if read.active != up.new:
        raise CollectionError("switch to the new slot first (upgrade switch)")
    f = fraction(coll)
    if f < 1.0 and not force:
        todo, without_text = backfill_order(coll)
        how = (f"{without_text} item(s) store no text and have no {up.new} vector: give their new-model vectors "
               f"(an upsert of vectors into slot {up.new!r} fills that slot only) " if without_text else "")
        raise CollectionError(f"only {f:.1%} of the items are backfilled; finish drops the old vectors, which would "
                              f"leave the rest unsearchable: {how}{'run the backfill ' if todo else ''}first, or force "
                              "it", param="force")
    slot = read.slot(up.old)
    if drop_old:
        coll.store.check_drop_old()
    coll.commit(read, read.finished())
    coll.drop_column(slot, drop_old=drop_old)
    out = {"active": coll.active, "dropped": up.old, "fraction": f}
    if attached:
        out["kept_old_column"] = not drop_old
        out["app_query"] = coll.store.app_sql(read.slot(up.new).column)
    return out
