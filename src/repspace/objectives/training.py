"""`train_objective`: one training loop for every self-supervised objective, resumable per epoch.

The encoder is a `repspace.nets.CompatNet` without classifier (small CNN for grey images, MLP
head over a frozen encoder's space), saved as a model directory (`model.json` + `model.safetensors`)
that `repspace encode --model DIR` loads like any compat model. Labels are never used for training;
they are only carried into spaces for evaluation.

Resuming: after every epoch the full training state (encoder, heads, teachers, vocabularies, optimizer)
is written atomically to ``.<out name>.partial/`` beside the output (safetensors + JSON, no pickle).
Each epoch's data order and augmentations come from a generator seeded by (seed, epoch), so a run
killed and re-run with the same arguments continues at the next epoch and ends with the same weights
as one uninterrupted run. ``epochs=0`` saves the randomly initialised encoder.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import torch

from repspace._io import atomic_dir
from repspace.nets import CompatNet, save_model, training_inputs
from repspace.datasets.items import Items
from repspace.errors import InvalidInputError
from repspace.objectives.losses import dimension_std, effective_rank, singular_spectrum
from repspace.objectives.methods import METHODS, build_objective
from repspace.ops.progress import progress_bar
from repspace.ops.torchstate import seeded
from repspace.spaces import Space

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


def _lr_at(step: int, total: int, lr: float, warmup: float = 0.1) -> float:
    w = max(1, int(warmup * total))
    if step < w:
        return lr * (step + 1) / w
    return lr * 0.5 * (1 + math.cos(math.pi * (step - w) / max(1, total - w)))


def _partial_dir(out: Path) -> Path:
    return out.parent / f".{out.name}.partial"


def _save_checkpoint(path: Path, objective: torch.nn.Module, opt: torch.optim.Optimizer, meta: dict) -> None:
    from safetensors.torch import save_file

    tensors = {f"obj.{k}": v.detach().cpu().contiguous().clone() for k, v in objective.state_dict().items()}
    opt_state = opt.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for idx, st in opt_state["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"opt.{idx}.{k}"] = v.detach().cpu().contiguous().clone()
            else:
                scalars.setdefault(str(idx), {})[k] = v
    meta = {**meta, "opt_scalars": scalars, "opt_groups": opt_state["param_groups"]}
    with atomic_dir(path) as tmp:
        save_file(tensors, str(tmp / "state.safetensors"))
        (tmp / "state.json").write_text(json.dumps(meta, indent=1))


def _load_checkpoint(path: Path, objective: torch.nn.Module, opt: torch.optim.Optimizer) -> dict:
    from safetensors.torch import load_file

    meta = json.loads((path / "state.json").read_text())
    tensors = load_file(str(path / "state.safetensors"))
    objective.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("obj.")})
    state: dict[int, dict[str, Any]] = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, idx, name = k.split(".", 2)
            state.setdefault(int(idx), {})[name] = v
    for idx, sc in meta["opt_scalars"].items():
        state.setdefault(int(idx), {}).update(sc)
    opt.load_state_dict({"state": state, "param_groups": meta["opt_groups"]})
    return meta


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
        initial = monitor(encoder, mon_x)
        if epoch_metrics is not None:
            initial.update(_metrics(epoch_metrics, encoder))

        fingerprint = hashlib.sha256(json.dumps(
            {"method": method, "arch": arch, "dim": dim, "epochs": epochs, "batch_size": batch_size, "lr": lr,
             "weight_decay": weight_decay, "seed": seed, "items": len(x), "input": source, "options": options,
             "x": hashlib.sha256(x[: min(len(x), 64)].numpy().tobytes()).hexdigest()}, sort_keys=True).encode()).hexdigest()[:16]
        opt = torch.optim.AdamW(objective.param_groups(), lr=lr, weight_decay=weight_decay)
        drop_last = len(x) > batch_size
        per_epoch = len(x) // batch_size if drop_last else 1
        total = epochs * per_epoch
        history: list[dict[str, Any]] = []
        start = 0
        partial = _partial_dir(out)
        if epochs and (partial / "state.json").is_file():
            meta = json.loads((partial / "state.json").read_text())
            if meta.get("fingerprint") != fingerprint:
                raise InvalidInputError(f"{partial} holds a partial run with other settings (method, data, epochs, …); "
                                        "re-run with the same arguments to resume it, or delete it to start over")
            meta = _load_checkpoint(partial, objective, opt)
            start, history = int(meta["epoch"]), list(meta["history"])
        with progress_bar(progress) as bar:
            task = bar.add_task(f"train {method}", total=max(total, 1), completed=start * per_epoch, rate="")
            for epoch in range(start, epochs):
                objective.train()
                g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
                order = torch.randperm(len(x), generator=g)
                batches = order.split(batch_size)
                if drop_last:
                    batches = batches[:per_epoch]
                t0, tot = time.perf_counter(), 0.0
                for k, b in enumerate(batches):
                    step = epoch * per_epoch + k
                    for group in opt.param_groups:  # a group marked fixed_lr (SimSiam's predictor) keeps the base lr
                        group["lr"] = lr if group.get("fixed_lr") else _lr_at(step, total, lr)
                    loss = objective.loss(x[b], g)
                    if not torch.isfinite(loss):
                        raise InvalidInputError(f"{method}: the loss became {loss.item()} at epoch {epoch + 1}; "
                                                "try a lower learning rate", param="lr")
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    objective.after_step(step + 1, total)
                    tot += loss.item()
                    bar.update(task, advance=1, rate=f"loss {tot / (k + 1):.3f}")
                row = {"epoch": epoch + 1, "loss": tot / max(1, len(batches)), "seconds": time.perf_counter() - t0,
                       **monitor(encoder, mon_x)}
                if epoch_metrics is not None:
                    row.update(_metrics(epoch_metrics, encoder))
                history.append(row)
                _save_checkpoint(partial, objective, opt, {"epoch": epoch + 1, "history": history, "fingerprint": fingerprint})
                if on_epoch is not None:
                    on_epoch(epoch + 1, row)
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
        shutil.rmtree(partial, ignore_errors=True)
        return config
