"""CLI: upgrade fit / eval (query-side adapters)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from repspace.cli.app import app, emit_json

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
    out: Path = typer.Option(..., "--out"),
) -> None:
    """Fit an adapter mapping NEW-model vectors into the OLD model's space."""
    from repspace.compat import fit_adapter
    from repspace.spaces import Space

    adapter = fit_adapter(Space.load(old_space), Space.load(new_space), method, pairs=pairs, rank=rank, seed=seed)
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
