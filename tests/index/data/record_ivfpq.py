"""Record a case added after the refactor (with the code that introduced it) into data/v1, in record_v1.py's format:
`python record_ivfpq.py data/v1 [NAME SPEC]` (default: the `ivfpq` case; `ivfhnswsq "IVF4,HNSW_SQ+refine:2"` and
`ivfrq "IVF4,RaBitQ+refine:2"`, `ivfflat "IVF4,Flat"` are the others). 120 rows are too few to train the quantiser, so the pinned answer is the exact one."""
import json
import sys
from pathlib import Path

import numpy as np

from repspace.index import Index

out = Path(sys.argv[1])
space = Index.load(out / "flat").space
q = np.load(out / "queries.npy")
golden = json.loads((out / "golden.json").read_text())
name, spec = (sys.argv[2], sys.argv[3]) if len(sys.argv) > 3 else ("ivfpq", "IVF4,PQ4+refine:2")
ix = Index.build(space, spec)
ix.save(out / name)
back = Index.load(out / name)
res = {}
for k, ef in [(5, 128), (1, 128), (12, 8)]:
    s, i = ix.search(q, k, ef_search=ef)
    s2, i2 = back.search(q, k, ef_search=ef)
    assert (i == i2).all(), name
    res[f"k{k}_ef{ef}"] = {"ids": i.tolist(), "scores": [[round(float(v), 6) for v in row] for row in s]}
res["memory_bytes"] = ix.memory_bytes()
res["spec"] = str(ix.spec)
res["dim"] = ix.dim
res["files"] = sorted(str(p.relative_to(out / name)) for p in (out / name).rglob("*") if p.is_file())
res["index_json_keys"] = list(json.loads((out / name / "index.json").read_text()))
golden[name] = res
(out / "golden.json").write_text(json.dumps(golden, indent=1) + "\n")
print("ok", name, res["files"])
