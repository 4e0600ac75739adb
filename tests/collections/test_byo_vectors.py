"""`collections/upgrade/vectors.py`: the new model's vectors brought from a file (issue 26 item 1: a `.npy` file is
memory-mapped and written in parts, its ids held in Arrow; nothing is written unless the whole file is good)."""

import numpy as np
import pytest

from repspace.collections import Collection, upgrade
from repspace.collections.upgrade.backfill import item_hash
from repspace.collections.upgrade.vectors import _sample, read_new_vectors
from repspace.errors import InvalidInputError, InvalidVectorsError

N, OLD_DIM, NEW_DIM = 300, 8, 12


def _unit(rng, n, d):
    v = rng.standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_npy_vectors_are_memory_mapped_checked_whole_and_written_in_parts(new_uri, tmp_path):
    rng = np.random.default_rng(0)
    ids = [f"d{j}" for j in range(N)]
    c = Collection.create(new_uri(), model="old-ext", dim=OLD_DIM)
    c.upsert(ids, vectors=_unit(rng, N, OLD_DIM))
    new = _unit(rng, N, NEW_DIM)
    np.save(tmp_path / "first.npy", new[:200])
    (tmp_path / "first.ids").write_bytes("\r\n".join(ids[:200]).encode() + b"\r\n")  # CRLF, a last newline
    nv = read_new_vectors(c, tmp_path / "first.npy", model="new-ext", dim=NEW_DIM, ids_file=tmp_path / "first.ids")
    assert isinstance(nv.vectors, np.memmap) and len(nv) == 200 and nv.part([3, 5])[0] == ["d3", "d5"]
    assert [nv.ids[int(r)].as_py() for r in _sample(nv, 50, 0)] == sorted(ids[:200],
                                                                          key=lambda i: item_hash(f"0:{i}"))[:50]

    from repspace.collections.upgrade.vectors import _ids_file

    (tmp_path / "cr.ids").write_bytes(b"a\rb\r\nc\n\nd")  # any line end, as str.splitlines
    assert _ids_file(tmp_path / "cr.ids").to_pylist() == ["a", "b", "c", "d"]
    (tmp_path / "bad.json").write_text("[1, 2")
    with pytest.raises(InvalidInputError, match="not a JSON list") as e:
        _ids_file(tmp_path / "bad.json")
    assert e.value.param == "ids_file"

    def refused(vecs, lines, err, param, match):
        np.save(tmp_path / "bad.npy", vecs)
        (tmp_path / "bad.ids").write_text("\n".join(lines))
        with pytest.raises(err, match=match) as e:
            upgrade.start_with_vectors(c, "new-ext", tmp_path / "bad.npy", dim=NEW_DIM, ids_file=tmp_path / "bad.ids",
                                       sample=20)
        assert e.value.param == param and c.reload().upgrade is None  # nothing written

    nan = new[:100].copy()
    nan[70, 2] = np.inf
    refused(nan, ids[:100], InvalidVectorsError, "vectors", "row 70")
    refused(new[:100], ids[:99] + ["d0"], InvalidInputError, "vectors", "duplicate ids, e.g. 'd0'")
    refused(new[:100], ids[:99] + ["nope"], InvalidInputError, "vectors", "1 id\\(s\\) the collection does not hold")
    refused(new[:100], ids[:99], InvalidInputError, "ids_file", "99 ids for 100 vectors")

    st = upgrade.start_with_vectors(c, "new-ext", tmp_path / "first.npy", dim=NEW_DIM,
                                    ids_file=tmp_path / "first.ids", sample=50)
    assert st["from_file"] == 200 and st["fraction"] == pytest.approx(200 / N)
    np.save(tmp_path / "all.npy", new)
    (tmp_path / "all.ids").write_text("\n".join(ids) + "\n")
    out = upgrade.backfill_from_file(c, tmp_path / "all.npy", ids_file=tmp_path / "all.ids", batch_size=64)
    assert out == {"backfilled": 100, "already": 200, "fraction": 1.0}
    got = c.get(ids[::37], vectors=True, slot="new-ext")
    assert np.allclose(np.stack([g["vector"] for g in got]), new[::37], atol=1e-6)
    c.drop()


