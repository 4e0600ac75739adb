"""The FastAPI app of `repspace serve`: `create_app(config)` and `serve(config)`.

    app = create_app(ServeConfig(models=["minilm-l6"], no_auth=True))
    include_router(app, my_router)           # behind the API keys; errors, limits, metrics shared

`create_app` mounts the OpenAI-compatible embeddings routes behind the API-key dependency, the
public operations routes (/healthz, /readyz, /metrics), one outermost middleware (request id,
body-size limit, metrics, JSON access log) and the JSON error handlers. If the module
`repspace.service.collections` exists, its `router` (an APIRouter) is included the same way, so
the collection and upgrade routes share all of this without further wiring. Models load in a
background thread at start-up: /healthz answers at once, /readyz once every model is ready.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import threading
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from repspace.service.config import ServeConfig
from repspace.service.deps import ModelSlot, ServiceState, get_state, require_api_key
from repspace.service.errors import ERROR_RESPONSES, install_error_handlers
from repspace.service.metrics import Metrics
from repspace.service.middleware import ServiceMiddleware

log = logging.getLogger("repspace.service")

OPTIONAL_ROUTERS = ("repspace.service.collections",)


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    models: dict[str, str]


def include_router(app: FastAPI, router: APIRouter, protected: bool = True, **kw: Any) -> None:
    """Mount `router` on the app; `protected` puts it behind the API keys (Bearer)."""
    deps = [Depends(require_api_key)] if protected else []
    app.include_router(router, dependencies=deps + list(kw.pop("dependencies", [])), responses=kw.pop("responses", ERROR_RESPONSES), **kw)


def _load_models(state: ServiceState, preloaded: dict[str, Any]) -> None:
    from repspace.service.batching import DynamicBatcher
    from repspace.service.embeddings import EmbeddingModel

    cfg = state.config
    thread_init = None
    if cfg.threads and cfg.backend == "torch":  # exported backends set their threads when their session is made
        import torch

        def thread_init(n: int = int(cfg.threads)) -> None:  # OpenMP thread counts are per calling thread
            torch.set_num_threads(n)

        thread_init()
    try:
        for name, slot in state.models.items():
            try:
                model = preloaded.get(name) or EmbeddingModel.load(
                    name, adaptor=cfg.adaptors.get(name), device=cfg.device, micro_batch=cfg.limits.micro_batch,
                    backend=cfg.backend, threads=cfg.threads)
                if name in preloaded and name in cfg.adaptors:
                    model.set_adaptor(cfg.adaptors[name])

                def fn(texts: list[str], model: EmbeddingModel = model) -> tuple:
                    return model.encode(texts), model.count_tokens(texts)

                lim = cfg.limits
                slot.model = model
                slot.batcher = DynamicBatcher(fn, name=name, max_batch_tokens=lim.max_batch_tokens,
                                              max_batch_items=lim.max_batch_items, max_queue_items=lim.max_queue_items,
                                              on_batch=state.metrics.batch_observer(name), thread_init=thread_init,
                                              workers=lim.workers, max_wait_ms=lim.batch_wait_ms)
                batcher = slot.batcher
                state.metrics.queue_depth.labels(name).set_function(lambda b=batcher: b.queue_depth)
                state.metrics.ready.labels(name).set(1)
                log.info("model %s ready (%d-d, backend %s, %d worker(s) x %s thread(s)%s)", name, model.dim, cfg.backend,
                         cfg.limits.workers, cfg.threads or "default",
                         f", adaptor {model.adaptor.name} at {model.adaptor_dims}" if model.adaptor is not None else "")
            except Exception as e:  # reported by /readyz and /v1/models; the server keeps running
                slot.error = str(e) or type(e).__name__
                log.error("model %s failed to load: %s", name, slot.error)
    finally:
        state.loaded.set()


def create_app(config: ServeConfig, models: dict[str, Any] | None = None, background_load: bool = True) -> FastAPI:
    """The app for `config` (validated). `models`: already loaded EmbeddingModels by name (tests, embedding)."""
    config.validate()
    metrics = Metrics()
    state = ServiceState(config=config, metrics=metrics, models={m: ModelSlot(m) for m in config.models})
    preloaded = dict(models or {})
    for m in config.models:
        metrics.ready.labels(m).set(0)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if background_load:
            threading.Thread(target=_load_models, args=(state, preloaded), name="repspace-load", daemon=True).start()
        else:
            _load_models(state, preloaded)
        try:
            yield
        finally:
            for slot in state.models.values():
                if slot.batcher is not None:
                    slot.batcher.close()

    app = FastAPI(title="repspace", version=_version(), lifespan=lifespan,
                  description="Embeddings (OpenAI-compatible, with `dimensions` for every model) over repspace.")
    app.state.repspace = state
    app.state.repspace_keys = [k.encode("utf-8", "surrogateescape") for k in config.api_keys]
    install_error_handlers(app)
    app.add_middleware(ServiceMiddleware, metrics=metrics, max_body_bytes=config.limits.max_body_bytes,
                       log_requests=config.access_log)

    ops = APIRouter(tags=["operations"])

    @ops.get("/healthz", response_model=Health)
    async def healthz() -> dict:
        return {"status": "ok"}

    @ops.get("/readyz", response_model=Ready, responses={503: {"model": Ready, "description": "models still loading or failed"}})
    async def readyz(state: ServiceState = Depends(get_state)) -> Any:
        status = {n: ("ready" if s.ready else "failed" if s.error else "loading") for n, s in state.models.items()}
        body = {"status": "ready" if state.ready else "not_ready", "models": status}
        return body if state.ready else JSONResponse(body, status_code=503)

    @ops.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    app.include_router(ops)
    from repspace.service.routes import router as embeddings_router

    include_router(app, embeddings_router)
    for module in OPTIONAL_ROUTERS:
        if importlib.util.find_spec(module) is not None:
            include_router(app, importlib.import_module(module).router)
    return app


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("repspace")
    except Exception:
        return "0"


def configure_logging(level: str = "info") -> None:
    """Plain messages on stderr; access-log lines are one JSON object each."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("repspace.access", "repspace.service"):
        lg = logging.getLogger(name)
        lg.handlers[:] = [handler]
        lg.setLevel(level.upper())
        lg.propagate = False


def serve(config: ServeConfig, log_level: str = "info") -> None:
    """Run the app with uvicorn until interrupted (SIGINT/SIGTERM: graceful shutdown)."""
    import uvicorn

    from repspace.collections.uri import redact

    app = create_app(config)
    configure_logging(log_level)
    if config.no_auth:
        banner = "!" * 78
        log.warning("%s\nWARNING: --no-auth: every client that reaches %s:%d can use this server without an API key.\n%s",
                    banner, config.host, config.port, banner)
    log.info("repspace serve on http://%s:%d  models: %s  collections: %s", config.host, config.port,
             ",".join(config.models), redact(config.collections) if config.collections else "-")
    uvicorn.Server(uvicorn.Config(app, host=config.host, port=config.port, log_level=log_level, access_log=False,
                                  timeout_keep_alive=5, timeout_graceful_shutdown=10, server_header=False)).run()
