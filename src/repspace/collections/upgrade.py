"""Upgrades that never lose: serve a live collection through a model upgrade.

During an upgrade the collection holds the old slot (every item) and a new slot (the items backfilled
so far). A query text is encoded by both models (a query is one short text; the gallery is what is
expensive), and the search combines every signal there is for each item:

    old       q_old · old_i                                   (not upgrading at all)
    adapted   A(q_new) · old_i                                (Drift-Adapter style: new queries, old gallery)
    mixed     q_new · new_i where backfilled, else A(q_new) · old_i (raw cosines)
    fused     backfilled: B(q_old · old_i, A(q_new) · old_i, q_new · new_i); else A(q_old · old_i, A(q_new) · old_i)
    new       q_new · new_i over the backfilled items only

`A(·)` is an adapter new -> old fitted at `start` on a re-embedded sample. The fused score maps A and B are
logistic regressions fitted at `start` on pseudo-queries of the sample (`fit_fusion`): both estimate the
log-odds that an item is relevant, so one merged ranking is consistent across backfilled and not-yet-backfilled
items, and a term that does not help (an adapter across a severe drift, a weak old model) gets little weight. The *gate* compares the default
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

from repspace.collections.collection import Collection, query_texts
from repspace.collections.store import vectors_of
from repspace.errors import CollectionError, InvalidInputError, UnknownNameError
from repspace.ops.search import normalize_rows

STRATEGIES = ("old", "adapted", "mixed", "fused", "new")
DEFAULT_STRATEGY = "fused"
ADAPTER_BLOB = "upgrade-adapter.zip"
ORDERS = ("random", "uncertainty")


def _h(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def pseudo_query(text: str, words: int = 24) -> str:
    """An inverse-cloze query for an item: its first sentence (at most `words` words); for an item that is a single
    short sentence, the first half of its words, so the query is never the item itself."""
    parts = re.split(r"(?<=[.!?])\s+", text.strip(), maxsplit=1)
    toks = parts[0].split()
    if len(parts) == 1 and len(toks) <= 2 * words:
        toks = toks[: max(1, (len(toks) + 1) // 2)]
    return " ".join(toks[:words])


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
          keep_sample: bool = True, fit_queries: Sequence[tuple[str, str]] | None = None) -> dict[str, Any]:
    """Add the new model's slot, re-embed a sample of stored texts, fit the adapter new -> old and the score
    fusion weights, and measure the gate on held-out golden queries.

    sample_ids: the items to re-embed (default: a seeded hash sample of those with texts).
    new_vectors: precomputed new-model vectors for a list of ids (e.g. from a Ray job or a cache), instead of
    encoding here. With golden queries given, the whole sample fits the adapter. keep_sample=False fits on the
    sample without storing its new vectors (the backfill then starts from 0 %).
    fit_queries: real queries (text, relevant id) to fit the score fusion on instead of pseudo-queries; pairs whose
    item is not in the re-embedded sample are left out (the fusion is fitted over the sample), and with fewer than
    MIN_FIT_QUERIES usable queries the pseudo-queries are used. Keep them apart from the golden queries."""
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
        fit_ids = [i for i in fit_ids if i in texts]  # deleted since the scan: left out
        if len(fit_ids) < 10:
            raise InvalidInputError("too few sampled items still have texts to fit an adapter")
        order = list(fit_ids)  # golden items stay un-backfilled: they are held out
        vec_new = (np.asarray(new_vectors(order), np.float32) if new_vectors is not None
                   else coll.encode([texts[i] for i in order], new["name"], batch_size=batch_size))
        if keep_sample:
            coll.update_vectors(new["name"], order, vec_new, texts=[texts[i] for i in order])
        old_cache = coll.cache(old["name"])
        has, vec_old = old_cache.vectors_for(fit_ids)
        pos = {i: j for j, i in enumerate(order)}
        fit_rows = [pos[i] for i in fit_ids]
        X, Y = vec_new[fit_rows][has], vec_old[has]
        adapter = make_translator(method, seed=seed).fit(
            X, Y, source=Space(X, [f"s{j}" for j in range(len(X))], model=new["model"], validate=False),
            target=Space(Y, [f"t{j}" for j in range(len(Y))], model=old["model"], validate=False))
        # uncertainty: how badly the adapter explains an item's old vector, predicted from the old vector (ridge)
        resid = 1.0 - np.sum(normalize_rows(adapter.transform(X)) * normalize_rows(Y), axis=1)
        ridge = _ridge(Y, resid)
        if golden is None:
            golden = [(pseudo_query(texts[i]), i) for i in gold_ids if i in texts]
        golden = [(q, r) for q, r in golden if q.strip()]
        state = {"old": old["name"], "new": new["name"], "method": method, "seed": seed, "sample": len(chosen),
                 "started": _now(), "state": "open", "golden": [list(g) for g in golden],
                 "uncertainty": {"w": ridge[0].tolist(), "b": ridge[1]}, "fusion": None, "gate": None}
        _save_adapter(coll, adapter)
        coll._upgrade_adapter = None
        coll.update_meta(upgrade=state)
        keep = np.flatnonzero(has)
        queries, relevant = _fusion_queries([fit_ids[r] for r in keep], texts, fit_queries)
        state["fusion"] = fit_fusion(coll, queries, normalize_rows(Y), normalize_rows(X), seed=seed, relevant=relevant)
        coll.update_meta(upgrade=state)
        return status(coll, evaluate_metrics=evaluate_gate)
    except BaseException:
        coll.update_meta(upgrade=None)
        try:
            coll.drop_slot(new["name"])
        except Exception:  # noqa: BLE001 - best effort; the original error matters
            pass
        raise


def _ridge(X: np.ndarray, y: np.ndarray, alpha: float = 1.0) -> tuple[np.ndarray, float]:
    mu, ym = X.mean(0), float(y.mean())
    Xc = X - mu
    w = np.linalg.solve(Xc.T @ Xc + alpha * np.eye(X.shape[1]), Xc.T @ (y - ym))
    return w.astype(np.float32), float(ym - mu @ w)


MIN_FIT_QUERIES = 20


def _fusion_queries(gallery: list[str], texts: dict[str, str], fit_queries):
    """(query texts, relevant gallery rows per query or None): the real fit queries whose items are in the
    gallery, grouped by text; else one pseudo-query per gallery item (relevant: that item)."""
    if fit_queries:
        row = {i: r for r, i in enumerate(gallery)}
        grouped: dict[str, list[int]] = {}
        for q, i in fit_queries:
            if q and q.strip() and i in row:
                grouped.setdefault(q, []).append(row[i])
        if len(grouped) >= MIN_FIT_QUERIES:
            return list(grouped), list(grouped.values())
    return [pseudo_query(texts[i]) for i in gallery], None


def fit_fusion(coll: Collection, queries: Sequence[str], g_old: np.ndarray, g_new: np.ndarray, *, max_queries: int = 300,
               top: int = 50, seed: int = 0, relevant: Sequence[Sequence[int]] | None = None) -> dict[str, Any]:
    """Learn how to fuse the terms, as log-odds of relevance (logistic regression), on queries over the sample.

    queries[j] is relevant to the gallery rows relevant[j] (default: row j, as for pseudo-queries);
    g_old / g_new: the sample's unit vectors in both models. Model A scores
    items not yet backfilled from (q_old·old, A(q_new)·old); model B scores backfilled items from (q_old·old,
    A(q_new)·old, q_new·new). Both estimate the same probability on the same pairs, so their scores merge into
    one ranking; a useless term gets a weight near zero (e.g. an adapter across a severe drift)."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.permutation(len(queries))[:max_queries])
    q_old, q_new, q_ad = _encode_queries(coll, coll.meta["upgrade"], [queries[r] for r in rows])
    q_old, q_new, q_ad = normalize_rows(q_old), normalize_rows(q_new), normalize_rows(q_ad)
    s_oo, s_ao, s_nn = q_old @ g_old.T, q_ad @ g_old.T, q_new @ g_new.T
    feats, labels = [], []
    k = min(top, g_old.shape[0])
    for j, r in enumerate(rows):
        cand = set()
        for s in (s_oo[j], s_ao[j], s_nn[j]):
            cand.update(np.argpartition(-s, k - 1)[:k].tolist())
        rel = [int(r)] if relevant is None else [int(x) for x in relevant[r]]
        cand.update(rel)
        c = np.fromiter(cand, np.int64)
        feats.append(np.stack([s_oo[j, c], s_ao[j, c], s_nn[j, c]], 1))
        labels.append(np.isin(c, rel).astype(np.int64))
    F, y = np.concatenate(feats), np.concatenate(labels)
    out = {"queries": int(len(rows)), "pairs": int(len(y)), "from": "pseudo-queries" if relevant is None else "fit queries"}
    for name, cols in (("A", [0, 1]), ("B", [0, 1, 2])):
        out[name] = [float(w) for w in _nonneg_logistic(F[:, cols], y)]
    return out


