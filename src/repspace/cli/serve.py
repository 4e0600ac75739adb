"""CLI: serve (OpenAI-compatible embeddings over HTTP; see docs/service.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from repspace.cli.app import backend_help


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
    models: Annotated[str, typer.Option("--models", help="Comma-separated model names or local model directories.")] = "minilm-l6",
    collections: Annotated[Optional[str], typer.Option("--collections", help="Collections ROOT: a directory or a PostgreSQL DSN.")] = None,
    api_key_file: Annotated[Optional[Path], typer.Option("--api-key-file", help="File with one API key a line (Bearer tokens).")] = None,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="No API keys (loopback hosts only; warned at start-up).")] = False,
    adaptor: Annotated[Optional[list[str]], typer.Option("--adaptor", help="MODEL=DIR: a fitted matryoshka/pca compressor serving `dimensions` for MODEL (repeatable).")] = None,
    device: Annotated[str, typer.Option("--device", help="cpu or cuda.")] = "cpu",
    backend: Annotated[str, typer.Option("--backend", help=backend_help())] = "torch",
    threads: Annotated[Optional[int], typer.Option("--threads", help="Intra-op threads per encoding worker (default: from the core count, see --workers).")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", help="Encoding workers per model sharing its queue (threads; the runtimes release the GIL). "
                                                   "Default from the core count: workers x threads = cores, 1 thread each up to 4 cores (OpenVINO: 1 worker).")] = None,
    max_body_bytes: Annotated[int, typer.Option("--max-body-bytes")] = 4 * 1024 * 1024,
    max_inputs: Annotated[int, typer.Option("--max-inputs", help="Inputs per request.")] = 2048,
    max_input_chars: Annotated[int, typer.Option("--max-input-chars", help="Characters per input.")] = 32_768,
    max_batch_tokens: Annotated[int, typer.Option("--max-batch-tokens", help="Estimated tokens encoded together.")] = 16_384,
    max_batch_items: Annotated[int, typer.Option("--max-batch-items", help="Texts encoded together.")] = 256,
    batch_wait_ms: Annotated[float, typer.Option("--batch-wait-ms", help="How long a batch that is not full may wait for more requests.")] = 0.0,
    max_queue: Annotated[int, typer.Option("--max-queue", help="Texts waiting per model before 429.")] = 4096,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds a request may wait for its encode (504 after).")] = 60.0,
    allow_endpoint: Annotated[Optional[list[str]], typer.Option("--allow-endpoint", help="Base URL of an OpenAI-compatible endpoint clients may name as a collection's model (openai:NAME@URL); repeatable. None by default.")] = None,
    log_level: Annotated[str, typer.Option("--log-level")] = "info",
) -> None:
    """Serve models over HTTP: OpenAI-compatible /v1/embeddings (with `dimensions` for every model) and /v1/models."""
    import os

    # idle OpenMP threads sleep instead of spinning (a server waits between batches; spinning threads
    # made 2-thread encodes 5-8x slower on a busy 2-core machine). Set before torch loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from repspace.errors import InvalidInputError
    from repspace.service.app import serve as run_server
    from repspace.encoders.backends import check_threads, cores, get_backend
    from repspace.service.config import Limits, ServeConfig, load_api_keys, parse_adaptors, plan_workers

    get_backend(backend)
    check_threads(threads)
    workers, threads = plan_workers(backend, cores(), workers, threads)
    if min(max_body_bytes, max_inputs, max_input_chars, max_batch_tokens, max_batch_items, max_queue, workers) < 1 or timeout <= 0 or batch_wait_ms < 0:
        raise InvalidInputError("limits (--max-*, --timeout) must be positive")
    config = ServeConfig(
        host=host, port=port, models=[m.strip() for m in models.split(",") if m.strip()],
        adaptors=parse_adaptors(adaptor), collections=collections,
        api_keys=load_api_keys(api_key_file) if api_key_file is not None else [], no_auth=no_auth,
        device=device, threads=threads, backend=backend, allowed_endpoints=list(allow_endpoint or []),
        limits=Limits(max_body_bytes=max_body_bytes, max_inputs=max_inputs, max_input_chars=max_input_chars,
                      max_batch_tokens=max_batch_tokens, max_batch_items=max_batch_items, max_queue_items=max_queue,
                      request_timeout_s=timeout, workers=workers, batch_wait_ms=batch_wait_ms),
    ).validate()
    run_server(config, log_level=log_level)
