"""The critical n of Weller et al. (2025): the largest number of documents n for which free embeddings of
dimension d can still make every k-subset some query's exact top-k.

n grows from k + 1 one step at a time; each n is fitted with `fit_free_embeddings` (up to `tries` seeds, since a
free fit can stall in a local minimum on a configuration that exists), and the search stops at the first n that
no try solves. `critical_n` is the n before it (k when even k + 1 fails: one query over k documents is always
solved). The search also stops, marked `capped`, at `max_n`, when C(n, k) exceeds `max_queries`, or when
`max_seconds` have passed (then `critical_n` is a lower bound).

    r = critical_n(dim=3, k=2, seed=0)
    r.critical_n, r.capped, [t.to_dict() for t in r.trials]
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from repspace.errors import InvalidInputError
from repspace.limit.free import DEFAULTS, FreeFit, check_shape, fit_free_embeddings

SEARCH_DEFAULTS = {"max_n": 64, "tries": 3, "max_queries": 200_000, "max_seconds": 600.0}


@dataclass(frozen=True)
class Capacity:
    """The search's answer and every fit it ran (in order)."""

    dim: int
    k: int
    critical_n: int
    capped: bool
    stopped_by: str
    seconds: float
    trials: list[FreeFit] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"dim": self.dim, "k": self.k, "critical_n": self.critical_n, "capped": self.capped,
                "stopped_by": self.stopped_by, "seconds": round(self.seconds, 3),
                "trials": [t.to_dict() for t in self.trials]}


def _trial_seed(seed: int, n: int, attempt: int) -> int:
    return (int(seed) * 1_000_003 + n * 101 + attempt) % (2**63)


def critical_n(dim: int, k: int = 2, *, max_n: int = SEARCH_DEFAULTS["max_n"], tries: int = SEARCH_DEFAULTS["tries"],
               max_queries: int = SEARCH_DEFAULTS["max_queries"], max_seconds: float | None = SEARCH_DEFAULTS["max_seconds"],
               steps: int = DEFAULTS["steps"], lr: float = DEFAULTS["lr"], temperature: float = DEFAULTS["temperature"],
               patience: int = DEFAULTS["patience"], seed: int = 0, on_trial=None) -> Capacity:
    """Grow n from k + 1 until no fit reaches 100 %; the largest solved n is the critical n (deterministic in `seed`).

    `on_trial(fit)` (optional) is called after every fit (progress reporting)."""
    dim, k = check_shape(dim, k)
    for name, value, low in (("max_n", max_n, k + 1), ("tries", tries, 1), ("max_queries", max_queries, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InvalidInputError(f"{name} must be an integer >= {low}; got {value!r}", param=name)
    if max_seconds is not None and not (isinstance(max_seconds, (int, float)) and max_seconds > 0):
        raise InvalidInputError(f"max_seconds must be a positive number; got {max_seconds!r}", param="max_seconds")
    start = time.monotonic()
    trials: list[FreeFit] = []
    best, n, stopped_by = k, k + 1, "max_n"
    while n <= max_n:
        if math.comb(n, k) > max_queries:
            stopped_by = "max_queries"
            break
        if max_seconds is not None and time.monotonic() - start > max_seconds:
            stopped_by = "max_seconds"
            break
        solved = False
        for attempt in range(tries):
            fit = fit_free_embeddings(n, k, dim, steps=steps, lr=lr, temperature=temperature, patience=patience,
                                      seed=_trial_seed(seed, n, attempt))
            trials.append(fit)
            if on_trial is not None:
                on_trial(fit)
            if fit.solved:
                solved = True
                break
        if not solved:
            stopped_by = "failed"
            break
        best, n = n, n + 1
    return Capacity(dim=dim, k=k, critical_n=best, capped=stopped_by != "failed", stopped_by=stopped_by,
                    seconds=time.monotonic() - start, trials=trials)