def _nonneg_logistic(F: np.ndarray, y: np.ndarray, l2: float = 1e-4) -> np.ndarray:
    """Logistic regression with non-negative weights (a free bias): [w..., b]. A higher similarity under any
    model never counts against an item, which keeps the fit from exploiting quirks of the pseudo-queries."""
    from scipy.optimize import minimize

    F = F.astype(np.float64)
    y = y.astype(np.float64)
    pos = max(1.0, y.sum())
    sw = np.where(y > 0, (len(y) - pos) / pos, 1.0)  # balance the one relevant item against its candidates
    sw = sw / sw.mean()

    def loss(theta):
        w, b = theta[:-1], theta[-1]
        z = F @ w + b
        p = 1.0 / (1.0 + np.exp(-z))
        val = np.mean(sw * (np.logaddexp(0.0, z) - y * z)) + l2 * (w @ w)
        g = sw * (p - y) / len(y)
        return val, np.concatenate([F.T @ g + 2 * l2 * w, [g.sum()]])

    theta0 = np.concatenate([np.ones(F.shape[1]), [0.0]])
    bounds = [(0.0, None)] * F.shape[1] + [(None, None)]
    res = minimize(loss, theta0, jac=True, method="L-BFGS-B", bounds=bounds)
    return res.x


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
    return _search_texts(coll, up, query_texts(texts), k, flt, strategy, candidates)


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
    version = coll.store.version()
    old_c, new_c = coll.cache(up["old"], version), coll.cache(up["new"], version)
    if strategy == "old":
        return _as_hits(old_c.search(q_old, k, flt))
    if strategy == "new":
        return _as_hits(new_c.search(q_new, k, flt))
    q_ad = load_adapter(coll).transform(q_new)
    if strategy == "adapted":
        return _as_hits(old_c.search(q_ad, k, flt))
    K = candidates or max(100, 4 * k)
    fusion = up.get("fusion") or {"A": [1.0, 1.0, 0.0], "B": [1.0, 0.0, 1.0, 0.0]}
    wa, wb = fusion["A"], fusion["B"]
    if strategy == "fused" and not flt:
        return _fused_fast(coll, old_c, new_c, normalize_rows(q_old), normalize_rows(q_ad), normalize_rows(q_new), k, K, wa, wb)
    out = []
    lists = {"ao": old_c.search(q_ad, K, flt), "nn": new_c.search(q_new, K, flt)}
    if strategy == "fused":
        lists["oo"] = old_c.search(q_old, K, flt)
    qn_new, qn_ad = normalize_rows(q_new), normalize_rows(q_ad)
    qn_old = normalize_rows(q_old) if q_old is not None else None
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
            score = np.where(has_new, wb[0] * s_oo + wb[1] * s_ao + wb[2] * s_nn + wb[3],
                             wa[0] * s_oo + wa[1] * s_ao + wa[2])
        score = np.where(has_old | has_new, score, -np.inf)
        order = np.lexsort((np.asarray(ids, dtype=object), -score))[:k]
        out.append([{"id": ids[r], "score": float(score[r]), "payload": json.loads(cand[ids[r]])} for r in order
                    if np.isfinite(score[r])])
    return out


