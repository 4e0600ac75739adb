"""Kill an encode with SIGKILL mid-way, re-run the same command: every item exactly once."""

import os
import subprocess
import sys

import numpy as np
import pytest

from repspace import Space, encode_items, get_encoder, load_dataset
from tests.conftest import kill_after_chunks

pytestmark = pytest.mark.real

ARGS = ["encode", "--model", "minilm-l6", "--dataset", "bbc-news:title", "--limit", "600",
        "--batch-size", "16", "--chunk-items", "32", "--quiet"]


def _cmd(out):
    return [sys.executable, "-m", "repspace.cli.main", *ARGS, "--out", str(out)]


def test_sigkill_then_resume_is_identical(tmp_path, repspace_home):
    out = tmp_path / "space"
    partial = tmp_path / ".space.partial"
    env = {**os.environ, "REPSPACE_HOME": repspace_home}
    done_before = kill_after_chunks(_cmd(out), env, partial)
    assert 3 <= done_before < 19 and not out.exists()

    res = subprocess.run(_cmd(out), env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "resuming:" in res.stderr
    assert not partial.exists()

    resumed = Space.load(out)
    items = load_dataset("bbc-news:title").limit(600)
    reference = encode_items(get_encoder("minilm-l6"), items, batch_size=16, chunk_items=32, progress=False)
    assert resumed.count == 600 and len(set(resumed.ids)) == 600
    assert resumed.ids == reference.ids
    np.testing.assert_allclose(resumed.vectors, reference.vectors, atol=1e-6)

    # running the finished command again is a no-op that returns the same space
    again = subprocess.run(_cmd(out), env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and Space.load(out).checksum == resumed.checksum


def test_resume_in_process_skips_done_chunks(tmp_path):
    """A partial directory with some chunks: only the missing ones are encoded."""
    from repspace.encoders.base import Encoder

    class Counting(Encoder):
        name, modality, dim, normalized, version = "count", "text", 3, False, "v1"

        def __init__(self):
            self.calls = 0

        def encode_batch(self, batch):
            self.calls += len(batch)
            return np.asarray([[len(t), 1.0, 2.0] for t in batch], np.float32)

    items = load_dataset("bbc-news:title").limit(100)
    enc = Counting()
    full = encode_items(enc, items, out=tmp_path / "a", batch_size=10, chunk_items=20, progress=False)
    assert enc.calls == 100
    # simulate a crash after 2 chunks: rebuild the partial dir from a fresh run's first chunks
    partial = tmp_path / ".b.partial"
    enc2 = Counting()

    class Boom(Exception):
        pass

    def boom_after(n):
        orig = enc2.encode_batch

        def f(batch):
            if enc2.calls >= n:
                raise Boom()
            return orig(batch)

        return f

    enc2.encode_batch = boom_after(40)
    with pytest.raises(Boom):
        encode_items(enc2, items, out=tmp_path / "b", batch_size=10, chunk_items=20, progress=False)
    assert len(list(partial.glob("chunk-*.npy"))) == 2
    enc3 = Counting()
    resumed = encode_items(enc3, items, out=tmp_path / "b", batch_size=10, chunk_items=20, progress=False)
    assert enc3.calls == 60
    np.testing.assert_array_equal(resumed.vectors, full.vectors)
    assert resumed.ids == full.ids
