"""Any model behind an OpenAI-compatible `/v1/embeddings` endpoint: `openai:NAME@URL`.

    enc = get_encoder("openai:text-embedding-3-small@https://api.openai.com/v1", dim=256)
    enc = get_encoder("openai:minilm-l6@http://127.0.0.1:8080/v1", concurrency=8)   # repspace serve, TEI, vLLM, …
    X = enc.encode_batch(texts)       # (n, dim) float32, row i = texts[i]

One `encode_batch` is cut into requests of at most `batch_size` texts and about `max_tokens` tokens (estimated
from UTF-8 bytes), sent by `concurrency` threads through the official `openai` client (its own retries off).
Each request is retried on 408/409/429/5xx, timeouts and lost connections with exponential backoff and jitter,
honouring `Retry-After` (seconds or an HTTP date), until `max_retries` retries or `retry_total` seconds are spent.
Rows are placed by the response's `index`, so a retried request never loses or duplicates a row; every response is
checked (one vector per text, each index once, the expected dimension, finite values).

The key comes from `api_key`, `REPSPACE_API_KEY` or `OPENAI_API_KEY` (a placeholder when none: loopback servers
need none). It is never printed, stored or put in an error: the encoder keeps it only inside its client.

The model's identity (`version`) is probed at construction: see `repspace.encoders.identity`. `dim=D` asks the
endpoint for D-dimensional vectors (`dimensions` in the request) when D differs from the model's own; the name
then ends in `#dimensions=D` (a URL fragment: never sent), so the name alone reopens the same encoder.
"""

from __future__ import annotations

import base64
import email.utils
import json
import os
import random
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Sequence
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from repspace.encoders.base import Encoder
from repspace.encoders.identity import PROBE_TEXT, probe_version
from repspace.errors import DimensionMismatchError, EndpointError, InvalidInputError, InvalidVectorsError

SCHEME = "openai"
KEY_ENV = ("REPSPACE_API_KEY", "OPENAI_API_KEY")
PLACEHOLDER_KEY = "repspace-no-key"
RETRY_STATUS = (408, 409, 429)


@dataclass(frozen=True)
class EndpointSpec:
    """`NAME@URL[#dimensions=D]`: the served model's name, the API's base URL (no credentials), the dimensions asked."""

    model: str
    url: str
    dimensions: int | None = None

    def __str__(self) -> str:
        tail = f"#dimensions={self.dimensions}" if self.dimensions else ""
        return f"{SCHEME}:{self.model}@{self.url}{tail}"


def safe_url(url: str) -> str:
    """`url` without user, password, query or fragment (what messages may show)."""
    try:
        p = urlsplit(url)
        host = p.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = host + (f":{p.port}" if p.port else "")
        return urlunsplit((p.scheme, netloc, p.path, "", "")) or "<url>"
    except ValueError:
        return "<unparseable url>"


def parse_endpoint(text: str, dimensions: int | None = None) -> EndpointSpec:
    """`NAME@URL[#dimensions=D]` (after `openai:`) -> EndpointSpec; clear errors, never echoing credentials."""
    name, at, url = text.partition("@")
    if not at or not name or not url:
        raise InvalidInputError(f"an endpoint model is {SCHEME}:NAME@URL (e.g. {SCHEME}:text-embedding-3-small@"
                                "https://api.openai.com/v1); got one without a model name or URL", param="model")
    url, _, fragment = url.partition("#")
    if fragment:
        key, eq, value = fragment.partition("=")
        if key != "dimensions" or not eq or not value.isdigit() or int(value) < 1:
            raise InvalidInputError(f"endpoint model suffix must be #dimensions=D (a positive integer); got "
                                    f"#{fragment[:40]}", param="model")
        if dimensions is not None and dimensions != int(value):
            raise DimensionMismatchError(f"the model asks for {value} dimensions, dim asks for {dimensions}",
                                         param="dim")
        dimensions = int(value)
    try:
        p = urlsplit(url)
        p.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise InvalidInputError(f"endpoint URL of model {name!r} cannot be parsed", param="model") from None
    if p.scheme not in ("http", "https") or not p.hostname:
        raise InvalidInputError(f"endpoint URL {safe_url(url)!r} must start with http:// or https:// and name a host",
                                param="model")
    if p.username is not None or p.password is not None:
        raise InvalidInputError(f"endpoint URL {safe_url(url)!r} carries credentials; model names are stored in "
                                "metadata, so put the key in REPSPACE_API_KEY (or OPENAI_API_KEY) instead",
                                param="model")
    if p.query:
        raise InvalidInputError(f"endpoint URL {safe_url(url)!r} has a query string; give the API's base URL "
                                "(e.g. …/v1)", param="model")
    return EndpointSpec(name, url.rstrip("/"), dimensions)


