"""One entry point for the CLI: `evaluate(space, task, queries=..., qrels=..., dims=..., reduce=...)`."""

from __future__ import annotations

from typing import Any

from repspace.errors import UnknownNameError
from repspace.evaluation.probes import cluster, few_shot, knn_probe, linear_probe
from repspace.evaluation.retrieval import Qrels, label_retrieval, query_retrieval
from repspace.evaluation.sweep import Reducer, get_reducer, sweep
from repspace.spaces import Space

TASKS = ("retrieval", "probe", "knn", "fewshot", "cluster")


def evaluate(
    space: Space,
    task: str,
    queries: Space | None = None,
    qrels: Qrels | None = None,
    dims: list[int] | None = None,
    reduce: str | Reducer = "truncate",
    k: int = 20,
    n_way: int = 5,
    k_shot: int = 5,
    episodes: int = 200,
) -> dict[str, Any]:
    """Evaluate one space on a task; with `dims`, a sweep over dimensions.

    retrieval: with `queries`, query -> corpus (relevance by id or qrels); else label-based
    leave-one-out. probe / knn / fewshot / cluster use the space's labels.
    """
    if task not in TASKS:
        raise UnknownNameError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
    reduce = get_reducer(reduce)  # validate even when no sweep is asked for
    if task == "retrieval" and queries is not None:
        if queries.dim != space.dim:
            from repspace.errors import DimensionMismatchError

            raise DimensionMismatchError(
                f"queries are {queries.dim}-d ({queries.model}) but the corpus is {space.dim}-d ({space.model})"
            )
        fn = lambda s: query_retrieval(s[0], s[1], qrels=qrels)  # noqa: E731
        spaces = [queries, space]
    else:
        single = {"retrieval": label_retrieval, "probe": linear_probe, "knn": lambda s: knn_probe(s, k=k),
                  "fewshot": lambda s: few_shot(s, n_way=n_way, k_shot=k_shot, episodes=episodes), "cluster": cluster}[task]
        fn = lambda s: single(s[0])  # noqa: E731
        spaces = [space]
    if not dims:
        return fn(spaces)
    return sweep(fn, spaces, dims, reducer=reduce)
