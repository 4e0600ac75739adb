"""CLI: upgrade fit / eval (query-side adapters)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from repspace.cli.app import backend_help, emit_json, read_items
from repspace.collections.choices import ADAPTER_METHODS, ORDERS

upgrade_app = typer.Typer(help="Upgrade the model behind an index without re-embedding first.", no_args_is_help=True)


@upgrade_app.command("fit")
def upgrade_fit(
    old_space: Path = typer.Argument(..., help="Items encoded by the OLD model."),
    new_space: Path = typer.Argument(..., help="The same items (ids) encoded by the NEW model."),
    method: str = typer.Option("procrustes", "--method", help=" | ".join(ADAPTER_METHODS)),
    pairs: Optional[int] = typer.Option(None, "--pairs", help="Use N shared items (train half of the id split)."),
    rank: int = typer.Option(64, "--rank", help="Rank for --method lowrank."),
    seed: int = typer.Option(0, "--seed"),
    also_old: Optional[List[Path]] = typer.Option(None, "--also-old", help="Another view of the same items, old model "
                                                  "(e.g. titles beside bodies); pairs with --also-new in order."),
    also_new: Optional[List[Path]] = typer.Option(None, "--also-new", help="The same view, new model."),
    out: Path = typer.Option(..., "--out"),
) -> None:
    """Fit an adapter mapping NEW-model vectors into the OLD model's space."""
    from repspace.compat import fit_adapter
    from repspace.errors import InvalidInputError
    from repspace.spaces import Space

    also_old, also_new = also_old or [], also_new or []
    if len(also_old) != len(also_new):
        raise InvalidInputError("give --also-old and --also-new the same number of times (one pair per view)")
    also = [(Space.load(o), Space.load(n)) for o, n in zip(also_old, also_new)]
    adapter = fit_adapter(Space.load(old_space), Space.load(new_space), method, pairs=pairs, rank=rank, seed=seed,
                          also=also)
    adapter.save(out)
    Console(stderr=True).print(f"wrote {out}: {adapter.name} adapter {adapter.source_model_} -> {adapter.target_model_} "
                               f"from {adapter.n_pairs_} pairs")


