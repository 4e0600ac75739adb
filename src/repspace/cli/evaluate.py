"""CLI: eval, compare, compat, report."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from repspace.cli.app import emit_json, flag_hints, parse_int_list


def _print_flat(result: dict) -> None:
    table = Table("metric", "value")
    for key, value in result.items():
        if not isinstance(value, (list, dict)):
            table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    Console().print(table)


def eval_cmd(
    space: Path = typer.Argument(..., help="The space to evaluate (the corpus, with --queries)."),
    task: str = typer.Option("retrieval", "--task", help="retrieval | probe | knn | fewshot | cluster"),
    queries: Optional[Path] = typer.Option(None, "--queries", help="Query space (retrieval: queries search SPACE)."),
    qrels: Optional[Path] = typer.Option(None, "--qrels", help="TREC or JSON qrels; default: relevant = same id."),
    dims: Optional[str] = typer.Option(None, "--dims", help="Comma-separated dimensions for a sweep, e.g. 16,32,64."),
    reduce: str = typer.Option("truncate", "--reduce", help="truncate | pca | path of a saved adaptor."),
    k: int = typer.Option(20, "--k", help="Neighbours for --task knn."),
    n_way: int = typer.Option(5, "--n-way", help="Classes per few-shot episode."),
    k_shot: int = typer.Option(5, "--k-shot", help="Examples per class in a few-shot episode."),
    episodes: int = typer.Option(200, "--episodes", help="Few-shot episodes."),
    json_out: bool = typer.Option(False, "--json"),
    engine: str = typer.Option("local", "--engine", help="local, or ray: retrieval's exact search sharded over Ray workers."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray head address; default: a local Ray."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Ray search workers (corpus shards)."),
) -> None:
    """Evaluate a space: retrieval metrics, probes, k-NN, few-shot, clustering, dimension sweeps."""
    from repspace.evaluation import evaluate, read_qrels
    from repspace.scale.search import search_engine
    from repspace.spaces import Space

    corpus = Space.load(space)
    q = Space.load(queries) if queries else None
    with search_engine(engine, ray_address, workers), flag_hints(qrels="--qrels"):
        result = evaluate(corpus, task, queries=q, qrels=read_qrels(qrels) if qrels else None,
                          dims=parse_int_list(dims, "--dims"), reduce=reduce, k=k,
                          n_way=n_way, k_shot=k_shot, episodes=episodes)
    if json_out:
        emit_json(result)
    elif "rows" in result:
        cols = [m for m in ("ndcg@10", "recall@10", "map@r", "accuracy", "nmi") if m in result["rows"][0]]
        table = Table("dim", *cols)
        for r in result["rows"]:
            table.add_row(str(r["dim"]), *[f"{r[c]:.4f}" + ("" if r.get(c + "_retained") is None
                                                             else f" ({r[c + '_retained']:.1%})") for c in cols])
        Console().print(table)
    else:
        _print_flat(result)


def compare(
    space_a: Path = typer.Argument(...),
    space_b: Path = typer.Argument(...),
    metrics: str = typer.Option("cka,cka_debiased,cka_rbf,svcca,mknn,rsa,procrustes", "--metrics"),
    k: int = typer.Option(10, "--k", help="Neighbours for mknn."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Similarity of two spaces of the same items (joined by id): CKA, SVCCA, mutual k-NN, RSA, Procrustes."""
    from repspace.evaluation import compare as compare_spaces
    from repspace.spaces import Space

    names = tuple(m.strip() for m in metrics.split(",") if m.strip())
    result = compare_spaces(Space.load(space_a), Space.load(space_b), metrics=names, k=k)
    emit_json(result) if json_out else _print_flat(result)


def compat(
    spaces: List[Path] = typer.Argument(..., help="Spaces of the same items from model versions v1 (old) .. vn (new)."),
    metric: Optional[str] = typer.Option(None, "--metric", help="Default map@r (labels) or recall@1 (ids)."),
    json_out: bool = typer.Option(False, "--json"),
    engine: str = typer.Option("local", "--engine", help="local, or ray: exact search sharded over Ray workers."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray head address; default: a local Ray."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Ray search workers (corpus shards)."),
) -> None:
    """Compatibility matrix M[i][j] (queries from model i, gallery from model j) and the BCT criterion."""
    from repspace.errors import InvalidInputError
    from repspace.evaluation import compatibility
    from repspace.scale.search import search_engine
    from repspace.spaces import Space

    if len(spaces) < 2:
        raise InvalidInputError("give at least two spaces: old then new")
    with search_engine(engine, ray_address, workers):
        result = compatibility([Space.load(p) for p in spaces], metric=metric)
    if json_out:
        emit_json(result)
        return
    n = len(spaces)
    table = Table("query \\ gallery", *[f"v{j + 1}" for j in range(n)])
    for i, row in enumerate(result["matrix"]):
        table.add_row(f"v{i + 1}", *["" if v is None else f"{v:.4f}" for v in row])
    Console().print(table)
    for key, ok in result["compatible"].items():
        gain = result["gain"][key]
        Console().print(f"{key}: {'compatible' if ok else 'NOT compatible'}, gain {'n/a' if gain is None else f'{gain:.3f}'}")


def report(
    spaces: List[Path] = typer.Argument(..., help="Spaces to describe and compare."),
    out: Path = typer.Option(Path("report.html"), "--out"),
    title: str = typer.Option("repspace report", "--title"),
) -> None:
    """Write one self-contained HTML report (tables and plots) for the given spaces."""
    from repspace.report.evaluation import build_report
    from repspace.spaces import Space

    path = build_report([Space.load(p) for p in spaces], title=title).write(out)
    Console(stderr=True).print(f"report: {path}")
