"""The demo report's "Learning without labels" section: a few epochs of self-supervised training on digits."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

DEMO_METHODS = ("simclr", "vicreg", "byol")


def knn_curves(work: str | Path, methods: Sequence[str] = DEMO_METHODS, epochs: int = 15, dataset: str = "digits",
               dim: int = 64, batch_size: int = 128, seed: int = 0, k: int = 20, threads: int | None = 1) -> dict[str, Any]:
    """Train each method on `dataset`@train without labels; after every epoch, kNN (k=20) accuracy of the test
    split against the (un-augmented) training split. Returns {"curves": {method: [acc at epoch 0..E]},
    "rows": [...], "supervised": acc of a CNN trained with labels for the same epochs}."""
    import torch

    from repspace.compat.training import train_model
    from repspace.datasets import load_dataset
    from repspace.evaluation.probes import knn_classify
    from repspace.nets import images_to_tensor, load_model
    from repspace.objectives.training import train_objective

    work = Path(work)
    train, test = load_dataset(f"{dataset}@train"), load_dataset(f"{dataset}@test")
    xtr, xte = images_to_tensor(train.data), images_to_tensor(test.data)
    ytr, yte = np.asarray(train.labels).astype(str), np.asarray(test.labels).astype(str)

    def knn_of(embed) -> float:
        with torch.no_grad():
            a, b = embed(xtr).numpy(), embed(xte).numpy()
        return float(np.mean(knn_classify(a, ytr, b, k=k) == yte))

    curves, rows = {}, []
    for method in methods:
        cfg = train_objective(method, work / method, items=train, dim=dim, epochs=epochs, batch_size=batch_size,
                              seed=seed, threads=threads, progress=False,
                              epoch_metrics=lambda enc: {"knn": knn_of(enc)})
        curves[method] = [cfg["initial"]["knn"]] + [h["knn"] for h in cfg["history"]]
        last = cfg["history"][-1]
        rows.append({"method": method, "kNN acc, random init": curves[method][0], f"kNN acc, {epochs} epochs": last["knn"],
                     "effective rank": last["effective_rank"], "s / epoch": float(np.mean([h["seconds"] for h in cfg["history"]]))})
    train_model("cnn", dim, "independent", work / "supervised", items=train, epochs=epochs, batch_size=batch_size,
                seed=seed, threads=threads, progress=False)
    sup, _ = load_model(work / "supervised")
    supervised = knn_of(sup.embed)
    return {"curves": curves, "rows": rows, "supervised": supervised, "epochs": epochs, "dataset": dataset}


def demo_section(report=None, work: str | Path = "demo-out/objectives", methods: Sequence[str] = DEMO_METHODS,
                 epochs: int = 15, dataset: str = "digits") -> tuple[dict[str, Any], str]:
    """Run `knn_curves` and render it; returns (data, HTML of the section's body). With a
    `repspace.report.html.Report`, also appends the section "Learning without labels" to it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from repspace.report.html import Report

    data = knn_curves(work, methods=methods, epochs=epochs, dataset=dataset)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for method, curve in data["curves"].items():
        ax.plot(range(len(curve)), curve, marker="o", ms=3, label=method)
    ax.axhline(data["supervised"], color="black", ls=":", label=f"supervised CNN ({epochs} epochs)")
    ax.set_xlabel("epoch (0 = random initialisation)")
    ax.set_ylabel(f"kNN (k=20) accuracy, {dataset} test")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    body = "\n".join([
        Report.text(f"Small CNNs trained on {dataset} without labels (`repspace train --method ...`), {epochs} epochs; "
                    "after every epoch the test images are classified by their 20 nearest training images in the "
                    "learned space. Epoch 0 is the randomly initialised network, the baseline every self-supervised "
                    "method must beat; the dotted line is the same CNN trained with labels. On digits (8x8 images, 891 "
                    "training images) a random CNN is already a strong kNN feature: see benchmarks/RESULTS.md for "
                    "Fashion-MNIST and all ten objectives."),
        Report.table(data["rows"] + [{"method": "supervised (labels)", f"kNN acc, {epochs} epochs": data["supervised"]}]),
        Report.figure(fig, "kNN accuracy per epoch of self-supervised training"),
    ])
    if report is not None:
        report.section("Learning without labels", body)
    return data, body
