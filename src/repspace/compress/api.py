"""Fitting a compressor on a Space (what the CLI calls), beside `repspace.alignment.fit_translator`.

The compressor is fitted on the *train* half of the space's ids (`repspace.datasets.split_ids`), so the
test half stays held out for evaluation; with `pairs` (a space of paired queries of the same model) on the
train ids both spaces share.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from repspace.compress.base import Compressor
from repspace.datasets import split_ids
from repspace.errors import InvalidInputError, UnknownNameError
from repspace.spaces import Space


def methods() -> tuple[str, ...]:
    """The registered compressor names, in registration order (pca, matryoshka, csr, then any added)."""
    import repspace.compress.registered  # noqa: F401  (registers the built-in methods)

    return tuple(Compressor.registry)


def choices(names: Sequence[str]) -> str:
    """'a, b or c'."""
    return " or ".join(filter(None, (", ".join(names[:-1]), names[-1]))) if names else ""


def make_compressor(method: str, **options: Any) -> Compressor:
    """A fresh compressor of a registered method. Each option (dims, epochs, kind, k, hidden, seed, ...) goes
    to the methods whose `__init__` takes it; options that are None keep the method's default."""
    names = methods()
    if method not in names:
        raise UnknownNameError(f"unknown compression method {method!r}; choose {choices(names)}", param="method")
    cls = Compressor.registry[method]
    takes = cls._param_names()
    return cls(**{k: v for k, v in options.items() if v is not None and k in takes})  # type: ignore[return-value]


def fit_compressor(space: Space, method: str = "matryoshka", pairs: Space | None = None,
                   unlabelled: Sequence[Space] | Space | None = None, **options: Any) -> Compressor:
    """Fit `method` on the train half of `space`'s ids (those `pairs` shares, when given; its vectors are
    then the paired queries for supervised training). `unlabelled`: spaces of the same model (all of their
    items, e.g. `repspace encode --dataset gcide`) that the unsupervised objectives train on too.
    options: see `make_compressor`."""
    comp = make_compressor(method, **options)
    extra = None
    if unlabelled is not None:
        spaces = [unlabelled] if isinstance(unlabelled, Space) else list(unlabelled)
        for u in spaces:
            if u.model != space.model or u.dim != space.dim:
                raise InvalidInputError(f"unlabelled spaces must be of the space's model ({space.model}, {space.dim}-d);"
                                        f" got {u.model} ({u.dim}-d)", param="unlabelled")
        extra = np.vstack([np.asarray(u.vectors) for u in spaces]) if spaces else None
    train, _ = split_ids(space.ids)
    P = None
    if pairs is not None:
        if pairs.model != space.model or pairs.dim != space.dim:
            raise InvalidInputError(f"pairs must be a space of the same model ({space.model}, {space.dim}-d)",
                                    param="pairs")
        shared = set(pairs.ids)
        train = [i for i in train if i in shared]
        if not train:
            raise InvalidInputError("the pairs space shares no training ids with the space", param="pairs")
        P = np.asarray(pairs.select(train).vectors)
    return comp.fit(np.asarray(space.select(train).vectors), source=space, pairs=P, unlabelled=extra)
