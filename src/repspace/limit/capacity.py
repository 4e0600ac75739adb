"""The critical n of Weller et al. (2025): the largest number of documents n for which free embeddings of
dimension d can still make every k-subset some query's exact top-k.

search="linear" (the paper's): n grows from k + 1 one step at a time; each n is fitted with
`fit_free_embeddings` (up to `tries` seeds, since a free fit can stall in a local minimum on a configuration that
exists), and the search stops at the first n that no try solves. `critical_n` is the n before it (k when even k + 1
fails: one query over k documents is always solved). search="bisect" (for larger d, where the linear walk costs
hundreds of fits): n grows by half from `start` (default k + 1) until a failure, then bisects between the largest
solved and the smallest failed n; it assumes that a solvable n has solvable predecessors, which the optimiser's
stalls can break, so it is an estimate of the same quantity with ~2 log2(n) fits. The search also stops, marked `capped`, at `max_n`, when C(n, k) exceeds `max_queries`, or when
`max_seconds` have passed (then `critical_n` is a lower bound).

    r = critical_n(dim=3, k=2, seed=0)
    r.critical_n, r.capped, [t.to_dict() for t in r.trials]
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from repspace.errors import InvalidInputError
from repspace.limit.free import FreeFit, check_shape, fit_free_embeddings, protocol_defaults

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
    search: str = "linear"
    protocol: str = "repspace"

    def to_dict(self) -> dict:
        return {"dim": self.dim, "k": self.k, "critical_n": self.critical_n, "capped": self.capped,
                "stopped_by": self.stopped_by, "seconds": round(self.seconds, 3), "search": self.search,
                "protocol": self.protocol, "trials": [t.to_dict() for t in self.trials]}


def _trial_seed(seed: int, n: int, attempt: int) -> int:
    return (int(seed) * 1_000_003 + n * 101 + attempt) % (2**63)


def critical_n(dim: int, k: int = 2, *, max_n: int = SEARCH_DEFAULTS["max_n"], tries: int = SEARCH_DEFAULTS["tries"],
               max_queries: int = SEARCH_DEFAULTS["max_queries"], max_seconds: float | None = SEARCH_DEFAULTS["max_seconds"],
               steps: int | None = None, lr: float | None = None, temperature: float | None = None,
               patience: int | None = None, seed: int = 0, on_trial=None, search: str = "linear",
               start: int | None = None, precision: str | None = None, threads: int | None = None,
               protocol: str = "repspace") -> Capacity:
    """The largest n whose every k-subset free embeddings of dimension `dim` can make some query's exact top-k
    (deterministic in `seed`); see the module docstring for `search` and `start`; `protocol`, `steps`, `lr`,
    `temperature`, `patience`, `precision` and `threads` go to each fit (`fit_free_embeddings`: None takes the
    protocol's own).

    `on_trial(fit)` (optional) is called after every fit (progress reporting)."""
    dim, k = check_shape(dim, k)
    for name, value, low in (("max_n", max_n, k + 1), ("tries", tries, 1), ("max_queries", max_queries, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InvalidInputError(f"{name} must be an integer >= {low}; got {value!r}", param=name)
    if max_seconds is not None and not (isinstance(max_seconds, (int, float)) and max_seconds > 0):
        raise InvalidInputError(f"max_seconds must be a positive number; got {max_seconds!r}", param="max_seconds")
    if search not in ("linear", "bisect"):
        raise InvalidInputError(f"search must be linear or bisect; got {search!r}", param="search")
    if start is not None and (isinstance(start, bool) or not isinstance(start, int) or not k + 1 <= start <= max_n):
        raise InvalidInputError(f"start must be an integer in {k + 1}..{max_n}; got {start!r}", param="start")
    protocol_defaults(protocol)  # an unknown protocol is refused before any fit
    t0 = time.monotonic()
    trials: list[FreeFit] = []

    def limit_reached(n: int) -> str | None:
        if n > max_n:
            return "max_n"
        if math.comb(n, k) > max_queries:
            return "max_queries"
        if max_seconds is not None and time.monotonic() - t0 > max_seconds:
            return "max_seconds"
        return None

    def solves(n: int) -> bool:
        for attempt in range(tries):
            fit = fit_free_embeddings(n, k, dim, steps=steps, lr=lr, temperature=temperature, patience=patience,
                                      seed=_trial_seed(seed, n, attempt), precision=precision, threads=threads,
                                      protocol=protocol)
            trials.append(fit)
            if on_trial is not None:
                on_trial(fit)
            if fit.solved:
                return True
        return False

    best, stopped_by = k, "max_n"
    n = start if start is not None else k + 1
    failed: int | None = None
    while True:  # linear: n + 1 each time; bisect: grow by half until a failure
        stop = limit_reached(n)
        if stop is not None:
            if search == "bisect" and stop in ("max_n", "max_queries") and best < n - 1:
                n = min(max_n, _largest_n(k, max_queries))  # the cap itself, once
                if n > best and limit_reached(n) is None:
                    if solves(n):
                        best = n
                    else:
                        failed = n
                        break
            stopped_by = stop
            break
        if not solves(n):
            failed = n
            break
        best = n
        n = n + 1 if search == "linear" else max(n + 1, (3 * n) // 2)
    if failed is not None:
        stopped_by = "failed"
        while failed - best > 1:  # bisect only: linear has failed == best + 1
            stop = limit_reached(0)
            if stop is not None:
                stopped_by = stop
                break
            mid = (best + failed) // 2
            if solves(mid):
                best = mid
            else:
                failed = mid
    return Capacity(dim=dim, k=k, critical_n=best, capped=stopped_by != "failed", stopped_by=stopped_by,
                    seconds=time.monotonic() - t0, trials=trials, search=search, protocol=protocol)


def _largest_n(k: int, max_queries: int) -> int:
    n = k + 1
    while math.comb(n + 1, k) <= max_queries:
        n += 1
    return n
