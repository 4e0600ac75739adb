"""CLI: limit (the LIMIT capacity test of Weller et al., 2025; repspace.limit): a group whose own options run the
free-embedding critical-n search (`repspace limit --dim 4 --k 2 [--json]`, as before it was a group) and whose
`eval` command scores a model and BM25 on LIMIT-style data (`repspace limit eval MODEL`)."""

from __future__ import annotations

from typing import Optional

import typer
from rich.console import Console

from repspace.cli.app import emit_json, flag_hints, parse_int_list

FLAGS = {"dim": "--dim", "k": "--k", "max_n": "--max-n", "tries": "--tries", "max_queries": "--max-queries",
         "max_seconds": "--max-seconds", "steps": "--steps", "lr": "--lr", "temperature": "--temperature",
         "patience": "--patience", "seed": "--seed", "search": "--search", "start": "--start",
         "precision": "--precision", "threads": "--threads", "protocol": "--protocol", "docs": "--docs",
         "queries": "--queries", "dims": "--dims", "ks": "--k", "attributes": "--attributes", "model": "MODEL"}

limit_app = typer.Typer(help="The LIMIT capacity test: free embeddings' critical n (`--dim d --k 2`), or `eval MODEL` "
                        "on LIMIT-style data.", invoke_without_command=True)


@limit_app.callback(invoke_without_command=True)
def limit(
    ctx: typer.Context,
    dim: Optional[int] = typer.Option(None, "--dim", help="Embedding dimension d of the free query and document "
                                      "vectors (required without a subcommand)."),
    k: int = typer.Option(2, "--k", help="Relevant documents per query (one query per k-subset of the n documents)."),
    max_n: int = typer.Option(64, "--max-n", help="Stop growing n here (the answer is then a lower bound)."),
    tries: int = typer.Option(3, "--tries", help="Seeds tried for an n before it counts as failed."),
    protocol: str = typer.Option("repspace", "--protocol", help="repspace (per-positive InfoNCE, stops on accuracy) "
                                 "or paper (the authors' released code: softmax over all documents, projected Adam, "
                                 "lr 0.01, up to 100,000 steps, stops on the loss); docs/limit.md."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Adam steps per fit at most (default: the protocol's, "
                                        "4000 / 100000)."),
    patience: Optional[int] = typer.Option(None, "--patience", help="Stop a fit when its accuracy (paper: its loss) "
                                           "has not improved for this many steps (default 1000)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Adam learning rate (default: 0.1 / paper 0.01)."),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="Softmax temperature of the InfoNCE "
                                                "loss (default 0.1)."),
    max_queries: int = typer.Option(200_000, "--max-queries", help="Stop when C(n, k) exceeds this."),
    max_seconds: Optional[float] = typer.Option(600.0, "--max-seconds", help="Stop growing n after this long."),
    seed: int = typer.Option(0, "--seed"),
    search: str = typer.Option("linear", "--search", help="linear (n + 1 each fit, the paper's) or bisect (grow by "
                               "half, then bisect: ~2 log2(n) fits, for larger --dim)."),
    start: Optional[int] = typer.Option(None, "--start", help="First n to fit (default k + 1)."),
    precision: Optional[str] = typer.Option(None, "--precision", help="float64 (repspace's reference) or float32 "
                                            "(~2.5x faster per step at d = 16, with --threads 2; the paper's)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Torch threads per fit (default 1)."),
    trials: bool = typer.Option(False, "--trials", help="With --json: include every fit."),
    quiet: bool = typer.Option(False, "--quiet"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """The critical n of free embeddings: the most documents whose every k-subset some query returns as its top-k."""
    if ctx.invoked_subcommand is not None:
        return
    if dim is None:
        raise typer.BadParameter("--dim is required (or run a subcommand: `repspace limit eval MODEL`)",
                                 param_hint="'--dim'")
    from repspace.limit import critical_n

    console = Console(stderr=True)

    def report(fit) -> None:
        if not quiet:
            console.print(f"n={fit.n} ({fit.queries} queries): {'solved' if fit.solved else 'failed'} "
                          f"{fit.accuracy:.1%} after {fit.steps} steps")

    with flag_hints(**FLAGS):
        result = critical_n(dim, k, max_n=max_n, tries=tries, max_queries=max_queries, max_seconds=max_seconds,
                            steps=steps, lr=lr, temperature=temperature, patience=patience, seed=seed,
                            on_trial=report, search=search, start=start,
                            precision=precision, threads=threads, protocol=protocol)
    out = result.to_dict()
    if not trials:
        out.pop("trials")
    if json_out:
        emit_json(out)
        return
    bound = f" (lower bound: stopped by {result.stopped_by})" if result.capped else ""
    typer.echo(f"dim={result.dim} k={result.k}: critical n = {result.critical_n}{bound}")


@limit_app.command("eval")
def limit_eval(
    model: Optional[str] = typer.Argument(None, help="A packaged model (see `repspace models`) or model directory; "
                                          "leave out with --bm25-only."),
    docs: int = typer.Option(1000, "--docs", help="Documents (the paper's full LIMIT: 50,000; small: 46)."),
    queries: int = typer.Option(1000, "--queries", help="Queries, one per pair of the relevant documents."),
    k: str = typer.Option("2,10,100", "--k", help="Recall cut-offs."),
    dims: Optional[str] = typer.Option(None, "--dims", help="Also score the model's first m dimensions, e.g. 32,64."),
    attributes: Optional[str] = typer.Option(None, "--attributes", help="A text file, one likeable thing a line "
                                             "(default: nouns of the GNU dictionary, dataset gcide)."),
    bm25_only: bool = typer.Option(False, "--bm25-only", help="Score BM25 only."),
    seed: int = typer.Option(0, "--seed"),
    batch_size: int = typer.Option(32, "--batch-size"),
    device: str = typer.Option("cpu", "--device"),
    quiet: bool = typer.Option(False, "--quiet"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Recall@k of MODEL and of BM25 on LIMIT-style data: people x liked things, every pair of documents some query's
    relevant set."""
    from pathlib import Path

    from repspace.errors import InvalidInputError
    from repspace.limit.evaluate import evaluate_limit

    if model is None and not bm25_only:
        raise typer.BadParameter("give a MODEL, or --bm25-only", param_hint="'MODEL'")
    attrs = None
    if attributes is not None:
        try:
            attrs = Path(attributes).read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise InvalidInputError(f"cannot read the attributes file: {e}", param="attributes") from None
    with flag_hints(**FLAGS):
        result = evaluate_limit(None if bm25_only else model, docs=docs, queries=queries,
                                ks=parse_int_list(k, "--k"), dims=parse_int_list(dims, "--dims") or (),
                                attributes=attrs, seed=seed, batch_size=batch_size, device=device,
                                progress=not quiet)
    if json_out:
        emit_json(result)
        return
    ks = [c for c in result["systems"][0] if c.startswith("recall@")]
    typer.echo(f"LIMIT-style data: {result['docs']} documents, {result['queries']} queries over "
               f"{result['relevant_docs']} relevant documents, {result['attributes_per_doc']} attributes each")
    typer.echo("system\tdim\t" + "\t".join(ks))
    for row in result["systems"]:
        typer.echo(f"{row['system']}\t{row['dim'] or '-'}\t" + "\t".join(f"{row[c]:.4f}" for c in ks))
