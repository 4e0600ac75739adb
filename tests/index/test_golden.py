"""Search results, sizes and saved files of every index kind, pinned to the code before #11's refactor.

`data/v1/` was written by `data/record_v1.py` with the pre-refactor `repspace.index` (commit 51bf325):
`golden.json` holds, per case, the exact row ids (and scores) for three (k, ef_search) settings,
`memory_bytes()`, the files saved and the index.json keys; seven of the saved indexes are kept as they
were written, to prove the on-disk format still loads.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from repspace.compress import Compressor
from repspace.index import Index, parse_spec
from repspace.index.index import MANIFEST_KEYS

DATA = Path(__file__).parent / "data" / "v1"
GOLDEN = json.loads((DATA / "golden.json").read_text())
SAVED = ["flat", "hnsw8", "int8_rescore", "binary", "funnel3", "pca_hnsw", "csr_sparse", "ivfpq", "ivfhnswsq", "ivfrq",
         "ivfflat"]
CASES = {  # name: (spec, adaptor fixture, adaptor_dim), as in record_v1.py
    "flat": ("Flat", None, None), "hnsw8": ("HNSW8", None, None), "hnsw32": ("HNSW32", None, None),
    "int8": ("int8", None, None), "int8_rescore": ("int8+rescore:20", None, None),
    "binary": ("binary+rescore:30", None, None), "binary_all": ("binary+rescore:120", None, None),
    "funnel": ("funnel:4/16:40", None, None), "funnel3": ("funnel:2/8/16", None, None),
    "pca_flat": ("Flat", "pca_hnsw", 8), "pca_hnsw": ("HNSW8", "pca_hnsw", 4), "pca_funnel": ("funnel:4/8:30", "pca_hnsw", None),
    "pca_binary": ("binary+rescore:25", "pca_hnsw", 8), "csr_sparse": ("sparse", "csr_sparse", None),
    "ivfpq": ("IVF4,PQ4+refine:2", None, None),  # added later (data/record_ivfpq.py): 120 rows, searched exactly
    "ivfhnswsq": ("IVF4,HNSW_SQ+refine:2", None, None),  # likewise
    "ivfrq": ("IVF4,RaBitQ+refine:2", None, None),  # likewise
    "ivfflat": ("IVF4,Flat", None, None),  # likewise
}
# index.json keys as the pre-refactor Index.save wrote them (in this order)
OLD_MANIFEST_KEYS = ["format", "format_version", "spec", "model", "model_version", "dim", "input_dim", "count",
                     "has_faiss_index", "adaptor"]


@pytest.fixture(scope="module")
def queries():
    return np.load(DATA / "queries.npy")


@pytest.fixture(scope="module")
def corpus():
    return Index.load(DATA / "flat").space


def _check(ix, want, queries):
    for key, got in want.items():
        if not key.startswith("k"):
            continue
        k, ef = (int(v) for v in key[1:].split("_ef"))
        s, i = ix.search(queries, k, ef_search=ef)
        assert i.tolist() == got["ids"], key
        np.testing.assert_allclose(s, got["scores"], atol=2e-6)


def test_every_case_and_every_kind_is_pinned():
    from repspace.index import KINDS

    assert set(CASES) == set(GOLDEN)
    assert {parse_spec(c[0]).kind for c in CASES.values()} == set(KINDS)
    assert {parse_spec(GOLDEN[n]["spec"]).kind for n in SAVED} == set(KINDS)


@pytest.mark.parametrize("name", sorted(CASES))
def test_fresh_builds_search_exactly_as_before(name, corpus, queries, tmp_path):
    spec, adaptor_from, adaptor_dim = CASES[name]
    adaptor = Compressor.load(DATA / adaptor_from / "adaptor") if adaptor_from else None
    ix = Index.build(corpus, spec, adaptor=adaptor, adaptor_dim=adaptor_dim)
    want = GOLDEN[name]
    assert (str(ix.spec), ix.dim, ix.memory_bytes()) == (want["spec"], want["dim"], want["memory_bytes"])
    _check(ix, want, queries)
    ix.save(tmp_path / "ix")
    files = sorted(str(p.relative_to(tmp_path / "ix")) for p in (tmp_path / "ix").rglob("*") if p.is_file())
    assert files == want["files"]
    meta = json.loads((tmp_path / "ix" / "index.json").read_text())
    assert list(meta) == want["index_json_keys"] == OLD_MANIFEST_KEYS == list(MANIFEST_KEYS)
    assert meta["spec"] == want["spec"]
    _check(Index.load(tmp_path / "ix"), want, queries)


@pytest.mark.parametrize("name", SAVED)
def test_indexes_saved_by_the_old_code_load_and_search_as_before(name, queries):
    ix = Index.load(DATA / name)
    want = GOLDEN[name]
    assert (str(ix.spec), ix.dim, ix.memory_bytes()) == (want["spec"], want["dim"], want["memory_bytes"])
    _check(ix, want, queries)
    meta = json.loads((DATA / name / "index.json").read_text())
    assert meta["has_faiss_index"] == ix.spec.has_faiss_index
