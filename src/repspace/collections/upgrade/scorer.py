"""One scorer for every fused search during an upgrade: candidates -> one formula -> one ranking.

Items are keyed over the two slots' caches: key r < n_old is old-slot row r (with its new vector, if backfilled,
at new row o2n[r]); key n_old + r is new-slot row r of an item that has no old vector. For each query and candidate

    backfilled:      score = qB · old + wb2 · (q_new · new) + wb3     (qB · old is 0 for an item without an old vector)
    not backfilled:  score = qA · old + wa2

with the combined old-space queries qA = wa0 q_old + wa1 A(q_new) and qB = wb0 q_old + wb1 A(q_new) (the fusion's
linear models fold into one dot product per slot). `mixed` is the same formula with the weights `fusion.MIXED`.

Candidates come from one of two generators:
- `all_rows`: every item (the Flat spec on a collection small enough to score whole, and every filtered search:
  a payload filter is a mask over the rows, so filtered results are exact over the matching items);
- `per_slot_top_k`: the old slot's top K for qA and the new slot's top K for q_new, from each slot's index (any
  spec), rescored exactly through faiss's gather (`ops.search.inner_products_by_idx`, as the index kinds rescore);
- `store_top_k`: the same candidates from the store's own search (`Store.native_search`; filters applied by the
  store), their vectors fetched from the store for the union, scored by the same formula — for stores that are
  never cached (an application's attached table, `Store.live`).
Ties rank the lower key first (`store_top_k`: the lower id).
"""

from __future__ import annotations

import json
from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from repspace.ops.pools import shared_pool
from repspace.ops.search import inner_products_by_idx

EXACT_FUSED_CELLS = 1 << 22  # items x dim up to which the Flat fused search scores every item


class JoinedSlots:
    """The old and the new slot's compacted caches, joined by item (row maps and key space)."""

    def __init__(self, coll: Any, old_c: Any, new_c: Any) -> None:
        old_c.compacted()
        new_c.compacted()
        self.old, self.new = old_c, new_c
        self.n_old, self.n_new = len(old_c.ids), len(new_c.ids)
        self.version = (id(old_c), id(new_c), old_c.version, new_c.version, self.n_old, self.n_new)
        self.coll = coll
        self.o2n, self.n2o = coll.memo("row_maps", self.version, lambda: (
            new_c.ids.rows(old_c.ids.array), old_c.ids.rows(new_c.ids.array)))

    def blocks(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Keys and item matrices of the three kinds of item, cached per version: (old rows not backfilled, their
        old vectors), (backfilled old rows, [old vector | new vector]), (new-only keys, their new vectors)."""
        def build():
            rows_a, rows_b = np.flatnonzero(self.o2n < 0), np.flatnonzero(self.o2n >= 0)
            rows_n = np.flatnonzero(self.n2o < 0)
            return (rows_a, np.ascontiguousarray(self.old.vectors[rows_a]),
                    rows_b, np.ascontiguousarray(np.hstack([self.old.vectors[rows_b], self.new.vectors[self.o2n[rows_b]]])),
                    self.n_old + rows_n, np.ascontiguousarray(self.new.vectors[rows_n]))

        return self.coll.memo("blocks", self.version, build)

    def key_mask(self, keys: np.ndarray, flt: dict[str, str]) -> np.ndarray:
        """Which keys' payloads match the filter (each slot's value -> rows map, `SlotCache.matching`)."""
        both = np.zeros(self.n_old + self.n_new, bool)
        both[self.old.matching(flt)] = True
        both[self.n_old + self.new.matching(flt)] = True
        return both[keys]

    def hit(self, key: int, score: float) -> dict[str, Any]:
        c, r = (self.old, key) if key < self.n_old else (self.new, key - self.n_old)
        return {"id": c.ids[r], "score": score, "payload": json.loads(c.payloads[r].as_py())}


def combined_queries(q_old: np.ndarray | None, q_ad: np.ndarray, weights: dict[str, Sequence[float]]):
    """(qA, qB): the fusion's old-space terms folded into one query vector each (q_old None counts as zero)."""
    wa, wb = weights["A"], weights["B"]
    qo = q_old if q_old is not None else np.zeros_like(q_ad)
    return (wa[0] * qo + wa[1] * q_ad).astype(np.float32), (wb[0] * qo + wb[1] * q_ad).astype(np.float32)


def fused_search(view: JoinedSlots, q_old: np.ndarray | None, q_ad: np.ndarray, q_new: np.ndarray, k: int,
                 weights: dict[str, Sequence[float]], flt: dict[str, str] | None = None,
                 candidates: int | None = None) -> list[list[dict[str, Any]]]:
    """The fused ranking of unit-normalised queries (old model, adapted new, new): `all_rows` when the Flat spec
    can score every item or a filter is given, else `per_slot_top_k` with K = `candidates` (default max(100, 4k))."""
    qA, qB = combined_queries(q_old, q_ad, weights)
    exact = view.old.spec.kind == "flat" and view.n_old * view.old.dim <= EXACT_FUSED_CELLS
    if flt or exact:
        return all_rows(view, qA, qB, q_new, k, weights, flt or {})
    return per_slot_top_k(view, qA, qB, q_new, k, weights, candidates or max(100, 4 * k))


