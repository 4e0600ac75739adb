"""Shared helpers for benchmarks: machine description and timing."""

from __future__ import annotations

import os
import platform
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
