import json

import numpy as np
import pytest

from repspace import Space
from repspace.errors import DimensionMismatchError, InvalidInputError, SpaceFormatError
from repspace.index import Index, parse_spec


@pytest.fixture
def space(rng):
    # decaying spectrum: Matryoshka-like ordering, prefixes carry most information
    x = rng.normal(size=(3000, 64)) * np.exp(-np.arange(64) / 16)
    return Space(x.astype(np.float32), [f"d{i}" for i in range(3000)], model="synthetic")


@pytest.fixture
def queries(rng):
    return (rng.normal(size=(50, 64)) * np.exp(-np.arange(64) / 16)).astype(np.float32)


def _recall(a, b):
    return np.mean([len(set(x) & set(y)) / len(x) for x, y in zip(a, b)])


@pytest.mark.parametrize("text, kind", [("Flat", "flat"), ("HNSW32", "hnsw"), ("int8", "int8"), ("int8+rescore:50", "int8"),
                                        ("binary+rescore:200", "binary"), ("funnel:8/32/64", "funnel"), ("funnel:16/64:500", "funnel")])
def test_parse(text, kind):
    spec = parse_spec(text)
    assert spec.kind == kind and parse_spec(str(spec)) == spec


@pytest.mark.parametrize("bad", ["IVF100", "HNSW", "binary", "funnel:", ""])
def test_parse_errors_say_what_would_parse(bad):
    with pytest.raises(InvalidInputError, match="does not parse; use one of: Flat, HNSW32"):
        parse_spec(bad)


def test_funnel_dims_must_increase():
    with pytest.raises(InvalidInputError, match="must increase"):
        parse_spec("funnel:64/32")


def test_funnel_with_full_shortlist_equals_flat(space, queries):
    _, ref = Index.build(space, "Flat").search(queries, 10)
    _, got = Index.build(space, f"funnel:8/32/64:{space.count}").search(queries, 10)
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("spec", ["binary+rescore:3000", "int8+rescore:3000"])
def test_rescoring_everything_equals_flat(space, queries, spec):
    s_ref, ref = Index.build(space, "Flat").search(queries, 10)
    s, got = Index.build(space, spec).search(queries, 10)
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_allclose(s, s_ref, atol=1e-5)


@pytest.mark.parametrize("spec, floor", [("HNSW32", 0.95), ("int8", 0.9), ("funnel:16/64:300", 0.95), ("binary+rescore:300", 0.8)])
def test_approximate_indexes_have_high_recall(space, queries, spec, floor):
    _, ref = Index.build(space, "Flat").search(queries, 10)
    _, got = Index.build(space, spec).search(queries, 10)
    assert _recall(got, ref) >= floor


@pytest.mark.parametrize("spec", ["Flat", "HNSW32", "int8", "binary+rescore:100", "funnel:8/64"])
def test_save_load_same_results(space, queries, tmp_path, spec):
    ix = Index.build(space, spec)
    ix.save(tmp_path / "ix")
    again = Index.load(tmp_path / "ix")
    np.testing.assert_array_equal(again.search(queries, 5)[1], ix.search(queries, 5)[1])
    assert str(again.spec) == str(ix.spec)


