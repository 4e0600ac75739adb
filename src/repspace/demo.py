"""`repspace demo`: the main job on the built-in defaults, written as one HTML report.

Encodes bbc-news titles and bodies with two real models, then each capability adds its
section to the same report: the encoder backends side by side, retrieval and dimension curves, compression and index specs,
classification, similarity, compatibility, alignment, and upgrading the model
(compatible training on digits, query-side adapters).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from repspace.datasets import load_dataset
from repspace.encoders import get_encoder
from repspace.encoders.job import encode_items
from repspace.report import Report
from repspace.spaces import Space

DEMO_MODELS = ("minilm-l6", "minilm-l3-onnx")
DEMO_VIEWS = ("title", "body")
BACKENDS_MODEL = "minilm-l6"  # the model whose encoder backends the demo compares (its torch spaces are the gallery)


def encode_demo_spaces(out: Path, models=DEMO_MODELS, views=DEMO_VIEWS, limit: int | None = None,
                       progress: bool = True) -> tuple[dict[tuple[str, str], Space], list[dict]]:
    """Encode (model, view) spaces under out/spaces/; reuses finished ones. Returns spaces and timing rows."""
    spaces, rows = {}, []
    for model in models:
        encoder = get_encoder(model)
        for view in views:
            items = load_dataset(f"bbc-news:{view}")
            if limit is not None and limit < len(items):  # evenly spaced, so every topic is present
                items = items.subset(np.linspace(0, len(items) - 1, limit).astype(int))
            path = out / "spaces" / f"{model}-{view}"
            cached = (path / "manifest.json").is_file()
            t0 = time.perf_counter()
            space = encode_items(encoder, items, out=path, batch_size=32, progress=progress)
            seconds = time.perf_counter() - t0
            spaces[(model, view)] = space
            rows.append({"model": model, "view": view, "count": space.count, "dim": space.dim,
                         "normalized": space.normalized, "seconds": round(seconds, 1),
                         "items/s": None if cached else round(space.count / max(seconds, 1e-9), 1),
                         "reused": cached, "path": str(path.relative_to(out))})
    return spaces, rows


def spaces_section(report: Report, spaces: dict[tuple[str, str], Space], rows: list[dict]) -> None:
    """Summary of the encoded spaces, and a sanity check: title·body cosine, same article vs random."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = sorted({m for m, _ in spaces})
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 3.2), squeeze=False)
    checks = []
    rng = np.random.default_rng(0)
    for ax, model in zip(axes[0], models):
        if (model, "title") not in spaces or (model, "body") not in spaces:
            continue
        t, b = spaces[(model, "title")].aligned_with(spaces[(model, "body")])
        tv, bv = np.asarray(t.vectors), np.asarray(b.vectors)
        same = np.einsum("ij,ij->i", tv, bv)
        other = np.einsum("ij,ij->i", tv, bv[rng.permutation(len(bv))])
        top1 = float(np.mean(np.argmax(tv @ bv.T, axis=1) == np.arange(len(tv))))
        checks.append({"model": model, "pairs": len(tv), "cos same article": float(same.mean()),
                       "cos random article": float(other.mean()), "title→body top-1": top1})
        ax.hist(same, bins=40, alpha=0.7, label="same article")
        ax.hist(other, bins=40, alpha=0.7, label="random article")
        ax.set_title(model)
        ax.set_xlabel("cosine(title, body)")
        ax.legend()
    report.section(
        "Spaces",
        Report.text("bbc-news (BBC articles in 5 topics; 2,225 unless --limit) encoded offline; the views share ids, so an "
                    "article's title and body are the same item in every space."),
        Report.table(rows, digits=1),
        Report.text("Sanity check: a title should be closer to its own article's body than to a random one."),
        Report.table(checks),
        Report.figure(fig, "cosine between a title and a body, same article vs a random article"),
    )


def retrieval_section(report: Report, spaces: dict[tuple[str, str], Space], models: list[str]) -> None:
    from repspace.evaluation import query_retrieval

    rows = []
    for m in models:
        res = query_retrieval(spaces[(m, "title")], spaces[(m, "body")])
        rows.append({"model": m, "dim": spaces[(m, "body")].dim, **{k: res[k] for k in
                     ("recall@1", "recall@10", "ndcg@10", "mrr@10", "map")}, "queries": res["queries"]})
    report.section(
        "Retrieval: title -> body",
        Report.text(f"Each article's title searches all {rows[0]['queries']:,} bodies; the relevant body is the same "
                    "article's."),
        Report.table(rows),
    )


