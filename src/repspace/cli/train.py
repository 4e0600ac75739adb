"""CLI: train (compatible embedding models; self-supervised encoders, repspace.objectives)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from repspace.cli.app import emit_json, flag_hints
from repspace.compat.methods import COMPAT_METHODS  # names only, no torch
from repspace.compat.methods import SELF_SUPERVISED_METHODS as SSL_METHODS

# library argument -> the flag that sets it (added to error messages)
FLAGS = {"items": "--dataset", "base_space": "--base-space", "arch": "--arch", "dim": "--dim", "method": "--method",
         "old": "--old", "classes": "--classes", "fraction": "--fraction", "epochs": "--epochs",
         "batch_size": "--batch-size", "lr": "--lr", "classifier": "--classifier", "influence": "--influence",
         "influence_scale": "--influence-scale", "alpha": "--alpha"}


def train(
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Image dataset for --arch cnn: fashion-mnist, digits "
                                          "(the train split is used unless NAME@SPLIT says otherwise)."),
    arch: str = typer.Option("cnn", "--arch", help="cnn (grey images) | mlp (head on a frozen encoder's space)"),
    base_space: Optional[Path] = typer.Option(None, "--base-space", help="For --arch mlp: labelled space of the frozen encoder."),
    dim: Optional[int] = typer.Option(None, "--dim", help="Embedding dimension (for bt2: of the part compatible with "
                                      "--old); default 32, or 128 for the self-supervised methods."),
    method: str = typer.Option("independent", "--method", help=f"{' | '.join(COMPAT_METHODS)} (labels), or "
                               f"{' | '.join(SSL_METHODS)} (no labels)"),
    old: Optional[Path] = typer.Option(None, "--old", help="The old model directory (bct, bt2)."),
    classes: Optional[str] = typer.Option(None, "--classes", help="Train on these classes only: 0-4, 0,2,5 or names."),
    fraction: Optional[float] = typer.Option(None, "--fraction", help="Train on a random fraction F of the items."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Default: compat methods enough epochs for ~1,000 "
                                         "steps (at least 10); self-supervised 10. 0 saves the random-init network "
                                         "(self-supervised methods)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Default 128 (compat), 256 (self-supervised)."),
    lr: float = typer.Option(1e-3, "--lr"),
    limit: Optional[int] = typer.Option(None, "--limit", help="Self-supervised: train on N items (seeded sample)."),
    alpha: Optional[float] = typer.Option(None, "--alpha", help="Weight of the influence loss (default: bct 1, bt2 3)."),
    influence: str = typer.Option("auto", "--influence", help="bct, bt2: auto (default: gallery when the new model "
                                  "adds classes the old one never saw, else nca) | classifier (the old classifier; "
                                  "synthesised rows for classes it never saw) | nca (the old classifier plus each new "
                                  "feature's soft nearest neighbours of its class among the old model's embeddings "
                                  "of the training items) | gallery (each new feature must find "
                                  "its own item's old embedding and its class among the old model's embeddings of "
                                  "the training items: for added classes) | prototypes (bct: cosine loss to the old "
                                  "model's class means)"),
    influence_scale: Optional[float] = typer.Option(None, "--influence-scale", help="nca, gallery, prototypes: the "
                                                    "cosine scale of the influence softmax (default 32, 128, 16)."),
    classifier: Optional[str] = typer.Option(None, "--classifier", help="linear (default) | cosine (normalised "
                                             "features and weights); dsimplex implies its fixed simplex"),
    extra_dims: Optional[int] = typer.Option(None, "--extra-dims", help="bt2: added dimensions (default dim/4)."),
    seed: int = typer.Option(0, "--seed", help="Seed of data order and augmentation; compat methods also derive the "
                             "initial weights from it and the training setup, so old and new models never share them."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch CPU threads (1 is often fastest on 2 cores)."),
    name: Optional[str] = typer.Option(None, "--name", help="Model name recorded in spaces (default: the out dir's name)."),
    out: Path = typer.Option(..., "--out", help="Model directory to write (usable as `encode --model DIR`)."),
    quiet: bool = typer.Option(False, "--quiet"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Train an embedding model: backward-compatible with an old one (BCT, d-Simplex, BT²), or without labels."""
    from repspace.compat.training import train_model
    from repspace.datasets import load_dataset
    from repspace.spaces import Space

    # the library checks the inputs (and says what is missing); the CLI only names the flags
    space = Space.load(base_space) if arch == "mlp" and base_space is not None else None
    items = load_dataset(dataset if "@" in dataset else f"{dataset}@train") if arch != "mlp" and dataset else None
    if method in SSL_METHODS:
        from repspace.objectives import train_objective

        with flag_hints(**FLAGS):
            config = train_objective(method, out, items=items, base_space=space, arch=arch, dim=dim,
                                     epochs=10 if epochs is None else epochs, batch_size=batch_size or 256, lr=lr,
                                     seed=seed, threads=threads, name=name, progress=not quiet, limit=limit)
        if json_out:
            emit_json(config)
            return
        last = config["history"][-1] if config["history"] else config["initial"]
        Console(stderr=True).print(
            f"wrote {out}: {arch} {method} encoder, {config['dim']}-d, {config['train_items']} items, "
            f"{config['epochs']} epochs (no labels); effective rank {last['effective_rank']:.1f}"
            + (f", final loss {last['loss']:.4f}" if "loss" in last else " (random initialisation)"))
        return
    with flag_hints(**FLAGS):
        config = train_model(arch, dim, method, out, items=items, base_space=space, old=old, classes=classes,
                             fraction=fraction, epochs=epochs, batch_size=batch_size or 128, lr=lr, alpha=alpha,
                             extra_dims=extra_dims, seed=seed, threads=threads, name=name, progress=not quiet,
                             classifier=classifier, influence=influence, influence_scale=influence_scale)
    if json_out:
        emit_json(config)
        return
    secs = [h["seconds"] for h in config["history"]]
    Console(stderr=True).print(
        f"wrote {out}: {arch} {config['method']} model, {config['dim'] + config['extra_dims']}-d, "
        f"{config['train_items']} items, {len(config['trained_classes'])} classes; "
        f"final loss {config['history'][-1]['loss']:.4f}, {sum(secs) / len(secs):.1f} s/epoch")
