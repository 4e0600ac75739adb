"""CLI: index build, search."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from repspace.cli.app import app, emit_json

index_app = typer.Typer(help="Build searchable indexes from spaces.", no_args_is_help=True)
app.add_typer(index_app, name="index")


@index_app.command("build")
def index_build(
    space: Path = typer.Argument(..., help="Space to index."),
    spec: str = typer.Option("Flat", "--spec", help="Flat | HNSW32 | int8[+rescore:R] | binary+rescore:R | "
                             "funnel:64/256/768[:K] | sparse (with a csr --adaptor)"),
    adaptor: Optional[Path] = typer.Option(None, "--adaptor", help="A fitted compressor (compress fit): the index "
                                           "applies it to the corpus now and to every query later."),
    dim: Optional[int] = typer.Option(None, "--dim", help="With --adaptor: its output dimension to index (default: largest)."),
    out: Path = typer.Option(..., "--out", help="Index directory to write."),
) -> None:
    """Build an index (saved atomically with the space's manifest, and its adaptor)."""
    from repspace.errors import InvalidInputError
    from repspace.index import Index
    from repspace.spaces import Space

    comp = None
    if adaptor is not None:
        from repspace.compress import Compressor

        comp = Compressor.load(adaptor)
        if dim is not None and dim not in comp.dims_:
            from repspace.compress.base import _ranges

            raise InvalidInputError(f"--dim {dim} is not one the adaptor was trained for: {_ranges(comp.dims_)}")
    elif dim is not None:
        raise InvalidInputError("--dim applies with --adaptor only (to index a prefix, use `compress fit --method pca` "
                                "or a funnel spec)")
    index = Index.build(Space.load(space), spec, adaptor=comp, adaptor_dim=dim)
    index.save(out)
    mem = index.memory_bytes()
    through = f" through a {comp.name} adaptor ({index.input_dim}-d -> {index.dim}-d)" if comp is not None else ""
    Console(stderr=True).print(f"wrote {out}: {index.spec} over {index.space.count} x {index.dim} "
                               f"({index.space.model}){through}; first stage {mem['first_stage'] / 2**20:.2f} MiB")


@app.command()
def search(
    index: Path = typer.Argument(..., help="Index directory."),
    text: Optional[str] = typer.Option(None, "--text", help="A query text, encoded with the index's model."),
    queries: Optional[Path] = typer.Option(None, "--queries", help="A space of query vectors."),
    query_adapter: Optional[Path] = typer.Option(None, "--query-adapter",
                                                 help="Adapter mapping another (new) model's queries into the index's space."),
    k: int = typer.Option(10, "--k"),
    device: str = typer.Option("cpu", "--device"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Search an index by text or by a query space."""
    import numpy as np

    from repspace.errors import InvalidInputError
    from repspace.index import Index
    from repspace.spaces import Space

    if (text is None) == (queries is None):
        raise InvalidInputError("give exactly one of --text or --queries")
    idx = Index.load(index)
    adapter = None
    if query_adapter is not None:
        from repspace.alignment import load_translator
        from repspace.compat import check_adapter_target

        adapter = load_translator(query_adapter)
        check_adapter_target(adapter, idx.space.model, idx.input_dim)
    if text is not None:
        if not text.strip():
            raise InvalidInputError("--text is empty")
        from repspace.encoders import get_encoder

        model = adapter.source_model_ if adapter is not None and adapter.source_model_ else idx.space.model
        vectors, qids = get_encoder(model, device=device).encode_batch([text]), ["text"]
    else:
        qspace = Space.load(queries)
        if adapter is not None:
            adapter.check_source(qspace)
        vectors, qids = np.asarray(qspace.vectors), qspace.ids
    if adapter is not None:
        vectors = adapter.transform(vectors)
    hits = idx.search_ids(vectors, k)
    results = [{"query": q, "hits": [{"id": i, "score": s} for i, s in h]} for q, h in zip(qids, hits)]
    if json_out:
        emit_json({"results": results})
        return
    for r in results[:20]:
        table = Table(f"query {r['query']}", "score")
        for h in r["hits"]:
            table.add_row(h["id"], f"{h['score']:.4f}")
        Console().print(table)
