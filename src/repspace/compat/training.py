"""`train_model`: train a (backward-)compatible embedding model and save it as a model directory.

Protocol (BCT paper, scaled to CPU): an old model is trained on part of the classes (`classes`)
or part of the data (`fraction`); a new model on everything, with one of `METHODS`. Old and new
are compared with `repspace compat` on spaces of the test split encoded by both. The loss (one of
`repspace.compat.losses`, the model inside) trains in `repspace.training.fit` with a one-cycle schedule;
after every epoch the training state is written to ``.<out name>.partial/`` beside the output, so a killed
run re-run with the same arguments resumes at the next epoch with the weights of an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from repspace.compat.losses import METHODS, CompatLoss, get_loss
from repspace.compat.losses.influence import old_embeddings
from repspace.datasets.builtin import FASHION_CLASSES
from repspace.datasets.items import Items
from repspace.errors import DimensionMismatchError, InvalidInputError
from repspace.nets import CompatNet, load_model, save_model, training_inputs
from repspace.ops.torchstate import seeded
from repspace.spaces import Space
from repspace.training import Checkpoint, OneCycle, Shuffle, fingerprint, fit

DEFAULT_DIM = 32
DEFAULT_STEPS = 1000  # default --epochs: enough epochs for about this many optimiser steps ...
MIN_EPOCHS = 10  # ... and at least this many epochs (a new model on 60,000 images needs them to beat an old one)


__all__ = ["DEFAULT_DIM", "METHODS", "old_prototypes", "parse_classes", "train_model"]


def init_seed(seed: int, method: str, classes: Sequence[str] | None, fraction: float | None) -> int:
    """The seed of a model's initial weights: `seed` mixed with the training setup, so an old model and a new
    one trained with the same --seed (e.g. the old on --fraction 0.3, the new on everything) start from
    different weights. Two models from the same initialisation are partly compatible by construction, which
    made the "independent" baseline look compatible."""
    key = f"{seed}|{method}|{','.join(classes) if classes else '*'}|{fraction}"
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)


def default_epochs(n_items: int, batch_size: int, steps: int = DEFAULT_STEPS) -> int:
    return max(MIN_EPOCHS, math.ceil(steps / max(1, math.ceil(n_items / batch_size))))


def class_order(labels: np.ndarray, dataset: str | None) -> list[str]:
    """The dataset's canonical class list (Fashion-MNIST's 0-9 order; digits 0-9; else sorted names)."""
    present = sorted({str(x) for x in labels})
    if dataset == "fashion-mnist":
        return list(FASHION_CLASSES)
    if all(p.isdigit() for p in present):
        return sorted(present, key=int)
    return present


def parse_classes(spec: str | None, classes: Sequence[str]) -> list[str]:
    """'0-4' / '0,2,7' (indices into `classes`) or 'coat,bag' (names) -> class names; None = all."""
    if not spec:
        return list(classes)
    picked: list[str] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        lo, dash, hi = part.partition("-")
        if dash and lo.isdigit() and hi.isdigit():
            idx = list(range(int(lo), int(hi) + 1))
        elif part.isdigit() and part not in classes:
            idx = [int(part)]
        elif part in classes:
            picked.append(part)
            continue
        else:
            raise InvalidInputError(f"classes: {part!r} is neither a class index range (e.g. 0-4) nor a class; "
                                    f"classes: {', '.join(classes)}", param="classes")
        bad = [i for i in idx if i >= len(classes)]
        if bad:
            raise InvalidInputError(f"classes: index {bad[0]} out of range; there are {len(classes)} classes "
                                    f"(0-{len(classes) - 1})", param="classes")
        picked.extend(classes[i] for i in idx)
    return list(dict.fromkeys(picked))


def _training_inputs(items: Items | None, base_space: Space | None, arch: str) -> tuple[torch.Tensor, np.ndarray, dict]:
    """(inputs, labels, input description for the config)."""
    x, source = training_inputs(items, base_space, arch)
    labels = base_space.labels if arch == "mlp" else items.labels
    if labels is None:
        raise InvalidInputError(f"the base space {base_space.model!r} has no labels to train on" if arch == "mlp"
                                else "the dataset has no labels to train on")
    return x, np.asarray(labels).astype(str), source


def _old_weight(old: CompatNet, old_config: dict, classes: list[str], new_y: np.ndarray,
                old_inputs: torch.Tensor | None) -> torch.Tensor:
    """The old classifier with rows in `classes` order; rows of classes the old model never learned are the
    mean old-model feature of that class (BCT's synthesised classifier for new classes), at the old rows' norm."""
    if old_config["classes"] != classes:
        raise InvalidInputError(
            f"the old model's classifier covers classes {old_config['classes']} but this dataset's label set is "
            f"{classes}; train the old model on the same dataset"
        )
    w = old.classifier_weight().detach().clone()
    if old.classifier_kind == "simplex":
        return w  # fixed vertices exist for every class
    known = set(old_config.get("trained_classes", classes))
    missing = [c for c in classes if c not in known]
    if missing:
        if old_inputs is None:
            raise InvalidInputError("the old model needs the same inputs as the new one to synthesise classes it never saw")
        scale = w[[classes.index(c) for c in known]].norm(dim=1).mean()
        with torch.no_grad():
            for c in missing:
                rows = torch.from_numpy(np.flatnonzero(new_y == c))[:2000]
                mean = old.features(old_inputs[rows]).mean(0)
                w[classes.index(c)] = mean / mean.norm().clamp_min(1e-12) * scale
    return w


def old_prototypes(old: CompatNet, classes: list[str], y: np.ndarray, x: torch.Tensor,
                   per_class: int = 2000) -> torch.Tensor:
    """(num_classes, dim): the mean of the old model's L2-normalised embeddings of each class's training
    items — where the old gallery puts each class, also the classes the old model never learned."""
    rows = []
    for c in classes:
        idx = torch.from_numpy(np.flatnonzero(y == c))[:per_class]
        if len(idx) == 0:
            raise InvalidInputError(f"no training items of class {c!r} to build the old model's prototype from")
        rows.append(old_embeddings(old, x[idx]).mean(0))
    return torch.stack(rows)


def train_model(
    arch: str,
    dim: int | None,
    method: str,
    out: str | Path,
    items: Items | None = None,
    base_space: Space | None = None,
    old: str | Path | None = None,
    classes: str | None = None,
    fraction: float | None = None,
    epochs: int | None = 3,
    batch_size: int = 128,
    lr: float = 1e-3,
    alpha: float | None = None,
    extra_dims: int | None = None,
    seed: int = 0,
    threads: int | None = None,
    name: str | None = None,
    progress: bool = True,
    classifier: str | None = None,
    influence: str = "auto",
    influence_scale: float | None = None,
) -> dict[str, Any]:
    """Train and save a model directory; returns its config (with per-epoch loss and seconds).

    dim None: the old model's dimension (bct, bt2), else `DEFAULT_DIM`; epochs None: enough epochs for ~`DEFAULT_STEPS` steps on the training items
    (at least `MIN_EPOCHS`; the CLI's default). classifier: "linear" (default), "cosine" (normalised features and
    weights, learned scale) or "simplex" (fixed d-Simplex; implied by method "dsimplex"). alpha (bct, bt2): the
    influence weight, default the loss's `default_alpha` (bct 1, bt2 3).
    influence (bct, bt2): "auto" (the default, `auto_influence`: when both models take the same inputs, "gallery"
    if the new model trains on classes the old one never saw, else "nca"; otherwise "classifier"), "classifier"
    (the paper: the old classifier, synthesised rows for new classes), "nca" (the old classifier plus the soft
    1-NN class term of `GalleryInfluence` among the old model's embeddings of the training items, cosine at scale
    `influence_scale`, default 32: the closed set),
    "prototypes" (bct: cosine cross-entropy at scale `influence_scale`, default 16, against the old model's
    class-mean embeddings of every class, `old_prototypes`) or "gallery" (each new feature must find its own
    item's old embedding and its class among the old model's embeddings of the training items, cosine at
    scale `influence_scale`, default 128; `GalleryInfluence`)."""
    if method not in METHODS:
        from repspace.compat.methods import SELF_SUPERVISED_METHODS as SSL_METHODS

        raise InvalidInputError(f"unknown method {method!r}; choose from {', '.join(METHODS)} (with labels) or "
                                f"{', '.join(SSL_METHODS)} (without labels)", param="method")
    loss_cls = get_loss(method)
    if loss_cls.needs_old_model and old is None:
        raise InvalidInputError(f"method {method!r} trains against an old model: pass the old model's directory",
                                param="old")
    if (epochs is not None and epochs < 1) or batch_size < 1:
        raise InvalidInputError("epochs and batch_size must be positive", param="epochs" if batch_size >= 1 else "batch_size")
    if influence not in INFLUENCES:
        raise InvalidInputError(f"unknown influence {influence!r}; choose from {', '.join(INFLUENCES)}", param="influence")
    if influence_scale is not None and not loss_cls.needs_old_model:
        raise InvalidInputError(f"influence_scale is for methods trained against an old model (bct, bt2), not {method!r}",
                                param="influence_scale")
    if influence not in ("auto", "classifier") and not loss_cls.needs_old_model:
        raise InvalidInputError(f"influence {influence!r} is for methods trained against an old model (bct, bt2), "
                                f"not {method!r}", param="influence")
    if alpha is None:
        alpha = loss_cls.default_alpha
    elif not alpha >= 0:
        raise InvalidInputError(f"alpha must be non-negative, got {alpha}", param="alpha")
    if influence_scale is not None and not influence_scale > 0:
        raise InvalidInputError(f"influence_scale must be positive, got {influence_scale}", param="influence_scale")
    if fraction is not None and not 0 < fraction <= 1:
        raise InvalidInputError(f"fraction must be in (0, 1], got {fraction}", param="fraction")
    x, y, source = _training_inputs(items, base_space, arch)
    all_classes = class_order(y, source.get("dataset"))
    trained = parse_classes(classes, all_classes)
    keep = np.isin(y, trained)
    if fraction is not None and fraction < 1:
        rng = np.random.default_rng(seed)
        keep &= rng.random(len(y)) < fraction
    if keep.sum() < 2:
        raise InvalidInputError("no training items left after the class and fraction selection", param="classes")
    if epochs is None:
        epochs = default_epochs(int(keep.sum()), batch_size)
    weights_seed = init_seed(seed, method, trained if classes else None, fraction)
    label_index = {c: i for i, c in enumerate(all_classes)}
    xt = x[torch.from_numpy(np.flatnonzero(keep))]  # the training items and their class ids
    yt = torch.tensor([label_index[c] for c in y[keep]], dtype=torch.long)
    with seeded(weights_seed, threads):  # restores torch's RNG state and thread count afterwards
        old_model = old_config = None
        if old is not None:
            old_model, old_config = load_model(old)
            if old_config.get("input", {}).get("modality") != source["modality"]:
                raise InvalidInputError(f"the old model {old} takes {old_config.get('input', {}).get('modality')} input, "
                                        f"this training set is {source['modality']}")
        if dim is None:  # the old model's dimension when training against one, else DEFAULT_DIM
            dim = int(old_config["dim"]) if old_config and loss_cls.needs_old_model else DEFAULT_DIM
        extra = (extra_dims if extra_dims is not None else max(1, dim // 4)) if loss_cls.needs_extra_dims else 0
        if classifier not in (None, "linear", "cosine", "simplex"):
            raise InvalidInputError(f"unknown classifier {classifier!r}; choose from linear, cosine, simplex",
                                    param="classifier")
        kind = loss_cls.fixed_classifier or classifier or "linear"
        if kind == "simplex" and loss_cls.fixed_classifier != "simplex":
            raise InvalidInputError("the fixed d-Simplex classifier comes with method 'dsimplex'", param="classifier")
        model = CompatNet(arch, dim, len(all_classes), kind, extra, source.get("in_dim"))
        if loss_cls.needs_old_model:
            if old_config["dim"] != dim:
                raise DimensionMismatchError(f"the old model is {old_config['dim']}-d; method {method!r} needs dim "
                                             f"{old_config['dim']}", param="dim")
            same_input = all(old_config["input"].get(k) == source.get(k) for k in ("shape", "base_model", "in_dim"))
            if influence == "auto":
                influence = auto_influence(loss_cls, old_config, trained, all_classes, same_input)
            if influence == "classifier":  # the old classifier's own logits: no scale to choose
                if influence_scale is not None:
                    raise InvalidInputError("influence_scale is for the nca, gallery and prototypes influences; this "
                                            "model trains with the old classifier (choose influence 'nca' or 'gallery')",
                                            param="influence_scale")
            elif influence_scale is None:
                influence_scale = INFLUENCE_SCALES[influence]
            term = _influence(loss_cls, old_model, old_config, influence, influence_scale, all_classes, y, x, xt, yt,
                              same_input, dim)
            loss_fn = loss_cls.for_training(model, term, alpha=alpha)
        else:
            loss_fn = loss_cls.for_training(model)

        opt = torch.optim.AdamW(loss_fn.param_groups(), lr=lr, weight_decay=1e-4)
        run = fingerprint({"method": method, "arch": arch, "dim": dim, "extra_dims": extra, "classifier": kind,
                           "classes": trained, "fraction": fraction, "epochs": epochs, "batch_size": batch_size,
                           "lr": lr, "alpha": alpha, "influence": influence, "influence_scale": influence_scale,
                           "seed": seed, "items": len(yt), "input": source, "old": str(old) if old else None,
                           "old_config": old_config, "y": yt.tolist()}, xt)
        checkpoint = Checkpoint.beside(out, run)
        history = fit(loss_fn, xt, yt, order=Shuffle(len(yt), batch_size, seed, rng="run"), optimizer=opt,
                      epochs=epochs, schedule=OneCycle(lr, pct_start=0.15), checkpoint=checkpoint,
                      label=f"train {method}", progress=progress)  # rows: GalleryInfluence looks old embeddings up
        model.eval()
        config = {
            "name": name or Path(out).name, "arch": arch, "dim": dim, "extra_dims": extra, "method": method,
            "classifier": model.classifier_kind, "classes": all_classes, "trained_classes": trained,
            "fraction": fraction, "train_items": int(keep.sum()), "epochs": epochs, "batch_size": batch_size, "lr": lr,
            "alpha": alpha if loss_cls.needs_old_model else None,
            "influence": influence if loss_cls.influence_options else None,
            "influence_scale": influence_scale if loss_cls.needs_old_model else None, "seed": seed, "init_seed": weights_seed, "input": source,
            "in_dim": source.get("in_dim"), "old": str(old) if old is not None else None,
            "old_name": old_config.get("name") if old_config else None, "history": history,
        }
        save_model(out, model, config)
        checkpoint.clear()
        return config


INFLUENCES = ("auto", "classifier", "nca", "prototypes", "gallery")
INFLUENCE_SCALES = {"nca": 32.0, "prototypes": 16.0, "gallery": 128.0}  # the cosine scale of each influence's softmax


def auto_influence(loss_cls: type[CompatLoss], old_config: dict, trained: list[str], all_classes: list[str],
                   same_input: bool) -> str:
    """The default influence when the old gallery can be built (same inputs, same label set): "gallery" when the
    new model trains on classes the old model never learned (class extension: the paper's classifier influence
    fails there, benchmarks/RESULTS.md), else "nca" (the closed set: the old classifier plus the soft 1-NN of
    each new feature among the old embeddings, without the own-item term, which would copy the old model's
    mistakes); "classifier" (the paper's) when the gallery cannot be built or the loss takes neither."""
    added = set(trained) - set(old_config.get("trained_classes") or old_config.get("classes") or [])
    pick = "gallery" if added else "nca"
    return pick if _unusable(loss_cls, pick, old_config, all_classes, same_input) is None else "classifier"


def _unusable(loss_cls: type[CompatLoss], influence: str, old_config: dict, all_classes: list[str],
              same_input: bool) -> InvalidInputError | None:
    """Why an influence other than "classifier" cannot be built for this loss and old model (the error), or None:
    it needs a loss that takes it, the old model's own inputs and its label set (the old gallery and prototypes
    are the old model's embeddings of this training set). `auto_influence` and `_influence` share it."""
    if influence not in loss_cls.influence_options or not same_input:
        methods = [m for m in METHODS if influence in get_loss(m).influence_options]
        return InvalidInputError(f"{influence} influence is for method {' or '.join(repr(m) for m in methods)} with "
                                 "the old model's own inputs", param="influence")
    if old_config.get("classes") != all_classes:
        return InvalidInputError(f"the old model's classifier covers classes {old_config.get('classes')} but this "
                                 f"dataset's label set is {all_classes}; train the old model on the same dataset")
    return None


def _influence(loss_cls: type[CompatLoss], old_model: CompatNet, old_config: dict, influence: str,
               influence_scale: float | None, all_classes: list[str], y: np.ndarray, x: torch.Tensor, xt: torch.Tensor,
               yt: torch.Tensor, same_input: bool, dim: int) -> torch.nn.Module:
    """The term that pulls a new model towards the old one (`repspace.compat.losses.influence`): the old
    classifier (synthesised rows for classes it never saw; the paper), the old model's class prototypes
    (influence "prototypes"), the old model's embeddings of the training items xt, class ids yt (influence
    "gallery"), or the old classifier plus the gallery's class term (influence "nca")."""
    from repspace.compat.losses.influence import ClassifierInfluence, GalleryInfluence, InfluenceSum

    if influence != "classifier":
        problem = _unusable(loss_cls, influence, old_config, all_classes, same_input)
        if problem is not None:
            raise problem
        if influence == "prototypes":
            return ClassifierInfluence(old_prototypes(old_model, all_classes, y, x), dim, cosine_scale=influence_scale)
        bank = old_embeddings(old_model, xt)  # the old gallery of the training items, in xt's order (rows)
        if influence == "nca":  # the gallery's class term only: the own-item term pulls to the old model's errors
            nca = GalleryInfluence(bank, yt, scale=influence_scale, own_weight=0.0)
            return InfluenceSum(_influence(loss_cls, old_model, old_config, "classifier", None, all_classes, y, x,
                                           xt, yt, same_input, dim), nca)
        return GalleryInfluence(bank, yt, scale=influence_scale, old_model=old_model)
    w_old = _old_weight(old_model, old_config, all_classes, y, x if same_input else None)
    if loss_cls.cosine_influence and old_model.classifier_kind == "cosine":  # the old model's own (cosine) logits
        return ClassifierInfluence(w_old, dim, cosine_scale=float(old_model.logit_scale))
    return ClassifierInfluence(w_old, dim)
