"""`get_encoder(path)` opens local model directories through the registry's loaders (no sideways imports)."""

import numpy as np
import pytest

from repspace.encoders import get_encoder
from repspace.encoders.base import Encoder
from repspace.encoders.registry import DIRECTORY_LOADERS, DirectoryLoader, register_directory_loader
from repspace.errors import InvalidInputError, UnknownNameError


class _Const(Encoder):
    name, modality, dim, normalized, version = "const", "text", 3, False, "1"

    def encode_batch(self, batch):
        return np.ones((len(batch), 3), np.float32)


def test_built_in_loaders_and_a_registered_one(tmp_path, monkeypatch):
    assert [loader.name for loader in DIRECTORY_LOADERS] == ["repspace-trained", "sentence-transformers"]
    with pytest.raises(UnknownNameError, match="is not a model directory"):
        get_encoder(str(tmp_path))
    monkeypatch.setattr("repspace.encoders.registry.DIRECTORY_LOADERS", list(DIRECTORY_LOADERS))
    register_directory_loader(DirectoryLoader("const", lambda p: (p / "const.txt").is_file(), lambda p, d: _Const()))
    (tmp_path / "const.txt").write_text("x")
    enc = get_encoder(str(tmp_path))
    assert isinstance(enc, _Const) and enc.encode_batch(["a"]).shape == (1, 3)


def test_trained_text_head_gets_its_base_encoder_from_the_registry(tmp_path):
    import torch

    from repspace.encoders.trained import TrainedEncoder
    from repspace.nets import CompatNet, save_model

    torch.manual_seed(0)
    model = CompatNet("mlp", 4, 2, in_dim=50)
    config = {"name": "head", "arch": "mlp", "dim": 4, "extra_dims": 0, "classes": ["a", "b"], "classifier": "linear",
              "in_dim": 50, "method": "independent",
              "input": {"modality": "text", "base_model": "glove-50", "in_dim": 50}}
    save_model(tmp_path / "head", model, config)
    with pytest.raises(InvalidInputError, match="supplies the base encoder"):
        TrainedEncoder(tmp_path / "head")
    enc = get_encoder(str(tmp_path / "head"))  # the registry hands the trained encoder `get_encoder`
    assert isinstance(enc, TrainedEncoder) and enc.dim == 4 and enc._base.name == "glove-50"
    out = enc.encode_batch(["stocks fell sharply"])
    base = torch.from_numpy(get_encoder("glove-50").encode_batch(["stocks fell sharply"]))
    np.testing.assert_allclose(out, model.embed(base).detach().numpy(), rtol=1e-5, atol=1e-6)
