"""Benchmark spaces: encoded once into a cache directory (resumable), reused by every benchmark."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from repspace import Space, encode_items, get_encoder, load_dataset

CACHE = Path(os.environ.get("REPSPACE_BENCH_SPACES", Path.home() / ".cache" / "repspace" / "bench-spaces"))


def bench_space(model: str, dataset: str, sample: int | None = None, seed: int = 0, backend: str = "torch",
                progress: bool = True) -> Space:
    """`dataset` spec encoded by `model` (on encoder `backend`); with `sample`, a fixed random subset of that many
    items."""
    name = (f"{model}--{dataset.replace(':', '-').replace('@', '-')}" + (f"--{sample}" if sample else "")
            + ("" if backend == "torch" else f"--{backend}"))
    out = CACHE / name
    if (out / "manifest.json").is_file():
        return Space.load(out)
    items = load_dataset(dataset)
    if sample is not None and sample < len(items):
        items = items.subset(np.sort(np.random.default_rng(seed).choice(len(items), sample, replace=False)))
    return encode_items(get_encoder(model, backend=backend), items, out=out, batch_size=32, progress=progress)


def load_items(*specs: str):
    """The items of one or more dataset specs, in order, as one `Items` (e.g. gcide + gcide-senses)."""
    data = load_dataset(specs[0])
    for spec in specs[1:]:
        more = load_dataset(spec)
        data = type(data)(data.ids + more.ids, list(data.data) + list(more.data), data.modality, None, data.source)
    return data


def bbc_held_out(model: str) -> tuple[np.ndarray, np.ndarray, Space, Space]:
    """The compact-search protocol: train bodies X and their titles P (pairs) to fit on, and the
    held-out test titles and bodies (same order) to score on."""
    from repspace.datasets import hash_split

    titles, bodies = bench_space(model, "bbc-news:title"), bench_space(model, "bbc-news:body")
    train = [i for i in bodies.ids if hash_split(i) == "train"]
    test = [i for i in bodies.ids if hash_split(i) == "test"]
    return (np.asarray(bodies.select(train).vectors), np.asarray(titles.select(train).vectors),
            titles.select(test), bodies.select(test))