def _per_version(coll: Collection, attr: str, old_c, new_c, build: Callable[[], Any]) -> Any:
    """`build()`, kept on the collection under `attr` until either compacted cache changes."""
    key = (id(old_c), id(new_c), old_c.version, new_c.version, len(old_c.ids), len(new_c.ids))
    cached = getattr(coll, attr, None)
    if cached is None or cached[0] != key:
        cached = (key, build())
        setattr(coll, attr, cached)
    return cached[1]


def _row_maps(coll: Collection, old_c, new_c) -> tuple[np.ndarray, np.ndarray]:
    """old row -> new row and new row -> old row (-1 = none) of the two compacted caches, cached per version."""
    return _per_version(coll, "_row_maps", old_c, new_c, lambda: (
        np.fromiter((new_c.row_of.get(i, -1) for i in old_c.ids), np.int64, len(old_c.ids)),
        np.fromiter((old_c.row_of.get(i, -1) for i in new_c.ids), np.int64, len(new_c.ids))))


EXACT_FUSED_CELLS = 1 << 22  # items x dim up to which fused scores every item exactly (one product per item)


def _exact_blocks(coll: Collection, old_c, new_c, o2n: np.ndarray):
    """The Flat fused path's item matrices, cached per version: (number of rows not backfilled, their old vectors,
    the backfilled rows as [old vector | new vector], old row of each column of the two blocks side by side)."""
    def build():
        rows_a, rows_b = np.flatnonzero(o2n < 0), np.flatnonzero(o2n >= 0)
        return (len(rows_a), np.ascontiguousarray(old_c.vectors[rows_a]),
                np.ascontiguousarray(np.hstack([old_c.vectors[rows_b], new_c.vectors[o2n[rows_b]]])),
                np.concatenate([rows_a, rows_b]))

    return _per_version(coll, "_exact_blocks", old_c, new_c, build)


