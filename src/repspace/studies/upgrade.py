"""Upgrading the model behind an index, measured: the numbers behind the demo's "Upgrade" section.

    from repspace.studies.upgrade import adapter_recovery, compatible_training
    rows = compatible_training("work/models")          # trains small CNNs on digits, one row per method
    rec = adapter_recovery(old_titles, old_bodies, new_titles, new_bodies)

Both return plain rows (lists of dicts); `repspace.report.upgrade` renders them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from repspace.spaces import Space

COMPAT_METHODS = ("independent", "bct", "bt2", "dsimplex")


def compatible_training(work: str | Path, dataset: str = "digits", dim: int = 16, epochs: int = 30,
                        classes: str = "0-4", seed: int = 0, methods: Sequence[str] = COMPAT_METHODS) -> list[dict]:
    """BCT protocol: an old CNN on `classes` (and a d-Simplex one for dsimplex), new CNNs on all classes with each
    method; M(old,old), M(new,new), M(new,old) in mAP@R on the test split, one row per method."""
    from repspace.compat.training import train_model
    from repspace.datasets import load_dataset
    from repspace.encoders import get_encoder
    from repspace.encoders.job import encode_items
    from repspace.evaluation import compatibility

    work = Path(work)
    train, test = load_dataset(f"{dataset}@train"), load_dataset(f"{dataset}@test")
    common = dict(arch="cnn", dim=dim, items=train, epochs=epochs, batch_size=64, threads=1, progress=False)

    def fit(name: str, method: str, seed_: int, **kw) -> Space:
        train_model(method=method, out=work / name, seed=seed_, name=name, **common, **kw)
        return encode_items(get_encoder(str(work / name)), test, progress=False)

    old = fit("old", "independent", seed, classes=classes)
    old_ds = fit("old-dsimplex", "dsimplex", seed, classes=classes)
    rows = []
    for method in methods:
        kw = {"old": work / "old"} if method in ("bct", "bt2") else {}
        new = fit(f"new-{method}", method, seed + 1000, **kw)
        ref = old_ds if method == "dsimplex" else old
        res = compatibility([ref, new], metric="map@r")
        M = res["matrix"]
        rows.append({"new model": method, "old model": ref.model, "dim": new.dim, "M(old,old)": M[0][0],
                     "M(new,new)": M[1][1], "M(new,old)": M[1][0], "compatible": res["compatible"]["2->1"],
                     "gain": res["gain"]["2->1"], "gain_note": res["gain_note"]["2->1"]})
    return rows


def adapter_recovery(old_q: Space, old_c: Space, new_q: Space, new_c: Space,
                     pairs: Sequence[int] = (50, 100, 300, 1000)) -> list[dict]:
    """Procrustes adapters new -> old from N train-half items (corpus and query views), scored on the test half:
    old->old, new->new and adapted new->old recall@10, and recovery = adapted / new->new, one row per N."""
    from repspace.compat.upgrade import evaluate_upgrade, fit_adapter
    from repspace.datasets import split_ids

    available = len(split_ids(set(old_c.ids) & set(new_c.ids))[0])
    rows = []
    for n in sorted({min(p, available) for p in pairs}):
        ad = fit_adapter(old_c, new_c, "procrustes", pairs=n, also=[(old_q, new_q)])
        r = evaluate_upgrade(ad, old_c, new_q, new_c, old_q)
        rows.append({"pairs (articles)": n, "old->old R@10": r["old_old"]["recall@10"],
                     "new->new R@10": r["new_new"]["recall@10"], "adapted R@10": r["adapted_new_old"]["recall@10"],
                     "recovery R@10": r["recovery"]["recall@10"], "µs/query": r["adapter_us_per_query"]})
    return rows
