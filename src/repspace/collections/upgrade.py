"""Upgrades that never lose: serve a live collection through a model upgrade.

During an upgrade the collection holds the old slot (every item) and a new slot (the items backfilled
so far). A query text is encoded by both models (a query is one short text; the gallery is what is
expensive), and the search combines every signal there is for each item:

    old       q_old · old_i                                   (not upgrading at all)
    adapted   A(q_new) · old_i                                (Drift-Adapter style: new queries, old gallery)
    mixed     q_new · new_i where backfilled, else A(q_new) · old_i (raw cosines)
    fused     z_oo(q_old · old_i) + (z_nn(q_new · new_i) if backfilled else z_ao(A(q_new) · old_i))
    new       q_new · new_i over the backfilled items only

`A` is an adapter new -> old fitted at `start` on a re-embedded sample. The z maps are per-term score
calibrations (mean and spread of each term's top scores on the calibration queries), so one merged
ranking is consistent across backfilled and not-yet-backfilled items. The *gate* compares the default
strategy (fused) with old on golden queries held out from the sample: it passes when fused is not
below old by more than one standard error on recall@10 and nDCG@10.

Golden queries are pairs (query text, relevant item id): given by the user, or made from the held-out
items' own texts (their first sentence, at most 24 words: an inverse-cloze pseudo-query).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import tempfile
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from repspace.collections.collection import Collection
from repspace.collections.store import vectors_of
from repspace.errors import CollectionError, InvalidInputError, UnknownNameError

STRATEGIES = ("old", "adapted", "mixed", "fused", "new")
DEFAULT_STRATEGY = "fused"
ADAPTER_BLOB = "upgrade-adapter.zip"
ORDERS = ("random", "uncertainty")


def _h(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def pseudo_query(text: str, words: int = 24) -> str:
    first = re.split(r"(?<=[.!?])\s+", text.strip(), maxsplit=1)[0]
    return " ".join(first.split()[:words])


# ------------------------------------------------------------------ adapter I/O
def _save_adapter(coll: Collection, adapter) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        adapter.save(Path(tmp) / "a")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for f in sorted((Path(tmp) / "a").iterdir()):
                z.write(f, f.name)
        coll.store.put_blob(ADAPTER_BLOB, buf.getvalue())


def load_adapter(coll: Collection):
    from repspace.alignment import load_translator

    cached = getattr(coll, "_upgrade_adapter", None)
    key = (coll.meta.get("upgrade") or {}).get("started")
    if cached is not None and cached[0] == key:
        return cached[1]
    data = coll.store.get_blob(ADAPTER_BLOB)
    if data is None:
        raise CollectionError(f"the upgrade of {coll.name!r} has lost its adapter; roll it back and start again")
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            for name in z.namelist():
                if "/" in name or name.startswith("."):
                    raise CollectionError("the stored adapter archive is not repspace's")
                (Path(tmp) / name).write_bytes(z.read(name))
        adapter = load_translator(tmp)
    coll._upgrade_adapter = (key, adapter)
    return adapter


# --------------------------------------------------------------------- helpers
def _state(coll: Collection) -> dict[str, Any]:
    coll.reload()
    up = coll.meta.get("upgrade")
    if not up:
        raise CollectionError(f"collection {coll.name!r} has no open upgrade (start one with `repspace upgrade start`)")
    return up


def _texts_of(coll: Collection, ids: Sequence[str]) -> dict[str, str]:
    return {g["id"]: g["text"] for g in coll.get(ids) if g["text"] is not None}


def _scan_texts(coll: Collection, column: str) -> tuple[list[str], list[bool], list[bool]]:
    """ids, has-text flags and has-vector-in-`column` flags of every item."""
    ids, has_text, has_vec = [], [], []
    for batch in coll.store.scan(["id", "text", column]):
        ids += batch.column("id").to_pylist()
        has_text += [t is not None for t in batch.column("text").to_pylist()]
        valid, _ = vectors_of(batch.column(column), batch.schema.field(column).type.list_size)
        has_vec += valid.tolist()
    return ids, has_text, has_vec


def _metrics(hits: list[list[dict]], relevant: Sequence[str | Sequence[str]]) -> dict[str, float]:
    """recall@10 = |top 10 ∩ relevant| / min(10, |relevant|); nDCG@10 with binary gains."""
    rec, ndcg = [], []
    for row, rel in zip(hits, relevant):
        rel = {rel} if isinstance(rel, str) else set(rel)
        ranked = [h["id"] for h in row[:10]]
        gains = [1.0 if i in rel else 0.0 for i in ranked]
        ideal = sum(1.0 / math.log2(r + 2) for r in range(min(10, len(rel))))
        rec.append(sum(gains) / max(1, min(10, len(rel))))
        ndcg.append(sum(g / math.log2(r + 2) for r, g in enumerate(gains)) / ideal if ideal else 0.0)
    n = max(1, len(rec))
    rec_a, ndcg_a = np.asarray(rec), np.asarray(ndcg)
    return {"recall@10": float(rec_a.mean()), "ndcg@10": float(ndcg_a.mean()),
            "recall@10_se": float(rec_a.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0,
            "ndcg@10_se": float(ndcg_a.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0, "queries": len(rec)}


def negative_flips(old_hits: list[list[dict]], new_hits: list[list[dict]], relevant: Sequence[str], k: int = 1) -> float:
    """RACT's negative flip rate: queries the old system answered right (relevant item in its top k) that
    the new path answers wrong."""
    flips = 0
    for o, n, rel in zip(old_hits, new_hits, relevant):
        rel = {rel} if isinstance(rel, str) else set(rel)
        if rel & {h["id"] for h in o[:k]} and not rel & {h["id"] for h in n[:k]}:
            flips += 1
    return flips / max(1, len(relevant))


# ----------------------------------------------------------------------- start
def start(coll: Collection, model: str, *, sample: int = 1000, method: str = "procrustes", seed: int = 0,
          golden: Sequence[tuple[str, str]] | None = None, golden_fraction: float = 0.2, batch_size: int = 64,
          progress: bool = False, sample_ids: Sequence[str] | None = None,
          new_vectors: Callable[[list[str]], np.ndarray] | None = None, evaluate_gate: bool = True,
          keep_sample: bool = True) -> dict[str, Any]:
    """Add the new model's slot, re-embed a sample of stored texts, fit the adapter new -> old and the score
    calibration, and measure the gate on held-out golden queries.

    sample_ids: the items to re-embed (default: a seeded hash sample of those with texts).
    new_vectors: precomputed new-model vectors for a list of ids (e.g. from a Ray job or a cache), instead of
    encoding here. With golden queries given, the whole sample fits the adapter. keep_sample=False fits on the
    sample without storing its new vectors (the backfill then starts from 0 %)."""
    from repspace.alignment.api import make_translator
    from repspace.compat.upgrade import ADAPTER_METHODS
    from repspace.spaces import Space

    coll.reload()
    if coll.meta.get("upgrade"):
        up = coll.meta["upgrade"]
        raise CollectionError(f"an upgrade to {up['new']!r} is already open on {coll.name!r}; switch/finish or roll it back first")
    if method not in ADAPTER_METHODS:
        raise UnknownNameError(f"unknown adapter method {method!r}; choose from {', '.join(ADAPTER_METHODS)}")
    old = coll.slot()
    if not old.get("encodes"):
        raise CollectionError(f"the active slot {old['name']!r} holds external vectors: queries cannot be encoded by "
                              "the old model, so there is nothing to serve through; re-embed instead")
    from repspace.collections.collection import describe_model

    info = describe_model(model, None, None, coll.device)
    if info["model"] == old["model"] and info["model_version"] == old["model_version"]:
        raise CollectionError(f"{model!r} is already the active model of {coll.name!r}")
    if sample < 20:
        raise InvalidInputError("--sample must be at least 20 items (a part of them is held out as golden queries)")
    ids, has_text, _ = _scan_texts(coll, old["column"])
    with_text = [i for i, t in zip(ids, has_text) if t]
    if not with_text:
        raise CollectionError(f"collection {coll.name!r} stores no texts: vectors alone cannot be re-encoded by a new "
                              "model. Upsert the items again with their texts (collection upsert --input FILE with a "
                              "text column, or --dataset) before upgrading")
    chosen = (list(sample_ids) if sample_ids is not None
              else sorted(with_text, key=lambda i: _h(f"{seed}:{i}"))[:sample])
    n_gold = max(10, int(round(len(chosen) * golden_fraction))) if golden is None else 0
    gold_ids, fit_ids = chosen[:n_gold], chosen[n_gold:]
    if len(fit_ids) < 10:
        raise InvalidInputError(f"only {len(chosen)} items with texts: too few to fit an adapter (need ≥ 10 beyond "
                                "the golden queries)")
    new = coll.add_slot(model)
    try:
        texts = _texts_of(coll, chosen)
        order = [i for i in fit_ids if i in texts]  # golden items stay un-backfilled: they are held out
        vec_new = (np.asarray(new_vectors(order), np.float32) if new_vectors is not None
                   else coll.encode([texts[i] for i in order], new["name"], batch_size=batch_size))
        if keep_sample:
            coll.update_vectors(new["name"], order, vec_new)
        old_cache = coll.cache(old["name"])
        has, vec_old = old_cache.vectors_for(fit_ids)
        pos = {i: j for j, i in enumerate(order)}
        fit_rows = [pos[i] for i in fit_ids]
        X, Y = vec_new[fit_rows][has], vec_old[has]
        adapter = make_translator(method, seed=seed).fit(
            X, Y, source=Space(X, [f"s{j}" for j in range(len(X))], model=new["model"], validate=False),
            target=Space(Y, [f"t{j}" for j in range(len(Y))], model=old["model"], validate=False))
        # uncertainty: how badly the adapter explains an item's old vector, predicted from the old vector (ridge)
        resid = 1.0 - np.sum(_unit(adapter.transform(X)) * _unit(Y), axis=1)
        ridge = _ridge(Y, resid)
        if golden is None:
            golden = [(pseudo_query(texts[i]), i) for i in gold_ids if i in texts]
        golden = [(q, r) for q, r in golden if q.strip()]
        state = {"old": old["name"], "new": new["name"], "method": method, "seed": seed, "sample": len(chosen),
                 "started": _now(), "state": "open", "golden": [list(g) for g in golden],
                 "uncertainty": {"w": ridge[0].tolist(), "b": ridge[1]}, "calibration": None, "gate": None}
        _save_adapter(coll, adapter)
        coll._upgrade_adapter = None
        coll.update_meta(upgrade=state)
        _calibrate(coll, [pseudo_query(texts[i]) for i in fit_ids[:200] if i in texts])
        return status(coll, evaluate_metrics=evaluate_gate)
    except BaseException:
        coll.update_meta(upgrade=None)
        try:
            coll.drop_slot(new["name"])
        except Exception:  # noqa: BLE001 - best effort; the original error matters
            pass
        raise


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _ridge(X: np.ndarray, y: np.ndarray, alpha: float = 1.0) -> tuple[np.ndarray, float]:
    mu, ym = X.mean(0), float(y.mean())
    Xc = X - mu
    w = np.linalg.solve(Xc.T @ Xc + alpha * np.eye(X.shape[1]), Xc.T @ (y - ym))
    return w.astype(np.float32), float(ym - mu @ w)


def _calibrate(coll: Collection, texts: Sequence[str], top: int = 50) -> None:
    """Per-term score maps: mean and spread of each term's top scores over calibration queries."""
    up = _state(coll)
    q_old, q_new, q_ad = _encode_queries(coll, up, texts)
    calib = {}
    for term, (slot, q) in {"oo": (up["old"], q_old), "ao": (up["old"], q_ad), "nn": (up["new"], q_new)}.items():
        hits = coll.cache(slot).search(q, top, {})
        s = np.asarray([h[1] for row in hits for h in row], np.float64)
        calib[term] = [float(s.mean()), float(max(s.std(), 1e-6))] if len(s) else [0.0, 1.0]
    up["calibration"] = calib
    coll.update_meta(upgrade=up)


