"""Shared helpers for benchmarks: machine description, timing, and a `repspace serve` on loopback."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import time
from typing import Callable


def machine() -> str:
    import numpy as np
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(l.split(":", 1)[1].strip() for l in fh if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads)")


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def per_model_main(run: Callable[[str, int], None], epochs: int, models: str = "minilm-l6,mpnet-base") -> None:
    """CLI of the per-model benchmarks: `--models a,b --epochs N`, machine line, then run(model, epochs) each."""
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=models)
    ap.add_argument("--epochs", type=int, default=epochs)
    args = ap.parse_args()
    print(f"machine: {machine()}")
    for m in args.models.split(","):
        run(m, args.epochs)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(args: list[str], port: int, env: dict[str, str] | None = None,
                  timeout: float = 180) -> subprocess.Popen:
    """`repspace serve --port PORT ARGS…` on 127.0.0.1, returned once /readyz answers 200; SystemExit with the
    server's last stderr if it ends or is not ready within `timeout`. Its stderr goes to a temporary file (a pipe
    nobody reads could fill and stall a long-running server)."""
    import tempfile

    import httpx

    cmd = [sys.executable, "-m", "repspace.cli.main", "serve", "--host", "127.0.0.1", "--port", str(port), *args]
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, env=env or dict(os.environ))
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise SystemExit(f"server ended: {log.read().decode(errors='replace')[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not become ready")
