"""What an encoder backend is, and the machine facts its exports depend on (CPU flags, cores, library versions).

A `Backend` runs a sentence-transformers model on another runtime. `export(ctx, out_dir)` writes its artefact
(from the torch module in `ctx`, offline) and returns a small JSON-able record of the choices it made;
`load(dir, record, threads)` returns a runner `(input_ids, attention_mask) -> (n, dim) float32` — the model's
sentence embedding (pooling and normalisation are inside the exported graph). `prepare.py` caches, checks and
verifies the artefacts; `encoder.py` wraps a runner as an `Encoder`.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from repspace.errors import NotAvailableError

Runner = Callable[[np.ndarray, np.ndarray], np.ndarray]

# the CPU features that change which kernels a runtime (or a quantisation config) uses: an export made on a
# machine with other values of these is redone, not used silently slow
RELEVANT_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni",
                  "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16", "asimd", "asimddp", "sve", "i8mm")


@lru_cache(maxsize=1)
def cpu_info() -> tuple[str, frozenset[str]]:
    """(CPU model name, flags) of this machine, read from /proc/cpuinfo at run time ('' and no flags elsewhere)."""
    model, flags = "", frozenset()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        import platform

        return platform.processor() or platform.machine(), frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model") and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = frozenset(value.split())
    return model, flags


def cpu_flags() -> frozenset[str]:
    return cpu_info()[1]


def relevant_flags(flags: frozenset[str] | None = None) -> list[str]:
    flags = cpu_flags() if flags is None else flags
    return sorted(f for f in RELEVANT_FLAGS if f in flags)


def cores() -> int:
    """CPU cores this process may run on (its affinity mask; os.cpu_count() where there is none)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """Intra-op threads of one encoder: every core this process may use."""
    return cores()


def package_version(dist: str) -> str:
    import importlib.metadata  # here, not at the top: ~45 ms of every CLI start (the --backend help names BACKENDS)

    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


@dataclass(frozen=True)
class Backend:
    """One way to run a sentence-transformers model. `runtime`: (import name, PyPI package) pairs it needs."""

    name: str
    description: str
    runtime: tuple[tuple[str, str], ...] = ()
    export: Callable[["ExportContext", Path], dict[str, Any]] | None = None  # None: the model's own torch path
    load: Callable[[Path, dict[str, Any], int], Runner] | None = None
    min_cos: float = 0.9999  # mean cosine against the torch output on the probe texts, checked after export
    int8: bool = False
    calibrated: bool = False  # static quantisation: calibrated on a sample of texts
    versions: tuple[str, ...] = field(default=())  # PyPI distributions whose versions key the cached export

    def require_runtime(self) -> None:
        """One line naming the package to install when this backend's runtime is missing."""
        for module, package in self.runtime:
            try:
                importlib.import_module(module)
            except ImportError:
                raise NotAvailableError(f"backend {self.name!r} needs the PyPI package {package} "
                                        f"(pip install {package})", param="backend") from None

    def library_versions(self) -> dict[str, str]:
        return {d: package_version(d) for d in ("torch", "transformers", "sentence-transformers", *self.versions)}


@dataclass
class ExportContext:
    """What an export needs: the loaded torch model, wrapped to (input_ids, attention_mask) -> embedding."""

    module: Any  # torch.nn.Module
    tokenize: Callable[[Sequence[str]], dict[str, np.ndarray]]
    calibration: list[str]
    flags: frozenset[str]
    threads: int
    probe_cos: Callable[[Runner], float] | None = None  # mean cosine of a runner's vectors vs torch's on the probes
    min_cos: float = 0.0  # the bound the export is checked against
