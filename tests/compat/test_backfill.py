"""Backfill (resumable, killed with SIGKILL mid-way) and the atomic switch of the live index."""

import os
import subprocess
import sys

import numpy as np
import pytest

from repspace import Space
from repspace.index import Index
from tests.conftest import kill_after_chunks

pytestmark = pytest.mark.real

LIMIT = ["--dataset", "bbc-news:title", "--limit", "600"]


@pytest.fixture(scope="module")
def old_index(tmp_path_factory):
    from repspace.cli.main import run

    root = tmp_path_factory.mktemp("backfill")
    assert run(["encode", "--model", "minilm-l3-onnx", *LIMIT, "--out", str(root / "old-space"), "--quiet"]) == 0
    assert run(["index", "build", str(root / "old-space"), "--spec", "HNSW16", "--out", str(root / "old-index")]) == 0
    return root / "old-index"


def _cmd(index, out):
    return [sys.executable, "-m", "repspace.cli.main", "upgrade", "backfill", str(index), "--model", "minilm-l6",
            "--out", str(out), "--batch-size", "16", "--chunk-items", "32", "--quiet"]


def test_backfill_killed_then_resumed_loses_and_duplicates_nothing(tmp_path, old_index, repspace_home):
    out = tmp_path / "new-index"
    partial = tmp_path / "..new-index.backfill.partial"  # the encode job's chunks for the hidden work space
    env = {**os.environ, "REPSPACE_HOME": repspace_home}
    assert kill_after_chunks(_cmd(old_index, out), env, partial) >= 3 and not out.exists()

    res = subprocess.run(_cmd(old_index, out), env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "resuming" in res.stderr
    new, old = Index.load(out), Index.load(old_index)
    assert new.space.ids == old.space.ids and len(set(new.space.ids)) == 600
    assert new.space.model == "minilm-l6" and str(new.spec) == str(old.spec)
    assert not partial.exists() and not (tmp_path / ".new-index.backfill").exists()
    # identical to encoding the same items in one go
    from repspace import encode_items, get_encoder, load_dataset

    plain = encode_items(get_encoder("minilm-l6"), load_dataset("bbc-news:title").limit(600), batch_size=16,
                         chunk_items=32, progress=False)
    np.testing.assert_allclose(np.asarray(new.space.vectors), plain.vectors, atol=1e-5)
    # re-running a finished backfill is a no-op
    again = subprocess.run(_cmd(old_index, out), env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr


def test_switch_is_atomic_and_checked(cli, tmp_path, old_index):
    live = tmp_path / "live"
    code, _, err = cli("upgrade", "switch", live, old_index)
    assert code == 0 and os.readlink(live) == str(old_index.resolve())
    new = tmp_path / "new"
    code, _, err = cli("upgrade", "backfill", live, "--model", "minilm-l6", "--out", new, "--quiet")
    assert code == 0, err
    code, _, err = cli("upgrade", "switch", live, new)
    assert code == 0 and "was" in err and os.readlink(live) == str(new.resolve())
    code, out, _ = cli("search", live, "--text", "oil prices rise", "--k", "3", "--json")
    assert code == 0 and '"hits"' in out
    # a directory that is not an index, or other items than the live ones, is refused
    (tmp_path / "junk").mkdir()
    code, _, err = cli("upgrade", "switch", live, tmp_path / "junk")
    assert code == 2 and "not a repspace index" in err
    Space(np.eye(4, dtype=np.float32), ["a", "b", "c", "d"], model="minilm-l6").save(tmp_path / "s4")
    assert cli("index", "build", tmp_path / "s4", "--out", tmp_path / "i4")[0] == 0
    code, _, err = cli("upgrade", "switch", live, tmp_path / "i4")
    assert code == 2 and "other items" in err and "[--force]" in err and os.readlink(live) == str(new.resolve())
    code, _, err = cli("upgrade", "switch", tmp_path / "i4", new)
    assert code == 2 and "not a symlink" in err


def test_backfill_bad_input(cli, tmp_path, old_index):
    code, _, err = cli("upgrade", "backfill", old_index, "--model", "minilm-l6", "--out", tmp_path / "x",
                       "--dataset", "bbc-news:body")
    assert code == 2 and "not the one the index was built from" in err and "[--dataset or --input]" in err
    code, _, err = cli("upgrade", "backfill", old_index, "--model", "minilm-l3-onnx", "--out", tmp_path / "x")
    assert code == 2 and "nothing to backfill" in err and "[--model]" in err
    code, _, err = cli("upgrade", "backfill", old_index, "--model", "nope", "--out", tmp_path / "x")
    assert code == 2 and "unknown model" in err
    code, _, err = cli("upgrade", "backfill", old_index, "--model", "minilm-l6", "--out", old_index)
    assert code == 2 and "must differ" in err and "[--out]" in err
