"""Record search results and saved indexes with the PRE-refactor code (run once, before the refactor)."""
import json
import sys
from pathlib import Path

import numpy as np

from repspace import Space
from repspace.compress import CSRCompressor, PCACompressor
from repspace.index import Index

out = Path(sys.argv[1])
r = np.random.default_rng(20261201)
scale = np.exp(-np.arange(16) / 6)
x = (r.normal(size=(120, 16)) * scale).astype(np.float32)
q = (r.normal(size=(6, 16)) * scale).astype(np.float32)
space = Space(x, [f"i{j:03d}" for j in range(120)], model="golden")
np.save(out / "queries.npy", q)
pca = PCACompressor(dims=[4, 8]).fit(x, source=space)
csr = CSRCompressor(k=4, hidden=64, epochs=2).fit(x, source=space)
cases = {  # name: (spec, adaptor, adaptor_dim)
    "flat": ("Flat", None, None), "hnsw8": ("HNSW8", None, None), "hnsw32": ("HNSW32", None, None),
    "int8": ("int8", None, None), "int8_rescore": ("int8+rescore:20", None, None),
    "binary": ("binary+rescore:30", None, None), "binary_all": ("binary+rescore:120", None, None),
    "funnel": ("funnel:4/16:40", None, None), "funnel3": ("funnel:2/8/16", None, None),
    "pca_flat": ("Flat", pca, 8), "pca_hnsw": ("HNSW8", pca, 4), "pca_funnel": ("funnel:4/8:30", pca, None),
    "pca_binary": ("binary+rescore:25", pca, 8), "csr_sparse": ("sparse", csr, None),
}
golden = {}
for name, (spec, ad, dim) in cases.items():
    ix = Index.build(space, spec, adaptor=ad, adaptor_dim=dim)
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
print("ok", len(golden))
