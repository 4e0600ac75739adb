"""CLI: align fit / apply / eval (thin: the library's fit_translator / apply_translator / evaluate_translator)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from repspace.alignment import METHODS
from repspace.alignment.relative import ANCHOR_METHODS
from repspace.cli.app import emit_json, flag_hints

align_app = typer.Typer(help="Translate between embedding spaces (supervised, relative, unsupervised).",
                        no_args_is_help=True)

FLAGS = {"method": "--method", "pairs": "--pairs", "anchor_ids": "--anchor-ids", "rank": "--rank"}


@align_app.command("fit")
def align_fit(
    src: Annotated[Path, typer.Argument(help="Source space.")],
    tgt: Annotated[Path, typer.Argument(help="Target space (same items by id, unless unsupervised).")],
    out: Annotated[Path, typer.Option("--out", help="Translator directory to write.")],
    method: Annotated[str, typer.Option("--method", help=" | ".join(METHODS))] = "procrustes",
    pairs: Annotated[Optional[int], typer.Option("--pairs", help="Use N of the shared training ids (default: all).")] = None,
    anchors: Annotated[int, typer.Option("--anchors", help="Anchors for --method relative.")] = 300,
    anchor_method: Annotated[str, typer.Option("--anchor-method", help=" | ".join(ANCHOR_METHODS))] = "random",
    anchor_ids: Annotated[Optional[Path], typer.Option("--anchor-ids", help="File with one anchor id per line.")] = None,
    rank: Annotated[int, typer.Option("--rank", help="Rank for --method lowrank.")] = 64,
    seed: Annotated[int, typer.Option("--seed")] = 0,
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
    with flag_hints(**FLAGS):
        translator = fit_translator(Space.load(src), Space.load(tgt), method=method, pairs=pairs, anchors=anchors,
                                    rank=rank, seed=seed, anchor_ids=ids, anchor_method=anchor_method)
    translator.save(out)
    Console(stderr=True).print(f"wrote {out}: {translator.name} {translator.source_dim_}-d -> "
                               f"{translator.target_dim_}-d from {translator.n_pairs_} pairs")


@align_app.command("apply")
def align_apply(
    translator: Annotated[Path, typer.Argument(help="Translator directory.")],
    space: Annotated[Path, typer.Argument(help="Space of the translator's source model.")],
    out: Annotated[Path, typer.Option("--out", help="Output space directory.")],
) -> None:
    """Translate a space with a fitted translator."""
    from repspace.alignment import apply_translator, load_translator
    from repspace.spaces import Space

    result = apply_translator(load_translator(translator), Space.load(space))
    result.save(out)
    Console(stderr=True).print(f"wrote {out}: {result.count} x {result.dim}")


@align_app.command("eval")
def align_eval(
    translator: Annotated[Path, typer.Argument()],
    src: Annotated[Path, typer.Argument()],
    tgt: Annotated[Path, typer.Argument()],
    all_items: Annotated[bool, typer.Option("--all-items", help="Score on all shared ids, not only the test half.")] = False,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Matching accuracy (top1, top5, mean_rank, mean_cos), stitching and retrieval of a translator."""
    from repspace.alignment import evaluate_translator, load_translator
    from repspace.cli.evaluate import _print_flat
    from repspace.spaces import Space

    result = evaluate_translator(load_translator(translator), Space.load(src), Space.load(tgt), all_items=all_items)
    emit_json(result) if json_out else _print_flat(result)
