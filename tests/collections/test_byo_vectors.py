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
