"""ASGI middleware: request ids, body-size limit (413), metrics and one JSON access-log line per request."""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

from repspace.service.metrics import Metrics

access_log = logging.getLogger("repspace.access")


def _error_body(message: str, type_: str, param: str | None = None) -> bytes:
    return json.dumps({"error": {"message": message, "type": type_, "param": param, "code": None}}).encode()


class ServiceMiddleware:
    """Outermost layer of the app (inside uvicorn): everything a request passes, whatever the route."""

    def __init__(self, app: Any, metrics: Metrics, max_body_bytes: int, log_requests: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = int(max_body_bytes)
        self.log_requests = log_requests

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        rid = _request_id(scope)
        scope["repspace.request_id"] = rid
        state = {"status": 500, "bytes": 0, "started": False}
        m = self.metrics
        m.in_flight.inc()

        async def send_wrapper(message: dict) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                state["started"] = True
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [(b"x-request-id", rid.encode())]
            elif message["type"] == "http.response.body":
                state["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            too_big = self._declared_too_big(scope)
            if too_big:
                await self._reject_413(send_wrapper, too_big)
                return
            body_receive = await self._buffer_body(receive) if scope.get("method") in ("POST", "PUT", "PATCH") else receive
            if body_receive is None:
                await self._reject_413(send_wrapper, f"request body exceeds the limit of {self.max_body_bytes} bytes (max_body_bytes)")
                return
            await self.app(scope, body_receive, send_wrapper)
        finally:
            dt = time.perf_counter() - t0
            m.in_flight.dec()
            route = scope.get("route")
            route_path = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "-")
            status = state["status"]
            m.requests.labels(method, route_path, str(status)).inc()
            m.latency.labels(method, route_path).observe(dt)
            if status in (401, 413, 429, 504):
                m.rejected.labels(str(status)).inc()
            if self.log_requests:
                client = scope.get("client") or ("-", 0)
                access_log.info(json.dumps({
                    "ts": round(time.time(), 3), "request_id": rid, "client": f"{client[0]}:{client[1]}",
                    "method": method, "path": scope.get("path"), "route": route_path, "status": status,
                    "duration_ms": round(dt * 1000, 2), "response_bytes": state["bytes"],
                    "model": scope.get("repspace.model"), "inputs": scope.get("repspace.inputs")}, separators=(",", ":")))

    def _declared_too_big(self, scope: dict) -> str | None:
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                try:
                    n = int(v)
                except ValueError:
                    return None
                if n > self.max_body_bytes:
                    return f"request body of {n} bytes exceeds the limit of {self.max_body_bytes} bytes (max_body_bytes)"
        return None

    async def _buffer_body(self, receive: Any) -> Any:
        """Read the whole body (at most max_body_bytes) and replay it; None when it is larger."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                chunks_msg = message
                break
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_body_bytes:
                return None
            chunks.append(body)
            if not message.get("more_body", False):
                chunks_msg = None
                break
        data = b"".join(chunks)
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                if chunks_msg is not None:
                    return chunks_msg
                return {"type": "http.request", "body": data, "more_body": False}
            return await receive()

        return replay

    async def _reject_413(self, send: Any, message: str) -> None:
        body = _error_body(message, "request_too_large", "body")
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def _request_id(scope: dict) -> str:
    for k, v in scope.get("headers", []):
        if k == b"x-request-id":
            rid = v.decode("latin-1")[:64]
            if rid.isprintable():
                return rid
    return uuid.uuid4().hex[:16]
