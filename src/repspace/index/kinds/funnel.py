"""`funnel:64/256/768[:K]`: a Matryoshka funnel, exact shortlist of K on the shortest prefix, reranked on longer ones."""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from repspace.errors import DimensionMismatchError, InvalidInputError
from repspace.index.kinds.base import IndexSpec, rescore
from repspace.ops.search import normalize_rows, topk


@dataclass(frozen=True)
class Funnel(IndexSpec, name="funnel", pattern=r"funnel:(\d+(?:/\d+)+)(?::(\d+))?",
             usage="funnel:64/256/768[:K]", examples="funnel:64/256/768[:200]"):
    """`funnel:64/256/768`: each stage a prefix (renormalised) of the vectors; the last stage is the full dimension
    indexed. The first shortlist is K (default 200), halved at each middle stage, k at the last."""

    stages: tuple[int, ...] = ()  # prefix dims, increasing; the last is the full dimension
    shortlist: int = 200

    @classmethod
    def from_match(cls, m: re.Match[str], text: str) -> Funnel:
        stages = tuple(int(x) for x in m.group(1).split("/"))
        if any(b <= a for a, b in pairwise(stages)) or stages[0] < 1:
            raise InvalidInputError(f"funnel dims must increase, e.g. funnel:64/256/768; got {text!r}")
        return cls(stages=stages, shortlist=int(m.group(2) or 200))

    def __str__(self) -> str:
        return "funnel:" + "/".join(map(str, self.stages)) + f":{self.shortlist}"

    def check_dim(self, dim: int) -> None:
        if self.stages[-1] > dim:
            raise DimensionMismatchError(f"funnel stage {self.stages[-1]} exceeds the indexed dimension {dim}")

    def build(self, base: np.ndarray) -> dict[int, np.ndarray]:
        return {}  # prefix arrays, made on first use

    def search(self, state: dict[int, np.ndarray], base: np.ndarray, q: np.ndarray, k: int,
               ef_search: int) -> tuple[np.ndarray, np.ndarray]:
        def corpus(d: int) -> np.ndarray:
            if d == base.shape[1]:
                return base
            if d not in state:
                state[d] = _prefix(base, d)
            return state[d]

        stages = self.stages
        keep = min(max(self.shortlist, k), len(base))
        _, cand = topk(_prefix(q, stages[0]), corpus(stages[0]), keep)
        for j, d in enumerate(stages[1:], start=1):
            keep = k if j == len(stages) - 1 else max(k, keep // 2)
            s, cand = rescore(_prefix(q, d), corpus(d), cand, keep)
        return s, cand

    def first_stage_bytes(self, n: int, dim: int) -> int:
        return n * (self.stages[0] if self.stages else dim) * 4


def _prefix(x: np.ndarray, d: int) -> np.ndarray:
    return normalize_rows(np.ascontiguousarray(x[:, :d]))
