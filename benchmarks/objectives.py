"""Self-supervised objectives on Fashion-MNIST (or digits): kNN and linear-probe accuracy, effective rank.

Every objective trains the same small CNN (repspace.nets.SmallCNN, `--dim`-d representation)
for the same number of epochs on the same training subset, without labels; beside them a random-init
CNN (`--epochs 0`) and a supervised CNN (cross-entropy, `repspace train --method independent`, same
epochs and items). Each encoder embeds `--bank` training items (the kNN bank / probe training set) and
the whole test split, un-augmented. kNN: cosine, k = 20, votes weighted exp(sim / 0.07) (DINO);
linear probe: logistic regression on standardised features (C = 1). Effective rank (exp of the
entropy of the normalised singular values) on the test embeddings, and per epoch on 1,000 training
items (the collapse curve is in the training history of each model).

Usage: python benchmarks/objectives.py [--dataset fashion-mnist] [--train-items 10000] [--epochs 5]
       [--seeds 0] [--methods simclr,vicreg,...] [--threads 1] [--json OUT.json]

Compatible training (issue items 4 and 5), with the CLI's defaults (32-d, ~1,000 steps and at least 10 epochs, own initialisation):
  python benchmarks/objectives.py --compat closed-set --dataset digits --seeds 0,1,2
      old = independent on --fraction 0.3; new = bct / bt2 / independent, and d-Simplex old + new
  python benchmarks/objectives.py --compat class-extension --dataset fashion-mnist --seeds 0,1,2 \
      --variants bct,bct-proto
      old = classes 0-4; new on all classes: bct / bt2 (the default --influence auto: the old gallery when
      classes are added, nca in the closed set: the old classifier plus the soft nearest neighbours of each
      new feature's class among the old embeddings), bct-nca / bt2-nca (that term explicitly),
      bct-classifier / bt2-classifier (the paper:
      old classifier + synthesised weights for new classes),
      bct-proto (cosine influence loss against the old model's class prototypes), bct-proto-cos (+ cosine
      classifier), bct-gallery / bt2-gallery (each new feature must find its own item's old embedding and its
      class in the old model's gallery of training items, `--influence gallery`), dsimplex (old and new against the full fixed simplex from the start), independent
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine  # noqa: E402

from repspace.compat.training import train_model  # noqa: E402
from repspace.datasets import load_dataset  # noqa: E402
from repspace.encoders import get_encoder  # noqa: E402
from repspace.encoders.job import encode_items  # noqa: E402
from repspace.evaluation.probes import knn_classify  # noqa: E402
from repspace.objectives import METHODS, effective_rank, train_objective  # noqa: E402


def linear_probe_accuracy(xtr, ytr, xte, yte) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
    return float(clf.fit(xtr, ytr).score(xte, yte))


COMPAT_VARIANTS = {
    "independent": ({"method": "independent"}, {"method": "independent"}),
    "bct": ({"method": "independent"}, {"method": "bct"}),
    "bt2": ({"method": "independent"}, {"method": "bt2"}),
    "bct-nca": ({"method": "independent"}, {"method": "bct", "influence": "nca"}),
    "bt2-nca": ({"method": "independent"}, {"method": "bt2", "influence": "nca"}),
    "bct-classifier": ({"method": "independent"}, {"method": "bct", "influence": "classifier"}),
    "bt2-classifier": ({"method": "independent"}, {"method": "bt2", "influence": "classifier"}),
    "bct-proto": ({"method": "independent"}, {"method": "bct", "influence": "prototypes"}),
    "bct-proto-cos": ({"method": "independent"}, {"method": "bct", "influence": "prototypes", "classifier": "cosine"}),
    "bct-gallery": ({"method": "independent"}, {"method": "bct", "influence": "gallery"}),
    "bt2-gallery": ({"method": "independent"}, {"method": "bt2", "influence": "gallery"}),
    "dsimplex": ({"method": "dsimplex"}, {"method": "dsimplex"}),
}


def compat_protocol(args) -> None:
    """Old and new models at the CLI defaults; criterion M(new,old) > M(old,old) on top-1 and mAP@R, every seed."""
    import torch

    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    old_kw = {"fraction": 0.3} if args.compat == "closed-set" else {"classes": "0-4"}
    variants = args.variants.split(",")
    old_epochs, new_epochs = ([int(e) for e in args.compat_epochs.split(",")] if args.compat_epochs else (None, None))
    budget = (f"old {old_epochs} / new {new_epochs} epochs" if args.compat_epochs else
              "~1,000 steps and >= 10 epochs")
    print(f"machine: {machine()}; {args.compat} on {args.dataset}, old {old_kw}, CLI defaults (dim 32, {budget}, "
          f"batch 128), seeds {seeds}", flush=True)
    train, test = load_dataset(f"{args.dataset}@train"), load_dataset(f"{args.dataset}@test")
    work = Path(tempfile.mkdtemp(prefix="compat-defaults-"))
    metrics = ("precision@1", "map@r")
    from repspace.evaluation import compatibility

    res: dict[str, dict[str, list[tuple[float, float, float]]]] = {}
    secs: dict[str, list[float]] = {}
    for seed in seeds:
        olds: dict[str, tuple[Path, object]] = {}
        for v in variants:
            o_kw, n_kw = COMPAT_VARIANTS[v]
            key = json.dumps(o_kw, sort_keys=True)
            if key not in olds:
                p = work / f"old-{o_kw['method']}-{seed}"
                train_model("cnn", None, out=p, items=train, seed=seed, epochs=old_epochs, threads=args.threads,
                            progress=False, name=p.name, **o_kw, **old_kw)
                olds[key] = (p, encode_items(get_encoder(str(p)), test, progress=False))
            op, old_space = olds[key]
            p = work / f"new-{v}-{seed}"
            kw = dict(n_kw, old=op) if n_kw["method"] in ("bct", "bt2") else dict(n_kw)
            cfg = train_model("cnn", None, out=p, items=train, seed=seed, epochs=new_epochs, threads=args.threads,
                              progress=False, name=p.name, **kw)
            secs.setdefault(v, []).extend(h["seconds"] for h in cfg["history"])
            new_space = encode_items(get_encoder(str(p)), test, progress=False)
            for metric in metrics:
                M = compatibility([old_space, new_space], metric=metric)["matrix"]
                res.setdefault(v, {}).setdefault(metric, []).append((M[0][0], M[1][1], M[1][0]))
            print(f"  {v} seed {seed}: " + "; ".join(f"{m} old->old {res[v][m][-1][0]:.4f} new->new {res[v][m][-1][1]:.4f} "
                                                    f"new->old {res[v][m][-1][2]:.4f}" for m in metrics), file=sys.stderr, flush=True)

    def fmt(vals):
        return f"{100 * statistics.mean(vals):.2f}" + (f" ± {100 * statistics.stdev(vals):.2f}" if len(vals) > 1 else "")

    print("\n| new model | top-1 old→old | top-1 new→new | top-1 new→old | mAP@R old→old | mAP@R new→new | "
          "mAP@R new→old | criterion (top-1 / mAP@R, every seed) | s / epoch |")
    print("|---|---|---|---|---|---|---|---|---|")
    for v, r in res.items():
        cells = []
        for m in metrics:
            cells += [fmt([x[0] for x in r[m]]), fmt([x[1] for x in r[m]]), fmt([x[2] for x in r[m]])]
        crit = " / ".join("pass" if all(x[2] > x[0] for x in r[m]) else "fail" for m in metrics)
        print(f"| {v} | " + " | ".join(cells) + f" | {crit} | {statistics.mean(secs[v]):.1f} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "machine": machine(), "results": res}, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--compat", choices=("closed-set", "class-extension"), default=None,
                    help="run a compatible-training protocol at the CLI defaults instead of the objectives table")
    ap.add_argument("--compat-epochs", default=None, metavar="OLD,NEW",
                    help="--compat: epochs of the old and new models instead of the CLI default (e.g. 5,3 = session 4's "
                         "Fashion-MNIST class-extension budget)")
    ap.add_argument("--variants", default="bct,bt2,independent,dsimplex", help="--compat: " + ", ".join(COMPAT_VARIANTS))
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--train-items", type=int, default=10000)
    ap.add_argument("--bank", type=int, default=10000, help="training items embedded for kNN / probe")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--methods", default=",".join(("random", "supervised", *METHODS)))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None, help="write every number (incl. per-epoch curves) here")
    args = ap.parse_args()
    if args.compat:
        compat_protocol(args)
        return
    import torch

    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    methods = args.methods.split(",")
    print(f"machine: {machine()}; {args.dataset}, {args.train_items} training items, {args.epochs} epochs, "
          f"batch {args.batch_size}, dim {args.dim}, seeds {seeds}", flush=True)
    train_all, test = load_dataset(f"{args.dataset}@train"), load_dataset(f"{args.dataset}@test")
    rng = np.random.default_rng(12345)
    rows_train = np.sort(rng.permutation(len(train_all))[: args.train_items])
    train = train_all.subset(rows_train)
    bank = train_all.subset(rows_train[: args.bank])
    ytr, yte = np.asarray(bank.labels).astype(str), np.asarray(test.labels).astype(str)
    work = Path(tempfile.mkdtemp(prefix="objectives-bench-"))
    results: dict[str, list[dict]] = {}
    for seed in seeds:
        for method in methods:
            out = work / f"{method}-{seed}"
            t0 = time.perf_counter()
            if method == "supervised":
                cfg = train_model("cnn", args.dim, "independent", out, items=train, epochs=args.epochs,
                                  batch_size=args.batch_size, seed=seed, progress=False)
            else:
                cfg = train_objective("simclr" if method == "random" else method, out, items=train, dim=args.dim,
                                      epochs=0 if method == "random" else args.epochs, batch_size=args.batch_size,
                                      seed=seed, progress=False)
            train_s = time.perf_counter() - t0
            enc = get_encoder(str(out))
            ztr = np.asarray(encode_items(enc, bank, progress=False).vectors)
            zte = np.asarray(encode_items(enc, test, progress=False).vectors)
            knn = float(np.mean(knn_classify(ztr, ytr, zte, k=20) == yte))
            probe = linear_probe_accuracy(ztr, ytr, zte, yte)
            er = effective_rank(torch.from_numpy(zte))
            secs = [h["seconds"] for h in cfg["history"]]
            row = {"seed": seed, "knn": knn, "probe": probe, "effective_rank": er,
                   "min_per_epoch": statistics.mean(secs) / 60 if secs else 0.0, "train_s": train_s,
                   "history": cfg["history"], "spectrum": cfg.get("spectrum")}
            if method == "sie":  # the paper classifies from the invariant half (the other half encodes the augmentation)
                half = ztr.shape[1] // 2
                row["knn_invariant"] = float(np.mean(knn_classify(ztr[:, :half], ytr, zte[:, :half], k=20) == yte))
                row["probe_invariant"] = linear_probe_accuracy(ztr[:, :half], ytr, zte[:, :half], yte)
            results.setdefault(method, []).append(row)
            print(f"  {method} seed {seed}: kNN {100 * knn:.2f} probe {100 * probe:.2f} eff. rank {er:.1f} "
                  f"({row['min_per_epoch']:.2f} min/epoch)", file=sys.stderr, flush=True)

    def fmt(vals, scale=100.0, digits=2):
        m = statistics.mean(vals) * scale
        return f"{m:.{digits}f}" + (f" ± {statistics.stdev(vals) * scale:.{digits}f}" if len(vals) > 1 else "")

    print(f"\n| method | kNN k=20 acc % | linear probe acc % | effective rank (test, of {args.dim}) | "
          "effective rank per epoch (train monitor) | min / epoch |")
    print("|---|---|---|---|---|---|")
    for method, rows in results.items():
        curve = ""
        if rows[0]["history"] and "effective_rank" in rows[0]["history"][0]:
            per_epoch = [statistics.mean(r["history"][e]["effective_rank"] for r in rows) for e in range(len(rows[0]["history"]))]
            curve = " → ".join(f"{v:.0f}" for v in per_epoch)
        print(f"| {method} | {fmt([r['knn'] for r in rows])} | {fmt([r['probe'] for r in rows])} | "
              f"{fmt([r['effective_rank'] for r in rows], 1.0, 1)} | {curve} | "
              f"{statistics.mean(r['min_per_epoch'] for r in rows):.2f} |", flush=True)
    if "sie" in results:
        r = results["sie"]
        print(f"\nSIE, invariant half only ({args.dim // 2} of {args.dim} dims): kNN {fmt([x['knn_invariant'] for x in r])}, "
              f"linear probe {fmt([x['probe_invariant'] for x in r])}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "machine": machine(), "results": results}, indent=1))


if __name__ == "__main__":
    main()
