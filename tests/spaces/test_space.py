import json
import pickle

import numpy as np
import pytest

from repspace import Space
from repspace.errors import DimensionMismatchError, InvalidInputError, InvalidVectorsError, SpaceFormatError
from tests.conftest import make_space


def test_roundtrip_memmap_and_manifest(tmp_path):
    s = make_space()
    s.save(tmp_path / "s")
    t = Space.load(tmp_path / "s")
    assert isinstance(t.vectors, np.memmap)
    np.testing.assert_array_equal(t.vectors, s.vectors)
    assert t.ids == s.ids and list(t.labels) == list(s.labels)
    m = t.manifest
    for key in ("model", "model_version", "dim", "count", "dtype", "normalized", "dataset", "view", "created", "checksum"):
        assert key in m
    assert m["count"] == 50 and m["dim"] == 8 and m["dtype"] == "float32"
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["items.parquet", "manifest.json", "vectors.npy"]


def test_no_pickle_in_any_file(tmp_path):
    make_space().save(tmp_path / "s")
    raw = (tmp_path / "s" / "vectors.npy").read_bytes()
    assert b"pickle" not in raw[:128].lower()
    np.load(tmp_path / "s" / "vectors.npy", allow_pickle=False)


def test_overwrite_is_atomic_no_leftovers(tmp_path):
    make_space(seed=0).save(tmp_path / "s")
    make_space(seed=1).save(tmp_path / "s")
    assert [p.name for p in tmp_path.iterdir()] == ["s"]
    np.testing.assert_array_equal(Space.load(tmp_path / "s").vectors, make_space(seed=1).vectors)


def test_nan_inf_refused():
    x = np.ones((3, 4), np.float32)
    x[1, 2] = np.nan
    with pytest.raises(InvalidVectorsError, match="row 1"):
        Space(x, ["a", "b", "c"])
    x[1, 2] = np.inf
    with pytest.raises(InvalidVectorsError):
        Space(x, ["a", "b", "c"])


def test_empty_and_shape_errors():
    with pytest.raises(InvalidVectorsError):
        Space(np.zeros((0, 4), np.float32), [])
    with pytest.raises(InvalidVectorsError):
        Space(np.zeros(4, np.float32), ["a"])
    with pytest.raises(InvalidInputError, match="2 ids for 3"):
        Space(np.zeros((3, 4), np.float32), ["a", "b"])


def test_duplicate_ids_refused():
    with pytest.raises(InvalidInputError, match="duplicate ids.*'a'"):
        Space(np.zeros((3, 2), np.float32), ["a", "b", "a"])


def test_append_dimension_mismatch():
    a, b = make_space(d=8), make_space(d=6)
    with pytest.raises(DimensionMismatchError, match="6-d .* 8-d"):
        a.append(b)


def test_append_and_duplicates():
    a = make_space(n=4)
    b = Space(np.ones((2, 8), np.float32), ["x", "y"], ["c0", "c1"], model="synthetic")
    c = a.append(b)
    assert c.count == 6 and c.ids[-1] == "y"
    with pytest.raises(InvalidInputError, match="duplicate"):
        c.append(b)


def test_select_and_align():
    a = make_space(n=10)
    b = a.select(["item3", "item1"])
    assert b.ids == ["item3", "item1"]
    aa, bb = a.aligned_with(b)
    assert aa.ids == bb.ids == ["item1", "item3"]
    with pytest.raises(InvalidInputError, match="not in space"):
        a.select(["nope"])
    other = Space(np.ones((2, 3), np.float32), ["p", "q"])
    with pytest.raises(InvalidInputError, match="share no ids"):
        a.aligned_with(other)


def test_corrupt_vectors_detected_by_checksum(tmp_path):
    make_space().save(tmp_path / "s")
    arr = np.load(tmp_path / "s" / "vectors.npy")
    arr[0, 0] += 1
    np.save(tmp_path / "s" / "vectors.npy", arr)
    with pytest.raises(SpaceFormatError, match="checksum mismatch"):
        Space.load(tmp_path / "s")


def test_truncated_vectors(tmp_path):
    make_space().save(tmp_path / "s")
    f = tmp_path / "s" / "vectors.npy"
    f.write_bytes(f.read_bytes()[:200])
    with pytest.raises(SpaceFormatError, match="corrupt|truncated"):
        Space.load(tmp_path / "s")


def test_garbage_items_file(tmp_path):
    make_space().save(tmp_path / "s")
    (tmp_path / "s" / "items.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(SpaceFormatError, match="items.parquet"):
        Space.load(tmp_path / "s")


def test_foreign_directory_and_manifest(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(SpaceFormatError, match="manifest.json is missing"):
        Space.load(tmp_path / "d")
    (tmp_path / "d" / "manifest.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(SpaceFormatError, match="not a repspace space"):
        Space.load(tmp_path / "d")
    (tmp_path / "d" / "manifest.json").write_text("{broken")
    with pytest.raises(SpaceFormatError, match="corrupt"):
        Space.load(tmp_path / "d")


def test_pickle_file_refused(tmp_path):
    p = tmp_path / "space.pkl"
    p.write_bytes(pickle.dumps({"vectors": [1, 2, 3]}))
    with pytest.raises(SpaceFormatError, match="pickle"):
        Space.load(p)


def test_pickled_object_array_inside_space_refused(tmp_path):
    make_space().save(tmp_path / "s")
    np.save(tmp_path / "s" / "vectors.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(SpaceFormatError, match="pickled objects are refused"):
        Space.load(tmp_path / "s")


def test_newer_format_refused(tmp_path):
    make_space().save(tmp_path / "s")
    m = json.loads((tmp_path / "s" / "manifest.json").read_text())
    m["format_version"] = 99
    (tmp_path / "s" / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(SpaceFormatError, match="newer"):
        Space.load(tmp_path / "s")


def test_truncate_and_normalize():
    s = make_space()
    t = s.truncate(3)
    assert t.dim == 3 and t.ids == s.ids
    n = s.normalize()
    assert n.normalized
    np.testing.assert_allclose(np.linalg.norm(n.vectors, axis=1), 1, atol=1e-5)
    with pytest.raises(DimensionMismatchError):
        s.truncate(99)


def test_large_space_streams_via_memmap(tmp_path):
    # saving a memory-mapped space copies it in chunks and loads back as a memmap
    make_space(n=3000, d=16).save(tmp_path / "a")
    a = Space.load(tmp_path / "a")
    a.save(tmp_path / "b")
    b = Space.load(tmp_path / "b")
    assert b.checksum == a.checksum


def test_save_onto_existing_output_raises_output_exists(tmp_path):
    from repspace.errors import OutputExistsError, RepspaceError

    s = Space(np.eye(3, dtype=np.float32), ["a", "b", "c"], model="m")
    s.save(tmp_path / "s")
    with pytest.raises(OutputExistsError, match="exists; pass overwrite=True"):
        s.save(tmp_path / "s", overwrite=False)
    (tmp_path / "f").write_text("not a space")
    with pytest.raises(OutputExistsError, match="not a directory"):
        s.save(tmp_path / "f")
    assert issubclass(OutputExistsError, RepspaceError)
    assert (tmp_path / "f").read_text() == "not a space"  # left as it was
    assert Space.load(tmp_path / "s").ids == ["a", "b", "c"]
