"""Fixtures for the service tests: free loopback ports, servers in a thread or a subprocess, a stub encoder."""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

KEY = "test-key-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StubEncoder:
    """A deterministic 8-d text encoder; `gate` (threading.Event) blocks each batch until set; counts batches."""

    modality, normalized, version = "text", True, "stub"

    def __init__(self, dim: int = 8, name: str = "stub") -> None:
        self.name, self.dim = name, dim
        self.gate: threading.Event | None = None
        self.batches: list[int] = []
        self.delay = 0.0

    def encode_batch(self, batch):
        if self.gate is not None:
            self.gate.wait(10)
        if self.delay:
            time.sleep(self.delay)
        self.batches.append(len(batch))
        out = np.stack([np.random.default_rng(int(hashlib.sha256(t.encode("utf-8", "surrogatepass")).hexdigest()[:8], 16))
                        .normal(size=self.dim) for t in batch]).astype(np.float32)
        return out


@contextlib.contextmanager
def running(app, port: int | None = None):
    """A real uvicorn server for `app` in a thread on 127.0.0.1; yields its base URL."""
    import uvicorn

    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                                           lifespan="on"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    deadline = time.time() + 20
    while not server.started:
        if time.time() > deadline or not t.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        t.join(10)


def wait_ready(base: str, proc: subprocess.Popen | None = None, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server not ready in time")


@pytest.fixture(scope="session")
def minilm_adaptor(tmp_path_factory) -> Path:
    """A PCA compressor for 384-d vectors at 16 and 32 dims (fitted on random vectors: tests the mechanism only)."""
    from repspace.compress import PCACompressor

    x = np.random.default_rng(0).normal(size=(200, 384)).astype(np.float32)
    out = tmp_path_factory.mktemp("adaptor") / "pca"
    PCACompressor(dims=[16, 32]).fit(x).save(out)
    return out


@pytest.fixture(scope="session")
def real_server(tmp_path_factory, minilm_adaptor):
    """`repspace serve` (subprocess, real minilm-l6) with API keys, small limits and an adaptor."""
    tmp = tmp_path_factory.mktemp("serve")
    keys = tmp / "keys.txt"
    keys.write_text(f"# keys\n{KEY}\nanother-key-abcdefghijklmnop\n")
    port = free_port()
    log = open(tmp / "server.log", "wb")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "repspace.cli.main", "serve", "--port", str(port), "--api-key-file", str(keys),
           "--models", "minilm-l6", "--adaptor", f"minilm-l6={minilm_adaptor}", "--max-inputs", "8",
           "--max-input-chars", "300", "--max-body-bytes", "20000", "--max-queue", "64", "--threads", "1"]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc)
        yield {"base": base, "key": KEY, "log": tmp / "server.log", "proc": proc}
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
