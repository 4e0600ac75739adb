"""Scale-out engine: run repspace's heavy jobs on a Ray cluster; single-process stays the default.

`ray` is optional (the `ray` extra): importing this package does not import it.

- `encode_space(model, items, out, ...)`: `encode_items` on a Ray Data actor pool, same Space.
- `ray_encode(model, items, batch_size, workers, on_shard=...)`: stream finished shards
  `(shard_id, ids, vectors)` to a callback in the driver (collections, backfills).
- `sharded_topk(queries, corpus, k, ...)`: exact top-k with the corpus split over Ray workers.
- `search_engine("ray", ...)`: a context in which retrieval evaluation searches through `sharded_topk`.
"""

from repspace.scale.cluster import ENGINES, EngineError, check_engine, connect, plan_pool
from repspace.scale.encode import ShardPlan, encode_space, plan_shards, ray_encode
from repspace.scale.search import merge_topk, search_engine, sharded_topk

__all__ = ["ENGINES", "EngineError", "ShardPlan", "check_engine", "connect", "encode_space", "merge_topk",
           "plan_pool", "plan_shards", "ray_encode", "search_engine", "sharded_topk"]