def backends_demo(report: Report, titles: Space, bodies: Space, n_short: int = 256, n_long: int = 64) -> None:
    """Every encoder backend of the titles' model side by side (a missing runtime is a note, not a failure)."""
    from repspace.report.backends import backends_section
    from repspace.studies.backends import backend_study

    t, b = load_dataset("bbc-news:title"), load_dataset("bbc-news:body")
    backends_section(report, backend_study(titles, bodies, dict(zip(t.ids, t.data)), dict(zip(b.ids, b.data)),
                                           n_short=n_short, n_long=n_long))


def run_demo(out: str | Path = "demo-out", models=DEMO_MODELS, limit: int | None = None, progress: bool = True) -> Path:
    """Encode the default spaces and write out/report.html; returns the report path."""
    from repspace.report.alignment import alignment_section
    from repspace.report.compact import compact_section
    from repspace.report.evaluation import (
        compat_section,
        similarity_section,
        sweep_section,
        tasks_section,
    )
    from repspace.report.upgrade import upgrade_section
    from repspace.studies.alignment import alignment_rows
    from repspace.studies.compact import compact_study
    from repspace.studies.evaluation import compatibility_result, retrieval_sweep, similarity, space_name, task_rows
    from repspace.studies.upgrade import adapter_recovery, compatible_training

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spaces, rows = encode_demo_spaces(out, models=models, limit=limit, progress=progress)
    models = list(models)
    report = Report("repspace demo — bbc-news")
    spaces_section(report, spaces, rows)
    if BACKENDS_MODEL in models:
        backends_demo(report, spaces[(BACKENDS_MODEL, "title")], spaces[(BACKENDS_MODEL, "body")])
    retrieval_section(report, spaces, models)
    sweep_section(report, retrieval_sweep([(spaces[(m, "title")], spaces[(m, "body")]) for m in models]))
    compact_section(report, compact_study(spaces[(models[0], "title")], spaces[(models[0], "body")]))
    tasks_section(report, task_rows([spaces[(m, "body")] for m in models]))
    viewed = [spaces[(m, v)] for m in models for v in DEMO_VIEWS]
    similarity_section(report, [space_name(s) for s in viewed], *similarity(viewed))
    bodies = [spaces[(m, "body")] for m in models]
    compat_section(report, [space_name(s) for s in bodies], compatibility_result(bodies))
    for view in DEMO_VIEWS:
        alignment_section(report, alignment_rows([spaces[(m, view)] for m in models]),
                          title=f"Alignment between models ({view} view)")
    if len(models) > 1:  # upgrade from the second model (old) to the first (new)
        old, new = models[1], models[0]
        upgrade_section(report, compatible_training(out / "upgrade" / "models", epochs=30),
                        adapter_recovery(spaces[(old, "title")], spaces[(old, "body")], spaces[(new, "title")],
                                         spaces[(new, "body")]),
                        old_model=spaces[(old, "body")].model, new_model=spaces[(new, "title")].model)
        live_upgrade_demo(report, out / "live-upgrade", spaces[(old, "title")], spaces[(old, "body")],
                          spaces[(new, "title")], spaces[(new, "body")])
    from repspace.objectives import demo_section as objectives_section

    objectives_section(report, work=out / "objectives", epochs=15)  # SimCLR/VICReg/BYOL on digits, kNN curve
    return report.write(out / "report.html")


def live_upgrade_demo(report: Report, work: Path, old_q: Space, old_c: Space, new_q: Space, new_c: Space) -> None:
    """The live-collection upgrade curve: bodies in a LanceDB collection, held-out titles as queries."""
    import shutil

    from repspace.studies.upgrade_curve import curve
    from repspace.datasets import split_ids
    from repspace.report.live_upgrade import live_upgrade_section

    shutil.rmtree(work, ignore_errors=True)
    items = load_dataset("bbc-news:body")
    texts = dict(zip(items.ids, items.data))
    old_c, new_c = old_c.aligned_with(new_c)
    corpus_ids = set(old_c.ids)
    test = split_ids([i for i in old_q.ids if i in corpus_ids])[1]
    train = split_ids(old_c.ids)[0]
    sample = [train[j] for j in np.random.default_rng(0).permutation(len(train))[:1000]]
    res = curve(old_c, new_c, texts, np.asarray(old_q.select(test).vectors), np.asarray(new_q.select(test).vectors),
                test, work=work, sample_ids=sample)
    res.pop("collection").close()
    live_upgrade_section(report, res, "bbc-news body")