def _encode_queries(coll: Collection, up: dict[str, Any], texts: Sequence[str]):
    q_old = coll.encode(list(texts), up["old"])
    q_new = coll.encode(list(texts), up["new"])
    q_ad = load_adapter(coll).transform(q_new)
    return q_old, q_new, q_ad


# ---------------------------------------------------------------------- search
def upgrade_search(coll: Collection, texts, vectors, k: int, flt: dict[str, str], strategy: str | None,
                   candidates: int | None = None) -> list[list[dict[str, Any]]]:
    up = coll.meta["upgrade"]
    strategy = strategy or DEFAULT_STRATEGY
    if strategy not in STRATEGIES:
        raise InvalidInputError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
    if vectors is not None:
        if strategy not in ("old", DEFAULT_STRATEGY) or texts is not None:
            raise InvalidInputError("during an upgrade, query vectors search the active slot only: give texts to "
                                    "use the upgrade's strategies")
        s = coll.slot()
        return coll.search_slot(s, coll.query_vectors(None, vectors, s), k, flt)
    if texts is None:
        raise InvalidInputError("search needs texts or vectors")
    texts = [texts] if isinstance(texts, str) else list(texts)
    if not texts or any(not isinstance(t, str) for t in texts):
        raise InvalidInputError("query texts must be a non-empty list of strings")
    return _search_texts(coll, up, texts, k, flt, strategy, candidates)


