"""Collections and their upgrades over HTTP: `/v1/collections/…`, the same operations and JSON as the CLI.

`--collections ROOT` is a directory (collection NAME is the CLI's URI ROOT/NAME) or a PostgreSQL DSN (NAME is its
`?collection=NAME`), so the CLI and the server work on the same collections. Every route is a thin skin over
`repspace.collections` (no logic here that the library lacks). Writes are answered once committed (durable).
Writes and administrative operations on one collection are serialised by a lock per collection; searches are not
(the `Collection` guards its in-memory layer itself, and a PostgreSQL collection searches through a connection pool,
so searches run at once); a background backfill uses its own handle, so searches keep being served while it runs and
see each batch as it commits.
"""

from __future__ import annotations

import threading
import traceback
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from repspace.collections.choices import ADAPTER_METHODS, ORDERS, SEARCH_STRATEGIES
from repspace.service.deps import ServiceState, get_state
from repspace.service.errors import ERROR_RESPONSES, NotFound, ServiceError

router = APIRouter(prefix="/v1/collections", tags=["collections"], responses=ERROR_RESPONSES)

Strategy = Literal[SEARCH_STRATEGIES]  # type: ignore[valid-type]
AdapterMethod = Literal[ADAPTER_METHODS]  # type: ignore[valid-type]
Order = Literal[ORDERS]  # type: ignore[valid-type]
Scalar = str | int | float | bool


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateBody(_Body):
    name: str = Field(min_length=1, max_length=48, description="letters, digits, '_' or '-'; starts with a letter")
    model: str = Field(min_length=1, description="a repspace model, or any name for vectors you bring (give dim)")
    spec: str = "Flat"
    dim: int | None = Field(default=None, ge=1, le=65536)
    payload_index: list[str] = Field(default_factory=list, max_length=64,
                                     description="payload keys to index for filtered search")


class AttachBody(_Body):
    name: str = Field(min_length=1, max_length=48, description="the name repspace knows the attached table by")
    table: str = Field(min_length=1, max_length=1000, description="PostgreSQL: the table as SQL names it; LanceDB: "
                       "DBDIR::TABLE or a .lance path")
    id: str = Field(min_length=1, description="its unique key column")
    vector: str = Field(min_length=1, description="its vector column")
    model: str = Field(min_length=1, description="the model that made those vectors")
    text: str | None = Field(default=None, description="its text column (to re-embed in an upgrade)")
    payload: list[str] = Field(default_factory=list, description="payload columns, returned as JSON")
    dim: int | None = Field(default=None, ge=1, le=65536)
    spec: str = "Flat"


class Point(_Body):
    id: str = Field(min_length=1, max_length=65536)
    text: str | None = None
    vector: list[float] | None = None
    payload: dict[str, Any] | None = None


class PointsBody(_Body):
    items: list[Point] = Field(min_length=1, max_length=10000)


class IdsBody(_Body):
    ids: list[str] = Field(min_length=1, max_length=10000)


class SearchBody(_Body):
    text: str | None = None
    vector: list[float] | None = None
    vector_new: list[float] | None = Field(default=None, description="during an upgrade: the new model's query vector "
                                           "(with `vector`, the old model's) where the collection cannot encode text")
    k: int = Field(default=10, ge=1, le=1000)
    filter: dict[str, Scalar] | None = None
    strategy: Strategy | None = None
    options: dict[str, Annotated[int, Field(ge=1, le=1_000_000)]] | None = Field(
        default=None, max_length=8, description="this search's index options over the collection spec's (`nprobe`, "
        "`refine`, `ef`: those the spec has)")


class GoldenQuery(_Body):
    text: str = Field(min_length=1, max_length=100_000)
    id: str = Field(min_length=1, max_length=10_000)


def _pairs(queries: list[GoldenQuery] | None) -> list[tuple[str, str]] | None:
    return [(q.text, q.id) for q in queries] if queries else None


