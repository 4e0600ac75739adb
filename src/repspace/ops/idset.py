"""A writer's memory of which ids a table holds: 64-bit hashes of the ids in sorted numpy chunks (8 bytes an id, no
Python object per id), so a bulk upsert asks "is any of these 100k ids already there?" in O(w log n) instead of
reading the whole id column every write (at 10M items, 100 writes read 500M ids: half of LanceDB's own load time).

A hash hit only says "maybe": the caller checks those few ids exactly. The set is valid for one table version only
(`lance_store.py` keeps it beside the version it describes and rebuilds it from one scan when the table moved).

`IdRows` is the same hashing used as a map id -> row over one Arrow column of ids (the in-memory search layer's,
`collections/cache.py`): sorted hashes and their rows, each hit confirmed against the string.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_P = np.uint64(0x100000001B3)  # FNV-64 prime: the polynomial's base


def id_hashes(ids: pa.Array | pa.ChunkedArray, chunk: int = 1 << 16) -> np.ndarray:
    """One uint64 per string id: a polynomial hash of its UTF-8 bytes and its length, mixed (splitmix64); vectorised
    over Arrow's buffers, `chunk` ids at a time (the per-byte temporaries stay a few MiB whatever the count)."""
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    ids = ids.cast(pa.large_string())
    if len(ids) > chunk:
        return np.concatenate([_hashes(ids.slice(s, chunk)) for s in range(0, len(ids), chunk)])
    return _hashes(ids)


def _hashes(ids: pa.Array) -> np.ndarray:
    n = len(ids)
    if n == 0:
        return np.zeros(0, np.uint64)
    offsets = np.frombuffer(ids.buffers()[1], np.int64)[ids.offset: ids.offset + n + 1]
    data = np.frombuffer(ids.buffers()[2], np.uint8) if ids.buffers()[2] is not None else np.zeros(0, np.uint8)
    starts, lengths = offsets[:-1], np.diff(offsets)
    h = lengths.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    total = int(lengths.sum())
    if total:
        seg = data[offsets[0]: offsets[-1]].astype(np.uint64)
        pos = np.arange(total, dtype=np.int64) - np.repeat(starts - offsets[0], lengths)
        powers = np.cumprod(np.full(int(lengths.max()), _P, np.uint64), dtype=np.uint64)
        terms = (seg + np.uint64(1)) * powers[pos]
        nonempty = lengths > 0
        h[nonempty] ^= np.add.reduceat(terms, (starts - offsets[0])[nonempty])
    with np.errstate(over="ignore"):  # splitmix64's finaliser: every input bit reaches every output bit
        h ^= h >> np.uint64(30)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    return h


class IdHashSet:
    """Hashes of a table's ids in sorted chunks, merged like a binary counter (a chunk at least as large as the one
    before it is merged into it): at most ~log2(n / write) chunks, each hash merged ~log2(n / write) times (100
    writes of 100k: 5.3 s of lookups and merges in all, against 10.6 s merging 32 chunks at a time)."""

    def __init__(self, chunks: Iterable[np.ndarray] = ()) -> None:
        self.chunks: list[np.ndarray] = []
        for c in chunks:
            self.add(c)

    def add(self, hashes: np.ndarray) -> None:
        if not len(hashes):
            return
        self.chunks.append(np.sort(hashes))
        while len(self.chunks) > 1 and len(self.chunks[-1]) >= len(self.chunks[-2]):
            last = self.chunks.pop()
            # two sorted runs: the stable sort (timsort) merges them in linear time
            self.chunks[-1] = np.sort(np.concatenate([self.chunks[-1], last]), kind="stable")

    def maybe_contains(self, hashes: np.ndarray) -> np.ndarray:
        """A mask over `hashes`: True where the set may hold that id (a hash it holds), False where it surely does not."""
        order = np.argsort(hashes)  # sorted needles: searchsorted walks each chunk once (5x faster at 5M)
        needles, hit = hashes[order], np.zeros(len(hashes), bool)
        for c in self.chunks:
            pos = np.minimum(np.searchsorted(c, needles), len(c) - 1)
            hit[order] |= c[pos] == needles
        return hit


class IdRows(Sequence[str]):
    """A column of string ids as one Arrow array, looked up id -> row through its sorted 64-bit hashes (16 bytes an
    id beside the strings' own bytes; a Python dict of 1M ids costs ~170 bytes an id and a second to build). A hash
    hit is confirmed by comparing the strings, so a collision never answers a wrong row."""

    def __init__(self, ids: pa.Array | pa.ChunkedArray | Sequence[str]) -> None:
        self.array = _large_strings(ids)
        h = id_hashes(self.array)
        self._order = np.argsort(h, kind="stable")
        self._sorted = h[self._order]

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, r):  # type: ignore[override]
        if isinstance(r, slice):
            return self.array[r].to_pylist()
        return self.array[int(r)].as_py()

    def __contains__(self, i: object) -> bool:  # by hash, not Sequence's walk over every id
        return isinstance(i, str) and bool(self.rows([i])[0] >= 0)

    def __iter__(self):
        return iter(self.array.to_pylist())

    def take(self, rows: np.ndarray | Sequence[int]) -> list[str]:
        return self.array.take(pa.array(np.asarray(rows, np.int64))).to_pylist()

    def rows(self, ids: pa.Array | pa.ChunkedArray | Sequence[str]) -> np.ndarray:
        """The row of each id (int64; -1 where the column does not hold it; an id held twice: its first row)."""
        q = _large_strings(ids)
        out = np.full(len(q), -1, np.int64)
        if not len(q) or not len(self.array):
            return out
        qh = id_hashes(q)
        lo = np.searchsorted(self._sorted, qh, "left")
        hi = np.searchsorted(self._sorted, qh, "right")
        one = np.flatnonzero(hi - lo == 1)
        if len(one):
            cand = self._order[lo[one]]
            same = pc.equal(self.array.take(pa.array(cand)), q.take(pa.array(one))).to_numpy(zero_copy_only=False)
            out[one[same]] = cand[same]
        for j in np.flatnonzero(hi - lo > 1):  # a hash held more than once: an id written twice, or a collision
            want = q[int(j)].as_py()
            for r in np.sort(self._order[lo[j]:hi[j]]):
                if self.array[int(r)].as_py() == want:
                    out[j] = r
                    break
        return out


def _large_strings(ids: pa.Array | pa.ChunkedArray | Sequence[str]) -> pa.Array:
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks() if ids.num_chunks else pa.array([], pa.large_string())
    if not isinstance(ids, pa.Array):
        ids = pa.array(list(ids), pa.large_string())
    return ids.cast(pa.large_string())
