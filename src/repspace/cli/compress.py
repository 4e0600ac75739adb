"""CLI: compress fit / apply."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from repspace.cli.app import flag_hints, parse_int_list
from repspace.compress import METHODS

compress_app = typer.Typer(help="Make spaces small: PCA and post-hoc Matryoshka adaptors.", no_args_is_help=True)

FLAGS = {"method": "--method", "pairs": "--pairs", "dims": "--dims", "k": "--k", "kind": "--kind", "hidden": "--hidden",
         "dim": "--dim", "layers": "--layers", "unlabelled": "--unlabelled", "max_steps": "--max-steps",
         "rank_weight": "--rank-weight", "distill": "--distill", "batch_size": "--batch-size",
         "teacher": "--teacher"}


@compress_app.command("fit")
def compress_fit(
    space: Annotated[Path, typer.Argument(help="Space to fit on (its train half of ids, by hash split).")],
    out: Annotated[Path, typer.Option("--out")],
    method: Annotated[str, typer.Option("--method", help=" | ".join(METHODS))] = "matryoshka",
    dims: Annotated[str, typer.Option("--dims", help="Prefix dimensions to train for.")] = "32,64,128,256",
    epochs: Annotated[int, typer.Option("--epochs")] = 40,
    pairs: Annotated[Optional[Path], typer.Option("--pairs", help="Space of paired queries (same ids), for supervised training.")] = None,
    unlabelled: Annotated[Optional[list[Path]], typer.Option("--unlabelled", help="Space of more items of the same "
                          "model (all of them; repeatable), e.g. `repspace encode --dataset gcide`: the unsupervised "
                          "objectives (matryoshka's teacher similarities, pca, csr) train on them too.")] = None,
    max_steps: Annotated[Optional[int], typer.Option("--max-steps", help="matryoshka: stop after this many steps "
                         "(with a large --unlabelled corpus, instead of full epochs).")] = None,
    rank_weight: Annotated[Optional[float], typer.Option("--rank-weight", help="matryoshka: weight of the listwise "
                           "distillation of each item's nearest neighbours (teacher softmax, default 0).")] = None,
    kind: Annotated[str, typer.Option("--kind", help="linear | mlp (matryoshka)")] = "linear",
    k: Annotated[int, typer.Option("--k", help="csr: active latents per vector.")] = 32,
    hidden: Annotated[Optional[int], typer.Option("--hidden", help="csr: number of latents (default 4 x dim); "
                                                  "matryoshka --kind mlp: hidden width (default 256).")] = None,
) -> None:
    """Fit a compressor whose output prefixes work at each of --dims."""
    from repspace.compress import fit_compressor
    from repspace.spaces import Space

    base = Space.load(space)
    with flag_hints(**FLAGS):
        comp = fit_compressor(base, method, pairs=Space.load(pairs) if pairs is not None else None,
                              unlabelled=[Space.load(u) for u in unlabelled or []] or None,
                              dims=parse_int_list(dims, "--dims"), epochs=epochs, kind=kind, k=k, hidden=hidden,
                              max_steps=max_steps, rank_weight=rank_weight)
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

    with flag_hints(**FLAGS):
        result = Compressor.load(adaptor).transform_space(Space.load(space), dim)
    result.save(out)
    Console(stderr=True).print(f"wrote {out}: {result.count} x {result.dim}")


@compress_app.command("finetune")
def compress_finetune(
    model: str = typer.Option(..., "--model", help="A sentence-transformers model (built-in name or directory)."),
    queries: str = typer.Option("bbc-news:title@train", "--queries", help="Dataset spec of the queries."),
    documents: str = typer.Option("bbc-news:body@train", "--documents", help="Dataset spec of their documents (same ids)."),
    dims: str = typer.Option("32,64,128,256", "--dims", help="Prefix dimensions MatryoshkaLoss trains (the full one is added)."),
    layers: Optional[str] = typer.Option(None, "--layers", help="2D Matryoshka: also train the first L transformer "
                                         "layers for each L, e.g. 1,2,3,6 (the last is added); then `repspace encode "
                                         "--model OUT --layers L --dim d` runs only L layers."),
    kl_weight: float = typer.Option(1.0, "--kl-weight", help="With --layers: weight of the term pulling each shallow "
                                    "layer's in-batch similarities towards the last layer's."),
    distill: Optional[str] = typer.Option(None, "--distill", help="With --layers: a dataset spec of unlabelled texts "
                                          "(e.g. bbc-sentences@train); after the pairs, every listed depth learns the "
                                          "fine-tuned full model's embeddings of them (2D Matryoshka by distillation)."),
    distill_epochs: int = typer.Option(1, "--distill-epochs"),
    distill_lr: float = typer.Option(1e-4, "--distill-lr"),
    epochs: int = typer.Option(1, "--epochs"),
    batch_size: int = typer.Option(32, "--batch-size"),
    lr: float = typer.Option(2e-5, "--lr"),
    max_seq_length: int = typer.Option(128, "--max-seq-length"),
    limit: Optional[int] = typer.Option(None, "--limit", help="Use only the first N pairs (and N·10 --distill texts)."),
    threads: Optional[int] = typer.Option(None, "--threads"),
    device: str = typer.Option("cpu", "--device"),
    out: Path = typer.Option(..., "--out", help="Directory for the fine-tuned sentence-transformers model."),
    quiet: bool = typer.Option(False, "--quiet"),
) -> None:
    """Fine-tune an encoder with MatryoshkaLoss(InfoNCE) on (query, document) pairs, e.g. bbc-news titles/bodies."""
    from repspace.compress.finetune import finetune_matryoshka
    from repspace.datasets import load_dataset
    from repspace.errors import InvalidInputError, RepspaceError

    q, d = load_dataset(queries), load_dataset(documents)
    pos = {i: k for k, i in enumerate(d.ids)}
    shared = [(k, pos[i]) for k, i in enumerate(q.ids) if i in pos]
    if not shared:
        raise InvalidInputError(f"{queries} and {documents} share no ids; they must be views of the same items")
    shared = shared[:limit] if limit else shared
    texts = None
    if distill is not None:
        with flag_hints(**FLAGS):
            try:
                texts = list(load_dataset(distill).data)
            except RepspaceError as e:
                e.param = getattr(e, "param", None) or "distill"
                raise
        texts = texts[: limit * 10] if limit else texts
    with flag_hints(**FLAGS):
        res = finetune_matryoshka(model, [q.data[a] for a, _ in shared], [d.data[b] for _, b in shared], out,
                                  dims=parse_int_list(dims, "--dims"), epochs=epochs, batch_size=batch_size, lr=lr,
                                  max_seq_length=max_seq_length, threads=threads, device=device, progress=not quiet,
                                  layers=parse_int_list(layers, "--layers"), kl_weight=kl_weight, distill=texts,
                                  distill_epochs=distill_epochs, distill_lr=distill_lr)
    last = res["history"][-1]
    depth = f" and layers {res['layers']}" if res["layers"] else ""
    if "distill" in res:
        depth += f", then distilled on {res['distill']['texts']} texts"
    Console(stderr=True).print(f"wrote {out}: {model} fine-tuned on {res['pairs']} pairs for dims {res['dims']}{depth}; "
                               f"last epoch loss {last['loss']:.4f} in {last['seconds']:.0f} s")
