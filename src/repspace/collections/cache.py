"""repspace's in-memory search layer for a collection slot, kept in step with the store.

The store is the durable truth; this cache holds one slot's vectors (L2-normalised, numpy), ids and payload
JSON texts (Arrow arrays; ids looked up through sorted hashes, `ops.idset.IdRows`: no Python object per item) and
searches them with `repspace.index.Index` (any spec: Flat, HNSW, int8, binary, funnel). It is
refreshed from the store whenever the store's version token changes, so every search sees every
committed write. Writes made through the same `Collection` are applied incrementally instead: new or
replaced rows go to a *fresh* buffer searched exactly beside the built index, replaced and deleted
rows become tombstones filtered out of its results; the index is rebuilt once the buffer or the
tombstones exceed a tenth of it (as LanceDB searches its unindexed rows).

Filtered searches are exact over the matching items.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from repspace.collections.payload import matches
from repspace.collections.store import Store, vectors_of
from repspace.errors import InvalidInputError
from repspace.ops.idset import IdRows
from repspace.ops.search import normalize_rows, topk_rows

Hit = tuple[str, float, str]  # id, score, payload JSON


def hits_of(rows: list[list[Hit]]) -> list[list[dict[str, Any]]]:
    """A cache's hits as the search results collections answer: [[{"id", "score", "payload"}, …], …]."""
    return [[{"id": i, "score": s, "payload": json.loads(p)} for i, s, p in row] for row in rows]
SMALL_BATCH = 16