def test_errors(space, tmp_path):
    ix = Index.build(space, "HNSW32")
    with pytest.raises(DimensionMismatchError, match="32-d but index HNSW32"):
        ix.search(np.zeros((2, 32), np.float32))
    with pytest.raises(DimensionMismatchError, match="exceeds"):
        Index.build(space, "funnel:8/128")
    ix.save(tmp_path / "ix")
    (tmp_path / "ix" / "faiss.index.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(SpaceFormatError, match="corrupt"):
        Index.load(tmp_path / "ix")
    with pytest.raises(SpaceFormatError, match="not a repspace index"):
        Index.load(tmp_path)


def test_cli_build_and_search(cli, space, tmp_path, rng):
    space.save(tmp_path / "s")
    Space(rng.normal(size=(3, 64)).astype(np.float32), ["q1", "q2", "q3"], model="synthetic").save(tmp_path / "q")
    code, _, err = cli("index", "build", tmp_path / "s", "--spec", "funnel:16/64", "--out", tmp_path / "ix")
    assert code == 0, err
    code, out, err = cli("search", tmp_path / "ix", "--queries", tmp_path / "q", "--k", "4", "--json")
    assert code == 0, err
    res = json.loads(out)["results"]
    assert [r["query"] for r in res] == ["q1", "q2", "q3"]
    assert len(res[0]["hits"]) == 4 and set(res[0]["hits"][0]) == {"id", "score"}
    code, _, err = cli("index", "build", tmp_path / "s", "--spec", "IVF9", "--out", tmp_path / "bad")
    assert code == 2 and "does not parse" in err
    Space(np.ones((1, 8), np.float32), ["x"]).save(tmp_path / "q8")
    code, _, err = cli("search", tmp_path / "ix", "--queries", tmp_path / "q8", "--json")
    assert code == 2 and "8-d" in err


@pytest.mark.real
def test_search_by_text_real_model(cli, bbc_space, tmp_path):
    code, _, err = cli("index", "build", bbc_space("minilm-l6", "title"), "--spec", "HNSW32", "--out", tmp_path / "ix")
    assert code == 0, err
    code, out, err = cli("search", tmp_path / "ix", "--text", "Ad sales boost Time Warner profit", "--k", "3", "--json")
    assert code == 0, err
    assert json.loads(out)["results"][0]["hits"][0]["id"] == "business/001"


def test_index_through_an_adaptor_applies_it_to_queries(space, queries, tmp_path):
    """A PCA-adapted index searches with model-space queries; equals Flat over the adapted vectors."""
    from repspace.compress import PCACompressor

    pca = PCACompressor(dims=[16, 32]).fit(np.asarray(space.vectors), source=space)
    ix = Index.build(space, "Flat", adaptor=pca, adaptor_dim=32)
    assert (ix.dim, ix.input_dim) == (32, space.dim)
    adapted = space.with_vectors(pca.transform(np.asarray(space.vectors), 32))
    want = Index.build(adapted, "Flat").search(pca.transform(queries, 32), 10)[1]
    np.testing.assert_array_equal(ix.search(queries, 10)[1], want)
    ix.save(tmp_path / "ix")
    back = Index.load(tmp_path / "ix")
    np.testing.assert_array_equal(back.search(queries, 10)[1], want)
    assert back.adaptor.name == "pca" and back.adaptor_dim == 32
    with pytest.raises(DimensionMismatchError, match="takes 64-d"):
        back.search(pca.transform(queries, 32), 10)  # already adapted: refused, the index adapts itself
    funnel = Index.build(space, "funnel:16/32:1000", adaptor=pca)
    np.testing.assert_array_equal(funnel.search(queries, 10)[1], want)


def test_sparse_index_of_csr_codes(space, queries, tmp_path):
    from repspace.compress import CSRCompressor

    csr = CSRCompressor(k=8, hidden=128, epochs=5).fit(np.asarray(space.vectors), source=space)
    codes = csr.encode_sparse(np.asarray(space.vectors))
    assert codes.shape == (space.count, 128) and (np.diff(codes.indptr) <= 8).all()
    ix = Index.build(space, "sparse", adaptor=csr)
    s, i = ix.search(queries, 10)
    # equals exact cosine over the dense form of the codes
    dense_c = csr.transform(np.asarray(space.vectors))
    dense_q = csr.transform(queries)
    norm = lambda x: x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)  # noqa: E731
    want = norm(dense_q) @ norm(dense_c).T
    np.testing.assert_allclose(s, np.sort(want, axis=1)[:, ::-1][:, :10], atol=1e-5)
    mem = ix.memory_bytes()
    assert mem["first_stage"] <= space.count * 8 * (4 + 2) + (space.count + 1) * 8
    ix.save(tmp_path / "sp")
    back = Index.load(tmp_path / "sp")
    np.testing.assert_array_equal(back.search(queries, 10)[1], i)
    assert np.load(tmp_path / "sp" / "codes_indices.npy").dtype == np.uint16
    np.save(tmp_path / "sp" / "codes_indptr.npy", np.arange(3))
    with pytest.raises(SpaceFormatError, match="sparse codes are corrupt"):
        Index.load(tmp_path / "sp")
    with pytest.raises(InvalidInputError, match="spec 'sparse'") as e:
        Index.build(space, "Flat", adaptor=csr)
    assert e.value.param == "spec"
    with pytest.raises(InvalidInputError, match="csr"):
        Index.build(space, "sparse")


def test_cli_index_with_adaptor(cli, space, tmp_path, rng):
    space.save(tmp_path / "s")
    assert cli("compress", "fit", tmp_path / "s", "--method", "pca", "--dims", "8,16", "--out", tmp_path / "pca")[0] == 0
    code, _, err = cli("index", "build", tmp_path / "s", "--adaptor", tmp_path / "pca", "--dim", "16", "--spec", "HNSW16",
                       "--out", tmp_path / "ix")
    assert code == 0 and "64-d -> 16-d" in err
    q = Space(rng.normal(size=(3, 64)).astype(np.float32), ["q0", "q1", "q2"], model=space.model)
    q.save(tmp_path / "q")
    code, out, err = cli("search", tmp_path / "ix", "--queries", tmp_path / "q", "--k", "4", "--json")
    assert code == 0, err
    assert len(json.loads(out)["results"][0]["hits"]) == 4
    code, _, err = cli("index", "build", tmp_path / "s", "--adaptor", tmp_path / "pca", "--dim", "12", "--out", tmp_path / "x")
    assert code == 2 and "8, 16" in err
    other = Space(rng.normal(size=(50, 64)).astype(np.float32), [f"o{k}" for k in range(50)], model="other")
    other.save(tmp_path / "o")
    code, _, err = cli("index", "build", tmp_path / "o", "--adaptor", tmp_path / "pca", "--out", tmp_path / "x")
    assert code == 2 and "fitted on model" in err
    assert cli("compress", "fit", tmp_path / "s", "--method", "csr", "--k", "4", "--epochs", "2", "--out", tmp_path / "csr")[0] == 0
    code, _, err = cli("index", "build", tmp_path / "s", "--adaptor", tmp_path / "csr", "--spec", "sparse", "--out", tmp_path / "sp")
    assert code == 0, err
    code, out, err = cli("search", tmp_path / "sp", "--queries", tmp_path / "q", "--k", "3", "--json")
    assert code == 0 and len(json.loads(out)["results"]) == 3
