"""MatryoshkaLoss fine-tuning of a real sentence-transformers model (a few steps)."""

import numpy as np
import pytest

pytestmark = pytest.mark.real


def test_finetune_cli_writes_an_encoder_that_moved(cli, tmp_path):
    from repspace import Space

    code, _, err = cli("compress", "finetune", "--model", "minilm-l6", "--limit", "32", "--batch-size", "16",
                       "--dims", "32,64", "--lr", "1e-4", "--out", tmp_path / "ft", "--quiet")
    assert code == 0, err
    assert "fine-tuned on 32 pairs for dims [32, 64, 384]" in " ".join(err.split())
    for model, out in (("minilm-l6", "base"), (tmp_path / "ft", "tuned")):
        code, _, err = cli("encode", "--model", model, "--dataset", "bbc-news:title", "--limit", "8",
                           "--out", tmp_path / out, "--quiet")
        assert code == 0, err
    a, b = Space.load(tmp_path / "base"), Space.load(tmp_path / "tuned")
    assert b.dim == 384 and b.model == str(tmp_path / "ft")
    cos = np.sum(np.asarray(a.vectors) * np.asarray(b.vectors), axis=1)
    assert 0.5 < cos.mean() < 0.99999  # changed, not destroyed


def test_finetune_bad_input(cli, tmp_path):
    code, _, err = cli("compress", "finetune", "--model", "glove-50", "--limit", "8", "--out", tmp_path / "x")
    assert code == 2 and "sentence-transformers" in err
    code, _, err = cli("compress", "finetune", "--model", "minilm-l6", "--dims", "512", "--limit", "8", "--out", tmp_path / "x")
    assert code == 2 and "1..384" in err
    code, _, err = cli("compress", "finetune", "--model", "minilm-l6", "--queries", "bbc-news:title",
                       "--documents", "digits", "--out", tmp_path / "x")
    assert code == 2 and "share no ids" in err