def approx_tokens(text: str) -> int:
    """A cheap upper-ish token estimate: UTF-8 bytes / 3 (BPE and WordPiece average ~4 bytes a token in English)."""
    return len(text.encode("utf-8", "surrogatepass")) // 3 + 1


def plan_requests(texts: Sequence[str], batch_size: int, max_tokens: int) -> list[list[int]]:
    """Positions of `texts` cut into consecutive requests of <= batch_size texts and <= ~max_tokens tokens
    (a text over the budget goes alone)."""
    out: list[list[int]] = []
    cur: list[int] = []
    tokens = 0
    for i, t in enumerate(texts):
        k = approx_tokens(t)
        if cur and (len(cur) >= batch_size or tokens + k > max_tokens):
            out.append(cur)
            cur, tokens = [], 0
        cur.append(i)
        tokens += k
    if cur:
        out.append(cur)
    return out


def retry_after(headers: Any, now: float | None = None) -> float | None:
    """Seconds a response asks to wait: `retry-after-ms`, or `Retry-After` as seconds or an HTTP date."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class _Retry(Exception):
    """A failed attempt that may be retried: why (for the final message) and how long the server asked to wait."""

    def __init__(self, why: str, wait: float | None = None, down: bool = False) -> None:
        super().__init__(why)
        self.why, self.wait, self.down = why, wait, down


class EndpointEncoder(Encoder):
    """Texts -> vectors through an OpenAI-compatible embeddings API (see the module docstring)."""

    modality = "text"
    concurrent = True  # encode_batch runs its own requests in parallel: callers may hand it large batches

    def __init__(self, model: str, url: str, *, dimensions: int | None = None, api_key: str | None = None,
                 batch_size: int = 64, max_tokens: int = 100_000, concurrency: int = 4, timeout: float = 60.0,
                 max_retries: int = 6, retry_total: float = 120.0, backoff: float = 0.5, backoff_max: float = 20.0,
                 device: str = "cpu") -> None:
        spec = parse_endpoint(f"{model}@{url}", dimensions)
        for value, param in ((batch_size, "batch_size"), (max_tokens, "max_tokens"), (concurrency, "concurrency")):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"{param} must be a positive integer; got {value!r}", param=param)
        for value, param in ((timeout, "timeout"), (retry_total, "retry_total"), (backoff, "backoff")):
            if not value > 0:
                raise InvalidInputError(f"{param} must be positive; got {value!r}", param=param)
        if max_retries < 0:
            raise InvalidInputError(f"max_retries must be >= 0; got {max_retries}", param="max_retries")
        self.model, self.url, self.safe = spec.model, spec.url, safe_url(spec.url)
        self.batch_size, self.max_tokens, self.concurrency = batch_size, max_tokens, concurrency
        self.timeout, self.max_retries, self.retry_total = float(timeout), int(max_retries), float(retry_total)
        self.backoff, self.backoff_max = float(backoff), float(backoff_max)
        self.device = device  # unused: the endpoint decides
        self._random = random.Random()
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._client = self._make_client(api_key)
        self.requests = 0  # HTTP requests sent (attempts, retries included)
        self.retries = 0
        # identity: the model's own dimension first; `dimensions` is sent only when it asks for another
        self.dimensions: int | None = None
        self.dim = 0
        probe = self._probe()
        if spec.dimensions is not None and spec.dimensions != probe.size:
            self.dimensions = spec.dimensions
            probe = self._probe()
            if probe.size != spec.dimensions:
                raise DimensionMismatchError(f"endpoint {self.safe} answered {probe.size}-d vectors when asked for "
                                             f"dimensions={spec.dimensions}: it does not support dimensions",
                                             param="dimensions")
        self.dim = int(probe.size)
        self.name = str(EndpointSpec(spec.model, spec.url, self.dimensions))
        self.version = probe_version(probe)
        self.fingerprint = self.version.split(":")[1]
        self.normalized = bool(abs(float(np.linalg.norm(probe)) - 1.0) < 1e-3)

    # ------------------------------------------------------------------ setup
    def _make_client(self, api_key: str | None):
        try:
            from openai import OpenAI
        except ImportError:
            from repspace.errors import NotAvailableError

            raise NotAvailableError("endpoint models need the `openai` package (pip install openai)") from None
        key = api_key or next((os.environ[k] for k in KEY_ENV if os.environ.get(k)), None) or PLACEHOLDER_KEY
        return OpenAI(base_url=self.url, api_key=key, timeout=self.timeout, max_retries=0)  # the only holder of the key

    def _probe(self) -> np.ndarray:
        # a refused connection fails the probe at once (a down URL is reported now, not after minutes of retries);
        # 429/5xx/timeouts are retried as for any request
        return self._request([PROBE_TEXT], fail_fast=True)[0]

    def __repr__(self) -> str:
        return f"EndpointEncoder({self.name!r}, dim={self.dim}, version={getattr(self, 'version', '?')!r})"

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "endpoint": self.safe, "served_model": self.model, "fingerprint": self.fingerprint,
                "dimensions": self.dimensions, "batch_size": self.batch_size, "max_tokens": self.max_tokens,
                "concurrency": self.concurrency, "timeout": self.timeout}

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        self._client.close()

    # --------------------------------------------------------------- encoding
    def encode_batch(self, batch: Sequence[str]) -> np.ndarray:
        texts = list(batch)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise InvalidInputError(f"text {i} is a {type(t).__name__}, not a string", param="texts")
        out = np.empty((len(texts), self.dim), np.float32)
        groups = plan_requests(texts, self.batch_size, self.max_tokens)
        if len(groups) <= 1 or self.concurrency == 1:
            for g in groups:
                out[g] = self._request([texts[i] for i in g])
            return out
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="repspace-endpoint")
        stop = threading.Event()  # set on the first failure: the other requests stop retrying
        futures = {self._pool.submit(self._request, [texts[i] for i in g], stop=stop): g for g in groups}
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f for f in done if f.exception() is not None), None)
        if failed is not None:
            stop.set()
            for f in pending:
                f.cancel()
            wait(pending)
            raise failed.exception()
        for f, g in futures.items():
            out[g] = f.result()  # each request's rows, placed once by position
        return out

    def _request(self, texts: list[str], fail_fast: bool = False, stop: threading.Event | None = None) -> np.ndarray:
        """One request with retries: (len(texts), dim) float32, row i = texts[i]. Errors are raised outside the
        `except` blocks, so no exception chain carries the client's own error (whose text may hold the key)."""
        start = time.monotonic()
        attempt = 0
        while True:
            try:
                return self._attempt(texts)
            except _Retry as r:
                retry = r
            spent = time.monotonic() - start
            if retry.wait is not None:
                delay = retry.wait
            else:
                delay = min(self.backoff_max, self.backoff * 2 ** attempt) * (0.5 + self._random.random() / 2)
            if (fail_fast and retry.down) or attempt >= self.max_retries or (stop is not None and stop.is_set()) \
                    or spent + delay > self.retry_total:
                tried = f"{attempt + 1} attempt{'s' if attempt else ''} over {spent:.1f} s"
                asked = (f"; it asked to wait {retry.wait:.0f} s more, past retry_total {self.retry_total:g} s"
                         if retry.wait is not None and spent + delay > self.retry_total else "")
                raise EndpointError(f"{retry.why} ({tried}{asked})", param="model")
            attempt += 1
            with self._lock:
                self.retries += 1
            if stop is None:
                time.sleep(delay)
            elif stop.wait(delay):
                raise EndpointError(f"{retry.why} (gave up: another request of the batch failed)", param="model")

    def _attempt(self, texts: list[str]) -> np.ndarray:
        import openai

        kwargs: dict[str, Any] = {"input": texts, "model": self.model, "encoding_format": "base64"}
        if self.dimensions is not None:
            kwargs["dimensions"] = self.dimensions
        with self._lock:
            self.requests += 1
        failure: Exception | None = None
        try:
            body = self._client.embeddings.with_raw_response.create(**kwargs).http_response.content
        except openai.APITimeoutError:
            failure = _Retry(f"endpoint {self.safe} did not answer within the timeout of {self.timeout:g} s")
        except openai.APIConnectionError as e:
            cause = e.__cause__ or e.__context__
            why = type(cause).__name__ if cause is not None else "connection error"
            failure = _Retry(f"endpoint {self.safe} is down or unreachable ({why})", down=True)
        except openai.APIStatusError as e:
            status = e.status_code
            if status in RETRY_STATUS or status >= 500:
                what = "rate limited" if status == 429 else "server error" if status >= 500 else "try again"
                failure = _Retry(f"endpoint {self.safe} kept answering HTTP {status} ({what}): "
                                 f"{self._server_message(e)}", retry_after(e.response.headers))
            else:
                failure = self._status_error(status, e)
        if failure is not None:
            raise failure  # outside the except blocks: no __context__ to the client's error
        return self._decode(body, len(texts))

    # -------------------------------------------------------------- answers
    def _server_message(self, e: Any) -> str:
        """The server's error text, without the key (servers echo it, masked or not) and cut short."""
        try:
            body = e.response.json()
            msg = body.get("error", body) if isinstance(body, dict) else body
            msg = msg.get("message", msg) if isinstance(msg, dict) else msg
            text = str(msg)
        except Exception:  # noqa: BLE001 - any body: fall back to its text
            text = getattr(getattr(e, "response", None), "text", "") or ""
        key = self._client.api_key
        if isinstance(key, str) and key and key != PLACEHOLDER_KEY:
            text = text.replace(key, "***")
        return " ".join(text.split())[:300] or "no message"

    def _status_error(self, status: int, e: Any) -> EndpointError:
        if status in (401, 403):
            return EndpointError(f"endpoint {self.safe} refused authentication (HTTP {status}): set REPSPACE_API_KEY "
                                 "(or OPENAI_API_KEY) to a key it accepts", param="api_key")
        if status == 404:
            return EndpointError(f"endpoint {self.safe} has no model {self.model!r} or no /embeddings route (HTTP 404): "
                                 f"{self._server_message(e)}", param="model")
        hint = f" (it may not support dimensions={self.dimensions})" if self.dimensions else ""
        return EndpointError(f"endpoint {self.safe} rejected the request for model {self.model!r} (HTTP {status})"
                             f"{hint}: {self._server_message(e)}", param="model")

    def _bad(self, what: str) -> EndpointError:
        return EndpointError(f"endpoint {self.safe} (model {self.model!r}) {what}", param="model")

    def _decode(self, body: bytes, n: int) -> np.ndarray:
        try:
            data = json.loads(body)["data"]
            if not isinstance(data, list):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise self._bad("answered with something that is not an embeddings response") from None
        if len(data) != n:
            raise self._bad(f"returned {len(data)} vectors for {n} texts")
        out: np.ndarray | None = None
        seen = np.zeros(n, bool)
        for item in data:
            idx = item.get("index") if isinstance(item, dict) else None
            if isinstance(idx, bool) or not isinstance(idx, int) or not 0 <= idx < n or seen[idx]:
                raise self._bad(f"returned index {idx!r}: each of 0..{n - 1} must come exactly once")
            seen[idx] = True
            emb = item.get("embedding")
            try:
                v = (np.frombuffer(base64.b64decode(emb), dtype="<f4") if isinstance(emb, str)
                     else np.asarray(emb, dtype=np.float32))
            except (ValueError, TypeError):
                raise self._bad(f"returned an embedding that is not a vector (index {idx})") from None
            if v.ndim != 1:
                raise self._bad(f"returned an embedding that is not a vector (index {idx})")
            if out is None:
                if self.dim and v.size != self.dim:
                    raise DimensionMismatchError(
                        f"endpoint {self.safe} (model {self.model!r}) returned {v.size}-d vectors, expected {self.dim}"
                        " (did the server's model change?)", param="model")
                out = np.empty((n, v.size), np.float32)
            elif v.size != out.shape[1]:
                raise self._bad(f"returned vectors of different dimensions ({v.size} and {out.shape[1]})")
            out[idx] = v
        if out is None:
            raise self._bad("returned no vectors")
        bad = ~np.isfinite(out).all(axis=1)
        if bad.any():
            raise InvalidVectorsError(f"endpoint {self.safe} (model {self.model!r}) returned NaN or inf for "
                                      f"{int(bad.sum())} of {n} texts (first: text {int(np.argmax(bad))} of the "
                                      "request)", param="model")
        return out


