"""What a slot can hold and how it is searched: a model's record (`describe_model`) and the collection's spec
fitted to each slot's dimension."""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Iterator, Mapping

from repspace.errors import DimensionMismatchError, InvalidInputError, UnknownNameError
from repspace.index.spec import IndexSpec, parse_spec


def describe_model(model: str, dim: int | None, model_version: str | None, device: str = "cpu",
                   backend: str = "torch", threads: int | None = None) -> dict[str, Any]:
    """A slot's model record: a repspace model (name, directory, registered callable or `openai:NAME@URL`) is loaded
    to read its dim and version (which records the encoder backend, see `encoders.backends.backend_version`, or a
    remote model's probe fingerprint); any other name is an external model whose vectors the user brings (then `dim`
    is required)."""
    from repspace.encoders import MODELS, is_model

    known = is_model(model)  # built-in, registered, remote (openai:NAME@URL: version = its probe fingerprint) or a directory
    if known:
        from repspace.encoders import get_encoder

        enc = get_encoder(model, device=device, dim=dim, backend=backend, threads=threads)
        if dim is not None and dim != enc.dim:
            raise DimensionMismatchError(f"model {model!r} makes {enc.dim}-d vectors, not {dim}", param="dim")
        return {"model": model if Path(model).is_dir() else enc.name, "model_version": enc.version, "dim": int(enc.dim),
                "modality": enc.modality, "normalized": bool(enc.normalized), "encodes": True}
    if dim is None or dim < 1:
        raise UnknownNameError(f"model {model!r} is not a repspace model (built-in: {', '.join(MODELS)}, or a model "
                               "directory); for vectors from another model, give its dimension (dim) and upsert "
                               "vectors", param="model")
    return {"model": model, "model_version": model_version or "", "dim": int(dim), "modality": "external",
            "normalized": False, "encodes": False}


def slot_encoder(s: Any, device: str, backend: str | None, threads: int | None):
    """The encoder of a slot's model (on `backend`, default the one the slot recorded), refused when it would not
    make the slot's vectors (another backend, or a model that changed: `ModelChangedError`)."""
    from repspace.encoders import get_encoder
    from repspace.encoders.backends import backend_of_version
    from repspace.errors import ModelChangedError

    enc = get_encoder(s.model, device=device, backend=backend or backend_of_version(s.model_version), threads=threads)
    refuse_mixed_backends(s, enc)
    if enc.version != s.model_version:
        raise ModelChangedError(f"model {s.model!r} here is version {enc.version}, the slot {s.name!r} holds version "
                                f"{s.model_version}: its vectors would not be comparable", param="model")
    return enc


def refuse_mixed_backends(slot: Any, enc: Any) -> None:
    """An encoder of the slot's model on another backend than the slot recorded would mix two backends' vectors."""
    from repspace.encoders.backends import backend_of_version, base_of_version
    from repspace.errors import CollectionError

    recorded = backend_of_version(slot.model_version)
    if enc.backend != recorded and base_of_version(enc.version) == base_of_version(slot.model_version):
        raise CollectionError(
            f"slot {slot.name!r} holds vectors of {slot.model!r} made with backend {recorded!r}; encoding with backend "
            f"{enc.backend!r} would mix two backends' vectors in one slot. Check whether they are compatible "
            "(`repspace compat` on spaces encoded with both), then move the collection as an upgrade (`repspace upgrade "
            f"start` with the same model and backend {enc.backend!r}), or leave the backend unset to use the recorded "
            "one", param="backend")


def collection_spec(text: str | IndexSpec) -> IndexSpec:
    """A spec a live collection can serve (static-only kinds refused)."""
    from repspace.index import KINDS

    spec = parse_spec(text) if isinstance(text, str) else text
    if spec.static_only:
        live = [k.usage for k in KINDS.values() if not k.static_only]
        raise InvalidInputError(f"spec {str(spec)!r} is for static indexes; collections take "
                                f"{', '.join(live[:-1])} or {live[-1]}", param="spec")
    return spec


def check_spec_fits(spec: IndexSpec, dim: int) -> None:
    if spec.kind == "funnel" and spec.stages[-1] != dim:
        raise DimensionMismatchError(f"funnel {spec} must end at the model's dimension {dim} "
                                     f"(e.g. funnel:{min(64, dim)}/{dim})", param="spec")


def fit_spec(spec: IndexSpec, dim: int) -> IndexSpec:
    """A funnel written for one slot's dimension, adapted to another slot's (prefixes kept where they fit)."""
    if spec.kind != "funnel" or spec.stages[-1] == dim:
        return spec
    stages = tuple(d for d in spec.stages if d < dim) + (dim,)
    if len(stages) < 2:
        return IndexSpec("flat")
    return IndexSpec("funnel", stages=stages, shortlist=spec.shortlist)


#: one search call's options (`Collection.search(options=…)`): per thread and task, so a handle shared by a service's
#: requests never sees another request's options (the in-memory layer is retuned under the collection's lock)
CALL_OPTIONS: ContextVar[dict[str, int]] = ContextVar("repspace_search_options", default={})


@contextmanager
def call_options(spec: str, options: Mapping[str, int | None] | None) -> Iterator[None]:
    """Search with `options` over the spec's own while the block runs (checked first: an option the spec has not, or
    < 1, is refused naming `options`)."""
    given = {o: v for o, v in (options or {}).items() if v is not None}
    if not given:
        yield
        return
    parse_spec(spec).with_options(given)
    token = CALL_OPTIONS.set({**CALL_OPTIONS.get(), **given})
    try:
        yield
    finally:
        CALL_OPTIONS.reset(token)