def _fused_exact(coll, old_c, new_c, o2n, qA, qB, qn, k, wa, wb, block: int = 256):
    """Fused over every item, exactly (Flat spec, small collections): items not backfilled score qA·old + a,
    backfilled ones [qB, w·qn]·[old | new] + b — one product per item, so the added cost over a plain search is
    the backfilled items' old half."""
    na, Va, Vb, perm = _exact_blocks(coll, old_c, new_c, o2n)
    parsed = old_c.parsed()
    qBn = np.hstack([qB, np.float32(wb[2]) * qn]).astype(np.float32)
    out = []
    for s in range(0, len(qA), block):
        e = min(len(qA), s + block)
        sc = np.empty((e - s, len(perm)), np.float32)
        if na:
            np.matmul(qA[s:e], Va.T, out=sc[:, :na])
            sc[:, :na] += np.float32(wa[2])
        if na < len(perm):
            np.matmul(qBn[s:e], Vb.T, out=sc[:, na:])
            sc[:, na:] += np.float32(wb[3])
        kk = min(k, sc.shape[1])
        top = np.argpartition(-sc, kk - 1, axis=1)[:, :kk]
        for j in range(e - s):
            t = top[j]
            t = t[np.lexsort((perm[t], -sc[j, t]))]  # ties: the lower row first, as a plain search
            out.append([{"id": old_c.ids[r], "score": float(sc[j, c]), "payload": dict(parsed[r])}
                        for c, r in zip(t, perm[t])])
    return out


