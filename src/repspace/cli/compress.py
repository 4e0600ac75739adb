"""CLI: compress fit / apply."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from repspace.cli.app import app, parse_int_list

compress_app = typer.Typer(help="Make spaces small: PCA and post-hoc Matryoshka adaptors.", no_args_is_help=True)
app.add_typer(compress_app, name="compress")


@compress_app.command("fit")
def compress_fit(
    space: Path = typer.Argument(..., help="Space to fit on (its train half of ids, by hash split)."),
    method: str = typer.Option("matryoshka", "--method", help="pca | matryoshka | csr"),
    dims: str = typer.Option("32,64,128,256", "--dims", help="Prefix dimensions to train for."),
    epochs: int = typer.Option(40, "--epochs"),
    pairs: Optional[Path] = typer.Option(None, "--pairs", help="Space of paired queries (same ids), for supervised training."),
    kind: str = typer.Option("linear", "--kind", help="linear | mlp (matryoshka)"),
    k: int = typer.Option(32, "--k", help="csr: active latents per vector."),
    hidden: Optional[int] = typer.Option(None, "--hidden", help="csr: number of latents (default 4 x dim)."),
    out: Path = typer.Option(..., "--out"),
) -> None:
    """Fit a compressor whose output prefixes work at each of --dims."""
    import numpy as np

    from repspace.compress import CSRCompressor, MatryoshkaAdaptor, PCACompressor
    from repspace.datasets import hash_split
    from repspace.errors import InvalidInputError, UnknownNameError
    from repspace.spaces import Space

    base = Space.load(space)
    dim_list = parse_int_list(dims, "--dims")
    train = [i for i in base.ids if hash_split(i) == "train"]
    kw = {}
    if pairs is not None:
        paired = Space.load(pairs)
        if paired.model != base.model or paired.dim != base.dim:
            raise InvalidInputError(f"--pairs must be a space of the same model ({base.model}, {base.dim}-d)")
        shared = set(paired.ids)
        train = [i for i in train if i in shared]
        if not train:
            raise InvalidInputError("--pairs shares no training ids with the space")
        kw["pairs"] = np.asarray(paired.select(train).vectors)
    X = np.asarray(base.select(train).vectors)
    if method == "pca":
        comp = PCACompressor(dims=dim_list).fit(X, source=base)
    elif method == "matryoshka":
        comp = MatryoshkaAdaptor(dims=dim_list, epochs=epochs, kind=kind).fit(X, source=base, **kw)
    elif method == "csr":
        comp = CSRCompressor(k=k, hidden=hidden, epochs=epochs).fit(X, source=base, **kw)
    else:
        raise UnknownNameError(f"unknown compression method {method!r}; choose pca, matryoshka or csr")
    comp.save(out)
    Console(stderr=True).print(f"wrote {out}: {comp.name}, {base.dim}-d -> dims {comp.dims_[:8]}{'...' if len(comp.dims_) > 8 else ''}")


@compress_app.command("apply")
def compress_apply(
    adaptor: Path = typer.Argument(...),
    space: Path = typer.Argument(...),
    dim: Optional[int] = typer.Option(None, "--dim"),
    out: Path = typer.Option(..., "--out"),
) -> None:
    """Compress a space to one of the adaptor's dimensions."""
    from repspace.compress import Compressor
    from repspace.spaces import Space

    result = Compressor.load(adaptor).transform_space(Space.load(space), dim)
    result.save(out)
    Console(stderr=True).print(f"wrote {out}: {result.count} x {result.dim}")


@compress_app.command("finetune")
def compress_finetune(
    model: str = typer.Option(..., "--model", help="A sentence-transformers model (built-in name or directory)."),
    queries: str = typer.Option("bbc-news:title@train", "--queries", help="Dataset spec of the queries."),
    documents: str = typer.Option("bbc-news:body@train", "--documents", help="Dataset spec of their documents (same ids)."),
    dims: str = typer.Option("32,64,128,256", "--dims", help="Prefix dimensions MatryoshkaLoss trains (the full one is added)."),
    epochs: int = typer.Option(1, "--epochs"),
    batch_size: int = typer.Option(32, "--batch-size"),
    lr: float = typer.Option(2e-5, "--lr"),
    max_seq_length: int = typer.Option(128, "--max-seq-length"),
    limit: Optional[int] = typer.Option(None, "--limit", help="Use only the first N pairs."),
    threads: Optional[int] = typer.Option(None, "--threads"),
    device: str = typer.Option("cpu", "--device"),
    out: Path = typer.Option(..., "--out", help="Directory for the fine-tuned sentence-transformers model."),
    quiet: bool = typer.Option(False, "--quiet"),
) -> None:
    """Fine-tune an encoder with MatryoshkaLoss(InfoNCE) on (query, document) pairs, e.g. bbc-news titles/bodies."""
    from repspace.compress.finetune import finetune_matryoshka
    from repspace.datasets import load_dataset
    from repspace.errors import InvalidInputError

    q, d = load_dataset(queries), load_dataset(documents)
    pos = {i: k for k, i in enumerate(d.ids)}
    shared = [(k, pos[i]) for k, i in enumerate(q.ids) if i in pos]
    if not shared:
        raise InvalidInputError(f"{queries} and {documents} share no ids; they must be views of the same items")
    shared = shared[:limit] if limit else shared
    res = finetune_matryoshka(model, [q.data[a] for a, _ in shared], [d.data[b] for _, b in shared], out,
                              dims=parse_int_list(dims, "--dims"), epochs=epochs, batch_size=batch_size, lr=lr,
                              max_seq_length=max_seq_length, threads=threads, device=device, progress=not quiet)
    last = res["history"][-1]
    Console(stderr=True).print(f"wrote {out}: {model} fine-tuned on {res['pairs']} pairs for dims {res['dims']}; "
                               f"last epoch loss {last['loss']:.4f} in {last['seconds']:.0f} s")