@upgrade_app.command("eval")
def upgrade_eval(
    adapter: Path = typer.Argument(...),
    old_corpus: Path = typer.Option(..., "--old-corpus"),
    new_queries: Path = typer.Option(..., "--new-queries"),
    new_corpus: Optional[Path] = typer.Option(None, "--new-corpus"),
    old_queries: Optional[Path] = typer.Option(None, "--old-queries"),
    all_items: bool = typer.Option(False, "--all-items", help="Score every query, not only the test half of ids."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Recall@10 / nDCG@10 of old->old, new->new, adapted new->old, and the recovery ratio."""
    from repspace.alignment import load_translator
    from repspace.compat import evaluate_upgrade
    from repspace.spaces import Space

    res = evaluate_upgrade(load_translator(adapter), Space.load(old_corpus), Space.load(new_queries),
                           Space.load(new_corpus) if new_corpus else None,
                           Space.load(old_queries) if old_queries else None, all_items=all_items)
    if json_out:
        emit_json(res)
        return
    for key in ("old_old", "new_new", "adapted_new_old", "recovery"):
        if key in res:
            Console().print(f"{key:16s} " + "  ".join(f"{k} {v:.4f}" for k, v in res[key].items() if v is not None))
    Console().print(f"adapter cost     {res['adapter_us_per_query']:.2f} µs/query (batch)")


def _is_collection(target: str) -> bool:
    from repspace.collections import Collection

    return Collection.is_collection(target)


def _open(uri: str, backend: str | None = None, threads: int | None = None):
    from repspace.collections import Collection

    return Collection.open(uri, backend=backend, threads=threads)


def _stop_on_signals():
    """An event set by SIGTERM or SIGINT (a follow then ends after its batch in flight)."""
    import signal
    import threading

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


@upgrade_app.command("start")
def upgrade_start(
    uri: str = typer.Argument(..., help="A collection (directory or postgresql://…?collection=NAME)."),
    model: str = typer.Option(..., "--model", help="The new model."),
    sample: int = typer.Option(1000, "--sample", help="Items re-embedded now to fit the adapter (a fifth held out as golden queries)."),
    method: str = typer.Option("procrustes", "--method", help=f"Adapter: {' | '.join(ADAPTER_METHODS)}."),
    queries: Optional[Path] = typer.Option(None, "--queries", help="Golden queries: .jsonl with \"text\" and the relevant "
                                           "item's \"id\" (default: pseudo-queries from held-out items)."),
    fit_queries: Optional[Path] = typer.Option(None, "--fit-queries", help="Real queries to fit the score fusion on "
                                               "(.jsonl like --queries, kept apart from them; pairs whose item is not "
                                               "in the sample are left out). Default: pseudo-queries of the sample."),
    seed: int = typer.Option(0, "--seed"),
    side_table: bool = typer.Option(False, "--side-table", help="Attached table: the new vectors go to a table of "
                                    "repspace's keyed by the app's id (the app's table untouched), not a new column."),
    vectors: Optional[Path] = typer.Option(None, "--vectors", help="The new model's vectors, made elsewhere, for at "
                                           "least the sample's items: .parquet/.arrow with id + vector, or .npy + --ids."),
    ids: Optional[Path] = typer.Option(None, "--ids", help="Ids for a .npy --vectors file (one per line)."),
    dim: Optional[int] = typer.Option(None, "--dim", help="The new model's dimension (with --vectors)."),
    backend: str = typer.Option("torch", "--backend", help=backend_help() + " The same model on another backend is an "
                                "upgrade too (its compatibility with the old slot is measured)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Intra-op threads of the encoders."),
    quiet: bool = typer.Option(False, "--quiet"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Add the new model's slot to a collection, fit the adapter on a re-embedded sample (or on --vectors brought),
    measure the gate."""
    from repspace.collections import upgrade as up
    from repspace.datasets import read_input
    from repspace.errors import InvalidInputError

    if vectors is not None:
        if dim is None:
            raise InvalidInputError("--vectors needs the new model's dimension: --dim")
        with _open(uri) as c:
            st = up.start_with_vectors(c, model, vectors, dim=dim, ids_file=ids, sample=sample, method=method,
                                       seed=seed, side_table=side_table)
        emit_json(st) if json_out else _print_status(st)
        return

    def pairs(path):
        if path is None:
            return None
        items = read_input(path)
        return list(zip(items.data, items.ids))

    golden, fit = pairs(queries), pairs(fit_queries)
    with _open(uri, threads=threads) as c:
        st = up.start(c, model, sample=sample, method=method, seed=seed, golden=golden, progress=not quiet,
                      fit_queries=fit, side_table=side_table, backend=backend)
    if json_out:
        emit_json(st)
    else:
        _print_status(st)


def _print_status(st: dict) -> None:
    con = Console(markup=False, highlight=False)
    at = st.get("evaluated_at_fraction")
    when = "" if at is None or at == st["fraction"] else f" (as measured at {at:.1%}; `upgrade evaluate` measures it now)"
    con.print(f"upgrade {st['old']} -> {st['new']} ({st['state']}): {st['fraction']:.1%} backfilled; gate "
              f"{'passes' if st['gate'] and st['gate'].get('passed') else 'does not pass'}{when}")
    comp = (st.get("gate") or {}).get("compatible_upgrade")
    if comp:
        o, n = comp["old_on_old"], comp["new_on_old"]
        con.print(f"backend {comp['from_backend']} -> {comp['to_backend']}: "
                  f"{'a compatible upgrade: `upgrade switch` adopts it without backfilling' if comp['compatible'] else 'not compatible: the normal upgrade (backfill, switch, finish) applies'}"
                  f" (new queries on the old gallery recall@10 {n['recall@10']:.4f} ndcg@10 {n['ndcg@10']:.4f}; old on old "
                  f"{o['recall@10']:.4f} / {o['ndcg@10']:.4f})")
    fw = st.get("fusion_weights")
    if fw:
        con.print(f"fused weights now: A {[round(x, 3) for x in fw['A']]}, B {[round(x, 3) for x in fw['B']]}"
                  + (" (B fades into the new model's term as the backfill completes)" if fw["fades"] else ""))
    for name, m in (st.get("metrics") or {}).items():
        con.print(f"  {name:8s} recall@10 {m['recall@10']:.4f}  ndcg@10 {m['ndcg@10']:.4f}  "
                  f"negative flips {m['negative_flip_rate'] or 0:.3f}")


@upgrade_app.command("status")
def upgrade_status(uri: str = typer.Argument(..., help="A collection."),
                   json_out: bool = typer.Option(False, "--json")) -> None:
    """State, fraction backfilled, and the gate and per-strategy metrics as last evaluated (cheap: encodes nothing)."""
    from repspace.collections import upgrade as up

    with _open(uri) as c:
        st = up.status(c)
    emit_json(st) if json_out else _print_status(st)


@upgrade_app.command("evaluate")
def upgrade_evaluate(uri: str = typer.Argument(..., help="A collection."),
                     json_out: bool = typer.Option(False, "--json")) -> None:
    """Measure the gate now: every strategy on the golden queries (recorded; `status` shows it afterwards)."""
    from repspace.collections import upgrade as up

    with _open(uri) as c:
        st = up.evaluate(c)
    emit_json(st) if json_out else _print_status(st)


@upgrade_app.command("rollback")
def upgrade_rollback(uri: str = typer.Argument(..., help="A collection."),
                     json_out: bool = typer.Option(False, "--json")) -> None:
    """Back to the old model (its slot active again); the new slot is dropped."""
    from repspace.collections import upgrade as up

    with _open(uri) as c:
        res = up.rollback(c)
    emit_json(res) if json_out else Console(stderr=True, markup=False).print(f"active: {res['active']}; dropped {res['dropped']}")


@upgrade_app.command("finish")
def upgrade_finish(uri: str = typer.Argument(..., help="A collection."),
                   force: bool = typer.Option(False, "--force", help="Finish before every item is backfilled."),
                   drop_old: bool = typer.Option(False, "--drop-old", help="Attached table: drop the application's "
                                                 "old vector column too (refused while an index is on it)."),
                   json_out: bool = typer.Option(False, "--json")) -> None:
    """Close the upgrade after the switch: the old slot is dropped (an attached table keeps the app's own column
    unless --drop-old, and the SQL to query the new column is printed)."""
    from repspace.collections import upgrade as up

    with _open(uri) as c:
        res = up.finish(c, force=force, drop_old=drop_old)
    if json_out:
        emit_json(res)
        return
    con = Console(stderr=True, markup=False, highlight=False)
    con.print(f"active: {res['active']}; dropped {res['dropped']}"
              + ("; the application's old column is kept" if res.get("kept_old_column") else ""))
    if res.get("app_query"):
        con.print(f"the application queries the new vectors with:\n  {res['app_query']}")


@upgrade_app.command("backfill")
def upgrade_backfill(
    index: str = typer.Argument(..., help="A collection (fills the open upgrade's new slot), or a live (old-model) index."),
    model: Optional[str] = typer.Option(None, "--model", help="Index mode: the new model (built-in name or model directory)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Index mode: where to write the new index."),
    order: str = typer.Option("random", "--order", help=f"Collection mode: {' | '.join(ORDERS)} (uncertainty: "
                              "worst-explained items first)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Collection mode: backfill at most N items now."),
    spec: Optional[str] = typer.Option(None, "--spec", help="Index spec of the new index (default: the old one's)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="The corpus, if not where the index's manifest says."),
    input: Optional[Path] = typer.Option(None, "--input", help="The corpus file, if not where the manifest says."),
    text_column: str = typer.Option("text", "--text-column"),
    id_column: str = typer.Option("id", "--id-column"),
    label_column: str = typer.Option("label", "--label-column"),
    batch_size: int = typer.Option(32, "--batch-size"),
    chunk_items: Optional[int] = typer.Option(None, "--chunk-items", help="Items per resumable chunk (index mode, "
                                              "default 256); collection mode: items per atomic write (default 1024)."),
    device: str = typer.Option("cpu", "--device"),
    backend: Optional[str] = typer.Option(None, "--backend", help=backend_help() + " Collection mode: default the new "
                                          "slot's recorded backend; index mode: default torch."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Intra-op threads of the encoder."),
    engine: str = typer.Option("local", "--engine", help="Collection mode: local, or ray (a Ray actor pool)."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray head (HOST:PORT, ray://…, auto)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Ray encoder actors."),
    vectors: Optional[Path] = typer.Option(None, "--vectors", help="Collection mode: fill from a file of the new "
                                           "model's vectors (.parquet/.arrow id + vector, or .npy + --ids); resumable."),
    ids: Optional[Path] = typer.Option(None, "--ids", help="Ids for a .npy --vectors file."),
    follow: bool = typer.Option(False, "--follow", help="Collection mode: keep running, backfilling rows the "
                                "application adds or changes, until SIGTERM / Ctrl-C (the batch in flight completes)."),
    interval: float = typer.Option(2.0, "--interval", help="With --follow: seconds between polls when idle."),
    quiet: bool = typer.Option(False, "--quiet"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Re-encode items with the new model in resumable batches (safe to kill and re-run)."""
    from repspace.errors import InvalidInputError

    if _is_collection(index):
        from repspace.collections import upgrade as up

        with _open(index, backend=backend, threads=threads) as c:
            if vectors is not None:
                res = up.backfill_from_file(c, vectors, ids_file=ids)
            elif follow:
                res = up.follow(c, interval=interval, stop=_stop_on_signals(), batch_size=batch_size, order=order,
                                progress=False)
            else:
                res = up.backfill(c, order=order, batch_size=batch_size, limit=limit, progress=not quiet,
                                  engine=engine, workers=workers, address=ray_address,
                                  **({"write_items": chunk_items} if chunk_items is not None else {}))
        if json_out:
            emit_json(res)
        else:
            Console(stderr=True).print(f"backfilled {res['backfilled']} item(s); {res['fraction']:.1%} of the collection")
        return
    from repspace.compat.backfill import backfill

    if model is None or out is None:
        raise InvalidInputError("backfilling an index needs --model NEW_MODEL and --out NEW_INDEX")
    items = read_items(dataset, input, text_column, id_column, label_column, required=False)
    new = backfill(Path(index), model, out, items=items, spec=spec, batch_size=batch_size, chunk_items=chunk_items or 256,
                   device=device, progress=not quiet, backend=backend or "torch", threads=threads)
    Console(stderr=True).print(f"wrote {out}: {new.spec} over {new.space.count} x {new.dim} ({new.space.model}); "
                               f"switch with `repspace upgrade switch LIVE {out}`")


@upgrade_app.command("switch")
def upgrade_switch(
    live: str = typer.Argument(..., help="A collection (makes the new slot active), or the symlink clients search."),
    target: Optional[Path] = typer.Argument(None, help="Index mode: the index to serve from now on."),
    force: bool = typer.Option(False, "--force", help="Switch even if the gate fails / the new index holds other items."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Collections: make the new slot active (only when the gate passes). Indexes: atomically repoint the symlink."""
    from repspace.errors import InvalidInputError

    if target is None:
        if not _is_collection(live):
            raise InvalidInputError(f"{live} is not a collection; to switch an index give LIVE and NEW_INDEX")
        from repspace.collections import upgrade as up

        with _open(live) as c:
            res = up.switch(c, force=force)
        adopted = " (a compatible upgrade: the new backend adopted, vectors kept, no backfill)" if res.get("state") == "adopted" else ""
        emit_json(res) if json_out else Console(stderr=True, markup=False).print(f"active: {res['active']} (was {res['previous']}){adopted}")
        return
    from repspace.compat.backfill import switch

    previous = switch(Path(live), target, force=force)
    Console(stderr=True).print(f"{live} -> {target.resolve()}" + (f" (was {previous})" if previous else ""))