def _fused_fast(coll, old_c, new_c, qo, qa, qn, k, K, wa, wb, block: int = 64):
    """The fused strategy, vectorised: the linear score maps fold into combined query vectors (A's two old-space
    terms are one dot product), candidates come from one search per slot, backfilled candidates are rescored
    with B by gathering their vectors in the other slot."""
    old_c.compacted()
    new_c.compacted()
    o2n, n2o = _row_maps(coll, old_c, new_c)
    qA = (wa[0] * qo + wa[1] * qa).astype(np.float32)
    qB = (wb[0] * qo + wb[1] * qa).astype(np.float32)
    if old_c.spec.kind == "flat" and len(old_c.ids) * old_c.dim <= EXACT_FUSED_CELLS and len(new_c.ids) and \
            (n2o >= 0).all():
        return _fused_exact(coll, old_c, new_c, o2n, qA, qB, qn, k, wa, wb)
    sA, rA = old_c.search_rows(qA, K)
    sN, rN = new_c.search_rows(qn, K)
    n_old = len(old_c.ids)
    Vo, Vn = old_c.vectors, new_c.vectors
    out = []
    for s in range(0, len(qo), block):
        e = min(len(qo), s + block)
        ra, rn = rA[s:e], rN[s:e]
        nb = np.where(ra >= 0, o2n[np.maximum(ra, 0)], -1) if len(o2n) else np.full_like(ra, -1)
        ob = np.where(rn >= 0, n2o[np.maximum(rn, 0)], -1) if len(n2o) else np.full_like(rn, -1)
        # candidates from the old slot: A's score, or B's where the item is backfilled
        sb_old = np.einsum("qkd,qd->qk", Vo[np.maximum(ra, 0)], qB[s:e]) if n_old else np.zeros(ra.shape, np.float32)
        sn_old = (np.einsum("qkd,qd->qk", Vn[np.maximum(nb, 0)], qn[s:e]) if len(Vn) else np.zeros(ra.shape, np.float32))
        score_a = np.where(nb >= 0, sb_old + wb[2] * sn_old + wb[3], sA[s:e] + wa[2])
        score_a = np.where(ra >= 0, score_a, -np.inf)
        # candidates from the new slot: B's score (items without an old vector: their new term only)
        so_new = np.einsum("qkd,qd->qk", Vo[np.maximum(ob, 0)], qB[s:e]) if n_old else np.zeros(rn.shape, np.float32)
        score_n = np.where(ob >= 0, so_new, 0.0) + wb[2] * sN[s:e] + wb[3]
        score_n = np.where(rn >= 0, score_n, -np.inf)
        keys = np.hstack([np.where(ra >= 0, ra, -1), np.where(ob >= 0, ob, n_old + np.maximum(rn, 0))])
        keys = np.where(np.hstack([ra, rn]) >= 0, keys, -1 - np.arange(keys.shape[1])[None, :])
        scores = np.hstack([score_a, score_n])
        order = np.argsort(keys, axis=1, kind="stable")
        ks = np.take_along_axis(keys, order, 1)
        dup = np.zeros(ks.shape, bool)
        dup[:, 1:] = ks[:, 1:] == ks[:, :-1]
        sc = np.take_along_axis(scores, order, 1)
        sc[dup] = -np.inf
        kk = min(k, sc.shape[1])
        top = np.argpartition(-sc, kk - 1, axis=1)[:, :kk]
        for j in range(e - s):
            t = top[j][np.argsort(-sc[j, top[j]], kind="stable")]
            row = []
            for c in t:
                if not np.isfinite(sc[j, c]):
                    continue
                key = int(ks[j, c])
                if key < n_old:
                    row.append({"id": old_c.ids[key], "score": float(sc[j, c]), "payload": json.loads(old_c.payloads[key])})
                else:
                    r = key - n_old
                    row.append({"id": new_c.ids[r], "score": float(sc[j, c]), "payload": json.loads(new_c.payloads[r])})
            out.append(row)
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
             progress: bool = False, new_vectors: Callable[[list[str]], np.ndarray] | None = None,
             engine: str = "local", workers: int | None = None, address: str | None = None) -> dict[str, Any]:
    """Fill the new slot for every item with a text, in resumable atomic batches (kill and re-run: each item
    once, identical vectors). `uncertainty` first re-embeds the items the adapter is predicted to explain worst
    (a ridge fitted at start on the sample's adapter residuals). `new_vectors`: precomputed vectors instead of encoding.
    engine="ray": the batches (same order, same composition, so the same vectors) are encoded on a Ray actor pool."""
    import time

    from repspace.ops.progress import progress_bar
    from repspace.scale import check_engine

    check_engine(engine)
    if batch_size < 1:
        raise InvalidInputError("--batch-size must be positive")
    todo, without_text = backfill_order(coll, order)
    new = coll.slot(_state(coll)["new"])
    if limit is not None:
        todo = todo[:limit]
    t0, done = time.perf_counter(), 0
    if engine == "ray" and todo and new_vectors is None:
        from repspace.datasets import Items
        from repspace.scale import ray_encode

        texts = _texts_of(coll, todo)
        todo = [i for i in todo if i in texts]
        items = Items(list(todo), [texts[i] for i in todo], "text")

        def write(_s: int, ids: list[str], vectors: np.ndarray) -> None:
            coll.update_vectors(new["name"], ids, vectors, texts=[texts[i] for i in ids])

        ray_encode(new["model"], items, batch_size=batch_size, workers=workers, shard_items=batch_size,
                   encoder=coll.encoder(new["name"]), address=address, progress=progress,
                   order=np.arange(len(todo)), on_shard=write)
        return {"backfilled": len(todo), "fraction": fraction(coll), "without_text": without_text,
                "seconds": round(time.perf_counter() - t0, 3)}
    with progress_bar(progress) as bar:
        task = bar.add_task("backfill", total=len(todo), rate="")
        for s in range(0, len(todo), batch_size):
            part = todo[s : s + batch_size]
            texts = _texts_of(coll, part)
            part = [i for i in part if i in texts]  # deleted meanwhile
            if part:
                vecs = (np.asarray(new_vectors(part), np.float32) if new_vectors is not None
                        else coll.encode([texts[i] for i in part], new["name"], batch_size=batch_size))
                coll.update_vectors(new["name"], part, vecs, texts=[texts[i] for i in part])
            done += len(part)
            bar.update(task, advance=batch_size, rate=f"{done / max(time.perf_counter() - t0, 1e-9):,.0f} items/s")
    coll.store.optimize()
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
    if evaluate_metrics:  # write the gate only, and only into the same upgrade (a rollback may have run meanwhile)
        coll.reload()
        now = coll.meta.get("upgrade")
        if now and now.get("started") == up.get("started"):
            now["gate"] = gate
            coll.update_meta(upgrade=now)
        up = now or up
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
        todo, without_text = backfill_order(coll)
        how = (f"{without_text} item(s) store no text and have no {up['new']} vector: give their new-model vectors "
               f"(`collection upsert URI --slot {up['new']} --space S` fills that slot only) " if without_text else "")
        raise CollectionError(f"only {f:.1%} of the items are backfilled; finish drops the old vectors, which would "
                              f"leave the rest unsearchable: {how}{'run the backfill ' if todo else ''}first, or --force")
    coll.update_meta(upgrade=None)
    coll.drop_slot(up["old"])
    return {"active": coll.active, "dropped": up["old"], "fraction": f}