def _search_texts(coll, up, texts, k, flt, strategy, candidates=None):
    need_old = strategy in ("old", "fused")
    need_new = strategy != "old"
    q_old = coll.encode(texts, up["old"]) if need_old else None
    q_new = coll.encode(texts, up["new"]) if need_new else None
    return search_encoded(coll, q_old, q_new, k, flt, strategy, candidates)


def search_encoded(coll: Collection, q_old: np.ndarray | None, q_new: np.ndarray | None, k: int,
                   flt: dict[str, str] | None = None, strategy: str = DEFAULT_STRATEGY,
                   candidates: int | None = None) -> list[list[dict[str, Any]]]:
    """The upgrade's strategies on queries already encoded by the old (`q_old`) and new (`q_new`) models."""
    up = coll.meta["upgrade"]
    flt = flt or {}
    old_c, new_c = coll.cache(up["old"]), coll.cache(up["new"])
    if strategy == "old":
        return _as_hits(old_c.search(q_old, k, flt))
    if strategy == "new":
        return _as_hits(new_c.search(q_new, k, flt))
    q_ad = load_adapter(coll).transform(q_new)
    if strategy == "adapted":
        return _as_hits(old_c.search(q_ad, k, flt))
    K = candidates or max(100, 4 * k)
    cal = up.get("calibration") or {"oo": [0, 1], "ao": [0, 1], "nn": [0, 1]}
    z = {t: (lambda s, m=cal[t][0], sd=cal[t][1]: (s - m) / sd) for t in cal}
    out = []
    lists = {"ao": old_c.search(q_ad, K, flt), "nn": new_c.search(q_new, K, flt)}
    if strategy == "fused":
        lists["oo"] = old_c.search(q_old, K, flt)
    qn_new, qn_ad = _unit(q_new), _unit(q_ad)
    qn_old = _unit(q_old) if q_old is not None else None
    for j in range(len(q_new)):
        cand: dict[str, str] = {}
        for rows in lists.values():
            for i, _, p in rows[j]:
                cand.setdefault(i, p)
        ids = list(cand)
        if not ids:
            out.append([])
            continue
        has_new, v_new = new_c.vectors_for(ids)
        has_old, v_old = old_c.vectors_for(ids)
        s_nn = v_new @ qn_new[j]
        s_ao = v_old @ qn_ad[j]
        if strategy == "mixed":
            score = np.where(has_new, s_nn, s_ao)
        else:
            s_oo = v_old @ qn_old[j]
            score = np.where(has_old, z["oo"](s_oo), 0.0) + np.where(has_new, z["nn"](s_nn), z["ao"](s_ao))
        score = np.where(has_old | has_new, score, -np.inf)
        order = np.lexsort((np.asarray(ids, dtype=object), -score))[:k]
        out.append([{"id": ids[r], "score": float(score[r]), "payload": json.loads(cand[ids[r]])} for r in order
                    if np.isfinite(score[r])])
    return out


