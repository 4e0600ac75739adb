"""CLI: encode, info, models, datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from repspace.cli.app import backend_help, emit_json, flag_hints, read_items


def encode(
    model: str = typer.Option(..., "--model", help="Built-in model name (see `repspace models`), a local model directory, or "
                              "openai:NAME@URL for a model behind an OpenAI-compatible API (key from REPSPACE_API_KEY or "
                              "OPENAI_API_KEY)."),
    out: Path = typer.Option(..., "--out", help="Output space directory."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="NAME[:VIEW][@SPLIT], e.g. bbc-news:title@test."),
    input: Optional[Path] = typer.Option(None, "--input", help=".txt, .jsonl, .csv, .parquet or an image folder."),
    batch_size: int = typer.Option(32, "--batch-size", help="Texts encoded together (per request for openai:NAME@URL)."),
    dim: Optional[int] = typer.Option(None, "--dim", help="Dimensions to ask an openai:NAME@URL endpoint for (e.g. 256 "
                                      "for text-embedding-3-*); a sentence-transformers model keeps its first --dim "
                                      "coordinates (Matryoshka); other models must make exactly this many."),
    layers: Optional[int] = typer.Option(None, "--layers", help="Run only the first L transformer layers of a "
                                         "sentence-transformers model (2D Matryoshka, `compress finetune --layers`)."),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", help="Requests in flight at once, for "
                                              "openai:NAME@URL (default 4)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Encode only the first N items."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    backend: str = typer.Option("torch", "--backend", help=backend_help()),
    threads: Optional[int] = typer.Option(None, "--threads", help="Intra-op threads (default: torch's choice; every core for exported backends)."),
    text_column: str = typer.Option("text", "--text-column"),
    id_column: str = typer.Option("id", "--id-column"),
    label_column: str = typer.Option("label", "--label-column"),
    chunk_items: int = typer.Option(256, "--chunk-items", help="Items per resumable chunk (work lost to a kill is at most one chunk)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output of another model/input."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    engine: str = typer.Option("local", "--engine", help="local (this process) or ray (a Ray Data actor pool; the `ray` extra)."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray head (HOST:PORT, ray://HOST:10001 or auto); default: a local Ray."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Ray encoder actors (default: one per CPU, or per GPU with --device cuda)."),
) -> None:
    """Encode a dataset or input file into a space directory (resumable after a kill)."""
    from repspace.encoders import get_encoder
    from repspace.encoders.job import encode_items
    from repspace.errors import InvalidInputError
    from repspace.encoders.registry import scheme_of
    from repspace.scale.cluster import check_engine

    with flag_hints(overwrite="--overwrite", batch_size="--batch-size", layers="--layers", dim="--dim"):
        check_engine(engine)
        items = read_items(dataset, input, text_column, id_column, label_column).limit(limit)
        remote = scheme_of(model) is not None
        if engine == "ray":
            from repspace.errors import InvalidInputError
            from repspace.scale import encode_space

            if backend != "torch":
                raise InvalidInputError("the ray engine encodes with the torch backend; use --engine local for "
                                        f"--backend {backend}")
            if not remote and (layers is not None or dim is not None):
                raise InvalidInputError("--layers and --dim (truncation of a local model) run on the local engine "
                                        "only; drop --engine ray")

            encoder = get_encoder(model, device="cpu", dim=dim, layers=layers)  # the driver's copy: length order and version only
            space = encode_space(encoder.name if remote else model, items, out=out, batch_size=batch_size, chunk_items=chunk_items, overwrite=overwrite,
                                 progress=not quiet, workers=workers, address=ray_address, device=device, encoder=encoder)
        else:
            # a calibrated backend (openvino-int8) calibrates on a sample of these items
            calibration = list(items.data) if items.modality == "text" and not remote else None
            encoder = get_encoder(model, device=device, backend=backend, threads=threads, calibration=calibration,
                                  dim=dim, layers=layers, concurrency=concurrency, batch_size=batch_size if remote else None)
            space = encode_items(encoder, items, out=out, batch_size=batch_size, chunk_items=chunk_items,
                                 overwrite=overwrite, progress=not quiet)
    Console(stderr=True).print(f"wrote {out}: {space.count} x {space.dim} ({space.model}, backend {encoder.backend})")


def info(
    path: Path = typer.Argument(..., help="A space directory."),
    json_out: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Check the content checksum."),
) -> None:
    """Describe a saved space (count, dimension, model, ...)."""
    from repspace.spaces import Space

    space = Space.load(path, verify=verify)
    manifest = space.manifest
    if json_out:
        emit_json(manifest)
        return
    table = Table(show_header=False)
    for key in ("model", "model_version", "count", "dim", "dtype", "normalized", "dataset", "view", "split",
                "has_labels", "created", "checksum"):
        table.add_row(key, str(manifest.get(key)))
    Console().print(table)


def models(json_out: bool = typer.Option(False, "--json")) -> None:
    """List built-in models and whether each is ready offline."""
    from repspace.encoders import MODELS

    rows = [{"name": m.name, "modality": m.modality, "dim": m.dim, "available": m.available(), "source": m.source,
             "description": m.description} for m in MODELS.values()]
    if json_out:
        emit_json({"models": rows})
        return
    table = Table("name", "modality", "dim", "ready", "source")
    for r in rows:
        table.add_row(r["name"], r["modality"], str(r["dim"]), "yes" if r["available"] else "[red]no", r["source"])
    Console().print(table)


def datasets(json_out: bool = typer.Option(False, "--json")) -> None:
    """List built-in datasets, their views and splits, and whether each is ready offline."""
    from repspace.datasets import DATASETS

    rows = [{"name": d.name, "modality": d.modality, "views": list(d.views), "splits": list(d.splits),
             "available": d.available(), "source": d.source, "description": d.description} for d in DATASETS.values()]
    if json_out:
        emit_json({"datasets": rows})
        return
    table = Table("name", "modality", "views", "splits", "ready", "source")
    for r in rows:
        table.add_row(r["name"], r["modality"], ",".join(r["views"]) or "-", ",".join(r["splits"]),
                      "yes" if r["available"] else "[red]no", r["source"])
    Console().print(table)
