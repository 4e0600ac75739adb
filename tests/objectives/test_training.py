"""The training loop, the model directory, resuming, the CLI, and SIE's split (tiny digits runs)."""

import json
import time

import numpy as np
import pytest
import torch

from repspace.nets import CompatNet, load_model
from repspace.errors import InvalidInputError
from repspace.objectives import METHODS, build_objective, train_objective
from repspace.objectives.augment import ImageAugment


@pytest.fixture(scope="module")
def digits():
    from repspace.datasets import load_dataset

    return load_dataset("digits@train")


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_and_reports_collapse_detectors(method, digits, tmp_path):
    threads, rng = torch.get_num_threads(), torch.random.get_rng_state()
    t0 = time.perf_counter()
    cfg = train_objective(method, tmp_path / method, items=digits, dim=16, epochs=1, batch_size=64, limit=192,
                          progress=False, threads=1)
    wall = time.perf_counter() - t0
    (row,) = cfg["history"]
    assert np.isfinite(row["loss"]) and row["seconds"] > 0
    assert row["seconds"] <= wall  # the epoch's time is part of the call's, not a made-up number
    # torch's thread count and global RNG are the caller's again
    assert torch.get_num_threads() == threads and torch.equal(torch.random.get_rng_state(), rng)
    assert 0 < row["std_min"] <= row["std_mean"] and 1 <= row["effective_rank"] <= 16
    assert len(cfg["spectrum"]) == 16 and cfg["spectrum"][0] == pytest.approx(1.0)
    model, config = load_model(tmp_path / method)
    assert config["method"] == method and config["classifier"] == "none" and model.embed(torch.zeros(2, 1, 8, 8)).shape == (2, 16)
    assert not (tmp_path / f".{method}.partial").exists()


def test_model_dir_is_an_encoder_and_epochs_0_is_the_random_init(cli, digits, tmp_path):
    code, _, err = cli("train", "--method", "simclr", "--dataset", "digits", "--arch", "cnn", "--epochs", "0",
                       "--seed", "3", "--out", tmp_path / "rand", "--quiet")
    assert code == 0, err
    model, cfg = load_model(tmp_path / "rand")
    torch.manual_seed(3)
    fresh = CompatNet("cnn", 128, 0, "none")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values()))
    assert cfg["history"] == [] and cfg["initial"]["effective_rank"] > 1
    code, _, err = cli("train", "--method", "vicreg", "--dataset", "digits", "--epochs", "1", "--batch-size", "128",
                       "--threads", "1", "--out", tmp_path / "vic", "--quiet", "--json")
    assert code == 0, err
    code, _, err = cli("encode", "--model", tmp_path / "vic", "--dataset", "digits@test", "--out", tmp_path / "s", "--quiet")
    assert code == 0, err
    from repspace import Space
    from repspace.evaluation.probes import knn_probe

    s = Space.load(tmp_path / "s")
    assert s.dim == 128 and s.extra["trained_method"] == "vicreg" and s.model == "vic"
    assert knn_probe(s, k=20)["accuracy"] > 0.5


def test_resume_after_a_kill_gives_the_uninterrupted_result(digits, tmp_path):
    kw = dict(items=digits, dim=16, epochs=3, batch_size=64, limit=256, progress=False, threads=1)
    train_objective("byol", tmp_path / "full", **kw)

    class Killed(Exception):
        pass

    def kill(epoch, row):
        if epoch == 2:
            raise Killed

    with pytest.raises(Killed):
        train_objective("byol", tmp_path / "run", on_epoch=kill, **kw)
    partial = tmp_path / ".run.partial"
    assert json.loads((partial / "state.json").read_text())["epoch"] == 2 and not (tmp_path / "run").exists()
    seen = []
    cfg = train_objective("byol", tmp_path / "run", on_epoch=lambda e, r: seen.append(e), **kw)
    assert seen == [3] and [h["epoch"] for h in cfg["history"]] == [1, 2, 3]
    a, _ = load_model(tmp_path / "full")
    b, _ = load_model(tmp_path / "run")
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(va, vb, atol=1e-6), k
    # a partial run of other settings is refused, not silently mixed
    with pytest.raises(Killed):
        train_objective("byol", tmp_path / "other", on_epoch=kill, **kw)
    with pytest.raises(InvalidInputError, match="other settings"):
        train_objective("byol", tmp_path / "other", **{**kw, "batch_size": 32})


