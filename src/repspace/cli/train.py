"""CLI: train (compatible embedding models)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from repspace.cli.app import app, emit_json


@app.command()
def train(
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Image dataset for --arch cnn: fashion-mnist, digits "
                                          "(the train split is used unless NAME@SPLIT says otherwise)."),
    arch: str = typer.Option("cnn", "--arch", help="cnn (grey images) | mlp (head on a frozen encoder's space)"),
    base_space: Optional[Path] = typer.Option(None, "--base-space", help="For --arch mlp: labelled space of the frozen encoder."),
    dim: int = typer.Option(..., "--dim", help="Embedding dimension (for bt2: of the part compatible with --old)."),
    method: str = typer.Option("independent", "--method", help="independent | bct | dsimplex | bt2"),
    old: Optional[Path] = typer.Option(None, "--old", help="The old model directory (bct, bt2)."),
    classes: Optional[str] = typer.Option(None, "--classes", help="Train on these classes only: 0-4, 0,2,5 or names."),
    fraction: Optional[float] = typer.Option(None, "--fraction", help="Train on a random fraction F of the items."),
    epochs: int = typer.Option(3, "--epochs"),
    batch_size: int = typer.Option(128, "--batch-size"),
    lr: float = typer.Option(1e-3, "--lr"),
    alpha: float = typer.Option(1.0, "--alpha", help="Weight of the influence loss (bct, bt2)."),
    extra_dims: Optional[int] = typer.Option(None, "--extra-dims", help="bt2: added dimensions (default dim/4)."),
    seed: int = typer.Option(0, "--seed"),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch CPU threads (1 is often fastest on 2 cores)."),
    name: Optional[str] = typer.Option(None, "--name", help="Model name recorded in spaces (default: the out dir's name)."),
    out: Path = typer.Option(..., "--out", help="Model directory to write (usable as `encode --model DIR`)."),
    quiet: bool = typer.Option(False, "--quiet"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Train an embedding model, optionally backward-compatible with an old one (BCT, d-Simplex, BT²)."""
    from repspace.compat.training import train_model
    from repspace.datasets import load_dataset
    from repspace.errors import InvalidInputError
    from repspace.spaces import Space

    items = space = None
    if arch == "mlp":
        if base_space is None:
            raise InvalidInputError("--arch mlp needs --base-space SPACE (e.g. bbc-news encoded by minilm-l6)")
        space = Space.load(base_space)
    else:
        if dataset is None:
            raise InvalidInputError("--arch cnn needs --dataset (fashion-mnist or digits)")
        items = load_dataset(dataset if "@" in dataset else f"{dataset}@train")
    config = train_model(arch, dim, method, out, items=items, base_space=space, old=old, classes=classes,
                         fraction=fraction, epochs=epochs, batch_size=batch_size, lr=lr, alpha=alpha,
                         extra_dims=extra_dims, seed=seed, threads=threads, name=name, progress=not quiet)
    if json_out:
        emit_json(config)
        return
    secs = [h["seconds"] for h in config["history"]]
    Console(stderr=True).print(
        f"wrote {out}: {arch} {config['method']} model, {config['dim'] + config['extra_dims']}-d, "
        f"{config['train_items']} items, {len(config['trained_classes'])} classes; "
        f"final loss {config['history'][-1]['loss']:.4f}, {sum(secs) / len(secs):.1f} s/epoch")
