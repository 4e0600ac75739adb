"""Resumable encoding: items -> Space, written in chunks that survive SIGKILL.

Items are ordered by length (longest first, like sentence-transformers) so batches pad
little; the ordered list is cut into fixed chunks of whole batches. Each finished chunk
is saved atomically under ``.<out>.partial/``; a re-run of the same job skips the chunks
that exist, so the final space is identical to an uninterrupted run and holds every item
exactly once. The partial directory is removed once the space is written.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from repspace._io import save_npy, write_json
from repspace.datasets.items import Items
from repspace.encoders.base import Encoder
from repspace.encoders.identity import check_same_model
from repspace.errors import InvalidInputError, InvalidVectorsError, OutputExistsError, SpaceFormatError
from repspace.ops.progress import progress_bar  # noqa: F401  (re-exported for old imports)
from repspace.spaces.space import Space, check_finite, read_manifest

DEFAULT_CHUNK_ITEMS = 256


def encode_order(encoder: Encoder, items: Items) -> np.ndarray:
    """Positions of items in encoding order: longest first, ties by original position."""
    keys = np.asarray([-encoder.sort_key(x) for x in items.data], dtype=np.int64)
    return np.argsort(keys, kind="stable")


def _space_meta(encoder: Encoder, items: Items, fingerprint: str) -> dict[str, Any]:
    src = items.source
    return dict(model=encoder.name, model_version=encoder.version, dataset=src.get("dataset") or src.get("input"),
                view=src.get("view"), split=src.get("split"), normalized=encoder.normalized,
                extra={"input_fingerprint": fingerprint, "modality": items.modality, **encoder.space_extra()})


def _job_record(encoder: Encoder, items: Items, fingerprint: str, batch_size: int, chunk_items: int) -> dict[str, Any]:
    return {"model": encoder.name, "model_version": encoder.version, "input_fingerprint": fingerprint,
            "count": len(items), "dim": encoder.dim, "batch_size": batch_size, "chunk_items": chunk_items}


def _check_output(out: Path, encoder: Encoder, fingerprint: str, overwrite: bool) -> Space | None:
    """Return the finished space if `out` already holds exactly this job; refuse foreign content."""
    if not out.exists():
        return None
    if overwrite:
        return None
    try:
        manifest = read_manifest(out)
    except SpaceFormatError:
        if out.is_dir() and not any(out.iterdir()):
            return None
        raise OutputExistsError(f"{out} exists and is not a repspace space; choose another output or pass overwrite=True",
                                param="overwrite") from None
    if manifest.get("model") == encoder.name:
        check_same_model(encoder.name, manifest.get("model_version"), encoder.version, f"the space {out}")
    if manifest.get("model") != encoder.name or manifest.get("model_version") != encoder.version:
        raise OutputExistsError(
            f"{out} holds a space of model {manifest.get('model')!r}, not {encoder.name!r}; "
            "choose another output or pass overwrite=True", param="overwrite"
        )
    if manifest.get("extra", {}).get("input_fingerprint") != fingerprint:
        raise OutputExistsError(f"{out} holds a space of other input items; choose another output or pass "
                                "overwrite=True", param="overwrite")
    return Space.load(out)


def whole_batches(batch_size: int, chunk_items: int | None) -> int:
    """Items per chunk, rounded up to whole batches (so every engine forms the same batches)."""
    chunk_items = chunk_items or DEFAULT_CHUNK_ITEMS
    return max(batch_size, (chunk_items + batch_size - 1) // batch_size * batch_size)


def partial_dir(out: Path) -> Path:
    """Where the finished chunks of an encode into `out` live until the space is written."""
    return out.parent / f".{out.name}.partial"


def chunk_file(work: Path, chunk: int) -> Path:
    return work / f"chunk-{chunk:06d}.npy"


def open_partial(out: Path, record: dict[str, Any], overwrite: bool) -> Path:
    """Create (or reuse, if it holds the same job `record`) the partial directory of `out`."""
    work = partial_dir(out)
    job_file = work / "job.json"
    if work.exists():
        try:
            old = json.loads(job_file.read_text())
        except (OSError, ValueError):
            old = None
        if old != record:
            if not overwrite and old is not None and old.get("model") == record["model"]:
                check_same_model(record["model"], old.get("model_version"), record["model_version"],
                                 f"the interrupted encode in {work}")
            if not overwrite and old is not None:
                raise OutputExistsError(
                    f"an interrupted encode of a different job is in {work} "
                    f"(model {old.get('model')!r}, {old.get('count')} items, batch {old.get('batch_size')}); "
                    "re-run that command to finish it, or pass overwrite=True to discard it", param="overwrite"
                )
            shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    write_json(job_file, record)
    return work


def encode_items(
    encoder: Encoder,
    items: Items,
    out: str | Path | None = None,
    batch_size: int = 32,
    chunk_items: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Space:
    """Encode `items` into a Space; with `out`, write it there (resumable, atomic).

    items: n texts or images, n >= 1. Returns a Space of (n, encoder.dim) float32.
    """
    if items.modality != encoder.modality:
        raise InvalidInputError(f"model {encoder.name!r} encodes {encoder.modality}, but the input holds {items.modality}")
    if batch_size <= 0:
        raise InvalidInputError(f"batch_size must be positive, got {batch_size}", param="batch_size")
    chunk_items = whole_batches(batch_size, chunk_items)
    fingerprint = items.fingerprint()
    out_path = Path(out) if out is not None else None
    if out_path is not None:
        done = _check_output(out_path, encoder, fingerprint, overwrite)
        if done is not None:
            return done
    order = encode_order(encoder, items)
    n = len(items)
    n_chunks = (n + chunk_items - 1) // chunk_items
    work = None
    if out_path is not None:
        work = open_partial(out_path, _job_record(encoder, items, fingerprint, batch_size, chunk_items), overwrite)

    if work is not None:
        existing = sum((work / f"chunk-{c:06d}.npy").is_file() for c in range(n_chunks))
        if existing:
            from rich.console import Console

            Console(stderr=True).print(f"resuming: {existing} of {n_chunks} chunks already encoded in {work}")
    vectors = np.empty((n, encoder.dim), dtype=np.float32)
    with progress_bar(progress) as bar:
        task = bar.add_task(f"{encoder.name}", total=n, rate="")
        for c in range(n_chunks):
            pos = order[c * chunk_items : (c + 1) * chunk_items]
            chunk_file = work / f"chunk-{c:06d}.npy" if work is not None else None
            block = None
            if chunk_file is not None and chunk_file.is_file():
                try:
                    block = np.load(chunk_file, allow_pickle=False)
                    if block.shape != (len(pos), encoder.dim):
                        block = None
                except Exception:
                    block = None  # damaged chunk: recompute it
            if block is None:
                parts = []
                # an encoder that sends its own concurrent requests (an endpoint) takes the whole chunk at once
                step = len(pos) if getattr(encoder, "concurrent", False) else batch_size
                for b in range(0, len(pos), step):
                    batch = [items.data[k] for k in pos[b : b + step]]
                    parts.append(np.asarray(encoder.encode_batch(batch), dtype=np.float32))
                    bar.update(task, advance=len(batch))
                    speed = bar.tasks[0].speed
                    bar.update(task, rate=f"{speed:,.1f} items/s" if speed else "")
                block = np.concatenate(parts)
                try:
                    check_finite(block, what=f"vectors from {encoder.name}")
                except InvalidVectorsError as e:
                    raise InvalidVectorsError(f"{e} (item ids near {items.ids[pos[0]]!r})") from None
                if chunk_file is not None:
                    save_npy(chunk_file, block)
            else:
                bar.update(task, advance=len(pos))
            vectors[pos] = block

    space = Space(vectors, items.ids, items.labels, validate=False, **_space_meta(encoder, items, fingerprint))
    if out_path is not None:
        space.save(out_path, overwrite=True)
        shutil.rmtree(work, ignore_errors=True)
    return space
