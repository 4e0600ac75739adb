"""Backfill an index's gallery with a new model (resumable), and switch a live index atomically.

`backfill` re-reads the items the old index was built from (its manifest names the dataset or
input file; the input fingerprint must match, so a backfill pointed at another corpus is refused),
encodes them with the new model through the resumable encode job (chunks saved atomically; a
killed run resumes where it stopped, every item encoded exactly once), then builds the new index
with the old spec (or another) and writes it atomically. `switch` repoints a symlink that clients
search (`repspace search LIVE`) from the old index to the new one with one atomic rename.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from repspace.datasets import load_dataset, read_input
from repspace.datasets.items import Items
from repspace.encoders import get_encoder
from repspace.encoders.job import encode_items
from repspace.errors import InvalidInputError, OutputExistsError, SpaceFormatError
from repspace.index import Index
from repspace.spaces import Space


def gallery_items(space: Space, items: Items | None = None) -> Items:
    """The items `space` was encoded from (re-read from its manifest unless given), checked by fingerprint."""
    want = space.extra.get("input_fingerprint")
    if want is None:
        raise InvalidInputError("the index's manifest has no input fingerprint, so the corpus cannot be checked; "
                                "re-encode it with `repspace encode`", param="index")
    if items is None:
        source = space.dataset
        if not source:
            raise InvalidInputError("the index's manifest does not name its input; give the items it was built from",
                                    param="items")
        if Path(source).exists():
            items = read_input(source)
        else:
            spec = source + (f":{space.view}" if space.view else "") + (f"@{space.split}" if space.split else "")
            items = load_dataset(spec)
    if len(items) > space.count and items.ids[: space.count] == space.ids:
        items = items.limit(space.count)  # the old space was encoded from the first `count` items (a limit)
    if items.ids != space.ids or items.fingerprint() != want:
        raise InvalidInputError(
            f"the given corpus ({len(items)} items) is not the one the index was built from ({space.count} items, "
            f"input {space.dataset!r}); a backfill must re-encode exactly the indexed items", param="items"
        )
    return items


def backfill(index: str | Path, model: str, out: str | Path, items: Items | None = None, spec: str | None = None,
             batch_size: int = 32, chunk_items: int | None = None, device: str = "cpu", progress: bool = True,
             backend: str = "torch", threads: int | None = None) -> Index:
    """Re-encode the gallery of `index` with `model` and write a new index at `out` (resumable)."""
    index, out = Path(index), Path(out)
    if out.resolve() == index.resolve():
        raise OutputExistsError("out must differ from the live index; switch to it afterwards with `upgrade switch`",
                                param="out")
    old = Index.load(index)
    encoder = get_encoder(model, device=device, backend=backend, threads=threads)
    if encoder.name == old.space.model and encoder.version == old.space.model_version:
        raise InvalidInputError(f"the index already holds {model!r} vectors; nothing to backfill", param="model")
    if old.adaptor is not None and spec is None:
        raise InvalidInputError(f"the old index searches through a {old.adaptor.name} adaptor fitted on the old model; "
                                "give a spec for the new index (and build an adapted one from the new space later)",
                                param="spec")
    items = gallery_items(old.space, items)
    if out.exists():
        try:
            done = Index.load(out)
        except SpaceFormatError:
            raise OutputExistsError(f"{out} exists and is not a repspace index; choose another out", param="out") from None
        if (done.space.model, done.space.model_version, done.space.ids) == (encoder.name, encoder.version, old.space.ids):
            return done  # finished earlier
        raise OutputExistsError(f"{out} holds another index ({done.space.model!r}, {done.space.count} items); "
                                "choose another out", param="out")
    work = out.parent / f".{out.name}.backfill"
    space = encode_items(encoder, items, out=work, batch_size=batch_size, chunk_items=chunk_items, progress=progress)
    new = Index.build(space, spec or str(old.spec))
    new.save(out)
    shutil.rmtree(work, ignore_errors=True)
    return new


def switch(live: str | Path, target: str | Path, force: bool = False) -> Path | None:
    """Point the symlink `live` at index `target` atomically; returns the previous target (for rollback).

    Refuses a target that does not load, and (unless force) one whose items differ from the current one's."""
    live, target = Path(live), Path(target).resolve()
    new = Index.load(target)
    previous = None
    if live.is_symlink():
        previous = Path(os.readlink(live))
        if not force:
            try:
                current = Index.load(live)
            except SpaceFormatError:
                current = None
            if current is not None and current.space.ids != new.space.ids:
                raise InvalidInputError(f"{target} holds other items ({new.space.count}) than the live index "
                                        f"({current.space.count}); pass force=True to switch anyway", param="force")
    elif live.exists():
        raise InvalidInputError(f"{live} is a real directory, not a symlink; serve indexes through a symlink "
                                f"(e.g. move it to {live}.v1 and `upgrade switch {live} {live}.v1`) so switching is atomic",
                                param="live")
    tmp = live.parent / f".{live.name}.switch-{uuid.uuid4().hex[:8]}"
    os.symlink(target, tmp)
    os.replace(tmp, live)
    return previous
