"""`Shuffle`: the batches of row numbers of each epoch, and the random generator they come from."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

RNGS = ("epoch", "run", "numpy")


class Shuffle:
    """Each epoch a permutation of ``n`` training items, cut into batches of ``batch_size`` row numbers.

    ``rng``: where the permutation comes from —
    ``"epoch"``: a torch generator seeded by (seed, epoch) afresh each epoch, so any epoch's order and
    augmentations are known without the ones before (the self-supervised objectives);
    ``"run"``: one torch generator seeded once and drawn from epoch after epoch (compatible training);
    ``"numpy"``: one ``numpy.random.Generator`` seeded once (the Matryoshka fine-tune).
    The loss gets the epoch's torch generator (for ``"numpy"`` none) to draw its augmentations from.
    ``drop_last``: full batches only (fewer than ``batch_size`` items still make one batch).
    `state_dict` / `load_state_dict` carry the generator of ``"run"`` and ``"numpy"`` across a checkpoint."""

    def __init__(self, n: int, batch_size: int, seed: int, rng: str = "epoch", drop_last: bool = False) -> None:
        if rng not in RNGS:
            raise ValueError(f"rng must be one of {RNGS}, got {rng!r}")
        self.n, self.batch_size, self.seed, self.rng, self.drop_last = n, batch_size, seed, rng, drop_last
        self._torch = torch.Generator().manual_seed(seed) if rng == "run" else None
        self._numpy = np.random.default_rng(seed) if rng == "numpy" else None

    def __len__(self) -> int:
        """Batches per epoch."""
        if self.drop_last:
            return max(1, self.n // self.batch_size)
        return -(-self.n // self.batch_size)

    def epoch(self, epoch: int) -> tuple[list[torch.Tensor], torch.Generator | None]:
        """(the epoch's batches of row numbers, the generator the loss draws from)."""
        if self.rng == "numpy":
            g, order = None, torch.from_numpy(self._numpy.permutation(self.n))
        else:
            g = self._torch if self.rng == "run" else torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(self.n, generator=g)
        return list(order.split(self.batch_size)[: len(self)]), g

    def state_dict(self) -> dict[str, Any]:
        if self._torch is not None:
            return {"torch": self._torch.get_state()}
        if self._numpy is not None:
            return {"numpy": self._numpy.bit_generator.state}
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self._torch is not None and "torch" in state:
            self._torch.set_state(state["torch"])
        if self._numpy is not None and "numpy" in state:
            self._numpy.bit_generator.state = state["numpy"]