def _as_hits(rows):
    return [[{"id": i, "score": s, "payload": json.loads(p)} for i, s, p in row] for row in rows]


# -------------------------------------------------------------------- backfill
def backfill_order(coll: Collection, order: str = "random") -> tuple[list[str], int]:
    """The items the backfill will re-embed, in its order, and how many items lack a text (skipped)."""
    if order not in ORDERS:
        raise InvalidInputError(f"unknown order {order!r}; choose from {', '.join(ORDERS)}")
    up = _state(coll)
    new = coll.slot(up["new"])
    ids, has_text, has_vec = _scan_texts(coll, new["column"])
    todo = [i for i, t, v in zip(ids, has_text, has_vec) if t and not v]
    without_text = sum(1 for t, v in zip(has_text, has_vec) if not t and not v)
    if not todo and without_text and not any(has_vec):
        raise CollectionError("no item stores a text: vectors alone cannot be re-encoded by the new model; upsert "
                              "the items with their texts first")
    seed = up.get("seed", 0)
    keys = {i: _h(f"backfill:{seed}:{i}") for i in todo}
    if order == "random":
        todo.sort(key=keys.__getitem__)
    else:
        has, v_old = coll.cache(up["old"]).vectors_for(todo)
        w, b = np.asarray(up["uncertainty"]["w"], np.float32), up["uncertainty"]["b"]
        pred = v_old @ w + b
        pred[~has] = np.inf
        todo = [todo[r] for r in np.lexsort((np.asarray([keys[i] for i in todo], dtype=object), -pred))]
    return todo, without_text