class SlotCache:
    def __init__(self, column: str, dim: int, spec: Any, model: str = "collection") -> None:
        self.column, self.dim, self.spec, self.model = column, dim, spec, model
        self.version: Any = object()  # never equal to a store token: first use loads
        self._set_base(pa.array([], pa.large_string()), np.zeros((0, dim), np.float32), pa.array([], pa.large_string()))

    # ------------------------------------------------------------- state
    def _set_base(self, ids: pa.Array | Sequence[str], vectors: np.ndarray, payloads: pa.Array | Sequence[str]) -> None:
        """The base rows: ids and payload JSON texts as Arrow arrays (no Python object per item), vectors and the
        alive mask in numpy."""
        self.ids = IdRows(ids)
        self.payloads = (payloads if isinstance(payloads, pa.Array) else pa.array(list(payloads))).cast(pa.large_string())
        self.vectors = normalize_rows(vectors) if len(vectors) else vectors
        self.alive = np.ones(len(self.ids), bool)
        self.dead = 0
        self.fresh: dict[str, tuple[np.ndarray, str]] = {}
        self._index = None
        self._values: dict[str, dict[str, np.ndarray]] = {}  # payload key -> its text values -> base rows

    def load(self, store: Store) -> None:
        version = store.version()
        ids, payloads, blocks = [], [], []
        for batch in store.scan(["id", "payload", self.column]):
            valid, vecs = vectors_of(batch.column(self.column), self.dim)
            keep = pa.array(np.flatnonzero(valid))
            ids.append(batch.column("id").take(keep).cast(pa.large_string()))
            payloads.append(pc.fill_null(batch.column("payload").take(keep).cast(pa.large_string()), "{}"))
            blocks.append(vecs)
        vectors = np.concatenate(blocks) if blocks else np.zeros((0, self.dim), np.float32)
        del blocks  # peak memory: the vectors twice (read, normalised), not three times
        empty = pa.array([], pa.large_string())
        self._set_base(pa.concat_arrays(ids) if ids else empty, vectors, pa.concat_arrays(payloads) if ids else empty)
        self.version = version

    def sync(self, store: Store) -> None:
        if store.version() != self.version:
            self.load(store)

    def apply_upsert(self, ids: Sequence[str], vectors: np.ndarray | None, payloads: Sequence[str],
                     has: np.ndarray | None = None) -> None:
        """Own write, already committed: rows replaced (vectors None or has[j] False = no vector in this slot)."""
        self._kill(ids)
        if vectors is not None:
            unit = normalize_rows(np.asarray(vectors, np.float32))
            for j, i in enumerate(ids):
                self.fresh.pop(i, None)  # the last of an id written twice wins, in order
                if has is None or has[j]:
                    self.fresh[i] = (unit[j], payloads[j])

    def apply_delete(self, ids: Sequence[str]) -> None:
        self._kill(ids)

    def apply_vectors(self, ids: Sequence[str], vectors: np.ndarray,
                      payloads_of: Callable[[Sequence[str]], list[str | None]]) -> None:
        """Own vector update: `payloads_of(ids)` the items' payloads (None: unknown here; then read everything again)."""
        got = payloads_of(ids)
        if any(p is None for p in got):
            self.version = object()
            return
        self._kill(ids)
        unit = normalize_rows(np.asarray(vectors, np.float32))
        for j, i in enumerate(ids):
            self.fresh.pop(i, None)
            self.fresh[i] = (unit[j], got[j])

    def payloads_of(self, ids: Sequence[str]) -> list[str | None]:
        """Each item's payload JSON (None where this cache does not hold the item)."""
        rows = self.ids.rows(ids)
        base = self.payloads.take(pa.array(np.maximum(rows, 0))).to_pylist() if len(self.ids) else [None] * len(ids)
        out: list[str | None] = []
        for i, r, p in zip(ids, rows, base):
            if i in self.fresh:
                out.append(self.fresh[i][1])
            else:
                out.append(p if r >= 0 and self.alive[r] else None)
        return out

    def vectors_for(self, ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(has (n,) bool, normalised vectors (n, dim); zero rows where an item has no vector in this slot)."""
        rows = self.ids.rows(ids)
        has = rows >= 0
        has[has] = self.alive[rows[has]]
        out = np.zeros((len(ids), self.dim), np.float32)
        out[has] = self.vectors[rows[has]]
        if self.fresh:
            for j, i in enumerate(ids):
                if i in self.fresh:
                    has[j], out[j] = True, self.fresh[i][0]
        return has, out

    def _kill(self, ids: Sequence[str]) -> None:
        for i in ids:
            self.fresh.pop(i, None)
        rows = self.ids.rows(ids)
        rows = np.unique(rows[rows >= 0])
        rows = rows[self.alive[rows]]
        self.alive[rows] = False
        self.dead += len(rows)

    def advance(self, version: Any) -> None:
        self.version = version

    @property
    def count(self) -> int:
        return int(self.alive.sum()) + len(self.fresh)

    def _compact(self) -> None:
        keep = pa.array(np.flatnonzero(self.alive))
        ids = pa.concat_arrays([self.ids.array.take(keep), pa.array(list(self.fresh), pa.large_string())])
        payloads = pa.concat_arrays([self.payloads.take(keep),
                                     pa.array([p for _, p in self.fresh.values()], pa.large_string())])
        vecs = [self.vectors[self.alive]] + ([np.stack([v for v, _ in self.fresh.values()])] if self.fresh else [])
        version = self.version
        self._set_base(ids, np.concatenate(vecs), payloads)
        self.version = version

    def retune(self, spec: Any) -> None:
        """Search with `spec`: the built structure's spec with other search options (nothing rebuilt)."""
        self.spec = spec
        if self._index is not None:
            self._index.spec = spec

    def _built(self):
        if self._index is None:
            from repspace.index import Index
            from repspace.spaces import Space

            self._index = Index.build(Space(self.vectors, self.ids, model=self.model, validate=False,
                                            normalized=True), self.spec)
        return self._index

    def matching(self, filter: dict[str, str]) -> np.ndarray:
        """Live base rows whose payload matches `filter` (sorted), through a value -> rows map per key (built on its
        first filter, kept until the next load or compaction)."""
        rows = None
        for key, value in filter.items():
            if key not in self._values:
                self._values[key] = self._rows_by_value(key)
            got = self._values[key].get(value, np.zeros(0, np.int64))
            rows = got if rows is None else np.intersect1d(rows, got, assume_unique=True)
        rows = np.zeros(0, np.int64) if rows is None else rows
        return rows[self.alive[rows]] if self.dead else rows

    def _rows_by_value(self, key: str, chunk: int = 65536) -> dict[str, np.ndarray]:
        """{text form of `key`'s value: the base rows that hold it}: the payloads parsed a chunk at a time into one
        Arrow column of values, dictionary-encoded, the rows grouped by code."""
        from repspace.collections.payload_index import values_of

        parts = [pa.array(values_of(self.payloads[s : s + chunk].to_pylist(), key), pa.large_string())
                 for s in range(0, len(self.payloads), chunk)]
        if not parts:
            return {}
        enc = pa.concat_arrays(parts).dictionary_encode()
        codes = enc.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(enc.dictionary) + 1))
        return {v: order[bounds[c] : bounds[c + 1]] for c, v in enumerate(enc.dictionary.to_pylist())}

    # ------------------------------------------------------------ search
    def compacted(self) -> "SlotCache":
        """Fold the fresh buffer and tombstones into the base arrays (rows are then contiguous and stable)."""
        if self.dead or self.fresh:
            self._compact()
        return self

    def search_rows(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (inner products with the queries as given, base rows) over a compacted cache; rows -1 / -inf pad."""
        self.compacted()
        n = len(self.ids)
        nq = len(queries)
        if n == 0:
            return np.full((nq, k), -np.inf, np.float32), np.full((nq, k), -1, np.int64)
        kk = min(k, n)
        if self.spec.kind == "flat" and nq <= SMALL_BATCH:
            s = queries @ self.vectors.T
            top = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
            sc = np.take_along_axis(s, top, 1)
        else:
            sc, top = self._built().search(queries, kk)  # the index normalises queries: scale back to raw dots
            sc = sc * np.linalg.norm(queries, axis=1, keepdims=True).astype(np.float32)
        if kk < k:
            sc = np.hstack([sc, np.full((nq, k - kk), -np.inf, np.float32)])
            top = np.hstack([top, np.full((nq, k - kk), -1, np.int64)])
        return sc.astype(np.float32), top.astype(np.int64)

    def search(self, queries: np.ndarray, k: int, filter: dict[str, str]) -> list[list[Hit]]:
        if k < 1:
            raise InvalidInputError("k must be at least 1")
        n_base = len(self.ids)
        if self.dead + len(self.fresh) > max(1000, n_base // 10):
            self._compact()
            n_base = len(self.ids)
        q = normalize_rows(queries)
        fresh_ids = list(self.fresh)
        fresh_pay = [self.fresh[i][1] for i in fresh_ids]
        if filter:
            keep_f = [j for j, p in enumerate(fresh_pay) if matches(json.loads(p), filter)]
            fresh_ids = [fresh_ids[j] for j in keep_f]
            fresh_pay = [fresh_pay[j] for j in keep_f]
        fresh_v = np.stack([self.fresh[i][0] for i in fresh_ids]) if fresh_ids else np.zeros((0, self.dim), np.float32)
        # base part
        base_rows = base_scores = None
        if n_base:
            if filter:  # exact over the matching rows: gathered when few, masked in a full scan when many
                rows = self.matching(filter)
                if 3 * len(rows) > n_base:
                    s = q @ self.vectors.T
                    keep = np.zeros(n_base, bool)
                    keep[rows] = True
                    s[:, ~keep] = -np.inf
                    base_scores, base_rows = topk_rows(s, min(k, len(rows)))
                elif len(rows):
                    base_scores, top = topk_rows(q @ self.vectors[rows].T, min(k, len(rows)))
                    base_rows = rows[top]
            elif self.alive.any() and self.spec.kind == "flat" and len(q) <= SMALL_BATCH:
                # FIELD-NOTES: one query at a time numpy beats faiss (whose OpenMP threads spin under load)
                s = q @ self.vectors.T
                if self.dead:
                    s[:, ~self.alive] = -np.inf
                sc, top = topk_rows(s, min(k, n_base))
                base_rows = [r[np.isfinite(v)] for r, v in zip(top, sc)]
                base_scores = [v[np.isfinite(v)] for v in sc]
            elif self.alive.any():
                kk = min(n_base, k + self.dead)
                s, i = self._built().search(q, kk)
                base_rows, base_scores = [], []
                for srow, irow in zip(s, i):
                    ok = (irow >= 0) & self.alive[np.maximum(irow, 0)]
                    base_rows.append(irow[ok][:k])
                    base_scores.append(srow[ok][:k])
        out: list[list[Hit]] = []
        fs = ft = None
        if fresh_ids:
            fs, ft = topk_rows(q @ fresh_v.T, min(k, len(fresh_ids)))
        for j in range(len(q)):
            cand: list[Hit] = []
            if base_rows is not None and len(base_rows[j]):
                rows = pa.array(np.asarray(base_rows[j], np.int64))
                cand += list(zip(self.ids.array.take(rows).to_pylist(), map(float, base_scores[j]),
                                 self.payloads.take(rows).to_pylist()))
            if fs is not None:
                cand += [(fresh_ids[r], float(v), fresh_pay[r]) for r, v in zip(ft[j], fs[j])]
            cand.sort(key=lambda h: (-h[1], h[0]))
            out.append(cand[:k])
        return out


def keep_in_step(caches: dict[str, SlotCache], store: Store, before: Any,
                 apply: Callable[[SlotCache, str], None]) -> None:
    """After a collection's own committed write: apply it to each loaded cache (by slot name) if it was the only
    commit since `before`; otherwise (someone else wrote too) mark the caches for a reload on next search."""
    if not caches:
        return
    after = store.version()
    ours = _next_version(before, after)
    for name, c in list(caches.items()):
        if not ours or c.version != before:
            c.version = object()
            continue
        apply(c, name)
        if c.version == before:  # apply may have given up (then the next search reloads)
            c.advance(after)


def _next_version(before: Any, after: Any) -> bool:
    """True when exactly one commit happened between the tokens (ours)."""
    try:
        return int(after) - int(before) == 1
    except (TypeError, ValueError):
        return False