# settings a process can give every endpoint encoder it opens, also those opened by name deep inside the library
# (a collection's slot, a backfill, Ray workers): explicit arguments win
ENV_SETTINGS = {"concurrency": ("REPSPACE_ENDPOINT_CONCURRENCY", int), "batch_size": ("REPSPACE_ENDPOINT_BATCH_SIZE", int),
                "max_tokens": ("REPSPACE_ENDPOINT_MAX_TOKENS", int), "timeout": ("REPSPACE_ENDPOINT_TIMEOUT", float)}


def env_settings() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for param, (var, kind) in ENV_SETTINGS.items():
        value = os.environ.get(var)
        if value:
            try:
                out[param] = kind(value)
            except ValueError:
                raise InvalidInputError(f"{var} must be a number; got {value[:20]!r}", param=param) from None
    return out


def endpoint_encoder(rest: str, device: str = "cpu", *, dim: int | None = None, **options: Any) -> EndpointEncoder:
    """The registry's factory for `openai:REST`: options given (not None) > REPSPACE_ENDPOINT_* variables > defaults."""
    spec = parse_endpoint(rest, dim)
    given = {**env_settings(), **{k: v for k, v in options.items() if v is not None}}
    return EndpointEncoder(spec.model, spec.url, dimensions=spec.dimensions, device=device, **given)
