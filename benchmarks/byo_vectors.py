"""Bring-your-own vectors at scale (issue 26 item 1): reading and checking a file of the new model's vectors against
a large collection, streamed (`collections/upgrade/vectors.py`: `.npy` memory-mapped, Parquet/Arrow read a batch at
a time into a memory-mapped temporary file) beside reading it whole (`spaces.external.read_vectors`, the path every
format took before), each in its own process, one after the other.

Measured per format: wall time of `read_new_vectors` (every check: dimension, finite values, ids unique and held by
the collection) + the 1,000-item sample, and the process's peak anonymous resident memory (`RssAnon`, polled every
10 ms: the file-backed pages of a memory-mapped input are not counted) and ru_maxrss.

Usage: python benchmarks/byo_vectors.py [--n 1000000] [--m 500000] [--dim 384] [--work /tmp/byo] [--formats npy,parquet,arrow]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine  # noqa: E402
from scale import make_data  # noqa: E402

PROBE = """
import json, resource, sys, threading, time
peak = [0.0]
def poll():
    while True:
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon:"):
                peak[0] = max(peak[0], int(line.split()[1]) / 1024)
        time.sleep(0.01)
threading.Thread(target=poll, daemon=True).start()
from repspace.collections import Collection
from repspace.collections.upgrade.vectors import _sample, collection_ids, read_new_vectors
uri, path, ids_file, dim, how = sys.argv[1], sys.argv[2], sys.argv[3] or None, int(sys.argv[4]), sys.argv[5]
c = Collection.open(uri)
c.count()  # the store's reader and the formats' modules imported before the clock and the baseline
import pyarrow.parquet, repspace.spaces.external  # noqa: E401
time.sleep(0.05)
base = peak[0]
t0 = time.perf_counter()
if how == "streamed":
    nv = read_new_vectors(c, path, model="new", dim=dim, ids_file=ids_file)
    rows = _sample(nv, 1000, 0)
    n = len(nv)
else:  # the whole file in memory, then the same id checks
    from repspace.spaces.external import read_vectors
    space = read_vectors(path, model="new", ids_file=ids_file)
    live = collection_ids(c, None)[0]
    assert (live.rows(space.ids) >= 0).all()
    n = len(space.ids)
dt = time.perf_counter() - t0
time.sleep(0.05)
print(json.dumps({"s": dt, "n": n, "anon_mib": peak[0], "anon_before_mib": base,
                  "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_new(work: Path, m: int, dim: int, formats: list[str]) -> dict[str, tuple[Path, Path | None]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(1)
    ids = np.sort(rng.choice(N_ITEMS, m, replace=False))
    names = [f"item-{i:08d}" for i in ids]
    npy = work / "new.npy"
    if not npy.exists():
        make_data(npy, m, dim, seed=1)
    (work / "new.ids").write_text("\n".join(names) + "\n")
    v = np.load(npy, mmap_mode="r")
    out: dict[str, tuple[Path, Path | None]] = {"npy": (npy, work / "new.ids")}
    schema = pa.schema([("id", pa.string()), ("vector", pa.list_(pa.float32(), dim))])

    def batches():
        for s in range(0, m, 65536):
            part = np.ascontiguousarray(v[s : s + 65536])
            yield pa.record_batch([pa.array(names[s : s + 65536]),
                                   pa.FixedSizeListArray.from_arrays(pa.array(part.ravel()), dim)], schema=schema)

    if "parquet" in formats:
        p = work / "new.parquet"
        if not p.exists():
            with pq.ParquetWriter(p, schema) as w:
                for b in batches():
                    w.write_batch(b)
        out["parquet"] = (p, None)
    if "arrow" in formats:
        p = work / "new.arrow"
        if not p.exists():
            with pa.OSFile(str(p), "wb") as f, pa.ipc.new_file(f, schema) as w:
                for b in batches():
                    w.write_batch(b)
        out["arrow"] = (p, None)
    return out


N_ITEMS = 0


def main() -> None:
    global N_ITEMS
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--m", type=int, default=500_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--work", default="/tmp/byo")
    ap.add_argument("--formats", default="npy,parquet,arrow")
    ap.add_argument("--ways", default="streamed,whole")
    args = ap.parse_args()
    N_ITEMS = args.n
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}")
    uri = str(work / "coll")
    from repspace.collections import Collection

    if Collection.open_if_exists(uri) is None:
        old = work / "old.npy"
        make_data(old, args.n, 64, seed=0)  # the old model's vectors: 64-d keeps the setup short
        v = np.load(old, mmap_mode="r")
        c = Collection.create(uri, model="old", dim=64)
        for s in range(0, args.n, 100_000):
            c.upsert([f"item-{i:08d}" for i in range(s, min(s + 100_000, args.n))], vectors=np.asarray(v[s : s + 100_000]))
        old.unlink()
    files = write_new(work, args.m, args.dim, args.formats.split(","))
    mb = args.m * args.dim * 4 / 2**20
    print(f"collection {args.n:,} items; new vectors {args.m:,} × {args.dim} ({mb:,.0f} MiB as float32)")
    print("| format | read | s | peak anonymous MiB (before) | ru_maxrss MiB |")
    print("|---|---|---|---|---|")
    for fmt, (path, ids_file) in files.items():
        for how in args.ways.split(","):
            r = subprocess.run([sys.executable, "-c", PROBE, uri, str(path), str(ids_file or ""), str(args.dim), how],
                               capture_output=True, text=True)
            if r.returncode:
                print(f"| {fmt} | {how} | failed: {r.stderr.strip().splitlines()[-1]} | | |")
                continue
            got = json.loads(r.stdout.strip().splitlines()[-1])
            print(f"| {fmt} | {how} | {got['s']:.1f} | {got['anon_mib']:,.0f} ({got['anon_before_mib']:,.0f}) | "
                  f"{got['maxrss_mib']:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
