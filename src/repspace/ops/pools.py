"""Process-wide thread pools for fan-out whose work releases the GIL (a store's searches): made once, by name, not a
pool per call. Two names never wait on each other's tasks in a cycle: "slots" (a fused search's two slot searches)
may wait on "queries" (one slot's queries at once), never the other way, so neither can starve the other."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

_POOLS: dict[str, ThreadPoolExecutor] = {}
_LOCK = threading.Lock()


def shared_pool(name: str, workers: int) -> ThreadPoolExecutor:
    """The pool called `name` (threads start only as concurrent work needs them, up to `workers`)."""
    with _LOCK:
        if name not in _POOLS:
            _POOLS[name] = ThreadPoolExecutor(workers, thread_name_prefix=f"repspace-{name}")
        return _POOLS[name]
