"""Compatible training on Fashion-MNIST: the BCT paper's protocol scaled to 2 CPU cores.

Old model: small CNN, 32-d, trained on half of the training images (closed set, all 10 classes)
or on classes 0-4 only (class extension). New models, on all 60k training images: independent,
BCT (influence loss through the old classifier; synthesised old weights for new classes), BT²
(32 compatible + 8 extra dims through a learned orthonormal basis transformation) and d-Simplex
(both old and new trained against the same fixed simplex; its old model is a d-Simplex one).
Evaluation on the 10k test images, query = gallery = test set (leave-one-out), relevance = same
class; metrics top-1 (precision@1) and mAP@R, via `repspace.evaluation.compatibility`.
Compatibility criterion: M(new, old) > M(old, old). Gain = (M(new,old) - M(old,old)) / (M(new,new) - M(old,old)).

Usage: python benchmarks/compat_train.py [--epochs 4] [--seeds 0,1] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine  # noqa: E402

from repspace.compat.training import train_model  # noqa: E402
from repspace.datasets import load_dataset  # noqa: E402
from repspace.encoders import get_encoder  # noqa: E402
from repspace.encoders.job import encode_items  # noqa: E402
from repspace.evaluation import compatibility  # noqa: E402

PROTOCOLS = {"closed set (old: 50% of data, 10 classes)": {"fraction": 0.5},
             "class extension (old: classes 0-4)": {"classes": "0-4"}}
METRICS = ("precision@1", "map@r")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dim", type=int, default=32)
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"machine: {machine()}; epochs {args.epochs}, seeds {seeds}, dim {args.dim}, torch threads {args.threads}")
    train, test = load_dataset("fashion-mnist@train"), load_dataset("fashion-mnist@test")
    work = Path(tempfile.mkdtemp(prefix="compat-train-"))
    common = dict(arch="cnn", dim=args.dim, items=train, epochs=args.epochs, threads=args.threads, progress=False)
    epoch_s: dict[str, list[float]] = {}
    for proto, old_kw in PROTOCOLS.items():
        rows: dict[str, dict[str, list[float]]] = {}
        for seed in seeds:
            d = work / f"{proto[:6]}-{seed}"

            def fit(name: str, method: str, **kw):
                # new models start from another initialisation than the old ones (seed + 1000): with the same
                # initial weights two "independent" models are already partly compatible
                s = seed if name.startswith("old") else seed + 1000
                cfg = train_model(method=method, out=d / name, seed=s, name=name, **common, **kw)
                epoch_s.setdefault(method, []).extend(h["seconds"] for h in cfg["history"])
                return encode_items(get_encoder(str(d / name)), test, progress=False)

            old = fit("old", "independent", **old_kw)
            old_ds = fit("old-dsimplex", "dsimplex", **old_kw)
            news = {"independent": (old, fit("new-independent", "independent")),
                    "bct": (old, fit("new-bct", "bct", old=d / "old")),
                    "bt2": (old, fit("new-bt2", "bt2", old=d / "old", extra_dims=args.dim // 4)),
                    "dsimplex": (old_ds, fit("new-dsimplex", "dsimplex"))}
            for method, (o, n) in news.items():
                for metric in METRICS:
                    res = compatibility([o, n], metric=metric)
                    m = res["matrix"]
                    for key, val in ((f"{method}: old->old", m[0][0]), (f"{method}: new->new", m[1][1]),
                                     (f"{method}: new->old", m[1][0]), (f"{method}: gain", res["gain"]["2->1"])):
                        rows.setdefault(key, {}).setdefault(metric, []).append(float("nan") if val is None else val)
            print(f"  {proto} seed {seed} done", file=sys.stderr, flush=True)
        print(f"\n### {proto}\n")
        print("| pair | top-1 % | mAP@R % | criterion M(new,old) > M(old,old) (top-1 / mAP@R, every seed) |")
        print("|---|---|---|---|")
        for key, vals in rows.items():
            fmt = _gain_cell if key.endswith("gain") else \
                (lambda v: f"{100 * statistics.mean(v):.2f}" + (f" ± {100 * statistics.stdev(v):.2f}" if len(v) > 1 else ""))
            crit = ""
            if key.endswith("new->old"):
                base = rows[key.replace("new->old", "old->old")]
                crit = " / ".join("yes" if all(a > b for a, b in zip(vals[m], base[m])) else "no" for m in METRICS)
            print(f"| {key} | {fmt(vals['precision@1'])} | {fmt(vals['map@r'])} | {crit} |", flush=True)
    print("\n| method | seconds per epoch (60k images, mean) |\n|---|---|")
    for method, secs in epoch_s.items():
        print(f"| {method} | {statistics.mean(secs):.1f} |")


def _gain_cell(v: list[float]) -> str:
    """Mean ± sd over the seeds where the gain is defined (a compatible pair); n/a where it never is."""
    ok = [x for x in v if x == x]  # NaN: the pair failed the criterion in that seed, so it has no gain
    if not ok:
        return "n/a (not compatible)"
    cell = f"{statistics.mean(ok):.3f}" + (f" ± {statistics.stdev(ok):.3f}" if len(ok) > 1 else "")
    return cell + (f" ({len(ok)} of {len(v)} seeds)" if len(ok) < len(v) else "")


if __name__ == "__main__":
    main()
