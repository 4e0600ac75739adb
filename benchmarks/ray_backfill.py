"""An upgrade backfill on Ray against the local engine, side by side in one run (issue 26 item 6).

    python benchmarks/ray_backfill.py [--items 40000] [--senses] [--new minilm-l3-onnx] [--batch-size 64]
        [--engines local,ray1,ray2] [--json OUT]

Items: a random sample of the GNU dictionary's definitions (gcide, real text of every length; with `--senses` its
further senses, sub-senses and phrases too, dataset gcide-senses: 200,108 in all). For each engine —
local (2 threads), Ray with 1 actor of 2 CPUs, Ray with 2 actors of 1 CPU — a fresh LanceDB collection of the same
items (texts, with random unit vectors brought for the old model, MiniLM-L6: their values do not matter to a backfill's cost), `upgrade.start` to
the new model (the same seed and sample on each), then `upgrade.backfill` timed end to end (Ray: the local cluster is
started before the clock; actor start and model load are inside it, as are the periodic and final `optimize`). The
new slot's vectors of each Ray run are compared with the local engine's (the target: identical).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine  # noqa: E402

# engine, workers (a pool of n actors splits the 2 CPUs between them: 1 x 2 CPUs, 2 x 1 CPU)
ENGINES = {"local": ("local", None), "ray, 1 actor x 2 CPUs": ("ray", 1), "ray, 2 actors x 1 CPU": ("ray", 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=40_000)
    ap.add_argument("--new", default="minilm-l3-onnx", help="the upgrade's new model (the one the backfill encodes)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--sample", type=int, default=1000, help="upgrade.start's fit sample (encoded before the clock)")
    ap.add_argument("--engines", default="local,ray1,ray2", help="which runs: local, ray1 (1 actor), ray2 (2 actors)")
    ap.add_argument("--senses", action="store_true",
                    help="draw from gcide with its further senses and phrases (gcide-senses): 200,108 definitions")
    ap.add_argument("--work", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    from repspace.collections import Collection
    from repspace.collections import upgrade as up
    from _spaces import load_items
    from repspace.scale import connect

    # with --senses the whole dictionary at sense level: 200,108 definitions
    gcide = load_items("gcide", *(["gcide-senses"] if args.senses else []))
    pick = np.sort(np.random.default_rng(0).permutation(len(gcide.ids))[: args.items])
    ids, texts = [gcide.ids[j] for j in pick], [str(gcide.data[j]) for j in pick]
    old = np.random.default_rng(1).standard_normal((len(ids), 384)).astype(np.float32)
    old /= np.linalg.norm(old, axis=1, keepdims=True)
    work = Path(args.work or tempfile.mkdtemp(prefix="ray-backfill-"))
    print(f"machine: {machine()}; load average {os.getloadavg()}; {len(ids):,} gcide definitions "
          f"(mean {np.mean([len(t) for t in texts]):.0f} characters), new model {args.new}, batch {args.batch_size}",
          flush=True)
    connect(num_cpus=2)
    res: dict = {"machine": machine(), "items": len(ids), "new": args.new, "batch_size": args.batch_size, "runs": {}}
    vectors = {}
    chosen = {"local": "local", "ray1": "ray, 1 actor x 2 CPUs", "ray2": "ray, 2 actors x 1 CPU"}
    for label, (engine, workers) in ENGINES.items():
        if label not in [chosen[e] for e in args.engines.split(",")]:
            continue
        c = Collection.create(work / label.split(",")[0].replace(" ", "") / str(workers), model="minilm-l6")
        for s in range(0, len(ids), 10_000):
            c.upsert(ids[s : s + 10_000], texts=texts[s : s + 10_000], vectors=old[s : s + 10_000])
        up.start(c, args.new, sample=args.sample, evaluate_gate=False)
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        done = up.backfill(c, batch_size=args.batch_size, engine=engine, workers=workers)
        wall = time.perf_counter() - t0
        vectors[label] = c.export(slot=args.new)
        res["runs"][label] = {"seconds": wall, "items_per_s": done["backfilled"] / wall, "backfilled": done["backfilled"],
                              "fraction": done["fraction"], "load_before": load}
        print(f"{label}: {done['backfilled']:,} items in {wall:.1f} s ({done['backfilled'] / wall:,.1f} items/s; "
              f"load before {load:.1f})", flush=True)
        c.close()
    ref = vectors["local"]
    t_local = res["runs"]["local"]["seconds"]
    print("\n| engine | seconds | items/s | time / local | new vectors identical to local |\n|---|---|---|---|---|")
    for label, r in res["runs"].items():
        e = vectors[label]
        same = e.ids == ref.ids and np.array_equal(np.asarray(e.vectors), np.asarray(ref.vectors))
        r.update(ratio=r["seconds"] / t_local, identical=bool(same))
        print(f"| {label} | {r['seconds']:.1f} | {r['items_per_s']:,.1f} | {r['ratio']:.3f} | {'yes' if same else 'NO'} |")
    if "ray, 1 actor x 2 CPUs" in res["runs"]:
        print(f"\n1 worker / local: {res['runs']['ray, 1 actor x 2 CPUs']['ratio']:.3f} (target <= 1.15)")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    main()