class UpgradeStartBody(_Body):
    model: str = Field(min_length=1)
    sample: int = Field(default=1000, ge=20, le=1_000_000)
    method: AdapterMethod = "procrustes"
    seed: int = 0
    queries: list[GoldenQuery] | None = Field(default=None, max_length=100_000,
                                              description="golden queries for the gate (default: pseudo-queries)")
    fit_queries: list[GoldenQuery] | None = Field(default=None, max_length=100_000,
                                                  description="real queries to fit the score fusion on")
    side_table: bool = Field(default=False, description="attached table: new vectors in a table of repspace's")


class BackfillBody(_Body):
    order: Order = "random"
    batch_size: int = Field(default=64, ge=1, le=100_000)
    limit: int | None = Field(default=None, ge=1)


class ForceBody(_Body):
    force: bool = False


class FinishBody(ForceBody):
    drop_old: bool = Field(default=False, description="attached table: drop the app's old vector column too")


class Hit(BaseModel):
    id: str
    score: float
    payload: dict[str, Any]


class SearchResponse(BaseModel):
    hits: list[Hit]


# ------------------------------------------------------------------ handles
class _Handles:
    """Open collections of the server, one lock each, plus running backfills."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open: dict[str, Any] = {}
        self.locks: dict[str, threading.RLock] = {}
        self.backfills: dict[str, dict[str, Any]] = {}
        self.writes: dict[str, int] = {}


_HANDLES_LOCK = threading.Lock()  # guards the first creation of a server's handles


def _handles(state: ServiceState) -> _Handles:
    h = state.extra.get("collections")
    if h is None:
        with _HANDLES_LOCK:
            h = state.extra.get("collections")
            if h is None:
                h = state.extra["collections"] = _Handles()
    return h


def _uri(state: ServiceState, name: str) -> str:
    from repspace.collections import with_collection

    root = state.config.collections
    if not root:
        raise NotFound("this server serves no collections (it was started without a collections root)", param="name")
    return with_collection(root, name)


def _open(state: ServiceState, name: str):
    """(collection, its lock): opened once per server, shared by requests."""
    from repspace.collections import Collection

    h = _handles(state)
    uri = _uri(state, name)
    with h.lock:
        lock = h.locks.setdefault(name, threading.RLock())
        coll = h.open.get(name)
    if coll is None:
        with lock:
            coll = h.open.get(name) or Collection.open(uri)
            h.open[name] = coll
    return coll, lock


def _check_model(state: ServiceState, model: str) -> None:
    """Clients name built-in or served models (or external names): never a path on the server."""
    from repspace.encoders import MODELS

    if model in MODELS or model in state.config.models:
        return
    if model.startswith("openai:"):
        from repspace.encoders.endpoint import parse_endpoint

        url = parse_endpoint(model.partition(":")[2].partition("#")[0]).url
        if any(url == a.rstrip("/") or url.startswith(a.rstrip("/") + "/") for a in state.config.allowed_endpoints):
            return
        raise ServiceError(f"model {model.partition('@')[0]}@…: this server calls only the endpoints it was started "
                           "with (its allowed endpoints)", param="model")
    if "/" in model or "\\" in model or model.startswith("."):
        raise ServiceError(f"model {model!r}: name a built-in model ({', '.join(MODELS)}), a served one, or an "
                           "external model name (with dim); paths on the server are not accepted", param="model")


def _forget(state: ServiceState, name: str) -> None:
    h = _handles(state)
    with h.lock:
        c = h.open.pop(name, None)
    if c is not None:
        c.close()


# ------------------------------------------------------------------- routes
@router.post("", status_code=201)
def create_collection(body: CreateBody, state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    """Create a collection (the `collection create` of the CLI); answers its `info`."""
    from repspace.collections import Collection

    _check_model(state, body.model)
    uri = _uri(state, body.name)
    with Collection.create(uri, body.model, body.spec, dim=body.dim, payload_index=body.payload_index) as c:
        return c.info()


@router.post("/attach", status_code=201)
def attach_table(body: AttachBody, state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    """Attach an application's existing table (the `collection attach` of the CLI); answers its `info`."""
    from repspace.collections.attach import attach

    _check_model(state, body.model)
    with attach(_uri(state, body.name), body.table, id=body.id, vector=body.vector, model=body.model,
                text=body.text, payload=body.payload, dim=body.dim, spec=body.spec) as c:
        return c.info()


