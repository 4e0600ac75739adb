"""CLI: upgrade fit / eval (query-side adapters)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from repspace.cli.app import app, emit_json, read_items

upgrade_app = typer.Typer(help="Upgrade the model behind an index without re-embedding first.", no_args_is_help=True)
app.add_typer(upgrade_app, name="upgrade")


@upgrade_app.command("fit")
def upgrade_fit(
    old_space: Path = typer.Argument(..., help="Items encoded by the OLD model."),
    new_space: Path = typer.Argument(..., help="The same items (ids) encoded by the NEW model."),
    method: str = typer.Option("procrustes", "--method", help="procrustes | affine | lowrank | mlp"),
    pairs: Optional[int] = typer.Option(None, "--pairs", help="Use N shared items (train half of the id split)."),
    rank: int = typer.Option(64, "--rank", help="Rank for --method lowrank."),
    seed: int = typer.Option(0, "--seed"),
    also_old: Optional[List[Path]] = typer.Option(None, "--also-old", help="Another view of the same items, old model "
                                                  "(e.g. titles beside bodies); pairs with --also-new in order."),
    also_new: Optional[List[Path]] = typer.Option(None, "--also-new", help="The same view, new model."),
    out: Path = typer.Option(..., "--out"),
) -> None:
    """Fit an adapter mapping NEW-model vectors into the OLD model's space."""
    from repspace.compat import fit_adapter
    from repspace.errors import InvalidInputError
    from repspace.spaces import Space

    also_old, also_new = also_old or [], also_new or []
    if len(also_old) != len(also_new):
        raise InvalidInputError("give --also-old and --also-new the same number of times (one pair per view)")
    also = [(Space.load(o), Space.load(n)) for o, n in zip(also_old, also_new)]
    adapter = fit_adapter(Space.load(old_space), Space.load(new_space), method, pairs=pairs, rank=rank, seed=seed,
                          also=also)
    adapter.save(out)
    Console(stderr=True).print(f"wrote {out}: {adapter.name} adapter {adapter.source_model_} -> {adapter.target_model_} "
                               f"from {adapter.n_pairs_} pairs")


@upgrade_app.command("eval")
def upgrade_eval(
    adapter: Path = typer.Argument(...),
    old_corpus: Path = typer.Option(..., "--old-corpus"),
    new_queries: Path = typer.Option(..., "--new-queries"),
    new_corpus: Optional[Path] = typer.Option(None, "--new-corpus"),
    old_queries: Optional[Path] = typer.Option(None, "--old-queries"),
    all_items: bool = typer.Option(False, "--all-items", help="Score every query, not only the test half of ids."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Recall@10 / nDCG@10 of old->old, new->new, adapted new->old, and the recovery ratio."""
    from repspace.alignment import load_translator
    from repspace.compat import evaluate_upgrade
    from repspace.spaces import Space

    res = evaluate_upgrade(load_translator(adapter), Space.load(old_corpus), Space.load(new_queries),
                           Space.load(new_corpus) if new_corpus else None,
                           Space.load(old_queries) if old_queries else None, all_items=all_items)
    if json_out:
        emit_json(res)
        return
    for key in ("old_old", "new_new", "adapted_new_old", "recovery"):
        if key in res:
            Console().print(f"{key:16s} " + "  ".join(f"{k} {v:.4f}" for k, v in res[key].items() if v is not None))
    Console().print(f"adapter cost     {res['adapter_us_per_query']:.2f} µs/query (batch)")


@upgrade_app.command("backfill")
def upgrade_backfill(
    index: Path = typer.Argument(..., help="The live (old-model) index."),
    model: str = typer.Option(..., "--model", help="The new model (built-in name or model directory)."),
    out: Path = typer.Option(..., "--out", help="Where to write the new index."),
    spec: Optional[str] = typer.Option(None, "--spec", help="Index spec of the new index (default: the old one's)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="The corpus, if not where the index's manifest says."),
    input: Optional[Path] = typer.Option(None, "--input", help="The corpus file, if not where the manifest says."),
    text_column: str = typer.Option("text", "--text-column"),
    id_column: str = typer.Option("id", "--id-column"),
    label_column: str = typer.Option("label", "--label-column"),
    batch_size: int = typer.Option(32, "--batch-size"),
    chunk_items: int = typer.Option(256, "--chunk-items", help="Items per resumable chunk."),
    device: str = typer.Option("cpu", "--device"),
    quiet: bool = typer.Option(False, "--quiet"),
) -> None:
    """Re-encode the index's items with the new model in resumable batches (safe to kill and re-run)."""
    from repspace.compat.backfill import backfill

    items = read_items(dataset, input, text_column, id_column, label_column, required=False)
    new = backfill(index, model, out, items=items, spec=spec, batch_size=batch_size, chunk_items=chunk_items,
                   device=device, progress=not quiet)
    Console(stderr=True).print(f"wrote {out}: {new.spec} over {new.space.count} x {new.dim} ({new.space.model}); "
                               f"switch with `repspace upgrade switch LIVE {out}`")


@upgrade_app.command("switch")
def upgrade_switch(
    live: Path = typer.Argument(..., help="The symlink clients search (created if absent)."),
    target: Path = typer.Argument(..., help="The index to serve from now on."),
    force: bool = typer.Option(False, "--force", help="Switch even if the new index holds other items."),
) -> None:
    """Atomically repoint the live index symlink (one rename); prints the previous target for rollback."""
    from repspace.compat.backfill import switch

    previous = switch(live, target, force=force)
    Console(stderr=True).print(f"{live} -> {target.resolve()}" + (f" (was {previous})" if previous else ""))