def all_rows(view: JoinedSlots, qA, qB, qn, k: int, weights, flt: dict[str, str], block: int = 256):
    """Every item (matching `flt`) scored by the formula: one product per item (the backfilled items' old and
    new halves side by side)."""
    wa, wb = weights["A"], weights["B"]
    rows_a, Va, rows_b, Vb, keys_n, Vn = view.blocks()
    if flt:
        ma = view.key_mask(rows_a, flt)
        mb = view.key_mask(rows_b, flt)
        mn = view.key_mask(keys_n, flt)
        rows_a, Va, rows_b, Vb, keys_n, Vn = rows_a[ma], Va[ma], rows_b[mb], Vb[mb], keys_n[mn], Vn[mn]
    keys = np.concatenate([rows_a, rows_b, keys_n])
    qBn = np.hstack([qB, np.float32(wb[2]) * qn]).astype(np.float32)
    qNn = (np.float32(wb[2]) * qn).astype(np.float32)
    na, nb = len(rows_a), len(rows_b)
    out = []
    for s in range(0, len(qA), block):
        e = min(len(qA), s + block)
        sc = np.empty((e - s, len(keys)), np.float32)
        if na:
            np.matmul(qA[s:e], Va.T, out=sc[:, :na])
            sc[:, :na] += np.float32(wa[2])
        if nb:
            np.matmul(qBn[s:e], Vb.T, out=sc[:, na : na + nb])
            sc[:, na : na + nb] += np.float32(wb[3])
        if len(keys_n):
            np.matmul(qNn[s:e], Vn.T, out=sc[:, na + nb :])
            sc[:, na + nb :] += np.float32(wb[3])
        out += _rank(view, np.broadcast_to(keys, sc.shape), sc, k)
    return out


def per_slot_top_k(view: JoinedSlots, qA, qB, qn, k: int, weights, K: int, block: int = 64):
    """Candidates from each slot's own index (old: qA, new: q_new), each scored exactly by the formula."""
    wa, wb = weights["A"], weights["B"]
    _, rA = view.old.search_rows(qA, K)
    _, rN = view.new.search_rows(qn, K)
    out = []
    for s in range(0, len(qA), block):
        e = min(len(qA), s + block)
        # key of every candidate: an old row, or n_old + a new row whose item has no old vector
        from_new = np.where(rN[s:e] >= 0, view.n2o[np.maximum(rN[s:e], 0)] if view.n_new else -1, -1)
        keys = np.hstack([rA[s:e], np.where(from_new >= 0, from_new, view.n_old + rN[s:e])])
        keys = np.where(np.hstack([rA[s:e] >= 0, rN[s:e] >= 0]), keys, -1)
        keys = _unique_per_row(keys)
        old_row = np.where(keys < view.n_old, keys, -1)
        new_row = np.where(keys >= view.n_old, keys - view.n_old,
                           np.where(old_row >= 0, view.o2n[np.maximum(old_row, 0)] if view.n_old else -1, -1))
        s_a = inner_products_by_idx(qA[s:e], view.old.vectors, old_row)
        s_b = inner_products_by_idx(qB[s:e], view.old.vectors, old_row)
        s_n = inner_products_by_idx(qn[s:e], view.new.vectors, new_row)
        sc = formula(s_a, s_b, s_n, old_row >= 0, new_row >= 0, wa, wb)
        sc[keys < 0] = -np.inf
        out += _rank(view, keys, sc, k)
    return out


def formula(s_a: np.ndarray, s_b: np.ndarray, s_n: np.ndarray, has_old: np.ndarray, has_new: np.ndarray,
            wa: Sequence[float], wb: Sequence[float]) -> np.ndarray:
    """The fused score from the three dot products (qA·old, qB·old, q_new·new) of each candidate."""
    backfilled = np.where(has_old, s_b, np.float32(0)) + np.float32(wb[2]) * s_n + np.float32(wb[3])
    return np.where(has_new, backfilled, s_a + np.float32(wa[2])).astype(np.float32)


def _unique_per_row(keys: np.ndarray) -> np.ndarray:
    """Each key once per row (later duplicates become -1)."""
    order = np.argsort(keys, axis=1, kind="stable")
    ks = np.take_along_axis(keys, order, 1)
    dup = np.zeros(ks.shape, bool)
    dup[:, 1:] = (ks[:, 1:] == ks[:, :-1]) & (ks[:, 1:] >= 0)
    out = keys.copy()
    np.put_along_axis(out, order, np.where(dup, -1, ks), 1)
    return out


