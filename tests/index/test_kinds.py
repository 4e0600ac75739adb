"""Index kinds as strategies: the registry, the spec grammar, the thin CLI, and adding a kind in one file."""

import ast
import importlib
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from repspace import Space
from repspace.errors import DimensionMismatchError, InvalidInputError
from repspace.index import KINDS, SPEC_HELP, SPEC_USAGE, Index, IndexSpec, parse_spec
from repspace.index.kinds.base import IndexSpec as BaseSpec
from repspace.ops.search import topk

# the help string the pre-refactor spec.py spelled out by hand (cli/collection.py edits it by replace()), plus the
# kinds added since (ivfpq, ivfhnswsq, ivfrq, ivfflat: issue 26)
OLD_SPEC_HELP = ("Flat, HNSW32, int8, int8+rescore:100, binary+rescore:200, funnel:64/256/768[:200], "
                 "IVF1000,Flat+nprobe:100, IVF256,PQ48+refine:4, IVF64,HNSW_SQ+nprobe:32+refine:4, "
                 "IVF256,RaBitQ+nprobe:128+refine:50, "
                 "sparse (with a csr adaptor)")


def test_help_texts_come_from_the_registry():
    assert SPEC_HELP == OLD_SPEC_HELP
    assert SPEC_USAGE.split(" | ") == [k.usage for k in KINDS.values()]
    assert list(KINDS) == ["flat", "hnsw", "int8", "binary", "funnel", "ivfflat", "ivfpq", "ivfhnswsq", "ivfrq",
                          "sparse"]


@pytest.mark.parametrize("name", list(KINDS))
def test_each_kind_is_one_module_and_parses_its_own_examples(name):
    kind = KINDS[name]
    assert kind.name == name and issubclass(kind, BaseSpec)
    assert kind.__module__ == f"repspace.index.kinds.{name}"
    for example in re.sub(r"\[[^]]*\]| \(.*\)", "", kind.examples).split(", "):
        spec = parse_spec(example)
        assert type(spec) is kind and spec.kind == name
        assert parse_spec(str(spec)) == spec and hash(parse_spec(str(spec))) == hash(spec)
        assert parse_spec(f"  {example.upper()} ") == spec


def test_specs_parse_exactly_as_before():
    cases = {"flat": "Flat", "FLAT": "Flat", "hnsw2": "HNSW2", "Hnsw64": "HNSW64", "int8": "int8",
             "INT8+RESCORE:0": "int8", "int8+rescore:7": "int8+rescore:7", "binary+rescore:1": "binary+rescore:1",
             "funnel:1/2": "funnel:1/2:200", "funnel:8/16/32:9": "funnel:8/16/32:9", "Sparse": "sparse"}
    for text, canonical in cases.items():
        assert str(parse_spec(text)) == canonical
    for bad, message in [("HNSW1", "HNSW needs M >= 2, got 'HNSW1'"),
                         ("binary+rescore:0", "binary+rescore needs a positive number of candidates"),
                         ("funnel:0/8", "funnel dims must increase, e.g. funnel:64/256/768; got 'funnel:0/8'"),
                         ("funnel:8/8", "must increase"), ("int8+rescore:", "does not parse"),
                         ("flat ish", f"index spec 'flat ish' does not parse; use one of: {OLD_SPEC_HELP}"),
                         ("ſparse", "does not parse")]:  # case folding is ASCII for the plain words
        with pytest.raises(InvalidInputError, match=re.escape(message)):
            parse_spec(bad)


def test_index_spec_constructs_a_kind_by_name():
    assert IndexSpec("flat") == parse_spec("Flat")
    assert IndexSpec("funnel", stages=(8, 16), shortlist=50) == parse_spec("funnel:8/16:50")
    assert IndexSpec(kind="hnsw", hnsw_m=16) == parse_spec("HNSW16")
    assert IndexSpec("hnsw").hnsw_m == 32 and IndexSpec("int8").rescore == 0 and IndexSpec("funnel").shortlist == 200
    with pytest.raises(InvalidInputError, match="unknown index kind 'ivf'"):
        IndexSpec("ivf")


def test_faiss_factory_kinds_build_what_their_factory_string_names():
    x = np.random.default_rng(1).normal(size=(50, 8)).astype(np.float32)
    assert type(parse_spec("HNSW12").build(x)).__name__ == "IndexHNSWFlat"
    assert parse_spec("HNSW12").build(x).hnsw.efConstruction == 100
    assert type(parse_spec("int8+rescore:5").build(x)).__name__ == "IndexScalarQuantizer"
    assert (parse_spec("HNSW12").factory(), parse_spec("int8").factory()) == ("HNSW12,Flat", "SQ8")


