"""CLI: `repspace index build`, `repspace search` — thin skins over `repspace.index.Index`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from repspace.cli.app import emit_json
from repspace.index.spec import SPEC_USAGE

index_app = typer.Typer(help="Build searchable indexes from spaces.", no_args_is_help=True)


@index_app.command("build")
def index_build(
    space: Annotated[Path, typer.Argument(help="Space to index.")],
    out: Annotated[Path, typer.Option("--out", help="Index directory to write.")],
    spec: Annotated[str, typer.Option("--spec", help=f"Index spec: {SPEC_USAGE}.")] = "Flat",
    adaptor: Annotated[Path | None, typer.Option("--adaptor", help="A fitted compressor (compress fit): the index "
                                                    "applies it to the corpus now and to every query later.")] = None,
    dim: Annotated[int | None, typer.Option("--dim", help="With --adaptor: its output dimension to index "
                                               "(default: largest).")] = None,
) -> None:
    """Build an index (saved atomically with the space's manifest, and its adaptor)."""
    from repspace.errors import InvalidInputError
    from repspace.index import Index
    from repspace.spaces import Space

    comp = None
    if adaptor is not None:
        from repspace.compress import Compressor

        comp = Compressor.load(adaptor)
    elif dim is not None:
        raise InvalidInputError("--dim applies with --adaptor only (to index a prefix, use `compress fit --method pca` "
                                "or a funnel spec)")
    index = Index.build(Space.load(space), spec, adaptor=comp, adaptor_dim=dim)
    index.save(out)
    mem = index.memory_bytes()
    through = f" through a {comp.name} adaptor ({index.input_dim}-d -> {index.dim}-d)" if comp is not None else ""
    Console(stderr=True).print(f"wrote {out}: {index.spec} over {index.space.count} x {index.dim} "
                               f"({index.space.model}){through}; first stage {mem['first_stage'] / 2**20:.2f} MiB")


def search(
    index: Annotated[Path, typer.Argument(help="Index directory.")],
    text: Annotated[str | None, typer.Option("--text", help="A query text, encoded with the index's model.")] = None,
    queries: Annotated[Path | None, typer.Option("--queries", help="A space of query vectors.")] = None,
    query_adapter: Annotated[Path | None, typer.Option("--query-adapter", help="Adapter mapping another (new) "
                                                          "model's queries into the index's space.")] = None,
    k: Annotated[int, typer.Option("--k")] = 10,
    device: Annotated[str, typer.Option("--device")] = "cpu",
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Search an index by text or by a query space."""
    from repspace.errors import InvalidInputError
    from repspace.index import Index
    from repspace.spaces import Space

    if (text is None) == (queries is None):
        raise InvalidInputError("give exactly one of --text or --queries")
    idx = Index.load(index)
    adapter = None
    if query_adapter is not None:
        from repspace.alignment import load_translator

        adapter = load_translator(query_adapter)
    if text is not None:
        if not text.strip():
            raise InvalidInputError("--text is empty")
        qids, hits = ["text"], idx.search_text([text], k, adapter=adapter, device=device)
    else:
        qspace = Space.load(queries)
        qids, hits = qspace.ids, idx.search_ids(qspace, k, adapter=adapter)
    results = [{"query": q, "hits": [{"id": i, "score": s} for i, s in h]} for q, h in zip(qids, hits)]
    if json_out:
        emit_json({"results": results})
        return
    for r in results[:20]:
        table = Table(f"query {r['query']}", "score")
        for h in r["hits"]:
            table.add_row(h["id"], f"{h['score']:.4f}")
        Console().print(table)