def test_parquet_and_arrow_vectors_are_read_a_batch_at_a_time_and_memory_mapped(new_uri, tmp_path, monkeypatch):
    import tracemalloc

    import pyarrow as pa
    import pyarrow.feather as feather
    import pyarrow.parquet as pq

    from repspace.collections.upgrade import vectors as byo

    monkeypatch.setattr(byo, "CHUNK", 500)
    rng = np.random.default_rng(1)
    ids = [f"d{j}" for j in range(4000)]
    new = _unit(rng, 4000, 64)
    fixed = pa.FixedSizeListArray.from_arrays(pa.array(new.ravel()), 64)
    pq.write_table(pa.table({"id": ids, "vector": fixed}), tmp_path / "v.parquet", row_group_size=700)
    feather.write_feather(pa.table({"id": ids, "vector": fixed}), tmp_path / "v.arrow", chunksize=900)
    pq.write_table(pa.table({"vector": list(new[:50].astype(np.float64))}), tmp_path / "noid.parquet")
    for name in ("v.parquet", "v.arrow"):
        tracemalloc.start()
        got_ids, vecs = byo._arrow(tmp_path / name)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert isinstance(vecs, np.memmap) and np.array_equal(vecs, new) and got_ids.to_pylist() == ids
        assert peak < new.nbytes / 4, peak  # one batch (128 KiB), not the file (1 MiB)
    monkeypatch.setattr(byo, "PARQUET_ROWS", 300)  # JSON lines: batches of 300 lines, blank lines skipped
    import json

    lines = [json.dumps({"id": i, "vector": [float(x) for x in v]}) for i, v in zip(ids[:1000], new[:1000])]
    (tmp_path / "v.jsonl").write_text("\n".join(lines[:500] + [""] + lines[500:]) + "\n")
    got_ids, vecs = byo._arrow(tmp_path / "v.jsonl")
    assert isinstance(vecs, np.memmap) and got_ids.to_pylist() == ids[:1000] and np.array_equal(vecs, new[:1000])
    for bad, err, match in [('{"id": "a", "vector": [1, "x"]}', InvalidVectorsError, "must be a list of numbers"),
                            ('{"id": "a"}', InvalidInputError, "line 2 has no 'vector' field"),
                            ('{"id": "a", "vector": ["x"]}', InvalidVectorsError, "rows 0–1: 'vector' must be a list of numbers"),
                            ('{"id": "a", "vector": [1, 2]}', InvalidVectorsError, "different lengths")]:
        (tmp_path / "bad.jsonl").write_text('{"id": "z", "vector": [1]}\n' + bad + "\n")
        with pytest.raises(err, match=match) as e:
            byo._arrow(tmp_path / "bad.jsonl")
        assert e.value.param == "vectors"
    got_ids, vecs = byo._arrow(tmp_path / "noid.parquet")  # float64 lists, row numbers as ids
    assert got_ids.to_pylist() == [str(j) for j in range(50)] and np.allclose(vecs, new[:50])

    def refused(table, err, match):
        pq.write_table(table, tmp_path / "bad.parquet", row_group_size=300)
        with pytest.raises(err, match=match) as e:
            byo._arrow(tmp_path / "bad.parquet")
        assert e.value.param == "vectors"

    nan = new[:1000].copy()
    nan[777, 5] = np.nan
    refused(pa.table({"id": ids[:1000], "vector": list(nan)}), InvalidVectorsError, "row 777")
    refused(pa.table({"id": ids[:3], "vector": [[1.0, 0.0], [0.0, 1.0], [1.0]]}), InvalidVectorsError,
            "different lengths")
    refused(pa.table({"id": ids[:2], "emb": [[1.0], [0.0]]}), InvalidInputError, "no vector column 'vector'")
    refused(pa.table({"id": ["a", None], "vector": [[1.0], [0.0]]}), InvalidInputError, "null or empty ids")
    refused(pa.table({"id": ["a", "b"], "vector": pa.array(["x", "y"])}), InvalidVectorsError, "not a list")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(InvalidInputError, match="not a readable parquet file"):
        byo._arrow(tmp_path / "junk.parquet")

    c = Collection.create(new_uri(), model="old-ext", dim=OLD_DIM)  # end to end: the same as from a .npy
    c.upsert(ids[:N], vectors=_unit(rng, N, OLD_DIM))
    pq.write_table(pa.table({"id": ids[:200], "vector": list(new[:200, :NEW_DIM])}), tmp_path / "first.parquet",
                   row_group_size=64)
    st = upgrade.start_with_vectors(c, "new-ext", tmp_path / "first.parquet", dim=NEW_DIM, sample=50)
    assert st["from_file"] == 200
    feather.write_feather(pa.table({"id": ids[:N], "vector": list(new[:N, :NEW_DIM])}), tmp_path / "all.arrow",
                          chunksize=128)
    assert upgrade.backfill_from_file(c, tmp_path / "all.arrow", batch_size=64) == {
        "backfilled": 100, "already": 200, "fraction": 1.0}
    got = c.get(ids[:N:37], vectors=True, slot="new-ext")
    assert np.allclose(np.stack([g["vector"] for g in got]), new[:N:37, :NEW_DIM], atol=1e-6)
    c.drop()
