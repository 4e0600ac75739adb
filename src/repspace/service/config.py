"""Configuration of `repspace serve`: models, adaptors, auth and limits."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from repspace.errors import InvalidInputError


@dataclass
class Limits:
    max_body_bytes: int = 4 * 1024 * 1024  # 413 above
    max_inputs: int = 2048  # inputs per request (413 above)
    max_input_chars: int = 32_768  # characters per input (413 above)
    max_batch_tokens: int = 16_384  # tokens encoded together in one batch
    max_batch_items: int = 256  # texts encoded together in one batch
    max_queue_items: int = 4096  # texts waiting per model (429 above)
    request_timeout_s: float = 60.0  # 504 when the encode has not finished by then
    micro_batch: int = 32  # texts per forward pass inside a batch (length-sorted)
    workers: int = 1  # encoding threads per model, sharing its queue
    batch_wait_ms: float = 0.0  # how long a batch that is not full may wait for more requests


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    models: list[str] = field(default_factory=lambda: ["minilm-l6"])
    adaptors: dict[str, str] = field(default_factory=dict)  # model -> compressor directory
    collections: str | None = None  # ROOT directory or PostgreSQL DSN (the collections router reads it)
    api_keys: list[str] = field(default_factory=list)
    no_auth: bool = False
    device: str = "cpu"
    threads: int | None = None  # intra-op threads per encoding worker (see `plan_workers`)
    backend: str = "torch"  # encoder backend of every served model (encoders.backends.BACKENDS)
    limits: Limits = field(default_factory=Limits)
    access_log: bool = True
    # base URLs of OpenAI-compatible endpoints clients may name as models (`openai:NAME@URL`) in collection requests;
    # none by default: the server makes no outbound request a client chose
    allowed_endpoints: list[str] = field(default_factory=list)

    def validate(self) -> "ServeConfig":
        if not self.models:
            raise InvalidInputError("models names no model", param="models")
        if len(set(self.models)) != len(self.models):
            raise InvalidInputError(f"models names a model twice: {','.join(self.models)}", param="models")
        for m in self.adaptors:
            if m not in self.models:
                raise InvalidInputError(f"adaptors name model {m!r}, which is not served "
                                        f"(models: {','.join(self.models)})", param="adaptors")
        if self.no_auth and self.api_keys:
            raise InvalidInputError("give either API keys or no_auth, not both", param="no_auth")
        if self.no_auth and not is_loopback(self.host):
            raise InvalidInputError("no_auth is allowed only on a loopback address (127.0.0.1, ::1, localhost); "
                                    f"host is {self.host}", param="no_auth")
        if not self.no_auth and not self.api_keys:
            raise InvalidInputError("no API keys: give api_keys (a key file, one key a line), or no_auth on loopback",
                                    param="api_keys")
        if self.limits.max_inputs > self.limits.max_queue_items:
            raise InvalidInputError(f"max_inputs ({self.limits.max_inputs}) must not exceed max_queue_items "
                                    f"({self.limits.max_queue_items}): such a request could never be queued",
                                    param="max_inputs")
        if not 0 <= self.port < 65536:
            raise InvalidInputError(f"port must be 1-65535; got {self.port}", param="port")
        return self


def plan_workers(backend: str, cores: int, workers: int | None = None, threads: int | None = None) -> tuple[int, int]:
    """(encoding workers, intra-op threads per worker) from the core count, unless given.

    Many small requests batch better over several workers of few threads each (no synchronisation inside a small
    matrix multiply); OpenVINO runs one inference stream per compiled model, so it gets one worker with every core."""
    if backend.startswith("openvino"):
        w = workers or 1
        return w, threads or max(1, cores // w)
    t = threads or (1 if cores <= 4 else 4)
    return workers or max(1, cores // t), t


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_api_keys(path: str | Path) -> list[str]:
    """Keys from a file: one a line; blank lines and lines starting with # are ignored."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInputError(f"API key file {path} does not exist", param="api_key_file") from None
    except UnicodeDecodeError:
        raise InvalidInputError(f"API key file {path} is not UTF-8 text", param="api_key_file") from None
    keys = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    if not keys:
        raise InvalidInputError(f"API key file {path} holds no key (one key a line)", param="api_key_file")
    short = [k for k in keys if len(k) < 16]
    if short:
        raise InvalidInputError(f"API key file {path}: keys must be at least 16 characters ({len(short)} shorter)",
                                param="api_key_file")
    return keys


def parse_adaptors(values: list[str] | None) -> dict[str, str]:
    """['minilm-l6=adaptors/mat'] -> {'minilm-l6': 'adaptors/mat'}."""
    out: dict[str, str] = {}
    for v in values or []:
        model, sep, path = v.partition("=")
        if not sep or not model or not path:
            raise InvalidInputError(f"an adaptor must be MODEL=DIR; got {v!r}", param="adaptors")
        if model in out:
            raise InvalidInputError(f"an adaptor is given twice for model {model!r}", param="adaptors")
        out[model] = path
    return out
