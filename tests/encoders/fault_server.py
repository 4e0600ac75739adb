"""A real fault-injecting OpenAI-compatible server for the endpoint tests: a FastAPI app on loopback (uvicorn in a
thread) that proxies POST /v1/embeddings to an upstream (`repspace serve`) and, on command, answers 429 with
Retry-After, 500, sleeps past the client's timeout, or corrupts the answer (NaN, wrong dimension, wrong count,
shuffled or duplicated indices), rejects a wrong key with 401 (echoing it, as some servers do), or asks the
upstream for another model's vectors.

    faults = Faults(upstream="http://127.0.0.1:PORT", key="secret")
    with running(faults) as base:             # base = http://127.0.0.1:PORT2
        faults.push("429", "1", "500")        # the next three requests fail like that, then all is normal
        faults.always = "shuffle"             # every request, until reset
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from collections import deque

from tests.service.conftest import free_port  # noqa: F401 - used by the tests through this module
from tests.service.conftest import running as serve_app

import httpx
import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response


class Faults:
    def __init__(self, upstream: str, key: str | None = None) -> None:
        self.upstream, self.key = upstream, key
        self.queue: deque[tuple[str, str]] = deque()
        self.always: str | None = None  # a corruption applied to every request
        self.swap_model: str | None = None  # ask the upstream for this model instead
        self.served: list[int] = []  # texts per request answered 200
        self.seen: list[int] = []  # texts per request received (any answer)
        self.lock = threading.Lock()

    def push(self, *faults: str) -> None:
        """Queue faults for the next requests: "429" / "429:SECONDS" / "429:date:SECONDS", "500", "sleep:SECONDS",
        "nan", "dim", "count", "shuffle", "dup"."""
        for f in faults:
            mode, _, arg = f.partition(":")
            self.queue.append((mode, arg))

    def reset(self) -> None:
        self.queue.clear()
        self.always = self.swap_model = None
        self.served.clear()
        self.seen.clear()

    def take(self) -> tuple[str, str]:
        with self.lock:
            return self.queue.popleft() if self.queue else (self.always or "", "")


def _corrupt(body: dict, mode: str) -> dict:
    data = body["data"]
    vecs = [np.frombuffer(base64.b64decode(d["embedding"]), "<f4").copy() for d in data]
    if mode == "nan":
        vecs[-1][3] = np.nan
    elif mode == "dim":
        vecs = [v[:-1] for v in vecs]
    out = [{"object": "embedding", "index": d["index"], "embedding": base64.b64encode(v.astype("<f4").tobytes()).decode()}
           for d, v in zip(data, vecs)]
    if mode == "count":
        out = out[:-1]
    elif mode == "shuffle":
        out = out[::-1]
    elif mode == "dup" and len(out) > 1:
        out[1]["index"] = out[0]["index"]
    return {**body, "data": out}


def make_app(faults: Faults) -> FastAPI:
    app = FastAPI()
    client = httpx.AsyncClient(timeout=60)

    @app.post("/v1/embeddings")
    async def embeddings(request: Request):
        body = await request.json()
        n = len(body["input"]) if isinstance(body["input"], list) else 1
        faults.seen.append(n)
        if faults.key is not None:
            given = request.headers.get("authorization", "").removeprefix("Bearer ")
            if given != faults.key:
                return JSONResponse({"error": {"message": f"Incorrect API key provided: {given}.", "type": "auth"}}, 401)
        mode, arg = faults.take()
        if mode == "429":
            headers = {}
            if arg.startswith("date:"):
                import email.utils

                headers["Retry-After"] = email.utils.formatdate(time.time() + float(arg[5:]), usegmt=True)
            elif arg:
                headers["Retry-After"] = arg
            return JSONResponse({"error": {"message": "rate limited"}}, 429, headers=headers)
        if mode == "500":
            return JSONResponse({"error": {"message": "boom"}}, 500)
        if mode == "sleep":
            await asyncio.sleep(float(arg))
        if faults.swap_model:
            body = {**body, "model": faults.swap_model}
        r = await client.post(f"{faults.upstream}/v1/embeddings", json=body)
        if r.status_code != 200:
            return Response(r.content, r.status_code, media_type="application/json")
        out = r.json()
        if mode in ("nan", "dim", "count", "shuffle", "dup"):
            out = _corrupt(out, mode)
        faults.served.append(n)
        import json

        return Response(json.dumps(out), 200, media_type="application/json")  # json: NaN written as NaN

    return app


def running(faults: Faults):
    """The fault server on a free loopback port (uvicorn in a daemon thread); yields its base URL."""
    return serve_app(make_app(faults))