def backfill(coll: Collection, *, order: str = "random", batch_size: int = 64, limit: int | None = None,
             progress: bool = False, new_vectors: Callable[[list[str]], np.ndarray] | None = None) -> dict[str, Any]:
    """Fill the new slot for every item with a text, in resumable atomic batches (kill and re-run: each item
    once, identical vectors). `uncertainty` first re-embeds the items the adapter is predicted to explain worst
    (a ridge fitted at start on the sample's adapter residuals). `new_vectors`: precomputed vectors instead of encoding."""
    import time

    from repspace.encoders.job import progress_bar

    if batch_size < 1:
        raise InvalidInputError("--batch-size must be positive")
    todo, without_text = backfill_order(coll, order)
    new = coll.slot(_state(coll)["new"])
    if limit is not None:
        todo = todo[:limit]
    t0, done = time.perf_counter(), 0
    with progress_bar(progress) as bar:
        task = bar.add_task("backfill", total=len(todo), rate="")
        for s in range(0, len(todo), batch_size):
            part = todo[s : s + batch_size]
            texts = _texts_of(coll, part)
            part = [i for i in part if i in texts]  # deleted meanwhile
            if part:
                vecs = (np.asarray(new_vectors(part), np.float32) if new_vectors is not None
                        else coll.encode([texts[i] for i in part], new["name"], batch_size=batch_size))
                coll.update_vectors(new["name"], part, vecs)
            done += len(part)
            bar.update(task, advance=batch_size, rate=f"{done / max(time.perf_counter() - t0, 1e-9):,.0f} items/s")
    return {"backfilled": done, "fraction": fraction(coll), "without_text": without_text,
            "seconds": round(time.perf_counter() - t0, 3)}


def fraction(coll: Collection) -> float:
    up = _state(coll)
    n = coll.count()
    return float(coll.count(up["new"]) / n) if n else 1.0


