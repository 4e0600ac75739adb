"""CLI: `repspace muvera encode / eval` — MUVERA fixed-dimensional encodings of token embeddings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from repspace.cli.app import emit_json, flag_hints, read_items

muvera_app = typer.Typer(help="MUVERA: multi-vector (token) embeddings as one fixed-dimensional vector, searched by "
                              "any index, re-ranked by exact MaxSim.", no_args_is_help=True)

FLAGS = {"side": "--side", "num_repetitions": "--repetitions", "num_simhash_projections": "--simhash",
         "projection_dimension": "--proj", "final_projection_dimension": "--final-dim", "seed": "--seed",
         "k": "--k", "shortlist": "--shortlist", "queries": "--queries", "documents": "--corpus",
         "config": "--model"}

Repetitions = Annotated[int, typer.Option("--repetitions", help="Independent SimHash partitions (R).")]
Simhash = Annotated[int, typer.Option("--simhash", help="SimHash bits per repetition (k_sim): 2**k buckets.")]
Proj = Annotated[int, typer.Option("--proj", help="Inner AMS projection of each token (d_proj); 0 = none.")]
FinalDim = Annotated[int | None, typer.Option("--final-dim", help="Count-Sketch of the whole FDE to this many "
                                                 "dimensions (default: none).")]
Seed = Annotated[int, typer.Option("--seed", help="Seed of every random matrix (queries and documents must share it).")]


def _config(model, repetitions: int, simhash: int, proj: int, final_dim: int | None, seed: int):
    from repspace.multivector.api import fde_config

    return fde_config(model.dim, repetitions, simhash, proj or None, final_dim, seed)


@muvera_app.command("encode")
def muvera_encode(
    model: Annotated[str, typer.Option("--model", help="A sentence-transformers model (built-in name or directory).")],
    out: Annotated[Path, typer.Option("--out", help="Output space directory (FDEs + tokens.safetensors).")],
    dataset: Annotated[str | None, typer.Option("--dataset", help="NAME[:VIEW][@SPLIT], e.g. bbc-news:body@test.")] = None,
    input: Annotated[Path | None, typer.Option("--input", help=".txt, .jsonl, .csv or .parquet of texts.")] = None,
    side: Annotated[str, typer.Option("--side", help="query (bucket sums) or document (bucket means, empty "
                                                     "buckets filled).")] = "document",
    repetitions: Repetitions = 20, simhash: Simhash = 5, proj: Proj = 16, final_dim: FinalDim = None, seed: Seed = 1,
    limit: Annotated[int | None, typer.Option("--limit", help="Encode only the first N items.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 32,
    device: Annotated[str, typer.Option("--device", help="cpu or cuda.")] = "cpu",
    text_column: Annotated[str, typer.Option("--text-column")] = "text",
    id_column: Annotated[str, typer.Option("--id-column")] = "id",
    label_column: Annotated[str, typer.Option("--label-column")] = "label",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")] = False,
) -> None:
    """Encode texts as MUVERA FDEs: a normal space (index build, collection upsert --space) plus its token
    embeddings for exact MaxSim re-ranking."""
    from repspace.encoders import get_encoder
    from repspace.multivector.api import encode_muvera_space

    with flag_hints(**FLAGS):
        items = read_items(dataset, input, text_column, id_column, label_column).limit(limit)
        encoder = get_encoder(model, device=device)
        config = _config(encoder, repetitions, simhash, proj, final_dim, seed)
        space = encode_muvera_space(encoder, items, out, config, side=side, batch_size=batch_size, overwrite=overwrite)
    Console(stderr=True).print(f"wrote {out}: {space.count} x {space.dim} {side} FDEs of {encoder.name} tokens")


@muvera_app.command("eval")
def muvera_eval(
    model: Annotated[str, typer.Option("--model", help="A sentence-transformers model (built-in name or directory).")],
    queries: Annotated[str, typer.Option("--queries", help="NAME[:VIEW][@SPLIT] of the query texts.")],
    corpus: Annotated[str, typer.Option("--corpus", help="NAME[:VIEW][@SPLIT] of the corpus texts; the relevant "
                                                         "item of a query is the one with its id.")],
    k: Annotated[int, typer.Option("--k", help="Rank cut-off of nDCG and of the exact MaxSim top k.")] = 10,
    shortlist: Annotated[int, typer.Option("--shortlist", help="FDE candidates re-ranked by exact MaxSim.")] = 100,
    repetitions: Repetitions = 20, simhash: Simhash = 5, proj: Proj = 16, final_dim: FinalDim = None, seed: Seed = 1,
    limit: Annotated[int | None, typer.Option("--limit", help="Use only the first N queries and N corpus items.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 32,
    device: Annotated[str, typer.Option("--device", help="cpu or cuda.")] = "cpu",
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Recall of the FDE shortlist against exact MaxSim top k; nDCG@k of MaxSim, FDE, FDE + re-rank, mean pooling."""
    from repspace.datasets import load_dataset
    from repspace.encoders import get_encoder
    from repspace.multivector.api import evaluate_muvera

    with flag_hints(**FLAGS):
        q_items, c_items = load_dataset(queries).limit(limit), load_dataset(corpus).limit(limit)
        encoder = get_encoder(model, device=device)
        config = _config(encoder, repetitions, simhash, proj, final_dim, seed)
        result = evaluate_muvera(encoder, q_items, c_items, config, k=k, shortlist=shortlist, batch_size=batch_size)
    if json_out:
        emit_json(result)
        return
    ndcg = result[f"ndcg@{k}"]
    recall = next(v for key, v in result.items() if key.startswith("shortlist_recall"))
    Console().print(f"{result['queries']} queries x {result['corpus']} corpus items, FDE {result['fde_dim']}-d: "
                    f"shortlist recall@{shortlist} of MaxSim top {k} = {recall:.3f}; nDCG@{k}: "
                    + ", ".join(f"{name} {v:.3f}" for name, v in ndcg.items()))