@router.get("/{name}")
def collection_info(name: str, state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    """`collection info --json`: count (live items), slots, active, spec, backend, upgrade."""
    c, lock = _open(state, name)
    with lock:
        info = c.info()
    backfill = _handles(state).backfills.get(name)
    if backfill:
        info["backfill"] = {k: v for k, v in backfill.items() if k != "thread"}
    return info


@router.post("/{name}/points")
def upsert_points(name: str, body: PointsBody, state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    """Insert or replace items: all with `vector` (the active slot's model) or all with `text` (encoded by every
    slot's model). Answered once the write is committed."""
    import numpy as np

    with_vec = [p.vector is not None for p in body.items]
    if any(with_vec) and not all(with_vec):
        raise ServiceError("give a vector for every item of a request or for none (then texts are encoded)",
                           param="items")
    c, lock = _open(state, name)
    ids = [p.id for p in body.items]
    texts = [p.text for p in body.items]
    payloads = [p.payload or {} for p in body.items]
    with lock:
        if all(with_vec):
            vectors = np.asarray([p.vector for p in body.items], dtype=np.float64)
            res = c.upsert(ids, texts=texts if any(t is not None for t in texts) else None, vectors=vectors,
                           payloads=payloads)
        else:
            if any(t is None for t in texts):
                raise ServiceError("every item needs a text when no vectors are given", param="items")
            res = c.upsert(ids, texts=texts, payloads=payloads)
        h = _handles(state)
        h.writes[name] = h.writes.get(name, 0) + 1
        if h.writes[name] % 256 == 0:  # many small writes make many small files: merge them now and then
            try:
                c.optimize()
            except Exception:  # noqa: BLE001 - housekeeping; the write above is committed already
                import logging

                logging.getLogger("repspace.service").warning("compaction of %s failed", name, exc_info=True)
        return {**res, "count": c.count()}


@router.post("/{name}/points/get")
def get_points(name: str, body: IdsBody, state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    """Items by id: {"items": [{"id", "text", "payload"}], "missing": [...]}."""
    c, lock = _open(state, name)
    with lock:
        rows = c.get(body.ids)
    found = {r["id"] for r in rows}
    return {"items": rows, "missing": [i for i in dict.fromkeys(body.ids) if i not in found]}


@router.post("/{name}/points/delete")
def delete_points(name: str, body: IdsBody, state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    c, lock = _open(state, name)
    with lock:
        res = c.delete(body.ids)
        return {**res, "count": c.count()}


@router.post("/{name}/search", response_model=SearchResponse)
def search(name: str, body: SearchBody, state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    """Nearest items by `text` (encoded by the collection's models) or `vector`; during an upgrade `strategy`
    picks how the slots are combined (default fused)."""
    import numpy as np

    if (body.text is None) == (body.vector is None and body.vector_new is None):
        raise ServiceError("give exactly one of text or vector (and vector_new)", param="text")
    if body.text is not None and not body.text.strip():
        raise ServiceError("text is empty", param="text")
    c, _ = _open(state, name)  # no collection lock: searches run at once (the Collection guards its caches)
    if body.text is not None:
        hits = c.search(texts=[body.text], k=body.k, filter=body.filter, strategy=body.strategy, options=body.options)
    else:
        vec = [None if v is None else np.asarray([v], dtype=np.float64) for v in (body.vector, body.vector_new)]
        hits = c.search(vectors=vec[0], vectors_new=vec[1], k=body.k, filter=body.filter, strategy=body.strategy,
                        options=body.options)
    return {"hits": hits[0]}


# ----------------------------------------------------------------- upgrades
@router.post("/{name}/upgrade/start")
def upgrade_start(name: str, body: UpgradeStartBody, state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    """`upgrade start`: new slot, adapter and fusion from a re-embedded sample, gate on golden queries."""
    from repspace.collections import upgrade as up

    _check_model(state, body.model)
    c, lock = _open(state, name)
    with lock:
        return up.start(c, body.model, sample=body.sample, method=body.method, seed=body.seed,
                        golden=_pairs(body.queries), fit_queries=_pairs(body.fit_queries), side_table=body.side_table)


@router.get("/{name}/upgrade")
def upgrade_status(name: str, state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    """`upgrade status --json`: state, fraction, the gate and per-strategy metrics as last evaluated (cheap), and
    the background backfill's state."""
    from repspace.collections import upgrade as up

    c, lock = _open(state, name)
    with lock:
        st = up.status(c)
    return _with_backfill(state, name, st)


@router.post("/{name}/upgrade/evaluate")
def upgrade_evaluate(name: str, state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    """`upgrade evaluate --json`: measure the gate now on the golden queries (recorded in the upgrade's state). Runs
    on its own handle, outside the collection's lock: searches keep being served meanwhile."""
    from repspace.collections import upgrade as up

    with _own(state, name) as own:
        st = up.evaluate(own)
    return _with_backfill(state, name, st)


def _with_backfill(state: ServiceState, name: str, st: dict[str, Any]) -> dict[str, Any]:
    backfill = _handles(state).backfills.get(name)
    st["backfill"] = {k: v for k, v in backfill.items() if k != "thread"} if backfill else None
    return st


def _own(state: ServiceState, name: str):
    """A handle of the request's own (long operations that must not hold the shared handle's lock)."""
    from repspace.collections import Collection

    _open(state, name)  # 404 now for an unknown collection
    return Collection.open(_uri(state, name))


@router.post("/{name}/upgrade/backfill", status_code=202)
def upgrade_backfill(name: str, body: BackfillBody, state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    """Start the backfill in the background (resumable: a restarted server continues where it stopped)."""
    from repspace.collections import Collection
    from repspace.collections import upgrade as up

    c, lock = _open(state, name)
    with lock:
        up.fraction(c)  # 4xx now if there is no open upgrade
    h = _handles(state)
    with h.lock:
        running = h.backfills.get(name)
        if running and running.get("running"):
            return {k: v for k, v in running.items() if k != "thread"}
        job: dict[str, Any] = {"running": True, "order": body.order, "error": None, "result": None}
        h.backfills[name] = job

    def work() -> None:
        try:
            with Collection.open(_uri(state, name)) as own:
                job["result"] = up.backfill(own, order=body.order, batch_size=body.batch_size, limit=body.limit)
        except Exception as e:  # noqa: BLE001 - reported through status, logged
            job["error"] = str(e) or type(e).__name__
            import logging

            logging.getLogger("repspace.service").error("backfill of %s failed: %s", name, traceback.format_exc())
        finally:
            job["running"] = False

    job["thread"] = threading.Thread(target=work, name=f"backfill-{name}", daemon=True)
    job["thread"].start()
    return {k: v for k, v in job.items() if k != "thread"}


@router.post("/{name}/upgrade/switch")
def upgrade_switch(name: str, body: ForceBody | None = None, state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    """Make the new slot active (only when the gate passes, unless force). The gate is measured on the request's own
    handle, outside the collection's lock; the switch itself is a compare-and-set (409 if the upgrade changed)."""
    from repspace.collections import upgrade as up

    with _own(state, name) as own:
        return up.switch(own, force=bool(body and body.force))


@router.post("/{name}/upgrade/rollback")
def upgrade_rollback(name: str, state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    from repspace.collections import upgrade as up

    _wait_backfill(state, name)
    c, lock = _open(state, name)
    with lock:
        return up.rollback(c)


@router.post("/{name}/upgrade/finish")
def upgrade_finish(name: str, body: FinishBody | None = None, state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    """Close the upgrade (an attached table keeps the app's old column unless drop_old; `app_query` is the SQL the
    application searches the new column with)."""
    from repspace.collections import upgrade as up

    _wait_backfill(state, name)
    c, lock = _open(state, name)
    with lock:
        return up.finish(c, force=bool(body and body.force), drop_old=bool(body and body.drop_old))


def _wait_backfill(state: ServiceState, name: str) -> None:
    job = _handles(state).backfills.get(name)
    if job and job.get("running"):
        raise ServiceError("a backfill is running on this collection; wait for it (GET …/upgrade)", param="name",
                           code="backfill_running")
