"""Connecting to Ray (a local cluster or a head address), quietly, and sizing worker pools.

Ray is optional: nothing here imports it at module level, and every entry point raises a
`NotAvailableError` naming the `ray` extra when it is missing.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

from repspace.errors import InvalidInputError, NotAvailableError, RepspaceError, UnknownNameError

ENGINES = ("local", "ray")
# environment a worker needs to find the same models and caches as the driver
_FORWARD_ENV = ("REPSPACE_HOME", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM")


class EngineError(RepspaceError):
    """A distributed job could not finish: names the shard that failed and why."""


def check_engine(engine: str) -> str:
    """Validate an engine name ('local' or 'ray'); for 'ray', check that Ray is installed."""
    if engine not in ENGINES:
        raise UnknownNameError(f"unknown engine {engine!r}; use one of: {', '.join(ENGINES)}", param="engine")
    if engine == "ray":
        import_ray()
    return engine


def import_ray():
    """The `ray` module, or a clear error naming the extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise NotAvailableError(
            "engine 'ray' needs Ray Data: pip install 'repspace[ray]' (or 'ray[data]>=2.40'); "
            "the default engine 'local' needs nothing else", param="engine"
        ) from None
    return ray


def quiet_ray_data() -> None:
    """Silence Ray Data's own progress bars and execution logs: repspace shows one bar in the driver."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    for name in ("enable_operator_progress_bars", "print_on_execution_start", "enable_rich_progress_bars"):
        if hasattr(ctx, name):
            setattr(ctx, name, False)
    try:
        ctx.execution_options.verbose_progress = False
    except AttributeError:
        pass
    for name in ("ray", "ray.data", "ray._private", "ray.serve"):
        logging.getLogger(name).setLevel(logging.ERROR)


@contextmanager
def native_stderr_quiet() -> Iterator[None]:
    """Keep Ray's own notices off the terminal while a job runs.

    Ray's C++ core worker writes straight to file descriptor 2 (e.g. "constructor arguments in the
    object store" for every Ray Data actor pool), and the driver's error listener prints raylet
    notices ("task will be retried") on `sys.stdout`, which would corrupt `--json` output. Inside
    this context fd 2 goes to a temporary file, `sys.stderr` (repspace's progress bar, warnings)
    to the real terminal, and `sys.stdout` to nowhere. REPSPACE_RAY_VERBOSE=1 keeps everything.
    """
    if os.environ.get("REPSPACE_RAY_VERBOSE"):
        yield
        return
    old_out, old_err = sys.stdout, sys.stderr
    try:
        old_err.flush()
        old_err.fileno()
        native = True
    except (AttributeError, OSError, ValueError):
        native = False  # stderr is captured in-process: nothing native reaches it anyway
    devnull = open(os.devnull, "w")
    sys.stdout = devnull
    if not native:
        try:
            yield
        finally:
            sys.stdout = old_out
            devnull.close()
        return
    saved = os.dup(2)
    sink = tempfile.TemporaryFile()
    os.dup2(sink.fileno(), 2)
    sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1, encoding=getattr(old_err, "encoding", None) or "utf-8",
                           errors="backslashreplace")
    try:
        yield
    finally:
        try:
            sys.stderr.flush()
            sys.stderr.close()
        finally:
            sys.stdout, sys.stderr = old_out, old_err
            devnull.close()
            os.dup2(saved, 2)
            os.close(saved)
            sink.close()


def _probe(address: str, timeout: float = 10.0) -> None:
    """Fail fast on an unreachable head: ray.init(address=...) itself retries for minutes."""
    import socket

    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise InvalidInputError(f"the Ray address must be HOST:PORT, ray://HOST:PORT or auto; got {address!r}",
                                param="address")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise EngineError(f"cannot reach the Ray head at {address}: {e.strerror or e}; is a Ray head node running there "
                          "(`ray start` on that machine)?", param="address") from None


def connect(address: str | None = None, num_cpus: int | None = None) -> Any:
    """Start (or join) Ray once per process, quietly.

    address: None = reuse an initialised Ray or start a local cluster on this machine;
    "auto" = the cluster this machine belongs to (`ray start --head` ran here); "HOST:PORT" or
    "ray://HOST:10001" = a remote head. Returns the `ray` module.
    """
    ray = import_ray()
    quiet_ray_data()
    if ray.is_initialized():
        return ray
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    env = {k: os.environ[k] for k in _FORWARD_ENV if k in os.environ}
    kwargs: dict[str, Any] = dict(log_to_driver=False, logging_level=logging.ERROR, configure_logging=True)
    if env:
        kwargs["runtime_env"] = {"env_vars": env}
    if address:
        _probe(address)
    try:
        with native_stderr_quiet():
            if address:
                ray.init(address=address, **kwargs)
            else:
                ray.init(num_cpus=num_cpus, include_dashboard=False, **kwargs)
    except (ConnectionError, ValueError, RuntimeError) as e:
        where = f"the Ray cluster at {address!r}" if address else "a local Ray cluster"
        raise EngineError(f"could not start or join {where}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    quiet_ray_data()
    return ray


@dataclass(frozen=True)
class Pool:
    """How many actors/tasks run at once and what each one reserves."""

    workers: int
    cpus: float
    gpus: float

    @property
    def threads(self) -> int:
        return max(1, int(self.cpus))


def plan_pool(ray: Any, workers: int | None = None, cpus_per_worker: float | None = None,
              gpus_per_worker: float | None = None, device: str = "cpu") -> Pool:
    """Size the pool from the cluster's resources.

    Defaults: on CPU, `workers` actors of total_cpus // workers CPUs each (capped at the largest
    node, so every actor fits on one machine), or one 1-CPU actor per CPU when `workers` is not
    given; on CUDA, one GPU per actor and one actor per GPU.
    """
    if workers is not None and workers <= 0:
        raise InvalidInputError(f"workers must be positive, got {workers}", param="workers")
    total = ray.cluster_resources()
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    total_cpus = int(total.get("CPU", 1)) or 1
    node_cpus = int(max((n.get("CPU", 0) for n in nodes), default=total_cpus)) or 1
    cuda = device.startswith("cuda")
    if gpus_per_worker is None:
        gpus_per_worker = 1.0 if cuda else 0.0
    if cuda and total.get("GPU", 0) < max(gpus_per_worker, 1e-9):
        raise EngineError(f"device {device!r} asks for GPU workers but the Ray cluster has no GPU "
                          f"(resources: {int(total.get('CPU', 0))} CPU, 0 GPU)", param="device")
    if workers is None:
        if cuda:
            workers = max(1, int(total.get("GPU", 1) // max(gpus_per_worker, 1e-9)))
        else:
            workers = max(1, int(total_cpus // (cpus_per_worker or 1)))
    if cpus_per_worker is None:
        cpus_per_worker = float(max(1, min(node_cpus, total_cpus // workers)))
    if cpus_per_worker > node_cpus:
        raise EngineError(f"an actor of {cpus_per_worker:g} CPUs fits on no node (largest: {node_cpus} CPUs)")
    return Pool(int(workers), float(cpus_per_worker), float(gpus_per_worker))
