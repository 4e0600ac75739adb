"""A writer's memory of which ids a table holds: 64-bit hashes of the ids in sorted numpy chunks (8 bytes an id, no
Python object per id), so a bulk upsert asks "is any of these 100k ids already there?" in O(w log n) instead of
reading the whole id column every write (at 10M items, 100 writes read 500M ids: half of LanceDB's own load time).

A hash hit only says "maybe": the caller checks those few ids exactly. The set is valid for one table version only
(`lance_store.py` keeps it beside the version it describes and rebuilds it from one scan when the table moved).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pyarrow as pa

_P = np.uint64(0x100000001B3)  # FNV-64 prime: the polynomial's base


def id_hashes(ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """One uint64 per string id: a polynomial hash of its UTF-8 bytes and its length, mixed (splitmix64); vectorised
    over Arrow's buffers."""
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    ids = ids.cast(pa.large_string())
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
