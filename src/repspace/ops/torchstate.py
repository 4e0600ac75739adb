"""Torch global state set for the length of a block, then restored: the seed and the intra-op thread count.

    with seeded(seed=0, threads=1):
        model = train(...)

Inside the block `torch.manual_seed(seed)` has been called (when `seed` is given) and torch uses `threads`
intra-op threads (when given); on exit the thread count and torch's global RNG state are what they were, so a
library call never changes the caller's torch settings. torch is imported only when the block is entered.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def seeded(seed: int | None = None, threads: int | None = None) -> Iterator[None]:
    import torch

    old_threads = torch.get_num_threads()
    old_rng = torch.random.get_rng_state()
    try:
        if threads:
            torch.set_num_threads(int(threads))
        if seed is not None:
            torch.manual_seed(int(seed))
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.random.set_rng_state(old_rng)
