"""Sharded exact search on Ray: each worker searches its slice of the corpus, the driver merges.

The corpus is cut into contiguous row shards (boundaries on multiples of 1,024 rows, faiss's
corpus block, so every score is computed by the same kernel calls as in one process) and put in
the object store once; each query block is searched on every shard by a Ray task
(`repspace.ops.search.topk` on that shard, k or k + 1 candidates), and the candidate
lists are merged exactly: the union of per-shard top-k lists contains the global top-k.

Ties are broken deterministically by corpus row (score descending, then row ascending), which is
also the set faiss keeps at a tied boundary in one process; single-process `topk` leaves the order
*inside* a group of exactly equal scores to faiss, so only such groups can be listed in another order.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np

from repspace.errors import DimensionMismatchError, InvalidInputError
from repspace.scale.cluster import EngineError, check_engine, connect, native_stderr_quiet, plan_pool

ALIGN = 1024
_CACHE: dict[str, Any] = {}


def merge_topk(scores: list[np.ndarray], indices: list[np.ndarray], k: int,
               exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-shard top lists (each (nq, k_s), global row indices) into the exact top-k.

    Order: score descending, then corpus row ascending; `exclude` (nq,) drops one row per query
    (-1 = none). Returns scores (nq, k) float32 and indices (nq, k) int64.
    """
    S = np.concatenate(scores, axis=1).astype(np.float32, copy=False)
    I = np.concatenate(indices, axis=1).astype(np.int64, copy=False)
    keys = [I, -S]
    if exclude is not None:
        keys.append(I == np.asarray(exclude, dtype=np.int64)[:, None])  # excluded rows sort last
    order = np.lexsort(keys, axis=1)[:, :k]
    return np.take_along_axis(S, order, 1), np.take_along_axis(I, order, 1)


def _search_shard(q: np.ndarray, shard: np.ndarray, offset: int, kk: int, threads: int) -> tuple[np.ndarray, np.ndarray]:
    from repspace.ops.search import _faiss, topk

    _faiss().omp_set_num_threads(threads)
    s, i = topk(q, shard, kk)
    return s, i + offset


def shard_bounds(n: int, shards: int, align: int = ALIGN) -> list[tuple[int, int]]:
    """`shards` contiguous row ranges covering n rows, cut on multiples of `align` (fewer if n is small)."""
    per = -(-n // max(1, shards))
    step = max(align, -(-per // align) * align)
    return [(a, min(n, a + step)) for a in range(0, n, step)]


def _corpus_refs(ray: Any, corpus: np.ndarray, shards: int) -> list[tuple[int, int, Any]]:
    key = (id(corpus), corpus.shape, shards)
    if _CACHE.get("key") == key and _CACHE.get("corpus") is corpus:
        return _CACHE["refs"]
    refs = [(a, b, ray.put(np.ascontiguousarray(corpus[a:b], dtype=np.float32))) for a, b in shard_bounds(len(corpus), shards)]
    _CACHE.clear()
    _CACHE.update(key=key, corpus=corpus, refs=refs)
    return refs


def sharded_topk(
    queries: np.ndarray,
    corpus: np.ndarray,
    k: int,
    exclude: np.ndarray | None = None,
    *,
    workers: int | None = None,
    shards: int | None = None,
    address: str | None = None,
    cpus_per_worker: float | None = None,
    max_retries: int = 3,
    query_block: int = 4096,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by inner product over a corpus split across Ray workers (`topk`'s contract).

    queries (nq, d), corpus (nc, d) float32; exclude (nq,) corpus row to leave out per query.
    The corpus's shards are kept in the object store while the same array is searched again.
    A shard whose search fails (after `max_retries` retries of a dead worker) raises EngineError.
    """
    if queries.ndim != 2 or corpus.ndim != 2:
        raise InvalidInputError("queries and corpus must be 2-D arrays")
    if queries.shape[1] != corpus.shape[1]:
        raise DimensionMismatchError(
            f"query vectors are {queries.shape[1]}-d but the corpus is {corpus.shape[1]}-d; "
            "they must come from the same space (or pass the queries through an adapter)")
    avail = corpus.shape[0] - (1 if exclude is not None else 0)
    if k > avail:
        raise InvalidInputError(f"k={k} is more than the {avail} corpus items available")
    ray = connect(address)
    pool = plan_pool(ray, workers, cpus_per_worker, 0.0, "cpu")
    fn = _CACHE.get("fn")
    if fn is None:
        fn = _CACHE["fn"] = ray.remote(_search_shard)
    fn = fn.options(num_cpus=pool.cpus, max_retries=max_retries)
    refs = _corpus_refs(ray, corpus, shards or pool.workers)
    kk = k + (1 if exclude is not None else 0)
    out_s = np.empty((len(queries), k), np.float32)
    out_i = np.empty((len(queries), k), np.int64)
    for qs in range(0, len(queries), query_block):
        q = ray.put(np.ascontiguousarray(queries[qs : qs + query_block], dtype=np.float32))
        futures = [fn.remote(q, ref, a, min(kk, b - a), pool.threads) for a, b, ref in refs]
        parts = []
        for n, ((a, b, _), f) in enumerate(zip(refs, futures)):
            try:
                parts.append(ray.get(f))
            except Exception as e:
                msg = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
                raise EngineError(f"search shard {n} (corpus rows {a}..{b - 1}) failed after up to {max_retries} "
                                  f"retries: {type(e).__name__}: {msg[:300]}") from None
        ex = None if exclude is None else np.asarray(exclude[qs : qs + query_block])
        s, i = merge_topk([p[0] for p in parts], [p[1] for p in parts], k, ex)
        out_s[qs : qs + len(s)], out_i[qs : qs + len(s)] = s, i
    return out_s, out_i


@contextmanager
def search_engine(engine: str = "local", address: str | None = None, workers: int | None = None,
                  **kwargs: Any) -> Iterator[None]:
    """Within this context, retrieval evaluation (`label_retrieval`, `query_retrieval`, hence
    `evaluate(task="retrieval")` and `compatibility`) searches with `sharded_topk` on Ray.

    It rebinds `repspace.evaluation.retrieval.topk` for the duration (one evaluation at a time per
    process); engine "local" changes nothing. Inside, Ray's own notices are kept off stdout and
    stderr (`native_stderr_quiet`), so a `--json` result stays clean.
    """
    check_engine(engine)
    if engine == "local":
        yield
        return
    import repspace.evaluation.retrieval as retrieval

    connect(address)
    original = retrieval.topk

    def topk(queries, corpus, k, query_block=4096, corpus_shard=None, exclude=None):
        return sharded_topk(queries, corpus, k, exclude, workers=workers, address=address,
                            query_block=query_block, **kwargs)

    retrieval.topk = topk
    try:
        with native_stderr_quiet():
            yield
    finally:
        retrieval.topk = original
        _CACHE.pop("key", None), _CACHE.pop("corpus", None), _CACHE.pop("refs", None)
