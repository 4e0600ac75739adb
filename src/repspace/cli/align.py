"""CLI: align fit / apply / eval."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from repspace.cli.app import app, emit_json

align_app = typer.Typer(help="Translate between embedding spaces (supervised, relative, unsupervised).",
                        no_args_is_help=True)
app.add_typer(align_app, name="align")


@align_app.command("fit")
def align_fit(
    src: Path = typer.Argument(..., help="Source space."),
    tgt: Path = typer.Argument(..., help="Target space (same items by id, unless unsupervised)."),
    method: str = typer.Option("procrustes", "--method",
                               help="procrustes | lstsq | ridge | affine | lowrank | mlp | relative | unsupervised"),
    out: Path = typer.Option(..., "--out", help="Translator directory to write."),
    pairs: Optional[int] = typer.Option(None, "--pairs", help="Use N of the shared training ids (default: all)."),
    anchors: int = typer.Option(300, "--anchors", help="Anchors for --method relative."),
    anchor_method: str = typer.Option("random", "--anchor-method", help="random | kmeans | fps"),
    anchor_ids: Optional[Path] = typer.Option(None, "--anchor-ids", help="File with one anchor id per line."),
    rank: int = typer.Option(64, "--rank", help="Rank for --method lowrank."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Fit a translator from SRC to TGT (pairs = items with equal ids, train half of the id split)."""
    from repspace.alignment import fit_translator
    from repspace.errors import InvalidInputError
    from repspace.spaces import Space

    ids = None
    if anchor_ids is not None:
        if not anchor_ids.is_file():
            raise InvalidInputError(f"anchor id file {anchor_ids} does not exist")
        ids = [line.strip() for line in anchor_ids.read_text().splitlines() if line.strip()]
    translator = fit_translator(Space.load(src), Space.load(tgt), method=method, pairs=pairs, anchors=anchors,
                                rank=rank, seed=seed, anchor_ids=ids, anchor_method=anchor_method)
    translator.save(out)
    Console(stderr=True).print(f"wrote {out}: {translator.name} {translator.source_dim_}-d -> "
                               f"{translator.target_dim_}-d from {translator.n_pairs_} pairs")


@align_app.command("apply")
def align_apply(
    translator: Path = typer.Argument(..., help="Translator directory."),
    space: Path = typer.Argument(..., help="Space of the translator's source model."),
    out: Path = typer.Option(..., "--out", help="Output space directory."),
) -> None:
    """Translate a space with a fitted translator."""
    from repspace.alignment import apply_translator, load_translator
    from repspace.spaces import Space

    result = apply_translator(load_translator(translator), Space.load(space))
    result.save(out)
    Console(stderr=True).print(f"wrote {out}: {result.count} x {result.dim}")


@align_app.command("eval")
def align_eval(
    translator: Path = typer.Argument(...),
    src: Path = typer.Argument(...),
    tgt: Path = typer.Argument(...),
    all_items: bool = typer.Option(False, "--all-items", help="Score on all shared ids, not only the test half."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Matching accuracy (top1, top5, mean_rank, mean_cos), stitching and retrieval of a translator."""
    from repspace.alignment import evaluate_translator, load_translator
    from repspace.cli.evaluate import _print_flat
    from repspace.spaces import Space

    result = evaluate_translator(load_translator(translator), Space.load(src), Space.load(tgt), all_items=all_items)
    emit_json(result) if json_out else _print_flat(result)
