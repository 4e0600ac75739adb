"""OpenAI-compatible routes: POST /v1/embeddings, GET /v1/models, GET /v1/models/{model}.

Thin: validation of the request body (pydantic), limits, then the library
(`EmbeddingModel.dimensions_method`, the model's `DynamicBatcher`, `EmbeddingModel.reduce`,
`format_embeddings`).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal, Union

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from repspace.errors import RepspaceError
from repspace.service.batching import QueueFullError
from repspace.service.config import Limits
from repspace.service.deps import ModelSlot, ServiceState, get_state
from repspace.service.embeddings import embedding_response
from repspace.service.errors import ERROR_RESPONSES, Busy, InvalidField, LimitExceeded, NotFound, NotReady, Timeout

router = APIRouter(tags=["embeddings"])

DIMENSIONS_HEADER = "X-Repspace-Dimensions-Method"


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"example": {"model": "minilm-l6", "input": ["a text"], "dimensions": 64}})

    input: Union[StrictStr, Annotated[list[StrictStr], Field(min_length=1)]] = Field(
        ..., description="One text or a list of texts (token arrays are not supported).")
    model: StrictStr = Field(..., description="A served model id (GET /v1/models).")
    dimensions: StrictInt | None = Field(
        None, ge=1, description="Output dimension: the model's registered adaptor when it supports it, "
                                "otherwise prefix truncation; always re-normalised (see dimensions_method).")
    encoding_format: Literal["float", "base64", "int8", "binary"] = Field(
        "float", description="float | base64 (float32 little-endian) | int8 | binary (repspace extensions).")
    user: StrictStr | None = Field(None, description="Accepted for OpenAI compatibility; only logged.")


class EmbeddingItem(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: Union[list[float], str, list[int]]


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingItem]
    model: str
    usage: Usage
    dimensions: int = Field(..., description="Dimension of every returned vector (repspace extension).")
    dimensions_method: Literal["full", "adaptor", "truncate"] = Field(
        ..., description="How `dimensions` was served (repspace extension; also the X-Repspace-Dimensions-Method header).")


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "repspace"
    dim: int | None = None
    ready: bool
    adaptor: str | None = None
    adaptor_dims: list[int] = []
    error: str | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


def _card(slot: ModelSlot) -> dict:
    d = slot.model.describe() if slot.model is not None else {"id": slot.name}
    return {"id": slot.name, "object": "model", "created": 0, "owned_by": "repspace", "dim": d.get("dim"),
            "ready": slot.ready, "adaptor": d.get("adaptor"), "adaptor_dims": d.get("adaptor_dims", []),
            "error": slot.error}


def _slot(state: ServiceState, model: str) -> ModelSlot:
    slot = state.models.get(model)
    if slot is None:
        raise NotFound(f"model {model!r} is not served here; served: {', '.join(state.models)}", param="model",
                       code="model_not_found")
    return slot


@router.get("/v1/models", response_model=ModelList, responses=ERROR_RESPONSES)
async def list_models(state: ServiceState = Depends(get_state)) -> dict:
    return {"object": "list", "data": [_card(s) for s in state.models.values()]}


@router.get("/v1/models/{model:path}", response_model=ModelCard, responses=ERROR_RESPONSES)
async def get_model(model: str, state: ServiceState = Depends(get_state)) -> dict:
    return _card(_slot(state, model))


def _estimate_tokens(texts: list[str], cap: int) -> int:
    """Batch budget: about 4 characters a token, at most the model's max sequence length per text."""
    return sum(min(cap, len(t) // 4 + 2) for t in texts)


def check_text_limits(limits: Limits, texts: list[str], param: str = "input", single: bool = False) -> None:
    """413 naming the limit: more than max_inputs texts, or a text longer than max_input_chars."""
    if len(texts) > limits.max_inputs:
        raise LimitExceeded(f"{param} has {len(texts)} items; the limit is {limits.max_inputs} inputs per request (max_inputs)",
                            param=param, code="max_inputs")
    for i, t in enumerate(texts):
        if len(t) > limits.max_input_chars:
            where = param if single else f"{param}[{i}]"
            raise LimitExceeded(f"{where} has {len(t)} characters; the limit is {limits.max_input_chars} (max_input_chars)",
                                param=where, code="max_input_chars")


async def embed_texts(state: ServiceState, model: str, texts: list[str], dimensions: int | None = None):
    """Embed through the model's batcher (shared by every route that encodes, e.g. search by text).

    Returns (vectors at `dimensions`, token counts, dimensions_method); raises the service errors:
    404 unknown model, 503 not loaded, 422 bad `dimensions`, 429 queue full, 504 timeout.
    """
    slot = _slot(state, model)
    if not slot.ready:
        if slot.error:
            raise NotReady(f"model {model!r} failed to load: {slot.error}", param="model")
        raise NotReady(f"model {model!r} is still loading; retry shortly", param="model", headers={"Retry-After": "2"})
    m = slot.model
    try:
        m.dimensions_method(dimensions)
    except RepspaceError as e:
        raise InvalidField(f"field 'dimensions': {e}", param="dimensions") from None
    cap = getattr(getattr(m.encoder, "model", None), "max_seq_length", None) or 512
    try:
        future = slot.batcher.submit(texts, _estimate_tokens(texts, cap))
    except QueueFullError as e:
        raise Busy(str(e), code="queue_full", headers={"Retry-After": str(e.retry_after)}) from None
    timeout = state.config.limits.request_timeout_s
    try:
        vectors, tokens = await asyncio.wait_for(asyncio.wrap_future(future), timeout=timeout)
    except asyncio.TimeoutError:
        future.cancel()
        raise Timeout(f"embedding did not finish within {timeout:g} s (request_timeout_s)") from None
    X, method = m.reduce(vectors, dimensions)
    return X, tokens, method


@router.post("/v1/embeddings", response_model=EmbeddingResponse, responses=ERROR_RESPONSES)
async def create_embeddings(body: EmbeddingRequest, request: Request, state: ServiceState = Depends(get_state)) -> Response:
    _slot(state, body.model)
    limits = state.config.limits
    texts = [body.input] if isinstance(body.input, str) else list(body.input)
    request.scope["repspace.model"], request.scope["repspace.inputs"] = body.model, len(texts)
    check_text_limits(limits, texts, "input", single=isinstance(body.input, str))
    X, tokens, method = await embed_texts(state, body.model, texts, body.dimensions)
    n_tokens = int(sum(tokens))
    state.metrics.inputs.labels(body.model, method).inc(len(texts))
    return Response(embedding_response(X, body.encoding_format, body.model, n_tokens, method),
                    media_type="application/json", headers={DIMENSIONS_HEADER: method})
