"""A disk that fills during upserts (issue 26): a clear error, nothing acknowledged lost, the collection still opens
and searches. The disk is a real 8 MiB tmpfs (needs root to mount; skipped where mounting is not allowed)."""

import subprocess

import numpy as np
import pytest

from repspace.collections import Collection
from repspace.errors import StoreUnavailableError


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8M", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a small tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_is_one_clear_error_and_loses_nothing_acknowledged(small_disk):
    c = Collection.create(small_disk / "c", model="ext", dim=256)
    rng = np.random.default_rng(0)
    acked = []
    with pytest.raises(StoreUnavailableError, match="no space left on the device .* nothing of this write was committed"):
        for b in range(100):  # 1 MiB of vectors per write: the 8 MiB disk fills within a few
            ids = [f"b{b}-{j}" for j in range(1000)]
            v = rng.normal(size=(1000, 256)).astype(np.float32)
            c.upsert(ids, vectors=v)
            acked.append((ids, v))
    assert acked, "the first writes fit"
    again = Collection.open(small_disk / "c")
    assert again.count() == 1000 * len(acked)
    ids, v = acked[-1]
    got = again.get(ids[:3], vectors=True)
    np.testing.assert_allclose([g["vector"] for g in got], v[:3], rtol=1e-6)
    assert again.search(vectors=v[:1], k=1)[0][0]["id"] == ids[0]


def test_staging_a_vectors_file_on_a_full_temporary_disk_names_tmpdir(small_disk, tmp_path, monkeypatch):
    """A Parquet file of new vectors is staged under $TMPDIR: a disk too small for it is one error naming `vectors`
    and TMPDIR, not a half-read file."""
    import tempfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    from repspace.collections.upgrade.vectors import _arrow
    from repspace.errors import InvalidInputError

    v = np.random.default_rng(0).normal(size=(12_000, 256)).astype(np.float32)  # 12 MiB > the 8 MiB disk
    pq.write_table(pa.table({"id": [str(i) for i in range(len(v))], "vector": list(v)}), tmp_path / "v.parquet")
    monkeypatch.setattr(tempfile, "tempdir", str(small_disk))
    with pytest.raises(InvalidInputError, match="no room to stage .* point TMPDIR") as e:
        _arrow(tmp_path / "v.parquet")
    assert e.value.param == "vectors"
