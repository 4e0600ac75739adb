"""Errors of the service: every failure is JSON `{"error": {"message", "type", "param", "code"}}`.

Routes raise `ServiceError` subclasses (or repspace's own `RepspaceError`s, mapped by type);
`install_error_handlers(app)` turns them, FastAPI's validation errors (422 naming the field),
HTTP errors (404/405) and any unexpected exception (500, logged server-side, never a traceback
in the response) into that shape.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from repspace import errors as E

log = logging.getLogger("repspace.service")


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class ServiceError(Exception):
    status = 400
    type = "invalid_request_error"

    def __init__(self, message: str, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message, self.param, self.code, self.headers = message, param, code, headers


class AuthError(ServiceError):
    status, type = 401, "authentication_error"


class NotFound(ServiceError):
    status, type = 404, "not_found_error"


class LimitExceeded(ServiceError):
    status, type = 413, "request_too_large"


class InvalidField(ServiceError):
    status, type = 422, "invalid_request_error"


class Busy(ServiceError):
    status, type = 429, "rate_limit_error"


class NotReady(ServiceError):
    status, type = 503, "service_unavailable"


class Timeout(ServiceError):
    status, type = 504, "timeout_error"


# repspace's user errors, by class (most specific first)
REPSPACE_STATUS: list[tuple[type, int, str]] = [
    (E.UnknownNameError, 404, "not_found_error"),
    (E.NotAvailableError, 503, "service_unavailable"),
    (E.OutputExistsError, 409, "conflict_error"),
    (E.StoreUnavailableError, 503, "service_unavailable"),
    (E.EndpointError, 503, "service_unavailable"),
    (E.ModelChangedError, 409, "conflict_error"),
    (E.CollectionError, 409, "conflict_error"),
    (E.DimensionMismatchError, 422, "invalid_request_error"),
    (E.InvalidVectorsError, 422, "invalid_request_error"),
    (E.InvalidInputError, 422, "invalid_request_error"),
    (E.SpaceFormatError, 500, "storage_error"),
    (E.RepspaceError, 400, "invalid_request_error"),
]

# every status a route may answer with an error body (for OpenAPI `responses=`)
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorResponse, "description": d} for s, d in (
        (400, "malformed request"), (401, "missing or wrong API key"), (404, "unknown model or route"), (413, "request larger than a limit"),
        (422, "invalid field (named in error.param)"), (429, "queue full; see Retry-After"),
        (503, "not ready (models loading)"), (504, "timed out"))
}


# A library error's `param` names the argument at fault (never a CLI flag); the routes pass request fields to
# the library under the field's own name, so the param *is* the JSON field. Arguments that come from the
# server's own configuration (`repspace serve`), not from the request, name no field of it.
SERVER_PARAMS = frozenset({"address", "adaptors", "api_key_file", "api_keys", "device", "engine", "max_inputs",
                           "models", "no_auth", "out", "overwrite", "path", "port", "workers"})


def json_field(param: str | None) -> str | None:
    """The request field a library error's `param` names (None: not a field of the request)."""
    if param is None or param in SERVER_PARAMS:
        return None
    return RENAMED.get(param, param)


# library parameters whose request field is spelled otherwise
RENAMED = {"vectors": "vector", "vectors_new": "vector_new", "texts": "text"}


def error_json(status: int, message: str, type_: str, param: str | None = None, code: str | None = None,
               headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


_UNION_TAG = re.compile(r"^(str|int|float|bool|list|dict|none|[a-z-]+\[.*\])$")


def field_name(loc: tuple[Any, ...]) -> str:
    """('body', 'input', 'list[str]', 3) -> 'input[3]'; union branch tags are dropped."""
    parts = list(loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc)
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif isinstance(p, str) and not _UNION_TAG.match(p):
            out += f".{p}" if out else p
    return out or "body"


def _top(err: dict) -> str:
    return field_name(tuple(err.get("loc", ()))[:2])


def _validation_response(exc: RequestValidationError) -> JSONResponse:
    errs = exc.errors()
    if not errs:
        return error_json(422, "invalid request", "invalid_request_error")
    first = errs[0]
    if first.get("type") == "json_invalid":
        return error_json(422, "request body is not valid JSON", "invalid_request_error", "body", "json_invalid")
    top = _top(first)
    same = [e for e in errs if _top(e) == top]  # union branches of one field: report the most specific
    first = max(same, key=lambda e: len(field_name(tuple(e.get("loc", ())))))
    name = field_name(tuple(first.get("loc", ())))
    if name == "body" and first.get("type") in ("model_attributes_type", "dict_type"):
        return error_json(422, "request body must be a JSON object (send Content-Type: application/json)",
                          "invalid_request_error", "body", first.get("type"))
    if first.get("type") == "missing":
        msg = f"field '{name}' is required"
    else:
        msg = f"field '{name}': {first.get('msg', 'invalid value')}"
    others = sorted({field_name(tuple(e.get("loc", ()))) for e in errs[1:]} - {name})
    if others:
        msg += f" (also invalid: {', '.join(others)})"
    return error_json(422, msg, "invalid_request_error", name, first.get("type"))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service(request: Request, exc: ServiceError) -> JSONResponse:
        return error_json(exc.status, exc.message, exc.type, exc.param, exc.code, exc.headers)

    @app.exception_handler(E.RepspaceError)
    async def _repspace(request: Request, exc: E.RepspaceError) -> JSONResponse:
        headers = None
        retry = getattr(exc, "retry_after", None)
        if retry is not None:
            return error_json(429, str(exc), "rate_limit_error", headers={"Retry-After": str(retry)})
        for cls, status, type_ in REPSPACE_STATUS:
            if isinstance(exc, cls):
                if status >= 500:
                    log.error("server-side error on %s %s: %s", request.method, request.url.path, exc)
                return error_json(status, str(exc), type_, json_field(getattr(exc, "param", None)), headers=headers)
        return error_json(400, str(exc), "invalid_request_error")

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        type_ = {401: "authentication_error", 404: "not_found_error", 405: "invalid_request_error"}.get(
            exc.status_code, "invalid_request_error" if exc.status_code < 500 else "server_error")
        msg = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 400 and msg == "There was an error parsing the body":  # e.g. not UTF-8
            return error_json(422, "request body is not valid JSON (or not UTF-8)", "invalid_request_error", "body", "json_invalid")
        if exc.status_code == 404 and msg == "Not Found":
            msg = f"no route {request.method} {request.url.path}"
        return error_json(exc.status_code, msg, type_, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        rid = request.scope.get("repspace.request_id", "-")
        log.exception("unhandled error on %s %s (request %s)", request.method, request.url.path, rid)
        return error_json(500, f"internal server error (request id {rid}; details in the server log)", "server_error")
