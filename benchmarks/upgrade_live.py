"""Upgrades that never lose: quality of each serving strategy against the backfill fraction, on a live collection.

Protocol (docs/upgrade.md §4). The collection (LanceDB, Flat) holds the corpus with the OLD model's vectors
and the texts. `upgrade start` fits the adapter new -> old (Procrustes) on a re-embedded sample of 1,000 items of
the train half (the sample's new vectors are not kept: the backfill starts from 0 %). Golden queries: titles of
the held-out test half; relevant = that article's body (bbc-news title->body) or its sentences (bbc-sentences).
gcide (the GNU dictionary, 126,236 entries): items = definitions; a query is a headword (the text of its first entry,
id = the lower-cased headword) whose id is in the test half (`hash_split`), and relevant = every entry of that
headword (`word`, `word#2`, ...: one query, all its senses); the split and the adapter sample go by that headword
id too, so no test headword's entry fits the adapter. `--queries N` takes a fixed random N of the test headwords.
The backfill then runs in its own order (random / uncertainty) to 10, 25, 50, 75, 100 %, and at each fraction
every strategy is scored on the same golden queries through the collection's real search path
(`upgrade.search_encoded`, queries pre-encoded by both models from the bench cache, so the models are not
re-run per strategy). Never lose: fused >= old - 1 SE at every fraction; end above: fused at 100 % >= new.

Usage: python benchmarks/upgrade_live.py [--pairs minilm-l3-onnx:minilm-l6,...] [--corpora bbc-news,bbc-sentences,gcide]
  [--backend torch] [--items N (a fixed random subset of the corpus)]
gcide-200k: gcide with its further senses, sub-senses and phrases (dataset gcide-senses), 200,108 definitions; a
query's relevant items are then its entries and their further senses.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine  # noqa: E402
from _spaces import bench_space, load_items  # noqa: E402

from repspace.collections import upgrade as up  # noqa: E402
from repspace.studies.upgrade_curve import area, curve  # noqa: E402
from repspace.datasets import gcide, hash_split, load_dataset  # noqa: E402

STRATEGIES = ("old", "adapted", "mixed", "fused", "new")
PAIRS = "minilm-l3-onnx:minilm-l6,minilm-l6:mpnet-base,glove-50:minilm-l6"


QUERIES = {"bbc-news": "bbc-news:title", "bbc-sentences": "bbc-news:title", "gcide": "gcide:headword",
           "gcide-200k": "gcide:headword"}
# the datasets a corpus is made of (each encoded and cached on its own): gcide-200k = every entry, further sense and
# phrase of the dictionary (200,108 definitions)
CORPORA = {"bbc-news": ("bbc-news:body",), "bbc-sentences": ("bbc-sentences",), "gcide": ("gcide",),
           "gcide-200k": ("gcide", "gcide-senses")}


def corpus(name: str, model: str, backend: str = "torch", items: int | None = None):
    specs = CORPORA[name]
    if items and len(specs) > 1:
        raise SystemExit(f"--items takes a subset of one dataset; {name} is {len(specs)}")
    space = None
    for spec in specs:
        part = bench_space(model, spec, sample=items, backend=backend)
        space = part if space is None else space.append(part)
    return space, load_items(*specs)


def group(name: str, item_id: str) -> str:
    """The query id an item belongs to (its article; a dictionary definition's headword), which also decides its
    split."""
    return gcide.group(item_id) if name.startswith("gcide") else "/".join(item_id.split("/")[:2])


def golden(name: str, gallery_ids: list[str], titles_old, titles_new, limit: int | None):
    test = [i for i in titles_old.ids if hash_split(i) == "test" and "#" not in i]
    if limit and name.startswith("gcide"):  # index order is alphabetical: a random sample, not the first N
        test = [test[j] for j in np.sort(np.random.default_rng(0).permutation(len(test))[:limit])]
    elif limit:
        test = test[:limit]
    if name == "bbc-news":
        rel = test
    else:
        by_article: dict[str, list[str]] = {}
        for i in gallery_ids:
            by_article.setdefault(group(name, i), []).append(i)
        test = [i for i in test if i in by_article]
        rel = [by_article[i] for i in test]
    return (np.asarray(titles_old.select(test).vectors), np.asarray(titles_new.select(test).vectors), rel)


def fit_query_pairs(name: str, gallery_ids: list[str]) -> list[tuple[str, str]]:
    """Real queries for the fusion fit (`upgrade start --fit-queries`): the train half's titles (headwords), each with
    its relevant item(s) — disjoint from the golden (test-half) queries."""
    titles = load_dataset(QUERIES[name])
    text = {i: t for i, t in zip(titles.ids, titles.data) if hash_split(i) == "train" and "#" not in i}
    if name == "bbc-news":
        return [(text[i], i) for i in gallery_ids if i in text]
    return [(text[a], i) for i in gallery_ids if (a := group(name, i)) in text]


def run_pair(old_m: str, new_m: str, name: str, order: str, sample: int, queries: int | None, root: Path,
             fit_queries: bool = False, backend: str = "torch", items_n: int | None = None) -> dict:
    old_sp, items = corpus(name, old_m, backend, items_n)
    new_sp, _ = corpus(name, new_m, backend, items_n)
    t_old, t_new = (bench_space(m, QUERIES[name], backend=backend) for m in (old_m, new_m))
    q_old, q_new, rel = golden(name, old_sp.ids, t_old, t_new, queries)
    train_items = [i for i in old_sp.ids if hash_split(group(name, i)) == "train"]
    sample_ids = [train_items[j] for j in np.random.default_rng(0).permutation(len(train_items))[:sample]]
    res = curve(old_sp, new_sp, dict(zip(items.ids, items.data)), q_old, q_new, rel,
                   work=root / f"{name}-{old_m}-{new_m}-{order}", order=order, sample_ids=sample_ids,
                   fit_queries=fit_query_pairs(name, old_sp.ids) if fit_queries else None, backend=backend)
    c = res.pop("collection")
    # cost of the fused path beyond a plain search (queries already encoded), batch and one at a time
    cost = {}
    for label, qo, qn in (("batch", q_old, q_new), ("single", q_old[:200], q_new[:200])):
        per = 1 if label == "single" else len(qn)
        best_plain = best_fused = float("inf")
        for rep in range(4):  # the first pass warms the caches; then the best of 3 (a shared machine's noise)
            t_plain = t_fused = 0.0
            for s in range(0, len(qn), per):
                t = time.perf_counter()
                up.search_encoded(c, qo[s : s + per], qn[s : s + per], 10, {}, "new")
                t_plain += time.perf_counter() - t
                t = time.perf_counter()
                up.search_encoded(c, qo[s : s + per], qn[s : s + per], 10, {}, "fused")
                t_fused += time.perf_counter() - t
            if rep:
                best_plain, best_fused = min(best_plain, t_plain), min(best_fused, t_fused)
        t_plain, t_fused = best_plain, best_fused
        cost[label] = {"plain_us": 1e6 * t_plain / len(qn), "fused_us": 1e6 * t_fused / len(qn),
                       "added_us": 1e6 * (t_fused - t_plain) / len(qn)}
    c.close()
    return {**res, "corpus": name, "cost": cost, "fit_queries": fit_queries}


def report(res: dict) -> list[str]:
    out = [f"\n### {res['corpus']}: {res['old']} -> {res['new']}, order {res['order']}"
           f"{', fusion fitted on real train-half queries' if res.get('fit_queries') else ''} "
           f"({res['items']} items, {res['queries']} golden queries, adapter from {res['sample']} items)"]
    out.append("| fraction | " + " | ".join(f"{s} R@10 / nDCG@10" for s in STRATEGIES) + " | fused ≥ old−SE | flips fused |")
    out.append("|---" * (len(STRATEGIES) + 3) + "|")
    for r in res["rows"]:
        o = r["old"]
        ok = all(r["fused"][k] >= o[k] - o[f"{k}_se"] for k in ("recall@10", "ndcg@10"))
        cells = [f"{r[s]['recall@10']:.4f} / {r[s]['ndcg@10']:.4f}" for s in STRATEGIES]
        out.append(f"| {r['fraction']:.0%} | " + " | ".join(cells) + f" | {'yes' if ok else '**no**'} | "
                   f"{r['fused']['negative_flip_rate']:.3f} |")
    out.append("AUC (recall@10 over fraction): " + ", ".join(f"{s} {area(res['rows'], s):.4f}" for s in STRATEGIES))
    last = res["rows"][-1]
    out.append(f"End: fused − new at 100 %: recall@10 {last['fused']['recall@10'] - last['new']['recall@10']:+.4f}, "
               f"nDCG@10 {last['fused']['ndcg@10'] - last['new']['ndcg@10']:+.4f}; SE of old: "
               f"{last['old']['recall@10_se']:.4f} / {last['old']['ndcg@10_se']:.4f}")
    f = res["fusion"]
    out.append(f"Fusion weights (oo, ao[, nn], bias): A {[round(x, 2) for x in f['A']]}, B {[round(x, 2) for x in f['B']]} "
               f"from {f['queries']} {f.get('from', 'pseudo-queries')}"
               + (f", {f['calibration']} (N / n = {f['density']:.2f})" if f.get("calibration") else ""))
    c = res["cost"]
    out.append(f"Cost beyond a plain search (queries encoded): batch {c['batch']['added_us']:.1f} µs/query "
               f"(plain {c['batch']['plain_us']:.1f}, fused {c['batch']['fused_us']:.1f}); one at a time "
               f"{c['single']['added_us']:.1f} µs/query (plain {c['single']['plain_us']:.1f}); start {res['start_s']:.1f} s")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", default=PAIRS)
    ap.add_argument("--corpora", default="bbc-news")
    ap.add_argument("--orders", default="random,uncertainty")
    ap.add_argument("--sample", type=int, default=1000)
    ap.add_argument("--queries", type=int, default=None, help="at most N golden queries")
    ap.add_argument("--fit-queries", action="store_true",
                    help="fit the fusion on the train half's real titles (upgrade start --fit-queries)")
    ap.add_argument("--backend", default="torch", help="encoder backend of both models' vectors (and of the slots)")
    ap.add_argument("--items", type=int, default=None, help="a fixed random subset of N corpus items (bench_space sample)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    print(f"machine: {machine()}")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.corpora.split(","):
            for pair in args.pairs.split(","):
                old_m, new_m = pair.split(":")
                for order in args.orders.split(","):
                    res = run_pair(old_m, new_m, name, order, args.sample, args.queries, Path(tmp), args.fit_queries,
                                   args.backend, args.items)
                    results.append(res)
                    print("\n".join(report(res)), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