def test_import_loads_neither_evaluation_nor_torch():
    code = "import sys, repspace.index; print(sorted(m for m in sys.modules if m.startswith(('repspace.evaluation', 'torch'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_cli_is_a_thin_skin():
    """cli/index.py imports no private names of the library and applies no adapter itself."""
    src = Path(importlib.import_module("repspace.cli.index").__file__).read_text()
    tree = ast.parse(src)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("repspace"):
            assert not any(a.name.startswith("_") for a in node.names), node.module
            assert not any(part.startswith("_") for part in node.module.split(".")), node.module
    assert ".transform(" not in src and "check_adapter_target" not in src and "check_source" not in src


def test_cli_help_lists_the_registered_specs(cli):
    code, out, _ = cli("index", "build", "--help")
    assert code == 0
    flat = " ".join(out.replace("│", " ").split())
    for kind in KINDS.values():
        assert kind.usage in flat


class _Adapter:
    """A stand-in translator: maps 'new' 4-d queries into the index's model by a fixed matrix."""

    source_model_, target_model_, target_dim_ = "new", "synthetic", 6

    def __init__(self, m):
        self.m = m

    def check_source(self, space):
        if space.model != "new":
            raise InvalidInputError(f"adapter maps model 'new'; the space is {space.model!r}")

    def transform(self, x):
        return np.asarray(x) @ self.m


def test_search_ids_through_an_adapter():
    rng = np.random.default_rng(3)
    space = Space(rng.normal(size=(40, 6)).astype(np.float32), [f"c{i}" for i in range(40)], model="synthetic")
    ad = _Adapter(rng.normal(size=(4, 6)).astype(np.float32))
    q = Space(rng.normal(size=(3, 4)).astype(np.float32), ["a", "b", "c"], model="new")
    ix = Index.build(space, "Flat")
    want = ix.search_ids(ad.transform(q.vectors), 5)
    assert ix.search_ids(q, 5, adapter=ad) == want == ix.search_ids(np.asarray(q.vectors), 5, adapter=ad)
    with pytest.raises(InvalidInputError, match="adapter maps model 'new'"):
        ix.search_ids(Space(np.asarray(q.vectors), q.ids, model="old"), 5, adapter=ad)
    small = Index.build(Space(rng.normal(size=(5, 3)).astype(np.float32), list("vwxyz"), model="synthetic"), "Flat")
    with pytest.raises(DimensionMismatchError, match="6-d vectors but the index is 3-d"):
        small.search_ids(q, 5, adapter=ad)


@dataclass(frozen=True)
class _Prefix(BaseSpec):
    """A toy kind, as a user would add one: exact search on the first `d` dimensions (`prefix:D`)."""

    d: int = 2
    name: ClassVar[str] = "prefix"
    pattern: ClassVar[str] = r"prefix:(\d+)"
    usage: ClassVar[str] = "prefix:D"
    examples: ClassVar[str] = "prefix:2"

    @classmethod
    def from_match(cls, m, text):
        return cls(d=int(m.group(1)))

    def __str__(self):
        return f"prefix:{self.d}"

    def encode(self, x, adaptor, adaptor_dim):
        return super().encode(np.asarray(x)[:, : self.d], adaptor, adaptor_dim)

    def search(self, state, base, q, k, ef_search):
        return topk(q, base, k)

    def first_stage_bytes(self, n, dim):
        return n * dim * 4


def test_a_new_kind_is_one_class_and_one_registry_line(monkeypatch, tmp_path):
    monkeypatch.setitem(KINDS, "prefix", _Prefix)
    rng = np.random.default_rng(4)
    space = Space(rng.normal(size=(30, 5)).astype(np.float32), [f"p{i}" for i in range(30)], model="m")
    ix = Index.build(space, "prefix:2")
    q = rng.normal(size=(4, 5)).astype(np.float32)
    _, i = ix.search(q, 3)
    ref = Index.build(Space(np.asarray(space.vectors)[:, :2], space.ids, model="m"), "Flat").search(q[:, :2], 3)
    np.testing.assert_array_equal(i, ref[1])
    assert ix.memory_bytes() == {"first_stage": 30 * 2 * 4, "float_vectors": 30 * 2 * 4}
    ix.save(tmp_path / "ix")
    again = Index.load(tmp_path / "ix")
    assert again.spec == _Prefix(2)
    np.testing.assert_array_equal(again.search(q, 3)[1], i)


