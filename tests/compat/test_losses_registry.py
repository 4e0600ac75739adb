"""The compatible-training loss registry: every loss declares what it needs, and `train_model` builds the model
from those declarations; torch's global state is restored after training, and training is reproducible."""

import numpy as np
import pytest
import torch

from repspace.compat.losses import METHODS, BCTLoss, BT2Loss, ClassificationLoss, CompatLoss, DSimplexLoss, get_loss
from repspace.compat.methods import COMPAT_METHODS, SELF_SUPERVISED_METHODS
from repspace.nets import load_model
from repspace.compat.training import train_model
from repspace.errors import UnknownNameError


def test_registry_names_classes_and_declarations():
    assert METHODS == COMPAT_METHODS == ("independent", "dsimplex", "bct", "bt2")
    classes = {m: get_loss(m) for m in METHODS}
    assert classes == {"independent": ClassificationLoss, "dsimplex": DSimplexLoss, "bct": BCTLoss, "bt2": BT2Loss}
    from repspace.compat.losses import LOSSES

    assert LOSSES == classes
    for cls in classes.values():
        assert issubclass(cls, CompatLoss) and cls.__doc__
        assert cls.__module__.startswith("repspace.compat.losses.")
        module = __import__(cls.__module__, fromlist=["_"])
        assert "Reference" in module.__doc__ and "Example" in module.__doc__ and "Inputs" in module.__doc__
    needs = {m: (c.needs_old_model, c.fixed_classifier, c.needs_extra_dims, c.influence_options) for m, c in classes.items()}
    assert needs == {"independent": (False, None, False, ()), "dsimplex": (False, "simplex", False, ()),
                     "bct": (True, None, False, ("nca", "prototypes", "gallery")),
                     "bt2": (True, None, True, ("nca", "gallery"))}
    with pytest.raises(UnknownNameError, match="choose from independent, dsimplex, bct, bt2"):
        get_loss("nope")


def test_self_supervised_names_match_the_objectives_registry():
    from repspace.objectives.methods import OBJECTIVES

    assert SELF_SUPERVISED_METHODS == tuple(OBJECTIVES)


@pytest.fixture(scope="module")
def digits():
    from repspace.datasets import load_dataset

    return load_dataset("digits@train")


def test_models_follow_the_declared_needs_and_torch_state_is_restored(digits, tmp_path):
    torch.manual_seed(123)
    threads = torch.get_num_threads()
    rng_before = torch.random.get_rng_state()
    common = dict(arch="cnn", dim=12, items=digits, epochs=1, batch_size=256, threads=1, progress=False)
    old = train_model(method="independent", out=tmp_path / "old", classes="0-4", **common)
    assert torch.get_num_threads() == threads and torch.equal(torch.random.get_rng_state(), rng_before)
    bt2 = train_model(method="bt2", out=tmp_path / "bt2", old=tmp_path / "old", **{**common, "dim": None})
    ds = train_model(method="dsimplex", out=tmp_path / "ds", **common)
    assert (old["classifier"], old["extra_dims"], old["alpha"], old["influence"]) == ("linear", 0, None, None)
    # old's dim, dim // 4; the new model adds classes 5-9, so the default influence is the old gallery
    assert (bt2["dim"], bt2["extra_dims"], bt2["alpha"], bt2["influence"], bt2["influence_scale"]) == (12, 3, 3.0, "gallery", 128.0)
    assert ds["classifier"] == "simplex"
    bct = train_model(method="bct", out=tmp_path / "bct", old=tmp_path / "old", **common)
    assert bct["influence"] == "gallery" and bct["alpha"] == 1.0
    assert torch.get_num_threads() == threads and torch.equal(torch.random.get_rng_state(), rng_before)


def test_training_is_reproducible_whatever_the_callers_rng(digits, tmp_path):
    common = dict(arch="cnn", dim=8, items=digits, epochs=1, batch_size=256, threads=1, progress=False)
    torch.manual_seed(1)
    a = train_model(method="independent", out=tmp_path / "a", **common)
    torch.manual_seed(2)
    b = train_model(method="independent", out=tmp_path / "b", **common)
    assert a["history"][0]["loss"] == b["history"][0]["loss"]
    wa, wb = load_model(tmp_path / "a")[0].state_dict(), load_model(tmp_path / "b")[0].state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    x = torch.zeros(2, 1, 8, 8)
    np.testing.assert_array_equal(load_model(tmp_path / "a")[0].embed(x).detach().numpy(),
                                  load_model(tmp_path / "b")[0].embed(x).detach().numpy())
