"""CLI: `repspace collection …` (live collections) and `repspace import` (bring your own vectors)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer
from rich.console import Console

from repspace.cli.app import backend_help, emit_json, read_only_one_off
from repspace.collections.choices import DEFAULT_STRATEGY, SEARCH_STRATEGIES
from repspace.index.spec import SPEC_HELP

collection_app = typer.Typer(help="Live collections in LanceDB (a directory) or PostgreSQL + pgvector "
                             "(postgresql://…?collection=NAME).", no_args_is_help=True)

URI = Annotated[str, typer.Argument(help="A directory (LanceDB) or postgresql://…?collection=NAME.")]
JSON = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _err() -> Console:
    """stderr, with user values printed as they are (an id like "[/x]" is no rich markup)."""
    return Console(stderr=True, markup=False, highlight=False)


@collection_app.command("create")
def create(
    uri: URI,
    model: Annotated[str, typer.Option("--model", help="A repspace model (see `repspace models`) or a model directory; "
                                       "any other name = vectors you bring (give --dim).")],
    spec: Annotated[str, typer.Option("--spec", help=f"Index spec: {SPEC_HELP.replace(', sparse (with a csr adaptor)', '')}.")] = "Flat",
    dim: Annotated[Optional[int], typer.Option("--dim", help="Dimension of external vectors.")] = None,
    model_version: Annotated[Optional[str], typer.Option("--model-version", help="Version of an external model.")] = None,
    backend: Annotated[str, typer.Option("--backend", help=backend_help() + " Recorded in the slot.")] = "torch",
    threads: Annotated[Optional[int], typer.Option("--threads", help="Intra-op threads of the encoder.")] = None,
    payload_index: Annotated[Optional[List[str]], typer.Option(
        "--payload-index", help="A payload key to index for filtered search (repeat it or use commas: "
        "--payload-index category,lang).")] = None,
    json_out: JSON = False,
) -> None:
    """Create a collection with one (active) slot for MODEL."""
    from repspace.collections import Collection

    keys = [k.strip() for spec_ in payload_index or () for k in spec_.split(",") if k.strip()]
    with Collection.create(uri, model, spec, dim=dim, model_version=model_version, backend=backend, threads=threads,
                           payload_index=keys) as c:
        info = c.info()
    if json_out:
        emit_json(info)
    else:
        _err().print(f"created {info['uri']} ({info['backend']}): slot {info['active']} "
                     f"{info['slots'][0]['dim']}-d, spec {info['spec']}")


@collection_app.command("attach")
def attach(
    uri: URI,
    table: Annotated[str, typer.Option("--table", help="The application's table: PostgreSQL as SQL names it (docs, "
                                       'app.docs, "My Docs"); LanceDB DBDIR::TABLE or a .lance dataset path.')],
    id: Annotated[str, typer.Option("--id", help="Its unique key column (any type).")],
    vector: Annotated[str, typer.Option("--vector", help="Its vector column (the first, active slot).")],
    model: Annotated[str, typer.Option("--model", help="The model that made those vectors: a repspace model, "
                                       "openai:NAME@URL, or any other name (queries then come as vectors).")],
    text: Annotated[Optional[str], typer.Option("--text", help="Its text column (needed to re-embed in an upgrade).")] = None,
    payload: Annotated[Optional[str], typer.Option("--payload", help="Payload columns COL[,COL…] (any type; "
                                                   "returned as JSON).")] = None,
    dim: Annotated[Optional[int], typer.Option("--dim", help="The vectors' dimension (checked against the column).")] = None,
    spec: Annotated[str, typer.Option("--spec", help="Flat (exact), or for PostgreSQL HNSWm / binary+rescore:R / "
                                      "funnel:… (searched by the store itself).")] = "Flat",
    json_out: JSON = False,
) -> None:
    """Attach an application's existing table as a collection: nothing is copied or rewritten; the app's own writes
    are seen by the next search; `upgrade …` works on it."""
    from repspace.collections.attach import attach as attach_table

    cols = [c.strip() for c in (payload or "").split(",") if c.strip()]
    with attach_table(uri, table, id=id, vector=vector, model=model, text=text, payload=cols, dim=dim, spec=spec) as c:
        info = c.info()
    if json_out:
        emit_json(info)
    else:
        _err().print(f"attached {table} as {info['uri']} ({info['backend']}): {info['count']} rows, slot "
                     f"{info['active']} {info['slots'][0]['dim']}-d, spec {info['spec']}; nothing was written to it")


@collection_app.command("upsert")
def upsert(
    uri: URI,
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="NAME[:VIEW][@SPLIT], e.g. bbc-news:body@test.")] = None,
    input: Annotated[Optional[Path], typer.Option("--input", help="Texts (.txt, .jsonl, .csv, .parquet, image folder) "
                                                  "or vectors (.npy [+ --ids], .parquet/.arrow/.jsonl with a vector column).")] = None,
    space: Annotated[Optional[Path], typer.Option("--space", help="A space directory of the slot's model.")] = None,
    ids: Annotated[Optional[Path], typer.Option("--ids", help="Ids for a .npy --input (one per line).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Items per atomic write.")] = 256,
    slot: Annotated[Optional[str], typer.Option("--slot", help="Slot for given vectors (default: the active one).")] = None,
    text_column: Annotated[str, typer.Option("--text-column")] = "text",
    id_column: Annotated[str, typer.Option("--id-column")] = "id",
    label_column: Annotated[str, typer.Option("--label-column")] = "label",
    vector_column: Annotated[str, typer.Option("--vector-column")] = "vector",
    limit: Annotated[Optional[int], typer.Option("--limit", help="Only the first N items.")] = None,
    encode_batch: Annotated[int, typer.Option("--encode-batch", help="Texts per model call.")] = 32,
    engine: Annotated[str, typer.Option("--engine", help="local, or ray (encode on a Ray actor pool; the `ray` extra).")] = "local",
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="Ray head (HOST:PORT, ray://…, auto).")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", help="Ray encoder actors.")] = None,
    backend: Annotated[Optional[str], typer.Option("--backend", help=backend_help() + " Default: each slot's recorded "
                                                   "backend; another one is refused (switch backends with an upgrade).")] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", help="Intra-op threads of the encoders.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
    json_out: JSON = False,
) -> None:
    """Insert or replace items (resumable: re-running after a kill writes only what is missing)."""
    from repspace.cli.app import read_items
    from repspace.collections import Collection
    from repspace.collections.ingest import upsert_items, upsert_space
    from repspace.errors import InvalidInputError
    from repspace.spaces import Space
    from repspace.spaces.external import has_vectors, read_vectors

    given = [x is not None for x in (dataset, input, space)]
    if sum(given) != 1:
        raise InvalidInputError("give exactly one of --dataset, --input or --space")
    with Collection.open(uri, backend=backend, threads=threads) as c:
        s = c.slot(slot)
        if space is not None or (input is not None and has_vectors(input, vector_column)):
            if space is not None:
                sp = Space.load(space)
            else:
                sp = read_vectors(input, model=s.model, model_version=s.model_version, ids_file=ids,
                                  id_column=id_column, vector_column=vector_column, label_column=label_column)
            if limit is not None:
                sp = sp.head(limit)
            result = upsert_space(c, sp, slot=s.name, batch_size=batch_size, progress=not quiet)
        else:
            if slot is not None and slot != c.active:
                raise InvalidInputError("--slot is for given vectors; texts are encoded by every slot's model")
            items = read_items(dataset, input, text_column, id_column, label_column).limit(limit)
            result = upsert_items(c, items, batch_size=batch_size, encode_batch=encode_batch, progress=not quiet,
                                  engine=engine, workers=workers, address=ray_address)
    if json_out:
        emit_json(result)
    else:
        _err().print(f"upserted {result['upserted']} item(s) ({result['skipped']} already there); "
                     f"{result['count']} in the collection")


@collection_app.command("delete")
def delete(
    uri: URI,
    ids: Annotated[Optional[List[str]], typer.Option("--ids", help="Ids to delete (repeat or space-separate).")] = None,
    ids_file: Annotated[Optional[Path], typer.Option("--ids-file", help="A file of ids, one per line.")] = None,
    extra: Annotated[Optional[List[str]], typer.Argument(help="More ids after --ids.", show_default=False)] = None,
    json_out: JSON = False,
) -> None:
    """Delete items by id."""
    from repspace.collections import Collection
    from repspace.errors import InvalidInputError

    todo = list(ids or []) + list(extra or [])
    if ids_file is not None:
        todo += [line for line in ids_file.read_text(encoding="utf-8").splitlines() if line != ""]
    if not todo:
        raise InvalidInputError("give the ids to delete: --ids ID… or --ids-file FILE")
    with Collection.open(uri) as c:
        result = c.delete(todo)
        result["count"] = c.count()
    if json_out:
        emit_json(result)
    else:
        _err().print(f"deleted {result['deleted']} item(s); {result['count']} left")


@collection_app.command("get")
def get(
    uri: URI,
    ids: Annotated[List[str], typer.Argument(help="Item ids.")],
    vectors: Annotated[bool, typer.Option("--vectors", help="Include the active slot's vectors.")] = False,
    json_out: JSON = False,
) -> None:
    """Items by id: {"items": [{"id", "text", "payload"[, "vector"]}, …], "missing": [...]}."""
    from repspace.collections import Collection

    with Collection.open(uri) as c:
        rows = c.get(ids, vectors=vectors)
    found = {r["id"] for r in rows}
    result = {"items": rows, "missing": [i for i in dict.fromkeys(ids) if i not in found]}
    if json_out:
        emit_json(result)
    else:
        for r in rows:
            typer.echo(f"{r['id']}\t{r['payload']}\t{(r['text'] or '')[:80]}")
        if result["missing"]:
            _err().print(f"missing: {', '.join(result['missing'])}")


@collection_app.command("search")
def search(
    uri: URI,
    text: Annotated[Optional[str], typer.Option("--text", help="A query text (encoded with the collection's models).")] = None,
    input: Annotated[Optional[Path], typer.Option("--input", help="Query texts: the same files as `encode` reads; "
                                                  "each query's id is its item id.")] = None,
    queries: Annotated[Optional[Path], typer.Option("--queries", help="A space of query vectors (the active slot's model).")] = None,
    query_vectors: Annotated[Optional[Path], typer.Option("--query-vectors", help="Query vectors of the old (active) "
                                                          "model, .npy (n, d).")] = None,
    query_vectors_new: Annotated[Optional[Path], typer.Option("--query-vectors-new", help="During an upgrade: the same "
                                                              "queries' vectors of the new model, .npy.")] = None,
    k: Annotated[int, typer.Option("--k")] = 10,
    filter: Annotated[Optional[List[str]], typer.Option("--filter", help="Payload equality KEY=VALUE (repeatable).")] = None,
    strategy: Annotated[Optional[str], typer.Option("--strategy", help=f"During an upgrade: {' | '.join(SEARCH_STRATEGIES)} "
                                                    f"(default {DEFAULT_STRATEGY}; active: the active slot alone).")] = None,
    slot: Annotated[Optional[str], typer.Option("--slot", help="Search one slot directly.")] = None,
    payload: Annotated[bool, typer.Option("--payload", help="Include each hit's payload.")] = False,
    nprobe: Annotated[Optional[int], typer.Option("--nprobe", help="IVF specs: lists probed per query, instead of the "
                                                  "spec's (the same index: nothing is rebuilt).")] = None,
    refine: Annotated[Optional[int], typer.Option("--refine", help="IVF specs: re-rank k·F candidates with the floats, "
                                                  "instead of the spec's F.")] = None,
    ef: Annotated[Optional[int], typer.Option("--ef", help="HNSWm and IVFn,HNSW_SQ: the HNSW search breadth, instead of the "
                                              "spec's.")] = None,
    json_out: JSON = False,
) -> None:
    """Nearest items: {"results": [{"query": id, "hits": [{"id", "score"}, …]}, …]}."""
    import numpy as np

    from repspace.collections import Collection
    from repspace.collections.payload import parse_filters
    from repspace.datasets import read_input
    from repspace.errors import InvalidInputError
    from repspace.spaces import Space

    from repspace.cli.app import flag_hints

    if sum(x is not None for x in (text, input, queries, query_vectors or query_vectors_new)) != 1:
        raise InvalidInputError("give exactly one of --text, --input, --queries or --query-vectors "
                                "[--query-vectors-new]")
    flt = parse_filters(filter)
    with Collection.open(uri) as c, flag_hints(vectors="--query-vectors", vectors_new="--query-vectors-new",
                                               options="--nprobe/--refine/--ef"):
        c.one_off()  # a process that answers once: nothing of a slot is loaded where the store can search it
        c.tuned(nprobe=nprobe, refine=refine, ef=ef)
        if query_vectors or query_vectors_new:
            qv = [np.load(p, allow_pickle=False) if p else None for p in (query_vectors, query_vectors_new)]
            n = len(next(v for v in qv if v is not None))
            qids, hits = [str(j) for j in range(n)], c.search(vectors=qv[0], vectors_new=qv[1], k=k, filter=flt,
                                                               strategy=strategy, slot=slot)
        elif text is not None:
            if not text.strip():
                raise InvalidInputError("--text is empty")
            qids, hits = ["text"], c.search(texts=[text], k=k, filter=flt, strategy=strategy, slot=slot)
        elif input is not None:
            items = read_input(input)
            if items.modality != "text":
                raise InvalidInputError("--input queries must be texts")
            qids, hits = items.ids, c.search(texts=list(items.data), k=k, filter=flt, strategy=strategy, slot=slot)
        else:
            qs = Space.load(queries)
            s = c.slot(slot)
            if qs.model != s.model:
                raise InvalidInputError(f"query space is of model {qs.model!r}; slot {s.name!r} holds {s.model!r} "
                                        "vectors")
            qids, hits = qs.ids, c.search(vectors=np.asarray(qs.vectors), k=k, filter=flt, strategy=strategy, slot=slot)
    results = [{"query": q, "hits": [({"id": h["id"], "score": h["score"], "payload": h["payload"]} if payload
                                      else {"id": h["id"], "score": h["score"]}) for h in row]}
               for q, row in zip(qids, hits)]
    read_only_one_off()  # the collection is closed; nothing was written
    if json_out:
        emit_json({"results": results})
    else:
        for r in results:
            typer.echo(f"{r['query']}: " + ", ".join(f"{h['id']} ({h['score']:.3f})" for h in r["hits"]))


@collection_app.command("info")
def info(uri: URI, json_out: JSON = False) -> None:
    """count (live items), slots, active slot, spec, backend (and an open upgrade)."""
    from repspace.collections import Collection

    with Collection.open(uri) as c:
        result = c.info()
    if json_out:
        emit_json(result)
        return
    con = Console(markup=False, highlight=False)
    con.print(f"{result['uri']} ({result['backend']}): {result['count']} items, spec {result['spec']}")
    for s in result["slots"]:
        mark = "*" if s["name"] == result["active"] else " "
        con.print(f" {mark} {s['name']}: {s['model']} {s['dim']}-d, {s['count']} vectors")


@collection_app.command("index-payload")
def index_payload(
    uri: URI,
    keys: Annotated[List[str], typer.Argument(help="Payload keys to index (letters, digits, '_' or '-').")],
    json_out: JSON = False,
) -> None:
    """Declare payload keys to index for filtered search and build the indexes (PostgreSQL: an expression index per
    key; LanceDB: a column per key with a scalar index). Keys declared before are kept."""
    from repspace.collections import Collection

    with Collection.open(uri) as c:
        declared = c.index_payload(keys)
    if json_out:
        emit_json({"payload_index": declared})
    else:
        _err().print(f"payload keys indexed: {', '.join(declared)}")


@collection_app.command("optimize")
def optimize(uri: URI, json_out: JSON = False,
             rebuild: Annotated[bool, typer.Option("--rebuild", help="Retrain the vector indexes on the current data.")] = False) -> None:
    """Housekeeping after bulk writes: merge small files, build the spec's on-disk vector index of each slot (LanceDB
    IVF kinds) once it can be trained, add rows written since to it. Says what each slot has."""
    from repspace.collections import Collection

    with Collection.open(uri) as c:
        result = {"uri": str(c.uri), "spec": str(c.spec), "slots": c.optimize(rebuild=rebuild)}
    if json_out:
        emit_json(result)
        return
    for slot, what in result["slots"].items():
        _err().print(f"{slot}: {what}")
    _err().print(f"optimized {result['uri']}")


@collection_app.command("export")
def export(
    uri: URI,
    out: Annotated[Path, typer.Option("--out", help="Space directory to write.")],
    slot: Annotated[Optional[str], typer.Option("--slot", help="Slot to export (default: the active one).")] = None,
) -> None:
    """Write a slot's vectors as a space (labels from the payload's "label")."""
    from repspace.collections import Collection

    with Collection.open(uri) as c:
        space = c.export(out, slot=slot)
    _err().print(f"wrote {out}: {space.count} x {space.dim} ({space.model})")


@collection_app.command("drop")
def drop(uri: URI, yes: Annotated[bool, typer.Option("--yes", help="Really delete the collection.")] = False) -> None:
    """Delete a collection and everything in it."""
    from repspace.collections import Collection
    from repspace.errors import InvalidInputError

    if not yes:
        raise InvalidInputError("dropping deletes every item (of an attached table: forgets the attachment): add --yes")
    c = Collection.open(uri)
    attached = c.meta.attached
    c.drop()
    _err().print(f"forgot the attachment {c.uri}; the table {attached['table'][-1]} is untouched" if attached
                 else f"dropped {c.uri}")


def import_vectors(
    file: Annotated[Path, typer.Argument(help=".npy (+ --ids), .parquet/.arrow/.feather or .jsonl with vectors.")],
    model: Annotated[str, typer.Option("--model", help="The model that made the vectors.")],
    out: Annotated[Path, typer.Option("--out", help="Space directory to write.")],
    model_version: Annotated[str, typer.Option("--model-version")] = "",
    ids: Annotated[Optional[Path], typer.Option("--ids", help="Ids for a .npy file: one per line (or a .json list).")] = None,
    id_column: Annotated[str, typer.Option("--id-column")] = "id",
    vector_column: Annotated[str, typer.Option("--vector-column")] = "vector",
    label_column: Annotated[str, typer.Option("--label-column")] = "label",
) -> None:
    """Turn embeddings made elsewhere into a space (validated: finite, one dimension, unique ids)."""
    from repspace.spaces.external import read_vectors

    space = read_vectors(file, model=model, model_version=model_version, ids_file=ids, id_column=id_column,
                         vector_column=vector_column, label_column=label_column)
    space.save(out)
    _err().print(f"wrote {out}: {space.count} x {space.dim} ({space.model})")