def _rank(view: JoinedSlots, keys: np.ndarray, sc: np.ndarray, k: int) -> list[list[dict[str, Any]]]:
    """Top k per row by score, ties to the lower key; non-finite scores (no candidate) left out."""
    if sc.shape[1] == 0:
        return [[] for _ in range(len(sc))]
    kk = min(k, sc.shape[1])
    top = np.argpartition(-sc, kk - 1, axis=1)[:, :kk]
    out = []
    for j in range(len(sc)):
        t = top[j]
        t = t[np.lexsort((keys[j, t], -sc[j, t]))]
        out.append([view.hit(int(keys[j, c]), float(sc[j, c])) for c in t if np.isfinite(sc[j, c])])
    return out


def store_top_k(coll: Any, meta: Any, q_old: np.ndarray | None, q_ad: np.ndarray, q_new: np.ndarray, k: int,
                weights: dict[str, Sequence[float]], flt: dict[str, str], K: int) -> list[list[dict[str, Any]]]:
    """Candidates from each slot's search in the store (old: qA, new: q_new), every term computed exactly for their
    union from the stored vectors (unit-normalised), one ranking by the formula."""
    from repspace.ops.search import normalize_rows

    up = meta.open_upgrade()
    old, new = meta.slot(up.old), meta.slot(up.new)
    wa, wb = weights["A"], weights["B"]
    qA, qB = combined_queries(q_old, q_ad, weights)
    cols = [old.column, new.column]
    spec = coll.spec.for_candidates()  # e.g. IVF_HNSW_SQ's candidates skip LanceDB's re-rank
    # the two slots' searches at once (the store's own threads do the work; a concurrent service's searches too)
    got_a, got_n = shared_pool("slots", 32).map(
        lambda a: coll.store.candidates(a[0].column, a[0].dim, a[1], K, flt, spec, cols), [(old, qA), (new, q_new)])
    if got_a is not None and got_n is not None:  # the hits came with both slots' vectors: nothing more to read
        return [_score_hits(pa.concat_tables([a, b]), old, new, qA[j], qB[j], q_new[j], k, wa, wb)
                for j, (a, b) in enumerate(zip(got_a, got_n))]
    hits_a = coll.search_slot(old, qA, K, flt)
    hits_n = coll.search_slot(new, q_new, K, flt)
    union = sorted({h["id"] for row in hits_a + hits_n for h in row})
    payloads = {h["id"]: h["payload"] for row in hits_a + hits_n for h in row}
    has_o, v_o = coll.vectors_for(old, union)
    has_n, v_n = coll.vectors_for(new, union)
    row_of = {i: r for r, i in enumerate(union)}
    out = []
    for j in range(len(qA)):
        cand = np.asarray(sorted({row_of[h["id"]] for h in hits_a[j] + hits_n[j]}), np.int64)
        if not len(cand):
            out.append([])
            continue
        vo, vn = normalize_rows(v_o[cand]), normalize_rows(v_n[cand])
        sc = formula(vo @ qA[j], vo @ qB[j], vn @ q_new[j], has_o[cand], has_n[cand], wa, wb)
        top = np.lexsort((cand, -sc))[:k]
        out.append([{"id": union[cand[t]], "score": float(sc[t]), "payload": dict(payloads[union[cand[t]]])}
                    for t in top])
    return out


def _score_hits(hits: pa.Table, old: Any, new: Any, qa: np.ndarray, qb: np.ndarray, qn: np.ndarray, k: int,
                wa: Sequence[float], wb: Sequence[float]) -> list[dict[str, Any]]:
    """One query's candidates (a table of id, payload and both slots' vectors; an id may come twice) ranked by the
    formula, ties to the lower id."""
    from repspace.collections.store import vectors_of
    from repspace.ops.search import normalize_rows

    ids = np.asarray(hits.column("id").to_pylist(), dtype=str)
    ids, first = np.unique(ids, return_index=True)
    if not len(ids):
        return []
    hits = hits.take(pa.array(first))
    vecs = []
    for slot in (old, new):
        has, v = vectors_of(hits.column(slot.column), slot.dim)
        full = np.zeros((len(ids), slot.dim), np.float32)
        full[has] = normalize_rows(v) if len(v) else v
        vecs.append((has, full))
    (has_o, vo), (has_n, vn) = vecs
    sc = formula(vo @ qa, vo @ qb, vn @ qn, has_o, has_n, wa, wb)
    payloads = hits.column("payload").to_pylist()
    return [{"id": str(ids[t]), "score": float(sc[t]),
             "payload": json.loads(payloads[t] or "{}") if isinstance(payloads[t], str) or payloads[t] is None
             else dict(payloads[t])} for t in np.lexsort((ids, -sc))[:k]]