def test_collections_accept_every_kind_that_is_not_static_only():
    from repspace.collections.slots import collection_spec as _collection_spec
    from repspace.errors import InvalidInputError
    from repspace.index import KINDS

    assert [k for k, c in KINDS.items() if c.static_only] == ["sparse"]
    with pytest.raises(InvalidInputError, match=re.escape("static indexes; collections take Flat, HNSW32[+ef:E], int8")):
        _collection_spec("sparse")
    assert str(_collection_spec("int8+rescore:50")) == "int8+rescore:50"


def test_ivfpq_trains_once_the_data_allows_and_recalls_the_exact_neighbours(tmp_path):
    from repspace import Space

    r = np.random.default_rng(3)
    scale = np.exp(-np.arange(32) / 10)
    x = (r.normal(size=(3000, 32)) * scale).astype(np.float32)
    q = (r.normal(size=(40, 32)) * scale).astype(np.float32)
    space = Space(x, [f"i{j}" for j in range(len(x))], model="m")
    ix = Index.build(space, "IVF16,PQ8+refine:8")
    assert ix._state is not None  # trained: 3,000 >= 16 x 39 and >= 256
    exact = Index.build(space, "Flat")
    _, want = exact.search(q, 10)
    _, got = ix.search(q, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(want.tolist(), got.tolist())])
    assert recall >= 0.9, recall
    ix.save(tmp_path / "ix")
    _, again = Index.load(tmp_path / "ix").search(q, 10)
    assert (again == got).all()
    small = Index.build(Space(x[:100], [f"i{j}" for j in range(100)], model="m"), "IVF16,PQ8")
    assert small._state is None  # too few to train: searched exactly
    with pytest.raises(Exception, match="multiple of 8"):
        Index.build(Space(x[:, :30], [f"i{j}" for j in range(len(x))], model="m"), "IVF16,PQ8")


@pytest.mark.parametrize("text,want,nprobe,refine", [
    ("IVF256,PQ48", "IVF256,PQ48", 32, 1),
    ("ivf1024,pq48+refine:4+nprobe:64", "IVF1024,PQ48+nprobe:64+refine:4", 64, 4),
    ("IVF16,PQ8+nprobe:100", "IVF16,PQ8+nprobe:100", 16, 1),  # never more lists than there are
    ("IVF64,HNSW_SQ+nprobe:32+refine:4", "IVF64,HNSW_SQ+nprobe:32+refine:4", 32, 4),
    ("ivf64,hnswsq8+ef:200", "IVF64,HNSW_SQ+ef:200", 8, 1),
    ("IVF256,RaBitQ+nprobe:128+refine:50", "IVF256,RaBitQ+nprobe:128+refine:50", 128, 50),
    ("ivf16,rq+refine:20", "IVF16,RaBitQ+refine:20", 8, 20),
    ("ivf1000,flat+nprobe:100", "IVF1000,Flat+nprobe:100", 100, 1),
])
def test_ivf_search_options_round_trip(text, want, nprobe, refine):
    spec = parse_spec(text)
    assert str(spec) == want and parse_spec(str(spec)) == spec
    assert (spec.nprobe, spec.refine) == (nprobe, refine)


@pytest.mark.parametrize("bad,why", [("IVF64,PQ8+ef:100", "not one of this kind's"),
                                     ("IVF64,PQ8+refine:2+refine:3", "given twice"),
                                     ("IVF64,HNSW_SQ+nprobe:0", "nprobe must be >= 1"),
                                     ("IVF64,RaBitQ+ef:100", "not one of this kind's"),
                                     ("IVF64,Flat+refine:4", "not one of this kind's"),
                                     ("IVF64,PQ8+refine:1001", "refine must be >= 1 and <= 1,000"),
                                     ("IVF64,Flat+nprobe:1000001", "<= 1,000,000")])
def test_ivf_bad_options_name_the_spec(bad, why):
    with pytest.raises(InvalidInputError, match=why) as e:
        parse_spec(bad)
    assert e.value.param == "spec"


def test_pgvector_refuses_more_ivfflat_lists_than_it_takes():
    from repspace.collections.pg_index import index_expr

    assert index_expr("v_0", 8, parse_spec("IVF32768,Flat")) is not None
    with pytest.raises(InvalidInputError, match="at most 32,768 lists") as e:
        index_expr("v_0", 8, parse_spec("IVF40000,Flat"))
    assert e.value.param == "spec"


