"""CLI: limit (the LIMIT capacity test of Weller et al., 2025: free embeddings' critical n; repspace.limit)."""

from __future__ import annotations

from typing import Optional

import typer
from rich.console import Console

from repspace.cli.app import emit_json, flag_hints

FLAGS = {"dim": "--dim", "k": "--k", "max_n": "--max-n", "tries": "--tries", "max_queries": "--max-queries",
         "max_seconds": "--max-seconds", "steps": "--steps", "lr": "--lr", "temperature": "--temperature",
         "patience": "--patience", "seed": "--seed"}


def limit(
    dim: int = typer.Option(..., "--dim", help="Embedding dimension d of the free query and document vectors."),
    k: int = typer.Option(2, "--k", help="Relevant documents per query (one query per k-subset of the n documents)."),
    max_n: int = typer.Option(64, "--max-n", help="Stop growing n here (the answer is then a lower bound)."),
    tries: int = typer.Option(3, "--tries", help="Seeds tried for an n before it counts as failed."),
    steps: int = typer.Option(4000, "--steps", help="Adam steps per fit at most."),
    patience: int = typer.Option(1000, "--patience", help="Stop a fit when its accuracy has not improved for this "
                                 "many steps."),
    lr: float = typer.Option(0.1, "--lr", help="Adam learning rate."),
    temperature: float = typer.Option(0.1, "--temperature", help="Softmax temperature of the InfoNCE loss."),
    max_queries: int = typer.Option(200_000, "--max-queries", help="Stop when C(n, k) exceeds this."),
    max_seconds: Optional[float] = typer.Option(600.0, "--max-seconds", help="Stop growing n after this long."),
    seed: int = typer.Option(0, "--seed"),
    trials: bool = typer.Option(False, "--trials", help="With --json: include every fit."),
    quiet: bool = typer.Option(False, "--quiet"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """The critical n of free embeddings: the most documents whose every k-subset some query returns as its top-k."""
    from repspace.limit import critical_n

    console = Console(stderr=True)

    def report(fit) -> None:
        if not quiet:
            console.print(f"n={fit.n} ({fit.queries} queries): {'solved' if fit.solved else 'failed'} "
                          f"{fit.accuracy:.1%} after {fit.steps} steps")

    with flag_hints(**FLAGS):
        result = critical_n(dim, k, max_n=max_n, tries=tries, max_queries=max_queries, max_seconds=max_seconds,
                            steps=steps, lr=lr, temperature=temperature, patience=patience, seed=seed,
                            on_trial=report)
    out = result.to_dict()
    if not trials:
        out.pop("trials")
    if json_out:
        emit_json(out)
        return
    bound = f" (lower bound: stopped by {result.stopped_by})" if result.capped else ""
    typer.echo(f"dim={result.dim} k={result.k}: critical n = {result.critical_n}{bound}")
