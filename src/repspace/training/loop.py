"""`fit`: the training loop every trained network of repspace runs through."""

from __future__ import annotations

import time
from typing import Any, Callable

import torch

from repspace.errors import InvalidInputError
from repspace.ops.progress import progress_bar
from repspace.training.checkpoint import Checkpoint
from repspace.training.loss import TrainingLoss
from repspace.training.order import Shuffle
from repspace.training.schedule import Schedule


def take(data: Any, rows: torch.Tensor) -> Any:
    """The batch of `data` at `rows`: a tensor indexed, a tuple taken column by column, a sequence item by item."""
    if data is None or torch.is_tensor(data):
        return None if data is None else data[rows]
    if isinstance(data, tuple):
        return tuple(take(column, rows) for column in data)
    return [data[i] for i in rows.tolist()]


def fit(loss: TrainingLoss, x: Any, y: torch.Tensor | None, *, order: Shuffle, optimizer: torch.optim.Optimizer,
        epochs: int, schedule: Schedule | None = None, checkpoint: Checkpoint | None = None, label: str = "train",
        progress: bool = True, epoch_metrics: Callable[[], dict[str, float]] | None = None,
        on_epoch: Callable[[int, dict], None] | None = None) -> list[dict[str, Any]]:
    """Train `loss`'s model for `epochs` epochs over the rows of `x` (and labels `y`) in `order`; returns the
    history, one row per epoch: ``epoch``, ``loss`` (the mean over the epoch's items), ``seconds``, and what
    `epoch_metrics()` adds.

    Each step: ``schedule.before_step``, ``loss(x[rows], y[rows], rows=rows, generator=g)`` (a non-finite loss
    is an `InvalidInputError` naming ``lr``), ``optimizer.step()``, ``schedule.after_step()``,
    ``loss.after_step(step, total)``. With `checkpoint`, the state is written after every epoch and, when one
    of this run is there, restored first, so the run continues at the next epoch (`epochs` 0 ignores it).
    `on_epoch(epoch, row)` is called after the epoch's checkpoint is written. Run it inside
    `ops.torchstate.seeded`: the loop draws from torch's global RNG where the loss does."""
    schedule = schedule or Schedule()
    per_epoch = len(order)
    total = epochs * per_epoch
    schedule.start(optimizer, total)
    history: list[dict[str, Any]] = []
    start = 0
    if checkpoint is not None and epochs:
        resumed = checkpoint.load(loss, optimizer, schedule, order)
        if resumed is not None:
            start, history = resumed
    with progress_bar(progress) as bar:
        task = bar.add_task(label, total=max(total, 1), completed=start * per_epoch, rate="")
        for epoch in range(start, epochs):
            loss.train()
            batches, g = order.epoch(epoch)
            t0, tot, seen = time.perf_counter(), 0.0, 0
            for k, rows in enumerate(batches):
                step = epoch * per_epoch + k
                schedule.before_step(step)
                value = loss(take(x, rows), take(y, rows), rows=rows, generator=g)
                if not torch.isfinite(value):
                    raise InvalidInputError(f"{label}: the loss became {value.item()} at epoch {epoch + 1}; "
                                            "try a lower learning rate", param="lr")
                optimizer.zero_grad()
                value.backward()
                optimizer.step()
                schedule.after_step()
                loss.after_step(step + 1, total)
                tot += value.item() * len(rows)
                seen += len(rows)
                bar.update(task, advance=1, rate=f"loss {tot / seen:.3f}")
            row = {"epoch": epoch + 1, "loss": tot / max(1, seen), "seconds": time.perf_counter() - t0}
            if epoch_metrics is not None:
                row.update(epoch_metrics())
            history.append(row)
            if checkpoint is not None:
                checkpoint.save(loss, optimizer, schedule, order, epoch + 1, history)
            if on_epoch is not None:
                on_epoch(epoch + 1, row)
    return history
