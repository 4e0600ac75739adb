"""Evaluation of the built-in text models on bbc-news: the numbers in benchmarks/RESULTS.md.

Probe / k-NN accuracy, label-retrieval mAP@R, clustering NMI per (model, view); title -> body
retrieval on the test half; linear CKA / mutual k-NN between models. MPNet bodies are left
out unless already cached (26 min on 2 cores); pass --mpnet-bodies to encode them.
"""

from __future__ import annotations

import argparse
import sys
from itertools import combinations
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine  # noqa: E402
from _spaces import CACHE, bench_space  # noqa: E402

from repspace.datasets import hash_split  # noqa: E402
from repspace.evaluation import cluster, compare, knn_probe, label_retrieval, linear_probe, query_retrieval  # noqa: E402

MODELS = ("minilm-l6", "minilm-l3-onnx", "mpnet-base", "glove-50")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mpnet-bodies", action="store_true")
    args = ap.parse_args()
    print(f"machine: {machine()}")
    spaces = {}
    for m in MODELS:
        for view in ("title", "body"):
            cached = (CACHE / f"{m}--bbc-news-{view}" / "manifest.json").is_file()
            if m == "mpnet-base" and view == "body" and not (cached or args.mpnet_bodies):
                continue
            spaces[(m, view)] = bench_space(m, f"bbc-news:{view}")
    print("\n| model | view | dim | probe acc | 20-NN acc | mAP@R (labels) | P@10 (labels) | NMI |")
    print("|---|---|---|---|---|---|---|---|")
    for (m, view), s in spaces.items():
        lr = label_retrieval(s)
        print(f"| {m} | {view} | {s.dim} | {linear_probe(s)['accuracy']:.4f} | {knn_probe(s)['accuracy']:.4f} | "
              f"{lr['map@r']:.4f} | {lr['precision@10']:.4f} | {cluster(s)['nmi']:.4f} |")
    print("\n| model | title -> body, test half: recall@1 | recall@10 | nDCG@10 | MRR@10 |")
    print("|---|---|---|---|---|")
    for m in MODELS:
        if (m, "title") in spaces and (m, "body") in spaces:
            test = [i for i in spaces[(m, "body")].ids if hash_split(i) == "test"]
            r = query_retrieval(spaces[(m, "title")].select(test), spaces[(m, "body")].select(test))
            print(f"| {m} | {r['recall@1']:.4f} | {r['recall@10']:.4f} | {r['ndcg@10']:.4f} | {r['mrr@10']:.4f} |")
    print("\n| A | B | view | CKA | debiased CKA | RBF CKA | SVCCA | mutual 10-NN | RSA | Procrustes dist. |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for view in ("title", "body"):
        for a, b in combinations(MODELS, 2):
            if (a, view) in spaces and (b, view) in spaces:
                c = compare(spaces[(a, view)], spaces[(b, view)])
                print(f"| {a} | {b} | {view} | {c['cka']:.4f} | {c['cka_debiased']:.4f} | {c['cka_rbf']:.4f} | "
                      f"{c['svcca']:.4f} | {c['mknn']:.4f} | {c['rsa']:.4f} | {c['procrustes']:.4f} |")


if __name__ == "__main__":
    main()