# ---------------------------------------------------------------- status, gate
def evaluate(coll: Collection, strategies: Sequence[str] = STRATEGIES) -> dict[str, Any]:
    up = _state(coll)
    golden = up.get("golden") or []
    if not golden:
        return {}
    texts, rel = [g[0] for g in golden], [g[1] for g in golden]
    return evaluate_encoded(coll, coll.encode(texts, up["old"]), coll.encode(texts, up["new"]), rel, strategies)


def evaluate_encoded(coll: Collection, q_old: np.ndarray, q_new: np.ndarray, relevant: Sequence[str | Sequence[str]],
                     strategies: Sequence[str] = STRATEGIES) -> dict[str, Any]:
    """Per-strategy recall@10, nDCG@10 (with standard errors) and negative flip rate on encoded queries."""
    hits = {s: search_encoded(coll, q_old, q_new, 10, {}, s) for s in strategies}
    rel = list(relevant)
    out = {s: _metrics(h, rel) for s, h in hits.items()}
    for s in strategies:
        out[s]["negative_flip_rate"] = negative_flips(hits["old"], hits[s], rel) if "old" in hits else None
    return out


def gate_of(metrics: dict[str, Any], strategy: str = DEFAULT_STRATEGY) -> dict[str, Any]:
    if not metrics:
        return {"passed": False, "reason": "no golden queries"}
    old, cand = metrics["old"], metrics[strategy]
    checks = {key: cand[key] >= old[key] - old[f"{key}_se"] for key in ("recall@10", "ndcg@10")}
    return {"passed": all(checks.values()), "strategy": strategy, "against": "old", "tolerance": "one standard error",
            **{f"{k}_ok": v for k, v in checks.items()}}


def status(coll: Collection, *, evaluate_metrics: bool = True) -> dict[str, Any]:
    up = _state(coll)
    metrics = evaluate(coll) if evaluate_metrics else {}
    gate = gate_of(metrics) if evaluate_metrics else up.get("gate")
    if evaluate_metrics:
        up["gate"] = gate
        coll.update_meta(upgrade=up)
    return {"collection": coll.name, "old": up["old"], "new": up["new"], "state": up["state"], "active": coll.active,
            "method": up["method"], "fraction": fraction(coll), "count": coll.count(),
            "backfilled": coll.count(up["new"]), "gate": gate, "metrics": metrics,
            "default_strategy": DEFAULT_STRATEGY, "golden_queries": len(up.get("golden") or [])}


def switch(coll: Collection, *, force: bool = False) -> dict[str, Any]:
    """Make the new slot active (searches racing the switch see the old or the new slot, never an error)."""
    up = _state(coll)
    if not force:
        gate = gate_of(evaluate(coll))
        if not gate["passed"]:
            raise CollectionError(f"the gate does not pass ({json.dumps(gate)}); backfill further, or --force")
    coll.set_active(up["new"])
    up = _state(coll)
    up["state"] = "switched"
    coll.update_meta(upgrade=up)
    return {"active": coll.active, "previous": up["old"], "state": "switched"}


def rollback(coll: Collection) -> dict[str, Any]:
    """Back to the old model: the old slot active, the upgrade closed, the new slot dropped."""
    up = _state(coll)
    if coll.active != up["old"]:
        coll.set_active(up["old"])
    coll.update_meta(upgrade=None)
    coll.drop_slot(up["new"])
    return {"active": coll.active, "dropped": up["new"]}


def finish(coll: Collection, *, force: bool = False) -> dict[str, Any]:
    """Close the upgrade: the new slot active, the old slot dropped (needs the switch; and every item with a text
    backfilled, unless --force)."""
    up = _state(coll)
    if coll.active != up["new"]:
        raise CollectionError("switch to the new slot first (`repspace upgrade switch`)")
    f = fraction(coll)
    if f < 1.0 and not force:
        raise CollectionError(f"only {f:.1%} of the items are backfilled; finish drops the old vectors: backfill "
                              "first, or --force")
    coll.update_meta(upgrade=None)
    coll.drop_slot(up["old"])
    return {"active": coll.active, "dropped": up["old"], "fraction": f}
