"""`train_objective`: one training loop for every self-supervised objective, resumable per epoch.

The encoder is a `repspace.nets.CompatNet` without classifier (small CNN for grey images, MLP
head over a frozen encoder's space), saved as a model directory (`model.json` + `model.safetensors`)
that `repspace encode --model DIR` loads like any compat model. Labels are never used for training;
they are only carried into spaces for evaluation.

The loop is `repspace.training.fit` (warm-up + cosine learning rate; the objective is the loss, the
encoder inside it). Resuming: after every epoch the full training state (encoder, heads, teachers,
vocabularies, optimizer) is written atomically to ``.<out name>.partial/`` beside the output
(`repspace.training.Checkpoint`). Each epoch's data order and augmentations come from a generator seeded
by (seed, epoch), so a run killed and re-run with the same arguments continues at the next epoch and ends
with the same weights as one uninterrupted run. ``epochs=0`` saves the randomly initialised encoder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from repspace.nets import CompatNet, save_model, training_inputs
from repspace.datasets.items import Items
from repspace.errors import InvalidInputError
from repspace.objectives.losses import dimension_std, effective_rank, singular_spectrum
from repspace.objectives.methods import METHODS, build_objective
from repspace.ops.torchstate import seeded
from repspace.spaces import Space
from repspace.training import Checkpoint, Shuffle, WarmupCosine, fingerprint, fit

DEFAULT_DIM = 128


def monitor(encoder: CompatNet, x: torch.Tensor) -> dict[str, float]:
    """Collapse detectors on fixed un-augmented items: mean / min per-dimension std of the normalised
    representations (about 1/sqrt(dim) when spread, 0 when collapsed) and the effective rank."""
    was = encoder.training
    encoder.eval()
    with torch.no_grad():
        z = torch.cat([encoder(b) for b in x.split(1024)])
    encoder.train(was)
    std = dimension_std(z)
    return {"std_mean": float(std.mean()), "std_min": float(std.min()), "effective_rank": effective_rank(z)}


def _metrics(fn: Callable[[CompatNet], dict[str, float]], encoder: CompatNet) -> dict[str, float]:
    was = encoder.training
    encoder.eval()
    try:
        with torch.no_grad():
            return {k: float(v) for k, v in fn(encoder).items()}
    finally:
        encoder.train(was)


def train_objective(
    method: str,
    out: str | Path,
    items: Items | None = None,
    base_space: Space | None = None,
    arch: str = "cnn",
    dim: int | None = None,
    epochs: int = 10,
    batch_size: int = 256,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    seed: int = 0,
    threads: int | None = None,
    name: str | None = None,
    progress: bool = True,
    limit: int | None = None,
    monitor_items: int = 1000,
    options: dict[str, Any] | None = None,
    on_epoch: Callable[[int, dict], None] | None = None,
    epoch_metrics: Callable[[CompatNet], dict[str, float]] | None = None,
) -> dict[str, Any]:
    """Train an encoder with a self-supervised objective and save it as a model directory; returns its config.

    `limit`: train on the first N items only (after a seeded shuffle). `on_epoch(epoch, row)` is called after
    each epoch's checkpoint is written (tests use it to interrupt a run). `epoch_metrics(encoder)` adds its
    numbers (e.g. a kNN accuracy) to `initial` and to every epoch's history row."""
    if method not in METHODS:
        raise InvalidInputError(f"unknown method {method!r}; choose from {', '.join(METHODS)}", param="method")
    dim = DEFAULT_DIM if dim is None else dim
    for param, value, low in (("epochs", epochs, 0), ("batch_size", batch_size, 2), ("dim", dim, 2)):
        if value < low:
            raise InvalidInputError(f"{param} must be >= {low}, got {value}", param=param)
    out = Path(out)
    options = dict(options or {})
    x, source = training_inputs(items, base_space, arch)
    if limit is not None and limit < len(x):
        x = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:limit]]
    if len(x) < 2:
        raise InvalidInputError("self-supervised training needs at least 2 items")
    with seeded(seed, threads):  # restores torch's RNG state and thread count afterwards
        encoder = CompatNet(arch, dim, 0, "none", 0, source.get("in_dim"))
        objective = build_objective(method, encoder, tuple(x.shape[1:]), **options)
        mon_x = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(seed + 1))[:monitor_items]]

        def row_metrics() -> dict[str, float]:  # the collapse detectors and the caller's numbers
            row = monitor(encoder, mon_x)
            if epoch_metrics is not None:
                row.update(_metrics(epoch_metrics, encoder))
            return row

        initial = row_metrics()

        run = fingerprint({"method": method, "arch": arch, "dim": dim, "epochs": epochs, "batch_size": batch_size,
                           "lr": lr, "weight_decay": weight_decay, "seed": seed, "items": len(x), "input": source,
                           "options": options}, x)
        opt = torch.optim.AdamW(objective.param_groups(), lr=lr, weight_decay=weight_decay)
        checkpoint = Checkpoint.beside(out, run)
        history = fit(objective, x, None, order=Shuffle(len(x), batch_size, seed, rng="epoch", drop_last=True),
                      optimizer=opt, epochs=epochs, schedule=WarmupCosine(lr), checkpoint=checkpoint,
                      label=f"train {method}", progress=progress, on_epoch=on_epoch,
                      epoch_metrics=row_metrics)
        encoder.eval()
        with torch.no_grad():
            spectrum = singular_spectrum(torch.cat([encoder(b) for b in mon_x.split(1024)]))
        config = {
            "name": name or out.name, "arch": arch, "dim": dim, "extra_dims": 0, "method": method, "classifier": "none",
            "classes": [], "trained_classes": [], "self_supervised": True, "train_items": len(x), "epochs": epochs,
            "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay, "seed": seed, "input": source,
            "in_dim": source.get("in_dim"), "options": options, "initial": initial, "history": history,
            "spectrum": [float(s) for s in spectrum / spectrum.max().clamp_min(1e-12)],
        }
        save_model(out, encoder, config)
        checkpoint.clear()
        return config