@pytest.mark.parametrize("text,faiss_type", [("IVF16,HNSW_SQ+nprobe:8+refine:4", "IndexIVFScalarQuantizer"),
                                              ("IVF16,RaBitQ+nprobe:8+refine:20", "IndexIVFRaBitQ"),
                                              ("IVF16,Flat+nprobe:8", "IndexIVFFlat")])
def test_ivf_kinds_in_faiss_recall_the_exact_neighbours(text, faiss_type):
    """`IVFn,HNSW_SQ` (faiss IVFn,SQ8) and `IVFn,RaBitQ` (faiss IndexIVFRaBitQ, 1-bit codes: the k·F re-rank with the
    floats does the ranking) over inner product."""
    r = np.random.default_rng(4)
    scale = np.exp(-np.arange(32) / 10)
    x = (r.normal(size=(3000, 32)) * scale).astype(np.float32)
    q = (r.normal(size=(40, 32)) * scale).astype(np.float32)
    space = Space(x, [f"i{j}" for j in range(len(x))], model="m")
    ix = Index.build(space, text)
    assert type(ix._state).__name__ == faiss_type and ix._state.nlist == 16
    _, want = Index.build(space, "Flat").search(q, 10)
    _, got = ix.search(q, 10)
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(want.tolist(), got.tolist())]) >= 0.95


def test_a_fused_search_gathers_candidates_with_the_kinds_own_setting():
    """IVF_HNSW_SQ's 8-bit vectors rank nearly like the floats: its candidates skip the re-rank (the union is scored
    exactly); RaBitQ's 1-bit codes do not: the spec itself."""
    spec = parse_spec("IVF16,RaBitQ+refine:20")
    assert spec.for_candidates() is spec and parse_spec("Flat").for_candidates() == parse_spec("Flat")
    assert parse_spec("IVF16,HNSW_SQ+refine:4").for_candidates() == parse_spec("IVF16,HNSW_SQ")


def test_search_options_replace_the_specs_own():
    spec = parse_spec("IVF64,HNSW_SQ+nprobe:32+refine:4")
    assert spec.with_options({"nprobe": 8, "ef": 300}) == parse_spec("IVF64,HNSW_SQ+nprobe:8+ef:300+refine:4")
    assert spec.with_options({}) is not None and spec.with_options({}) == spec
    for bad, why in [({"nprobe": 0}, "nprobe must be >= 1"), ({"ef": 10**12}, "<= 1,000,000"),
                     ({"rescore": 2}, "not one of this kind's"),
                     ({"nprobe": 2.5}, "integers")]:
        with pytest.raises(InvalidInputError, match=why) as e:
            spec.with_options(bad)
        assert e.value.param == "options"
    with pytest.raises(InvalidInputError, match="no search options"):
        parse_spec("Flat").with_options({"nprobe": 4})


def test_hnsw_ef_is_a_search_option():
    """`HNSWm+ef:E` (PostgreSQL: `hnsw.ef_search`; faiss: efSearch): parsed, printed back, replaced per search."""
    spec = parse_spec("HNSW16+ef:400")
    assert (spec.hnsw_m, spec.ef, str(spec)) == (16, 400, "HNSW16+ef:400")
    assert str(parse_spec("HNSW16")) == "HNSW16" and parse_spec("HNSW16").ef == 0
    assert parse_spec("HNSW16").with_options({}) == parse_spec("HNSW16") and spec.with_options({}) == spec
    assert parse_spec("HNSW16").with_options({"ef": 64}) == spec.with_options({"ef": 64}) == parse_spec("HNSW16+ef:64")
    for bad, why in [({"nprobe": 4}, r"option 'nprobe' is not one of this kind's \(ef\)"), ({"ef": 0}, ">= 1"), ({"ef": True}, "integer")]:
        with pytest.raises(InvalidInputError, match=why) as e:
            parse_spec("HNSW32").with_options(bad)
        assert e.value.param == "options"
    with pytest.raises(InvalidInputError, match="ef must be >= 1"):
        parse_spec("HNSW16+ef:0")
    # the faiss graph searches with the spec's ef: a wider list finds at least as many true neighbours
    rng = np.random.default_rng(0)
    base = rng.standard_normal((3000, 24)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    q = base[:50] + 0.3 * rng.standard_normal((50, 24)).astype(np.float32)
    exact = np.argsort(-(q @ base.T), axis=1)[:, :10]
    state = spec.build(base)
    hit = {ef: np.mean([len(set(r) & set(e)) for r, e in zip(
        parse_spec(f"HNSW16+ef:{ef}").search(state, base, q, 10, 999)[1], exact)]) / 10 for ef in (10, 400)}
    assert hit[400] >= hit[10] and hit[400] > 0.95