def test_cli_errors(cli, tmp_path):
    code, _, err = cli("train", "--method", "simclr", "--out", tmp_path / "x")
    assert code == 2 and "--dataset" in err
    code, _, err = cli("train", "--method", "simclr", "--dataset", "digits", "--batch-size", "1", "--out", tmp_path / "x")
    assert code == 2 and "--batch-size" in err


def test_mlp_head_self_supervised_on_a_text_space(cli, tmp_path):
    from tests.conftest import make_space

    make_space(n=80, d=48, model="minilm-l6").save(tmp_path / "base")
    code, _, err = cli("train", "--method", "barlow", "--arch", "mlp", "--base-space", tmp_path / "base", "--dim", "16",
                       "--epochs", "2", "--batch-size", "32", "--out", tmp_path / "head", "--quiet")
    assert code == 0, err
    model, cfg = load_model(tmp_path / "head")
    assert cfg["input"]["base_model"] == "minilm-l6" and cfg["in_dim"] == 48 and len(cfg["history"]) == 2
    assert model.embed(torch.zeros(3, 48)).shape == (3, 16)


def test_sie_invariant_half_is_invariant_and_equivariant_half_predicts_the_parameters(digits):
    """After a short SIE run (rotations up to 90°): the invariant embedding moves less between two rotated views
    than the equivariant one; the equivariant predictor needs the true rotation (shuffled parameters predict
    badly); and the rotation is linearly readable from the equivariant half more than from the invariant half."""
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import cross_val_score

    from repspace.nets import images_to_tensor
    from repspace.datasets import load_dataset

    torch.set_num_threads(1)
    x = images_to_tensor(digits.data)
    xt = images_to_tensor(load_dataset("digits@test").data)[:400]
    torch.manual_seed(0)
    obj = build_objective("sie", CompatNet("cnn", 32, 0, "none"), (1, 8, 8),
                          augment=ImageAugment(rotation=90, crop_scale=(0.8, 1), jitter=0.1, noise=0.05, flip=False))
    opt = torch.optim.AdamW(obj.parameters(), 2e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        loss = obj(x[torch.randint(0, len(x), (128,), generator=g)], generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    obj.eval()
    rot = ImageAugment(rotation=90, crop_scale=(1, 1), jitter=0, noise=0, flip=False)
    pa, pb = rot.sample(len(xt), g), rot.sample(len(xt), g)
    with torch.no_grad():
        (ia, ea), (ib, eb) = obj.halves(obj.encoder(rot.apply(xt, pa, g))), obj.halves(obj.encoder(rot.apply(xt, pb, g)))
        zi_a, zi_b, ze_a, ze_b = obj.inv_projector(ia), obj.inv_projector(ib), obj.equi_projector(ea), obj.equi_projector(eb)
        rel = obj.relative_params(pa, pb)
        err_true = float(((obj.criterion.predict(ze_a, rel) - ze_b) ** 2).mean())
        err_shuffled = float(((obj.criterion.predict(ze_a, rel[torch.randperm(len(rel), generator=g)]) - ze_b) ** 2).mean())

    def moved(a, b):  # distance between the two views of an item / distance to another item
        return float((a - b).norm(dim=1).mean() / (a - a.roll(1, 0)).norm(dim=1).mean())

    assert moved(zi_a, zi_b) < moved(ze_a, ze_b)
    assert err_true < 0.5 * err_shuffled
    angle = torch.atan2(rel[:, 1], rel[:, 0]).numpy()

    def r2(u, v):
        return cross_val_score(RidgeCV(alphas=[0.1, 1, 10, 100]), np.concatenate([u, v], 1), angle, cv=3, scoring="r2").mean()

    assert r2(ea.numpy(), eb.numpy()) > r2(ia.numpy(), ib.numpy()) + 0.1


def test_myow_queue_and_mined_term_ramp():
    """MYOW's candidate pool is the batch plus a ring queue of past teacher outputs (kept in the state dict, so
    checkpoints carry it), and its mined term is off during the warm-up, then ramps linearly in."""
    torch.manual_seed(0)
    obj = build_objective("myow", CompatNet("cnn", 16, 0, "none"), (1, 8, 8), queue_size=6, warmup=0.2, rampup=0.4,
                          mined_weight=0.5)
    assert {"queue_keys", "queue_values", "queue_filled", "queue_pointer", "progress"} <= set(obj.state_dict())
    obj.enqueue(torch.ones(4, 16), torch.ones(4, 32))
    assert int(obj.queue_filled) == 4 and int(obj.queue_pointer) == 4
    obj.enqueue(2 * torch.ones(4, 16), 2 * torch.ones(4, 32))  # wraps around: the oldest two are overwritten
    assert int(obj.queue_filled) == 6 and int(obj.queue_pointer) == 2
    assert obj.queue_keys[:, 0].tolist() == [2, 2, 1, 1, 2, 2]
    scales = []
    for step in (0, 10, 20, 40, 60, 100):
        obj.after_step(step, 100)
        scales.append(obj.mined_scale())
    assert scales == pytest.approx([0.0, 0.0, 0.0, 0.25, 0.5, 0.5], abs=1e-6)
    x = torch.randn(8, 1, 8, 8)
    loss = obj(x, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(loss) and int(obj.queue_filled) == 6


def test_simsiam_predictor_keeps_a_fixed_learning_rate(digits, tmp_path):
    obj = build_objective("simsiam", CompatNet("cnn", 16, 0, "none"), (1, 8, 8))
    groups = obj.param_groups()
    assert [g.get("fixed_lr", False) for g in groups] == [False, True]
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in obj.predictor.parameters()}
    assert sum(len(g["params"]) for g in groups) == len([p for p in obj.parameters() if p.requires_grad])
    plain = build_objective("simsiam", CompatNet("cnn", 16, 0, "none"), (1, 8, 8), fixed_predictor_lr=False)
    assert len(plain.param_groups()) == 1
    # the loop leaves the fixed group at the base lr (end of training: the scheduled lr is ~0) and resumes it
    kw = dict(items=digits, dim=16, epochs=3, batch_size=64, limit=128, progress=False, threads=1, lr=1e-3)
    meta_groups = []

    class Stop(Exception):
        pass

    def stop(epoch, row):
        if epoch < 2:
            return
        meta_groups.extend(json.loads((tmp_path / ".t.partial" / "state.json").read_text())["opt_groups"])
        raise Stop

    with pytest.raises(Stop):
        train_objective("simsiam", tmp_path / "t", on_epoch=stop, **kw)
    assert meta_groups[1]["fixed_lr"] is True and meta_groups[1]["lr"] == pytest.approx(1e-3)
    assert meta_groups[0]["lr"] < 1e-3
    train_objective("simsiam", tmp_path / "t", **kw)  # resumes with both groups


def test_obow_teacher_sees_the_original_image_and_gets_no_gradient(digits):
    """OBoW (authors' implementation): the bag of words comes from the teacher's view of the un-augmented image
    (mirrored at random), so both student crops share one target; the vocabulary starts filled with real teacher
    features; only the student and the weight generator get gradients."""
    from repspace.nets import images_to_tensor

    torch.manual_seed(0)
    x = images_to_tensor(digits.subset(np.arange(64)).data)
    obj = build_objective("obow", CompatNet("cnn", 16, 0, "none"), (1, 8, 8), vocab_size=128)
    assert obj.level == "pooled" and obj.teacher_view == "original" and obj.momentum == 0.9
    loss = obj(x, generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert bool(obj.warm) and float(obj.criterion.min_distance_mean) > 0
    assert all(p.grad is None for p in obj.teacher.parameters())
    assert obj.encoder.backbone.fc.weight.grad is not None and obj.criterion.generator[0].weight.grad is not None
    # the target is a function of the image alone: two different augmentation draws give the same bag of words
    with torch.no_grad():
        loc, _ = obj.teacher_features(x)
        a = obj.criterion.bag_of_words(loc)
        b = obj.criterion.bag_of_words(obj.teacher_features(x)[0])
    assert torch.allclose(a, b) and torch.allclose(a.sum(1), torch.ones(64))
    words = obj.criterion.vocabulary
    assert (words >= 0).all() and (words.norm(dim=1) > 0).all()  # post-ReLU teacher features, not random vectors
