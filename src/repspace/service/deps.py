"""What every router of the service shares: the app state, the API-key dependency, the limits.

A router (e.g. `repspace.service.collections.router`) uses them as

    from fastapi import APIRouter, Depends, Request
    from repspace.service.deps import ServiceState, get_state

    router = APIRouter(prefix="/v1/collections", tags=["collections"], responses=ERROR_RESPONSES)

    @router.get("/{name}")
    def info(name: str, state: ServiceState = Depends(get_state)):   # `def`: runs in the thread pool (blocking I/O ok)
        root = state.config.collections        # --collections ROOT (directory or DSN)
        ...

and is mounted behind the API keys by `create_app` (see `repspace.service.app.include_router`).
Texts to encode go through the models' batchers with `repspace.service.routes.embed_texts(state,
model, texts, dimensions)` (after `check_text_limits(state.config.limits, texts, "text")`); errors
are raised as `repspace.service.errors.ServiceError`s or plain `RepspaceError`s (mapped by type).
"""

from __future__ import annotations

import hmac
import threading
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from repspace.service.config import ServeConfig
from repspace.service.errors import AuthError
from repspace.service.metrics import Metrics


@dataclass
class ModelSlot:
    """One served model: its EmbeddingModel and batcher once loaded, or the reason it is not."""

    name: str
    model: Any = None  # EmbeddingModel
    batcher: Any = None  # DynamicBatcher
    error: str | None = None

    @property
    def ready(self) -> bool:
        return self.batcher is not None


@dataclass
class ServiceState:
    config: ServeConfig
    metrics: Metrics
    models: dict[str, ModelSlot] = field(default_factory=dict)
    loaded: threading.Event = field(default_factory=threading.Event)
    extra: dict[str, Any] = field(default_factory=dict)  # for other routers (e.g. open collections)

    @property
    def ready(self) -> bool:
        return self.loaded.is_set() and all(s.ready for s in self.models.values())


async def get_state(request: Request) -> ServiceState:
    return request.app.state.repspace


def _keys_match(token: str, keys: list[bytes]) -> bool:
    """Constant-time comparison against every key (no early exit on the first match)."""
    t = token.encode("utf-8", "surrogateescape")
    ok = False
    for k in keys:
        ok |= hmac.compare_digest(t, k)
    return ok


bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <key>, a key of --api-key-file")


async def require_api_key(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
    """`Authorization: Bearer KEY` with KEY one of --api-key-file's keys; 401 otherwise (unless --no-auth)."""
    state: ServiceState = request.app.state.repspace
    if state.config.no_auth:
        return
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None:
        if request.headers.get("authorization"):
            raise AuthError("invalid Authorization header: use 'Authorization: Bearer <key>'", code="invalid_api_key",
                            headers=challenge)
        raise AuthError("missing API key: send the header 'Authorization: Bearer <key>'", code="missing_api_key",
                        headers=challenge)
    if not _keys_match(credentials.credentials.strip(), request.app.state.repspace_keys):
        raise AuthError("invalid API key", code="invalid_api_key", headers=challenge)