# ------------------------------------------------------------ quality curve
FRACTIONS = (0.0, 0.10, 0.25, 0.50, 0.75, 1.0)


def curve(old_corpus, new_corpus, texts: dict[str, str], q_old: np.ndarray, q_new: np.ndarray,
          relevant: Sequence[str | Sequence[str]], *, work: str | Path, sample: int = 1000, order: str = "random",
          fractions: Sequence[float] = FRACTIONS, method: str = "procrustes", seed: int = 0,
          sample_ids: Sequence[str] | None = None,
          fit_queries: Sequence[tuple[str, str]] | None = None) -> dict[str, Any]:
    """Quality of every strategy against the backfill fraction, through the real collection path.

    A LanceDB collection under `work` gets the corpus (`old_corpus` vectors + `texts`); the upgrade is started
    with a sample of `sample` items (their `new_corpus` vectors fit the adapter and the fusion, and are not kept),
    then backfilled in `order` to each fraction with the precomputed new vectors, and every strategy is scored on
    the queries (`q_old`/`q_new`: the same queries in both models; `relevant[j]`: id(s) relevant to query j)."""
    import time

    from repspace.collections.collection import Collection

    new_pos = {i: r for r, i in enumerate(new_corpus.ids)}
    new_vecs = np.asarray(new_corpus.vectors)

    def new_vectors(ids):
        return new_vecs[[new_pos[i] for i in ids]]

    c = Collection.create(Path(work), model=old_corpus.model)  # a repspace model: pseudo-queries are encoded
    step = 4096
    ov = np.asarray(old_corpus.vectors)
    for s in range(0, old_corpus.count, step):
        ids = old_corpus.ids[s : s + step]
        c.upsert(ids, texts=[texts.get(i) for i in ids], vectors=ov[s : s + step])
    if sample_ids is None:
        rng = np.random.default_rng(seed)
        sample_ids = [old_corpus.ids[r] for r in rng.permutation(old_corpus.count)[:sample]]
    t0 = time.perf_counter()
    start(c, new_corpus.model, sample_ids=list(sample_ids), new_vectors=new_vectors, golden=[("-", "-")],
          evaluate_gate=False, keep_sample=False, method=method, seed=seed, fit_queries=fit_queries)
    start_s = time.perf_counter() - t0
    n, done, rows = c.count(), 0, []
    for f in fractions:
        want = int(round(f * n))
        if want > done:
            backfill(c, order=order, batch_size=4096, limit=want - done, new_vectors=new_vectors)
            done = want
        m = evaluate_encoded(c, q_old, q_new, relevant)
        rows.append({"fraction": f, "actual": fraction(c), **m})
    result = {"old": old_corpus.model, "new": new_corpus.model, "order": order, "items": n, "queries": len(relevant),
              "sample": len(sample_ids), "start_s": start_s, "rows": rows, "fusion": c.meta["upgrade"]["fusion"],
              "area": {s: area(rows, s) for s in STRATEGIES}, "never_loses": never_loses(rows), "collection": c}
    return result


def never_loses(rows: Sequence[dict[str, Any]], strategy: str = DEFAULT_STRATEGY) -> bool:
    return all(r[strategy][k] >= r["old"][k] - r["old"][f"{k}_se"] for r in rows for k in ("recall@10", "ndcg@10"))


def area(rows: Sequence[dict[str, Any]], strategy: str, key: str = "recall@10") -> float:
    """Area under the quality-vs-fraction curve (trapezoids over the measured fractions)."""
    xs = np.asarray([r["fraction"] for r in rows])
    ys = np.asarray([r[strategy][key] for r in rows])
    return float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2))
