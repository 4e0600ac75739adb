"""Compatible-training losses, models and the train command (small synthetic / digits runs)."""

import numpy as np
import pytest
import torch

from repspace.compat.losses import BCTLoss, BT2Loss, ClassificationLoss, DSimplexLoss
from repspace.nets import CompatNet, load_model, regular_simplex
from repspace.compat.training import parse_classes
from repspace.errors import DimensionMismatchError, InvalidInputError


def _mlp(dim=8, k=4, **kw):
    torch.manual_seed(0)
    return CompatNet("mlp", dim, k, in_dim=6, **kw)


def test_regular_simplex_is_regular():
    for k, d in ((10, 9), (5, 16)):
        s = regular_simplex(k, d)
        g = s @ s.T
        np.testing.assert_allclose(np.diag(g), 1, atol=1e-6)
        np.testing.assert_allclose(g[~np.eye(k, dtype=bool)], -1 / (k - 1), atol=1e-6)
        np.testing.assert_allclose(s.sum(0), 0, atol=1e-5)  # centred
    np.testing.assert_array_equal(regular_simplex(10, 12), regular_simplex(10, 12))  # deterministic
    with pytest.raises(InvalidInputError, match="needs dim >= 9") as e:
        regular_simplex(10, 4)
    assert e.value.param == "dim"


def test_influence_loss_leaves_old_classifier_frozen_and_trains_the_new_model():
    model = _mlp()
    old_w = torch.randn(4, 8, requires_grad=True)
    loss_fn = BCTLoss(model, old_w, alpha=0.5)
    x, y = torch.randn(16, 6), torch.randint(0, 4, (16,))
    loss = loss_fn(x, y)
    loss.backward()
    assert old_w.grad is None and not loss_fn.old_weight.requires_grad
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    # equals CE(new) + alpha * CE(old) computed by hand
    f = model.features(x)
    want = torch.nn.functional.cross_entropy(f @ model.classifier.weight.T, y) + \
        0.5 * torch.nn.functional.cross_entropy(f @ old_w.detach().T, y)
    assert torch.allclose(loss, want)


def test_bct_refuses_old_classifier_of_other_dimension():
    with pytest.raises(DimensionMismatchError):
        BCTLoss(_mlp(dim=8), torch.randn(4, 5))


def test_dsimplex_classifier_is_fixed():
    model = _mlp(dim=8, classifier="simplex")
    loss = DSimplexLoss(model)(torch.randn(8, 6), torch.randint(0, 4, (8,)))
    loss.backward()
    assert not any(p is model.simplex for p in model.parameters())
    with pytest.raises(InvalidInputError):
        DSimplexLoss(_mlp())


def test_bt2_basis_is_orthonormal_and_keeps_new_features():
    model = _mlp(dim=8, extra_dims=3)
    x = torch.randn(10, 6)
    f, extra = model._split(x)
    z = model.embed(x)
    assert z.shape == (10, 11)
    # orthonormal B keeps all inner products of [features; extra]
    h = torch.cat([f, extra], 1)
    assert torch.allclose(z @ z.T, h @ h.T, atol=1e-4)
    loss = BT2Loss(model, torch.randn(4, 8))(x, torch.randint(0, 4, (10,)))
    loss.backward()
    assert any(p.grad is not None for n, p in model.named_parameters() if "basis" in n)
    with pytest.raises(InvalidInputError):
        BT2Loss(_mlp(), torch.randn(4, 8))


def test_classification_loss_learns_separable_data():
    torch.manual_seed(0)
    x = torch.randn(200, 6)
    y = (x[:, 0] > 0).long() + 2 * (x[:, 1] > 0).long()
    model = _mlp()
    loss_fn = ClassificationLoss(model)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    first = loss_fn(x, y).item()
    for _ in range(100):
        opt.zero_grad()
        loss = loss_fn(x, y)
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 * first


def test_parse_classes():
    names = [str(i) for i in range(10)]
    assert parse_classes("0-4", names) == ["0", "1", "2", "3", "4"]
    assert parse_classes("7,2", names) == ["7", "2"]
    assert parse_classes("coat,bag", ["shirt", "coat", "bag"]) == ["coat", "bag"]
    assert parse_classes(None, names) == names
    with pytest.raises(InvalidInputError, match="out of range"):
        parse_classes("0-12", names)
    with pytest.raises(InvalidInputError):
        parse_classes("hat", ["shirt"])


def test_train_cli_digits_end_to_end(cli, tmp_path):
    """old on classes 0-4, new with each method; encode --model DIR; compat works (bt2 by its compatible prefix)."""
    old, old_ds = tmp_path / "old", tmp_path / "old-ds"
    base = ["train", "--dataset", "digits", "--arch", "cnn", "--dim", "12", "--epochs", "2", "--threads", "1", "--quiet"]
    assert cli(*base, "--classes", "0-4", "--out", old)[0] == 0
    assert cli(*base, "--classes", "0-4", "--method", "dsimplex", "--out", old_ds)[0] == 0
    for method, ref in (("bct", old), ("bt2", old), ("dsimplex", None)):
        out = tmp_path / f"new-{method}"
        args = [*base, "--method", method, "--out", out] + (["--old", ref] if ref else [])
        code, _, err = cli(*args)
        assert code == 0, err
        model, config = load_model(out)
        assert config["method"] == method and len(config["trained_classes"]) == 10
    assert load_model(tmp_path / "new-bct")[1]["influence"] == "gallery"  # auto: the new model adds classes 5-9
    code, _, err = cli(*base, "--method", "bct", "--old", old, "--influence", "classifier", "--out", tmp_path / "cls")
    assert code == 0, err
    assert load_model(tmp_path / "cls")[1]["influence"] == "classifier"
    code, _, err = cli(*base, "--method", "bt2", "--old", old, "--influence", "gallery", "--influence-scale", "16",
                       "--out", tmp_path / "g16")
    assert code == 0, err
    assert load_model(tmp_path / "g16")[1]["influence_scale"] == 16.0
    code, _, err = cli(*base, "--method", "bct", "--old", old, "--influence", "classifier", "--influence-scale", "16",
                       "--out", tmp_path / "bad")
    assert code == 2 and "--influence-scale" in err and "Traceback" not in err and not (tmp_path / "bad").exists()
    code, _, err = cli(*base, "--method", "dsimplex", "--influence", "gallery", "--out", tmp_path / "bad")
    assert code == 2 and "--influence" in err and not (tmp_path / "bad").exists()
    for name in ("old", "old-ds", "new-bct", "new-bt2", "new-dsimplex"):
        code, _, err = cli("encode", "--model", tmp_path / name, "--dataset", "digits@test", "--out",
                           tmp_path / f"s-{name}", "--quiet")
        assert code == 0, err
    from repspace import Space

    bt2 = Space.load(tmp_path / "s-new-bt2")
    assert bt2.dim == 15 and bt2.extra["compatible_dim"] == 12 and bt2.model == "new-bt2"
    code, out, err = cli("compat", tmp_path / "s-old", tmp_path / "s-new-bt2", "--json")
    assert code == 0, err
    import json

    res = json.loads(out)
    assert res["matrix"][1][0] is not None and "2->1" in res["compatible"]


def test_train_bad_input(cli, tmp_path):
    base = ["train", "--dataset", "digits", "--dim", "12", "--epochs", "1", "--quiet"]
    code, _, err = cli(*base, "--method", "bct", "--out", tmp_path / "x")
    assert code == 2 and "--old" in err
    code, _, err = cli(*base, "--method", "nope", "--out", tmp_path / "x")
    assert code == 2 and "unknown method 'nope'" in err and "[--method]" in err
    code, _, err = cli(*base, "--method", "dsimplex", "--dim", "4", "--out", tmp_path / "x")
    assert code == 2 and "needs dim >= 9" in err and "[--dim]" in err  # the CLI names the flag
    old = tmp_path / "old"
    assert cli(*base, "--classes", "0-4", "--out", old)[0] == 0
    code, _, err = cli(*base[:3], "--dim", "16", "--epochs", "1", "--quiet", "--method", "bct", "--old", old,
                       "--out", tmp_path / "y")
    assert code == 2 and "old model is 12-d" in err
    # an old model whose classifier does not match the label set
    import json

    cfg = json.loads((old / "model.json").read_text())
    cfg["classes"] = [c for c in cfg["classes"] if c != "9"] + ["ten"]
    (old / "model.json").write_text(json.dumps(cfg))
    code, _, err = cli(*base, "--method", "bct", "--old", old, "--out", tmp_path / "z")
    assert code == 2 and "label set" in err
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "model.json").write_text("{not json")
    code, _, err = cli("encode", "--model", tmp_path / "junk", "--dataset", "digits", "--out", tmp_path / "s")
    assert code == 2 and "corrupt" in err
    code, _, err = cli("train", "--arch", "mlp", "--dim", "8", "--out", tmp_path / "m")
    assert code == 2 and "--base-space" in err


def test_mlp_head_on_a_text_space(cli, tmp_path):
    """--arch mlp trains on a frozen encoder's labelled space; the model encodes texts through that encoder."""
    from tests.conftest import make_space

    space = make_space(n=60, d=384, model="minilm-l6")
    space.save(tmp_path / "base")
    code, _, err = cli("train", "--arch", "mlp", "--base-space", tmp_path / "base", "--dim", "16", "--epochs", "2",
                       "--quiet", "--out", tmp_path / "head")
    assert code == 0, err
    model, config = load_model(tmp_path / "head")
    assert config["input"]["base_model"] == "minilm-l6" and config["in_dim"] == 384


@pytest.mark.real
def test_mlp_head_encodes_text(cli, tmp_path, bbc_space):
    code, _, err = cli("train", "--arch", "mlp", "--base-space", bbc_space("minilm-l6", "title"), "--dim", "32",
                       "--epochs", "3", "--quiet", "--out", tmp_path / "head")
    assert code == 0, err
    code, _, err = cli("encode", "--model", tmp_path / "head", "--dataset", "bbc-news:title@test", "--limit", "40",
                       "--out", tmp_path / "s", "--quiet")
    assert code == 0, err
    from repspace import Space

    s = Space.load(tmp_path / "s")
    assert s.dim == 32 and s.count == 40 and s.model == "head"


def test_bct_synthesises_old_weights_for_classes_the_old_model_never_saw():
    from repspace.compat.training import _old_weight

    old = _mlp(dim=8, k=4)
    config = {"classes": ["a", "b", "c", "d"], "trained_classes": ["a", "b"]}
    x = torch.randn(40, 6)
    y = np.array(["a", "b", "c", "d"] * 10)
    w = _old_weight(old, config, ["a", "b", "c", "d"], y, x)
    learned = old.classifier.weight.detach()
    assert torch.allclose(w[:2], learned[:2])  # known classes: the old classifier's own rows
    with torch.no_grad():
        mean_c = old.features(x[torch.from_numpy(np.flatnonzero(y == "c"))]).mean(0)
    assert torch.allclose(w[2] / w[2].norm(), mean_c / mean_c.norm(), atol=1e-5)
    assert torch.isclose(w[2].norm(), learned[:2].norm(dim=1).mean(), atol=1e-5)
    with pytest.raises(InvalidInputError, match="label set"):
        _old_weight(old, config, ["a", "b", "c", "e"], y, x)


def test_defaults_give_each_model_its_own_initialisation_and_enough_steps():
    from repspace.compat.training import default_epochs, init_seed

    assert init_seed(0, "independent", None, 0.3) != init_seed(0, "independent", None, None)
    assert init_seed(0, "independent", ["0", "1"], None) != init_seed(0, "bct", ["0", "1"], None)
    assert init_seed(1, "bct", None, None) != init_seed(0, "bct", None, None)
    assert init_seed(0, "bct", None, None) == init_seed(0, "bct", None, None)
    assert default_epochs(60000, 128) == 10 and default_epochs(17843, 128) == 10  # at least MIN_EPOCHS
    assert default_epochs(891, 128) == 143 and default_epochs(267, 128) == 334  # ~1,000 steps


def test_cli_defaults_independent_baseline_is_not_aligned_with_the_old_model(cli, tmp_path):
    """No --dim: 32-d; a new "independent" model with the same --seed starts from other weights than the old
    one, so it is not compatible by construction (new->old far below old->old). (--epochs 40 keeps the test
    short; the default epoch count is checked on a tiny space below.)"""
    base = ["train", "--dataset", "digits", "--threads", "1", "--quiet", "--epochs", "40"]
    assert cli(*base, "--fraction", "0.3", "--out", tmp_path / "old")[0] == 0
    assert cli(*base, "--out", tmp_path / "new")[0] == 0
    _, old_cfg = load_model(tmp_path / "old")
    _, new_cfg = load_model(tmp_path / "new")
    assert old_cfg["dim"] == 32 and new_cfg["dim"] == 32
    assert old_cfg["init_seed"] != new_cfg["init_seed"] and old_cfg["seed"] == new_cfg["seed"] == 0
    for name in ("old", "new"):
        assert cli("encode", "--model", tmp_path / name, "--dataset", "digits@test", "--out", tmp_path / f"s-{name}",
                   "--quiet")[0] == 0
    from repspace import Space
    from repspace.evaluation import compatibility

    M = compatibility([Space.load(tmp_path / "s-old"), Space.load(tmp_path / "s-new")], metric="map@r")["matrix"]
    assert M[0][0] > 0.5 and M[1][1] > 0.5 and M[1][0] < 0.5 * M[0][0]


def test_default_epochs_reach_about_1000_steps(tmp_path):
    from repspace.compat.training import train_model
    from tests.conftest import make_space

    cfg = train_model("mlp", 8, "independent", tmp_path / "m", base_space=make_space(n=60, d=6), epochs=None,
                      batch_size=32, progress=False)
    assert cfg["epochs"] == 500 and len(cfg["history"]) == 500


def test_prototype_influence_and_cosine_classifier():
    from repspace.compat.training import old_prototypes

    old = _mlp(dim=8, k=4)
    x = torch.randn(40, 6)
    y = np.array(["a", "b", "c", "d"] * 10)
    protos = old_prototypes(old, ["a", "b", "c", "d"], y, x)
    with torch.no_grad():
        f = torch.nn.functional.normalize(old.embed(x[torch.from_numpy(np.flatnonzero(y == "c"))]), dim=1).mean(0)
    assert protos.shape == (4, 8) and torch.allclose(protos[2], f, atol=1e-6)
    new = _mlp(dim=8, k=4, classifier="cosine")
    loss_fn = BCTLoss(new, protos, alpha=1.0, cosine_scale=16.0)
    yt = torch.randint(0, 4, (40,))
    feats = new.features(x)
    # the influence logits are scaled cosines, bounded by the scale; the cosine classifier's too
    assert loss_fn.influence_logits(feats).abs().max() <= 16.0 + 1e-4
    assert new.logits(feats).abs().max() <= new.logit_scale.abs() + 1e-4
    loss_fn(x, yt).backward()
    assert new.logit_scale.grad is not None and not loss_fn.old_weight.requires_grad


def test_bct_without_dim_takes_the_old_models_dimension(tmp_path):
    from repspace.compat.training import train_model
    from tests.conftest import make_space

    base = make_space(n=60, d=6)
    train_model("mlp", 12, "independent", tmp_path / "old", base_space=base, epochs=2, progress=False)
    cfg = train_model("mlp", None, "bct", tmp_path / "new", base_space=base, old=tmp_path / "old", epochs=2,
                      progress=False, influence="prototypes")
    assert cfg["dim"] == 12 and cfg["influence"] == "prototypes"
    assert train_model("mlp", None, "independent", tmp_path / "ind", base_space=base, epochs=1, progress=False)["dim"] == 32
    with pytest.raises(InvalidInputError, match="unknown influence"):
        train_model("mlp", None, "bct", tmp_path / "x", base_space=base, old=tmp_path / "old", epochs=1,
                    progress=False, influence="nope")


def test_gallery_influence_is_nca_among_the_old_features():
    from repspace.compat.losses.influence import GalleryInfluence

    torch.manual_seed(0)
    bank, labels = torch.randn(30, 8), torch.randint(0, 3, (30,))
    term = GalleryInfluence(bank * 3.0, labels, scale=10.0)  # the bank is normalised on the way in
    f = torch.randn(5, 8, requires_grad=True)
    y = torch.tensor([0, 1, 2, 0, 1])
    loss = term(f, y)
    s = 10.0 * torch.nn.functional.normalize(f, dim=1) @ torch.nn.functional.normalize(bank, dim=1).T
    p = torch.softmax(s, dim=1)
    want = -torch.log(torch.stack([p[i, labels == y[i]].sum() for i in range(5)])).mean()
    assert torch.allclose(loss, want, atol=1e-5)
    loss.backward()
    assert f.grad.abs().sum() > 0 and not term.bank.requires_grad
    # a class absent from the bank adds nothing; a sample smaller than the bank draws rows
    assert term(f[:1], torch.tensor([7])).item() == 0.0
    assert torch.isfinite(GalleryInfluence(bank, labels, sample=4)(f, y))
    with pytest.raises(InvalidInputError):
        GalleryInfluence(bank, labels[:5])


def test_gallery_influence_own_term_pulls_each_feature_to_its_own_old_embedding():
    from repspace.compat.losses.influence import GalleryInfluence

    old = _mlp(dim=8, k=3)
    x, y = torch.randn(6, 6), torch.tensor([0, 1, 2, 0, 1, 2])
    with torch.no_grad():
        bank = old.embed(torch.randn(40, 6))
    labels = torch.randint(0, 3, (40,))
    term = GalleryInfluence(bank, labels, scale=20.0, old_model=old, class_weight=0.0)
    old.train()
    f = torch.randn(6, 8, requires_grad=True)
    loss = term(f, y, x)
    assert old.training  # the old model is used in eval mode and left as it was
    old.eval()
    with torch.no_grad():
        own = torch.nn.functional.normalize(old.embed(x), dim=1)
    fn = torch.nn.functional.normalize(f, dim=1)
    s = 20.0 * fn @ torch.nn.functional.normalize(bank, dim=1).T
    want = []
    for i in range(6):
        logits = torch.cat([(20.0 * fn[i] @ own[i]).view(1), s[i, labels != y[i]]])
        want.append(torch.logsumexp(logits, 0) - logits[0])
    assert torch.allclose(loss, torch.stack(want).mean(), atol=1e-5)
    loss.backward()
    assert f.grad.abs().sum() > 0 and all(p.grad is None for p in old.parameters())
    # features at their own old embeddings score better than random ones
    assert term(own * 3.0, y, x) < term(torch.randn(6, 8), y, x)


def test_influence_sum_adds_weighted_terms_of_one_dimension():
    from repspace.compat.losses.influence import ClassifierInfluence, GalleryInfluence, InfluenceSum

    torch.manual_seed(0)
    w, bank, labels = torch.randn(3, 8), torch.randn(30, 8), torch.randint(0, 3, (30,))
    cls, nca = ClassifierInfluence(w, 8), GalleryInfluence(bank, labels, scale=32.0, own_weight=0.0)
    f, y = torch.randn(5, 8, requires_grad=True), torch.tensor([0, 1, 2, 0, 1])
    both = InfluenceSum(cls, nca, weights=(1.0, 0.5))
    assert both.dim == 8
    assert torch.allclose(both(f, y), cls(f, y) + 0.5 * nca(f, y), atol=1e-6)
    both(f, y).backward()
    assert f.grad.abs().sum() > 0
    with pytest.raises(DimensionMismatchError):
        InfluenceSum(cls, ClassifierInfluence(torch.randn(3, 4), 4))
    with pytest.raises(InvalidInputError):
        InfluenceSum(cls, nca, weights=(1.0,))


def test_gallery_influence_looks_the_own_item_up_by_row():
    from repspace.compat.losses.influence import GalleryInfluence, old_embeddings

    old = _mlp(dim=8, k=3)
    xs, labels = torch.randn(40, 6), torch.randint(0, 3, (40,))
    term = GalleryInfluence(old_embeddings(old, xs), labels, scale=20.0, old_model=old)
    rows = torch.tensor([3, 17, 0, 39])
    f = torch.randn(4, 8)
    torch.manual_seed(1)
    by_row = term(f, labels[rows], rows=rows)
    torch.manual_seed(1)
    by_model = term(f, labels[rows], xs[rows])  # the same rows re-embedded by the old model
    assert torch.allclose(by_row, by_model, atol=1e-5)
    assert by_row > GalleryInfluence(term.bank, labels, scale=20.0)(f, labels[rows])  # the own term was added
    with pytest.raises(InvalidInputError, match="rows"):
        term(f, labels[rows], rows=torch.tensor([0, 40, 1, 2]))


def test_auto_influence_is_gallery_when_the_new_model_adds_classes_else_nca(tmp_path):
    from repspace.compat.losses import get_loss
    from repspace.compat.training import auto_influence, train_model
    from tests.conftest import make_space

    base = make_space(n=60, d=6)  # labels of 3 classes
    common = dict(base_space=base, epochs=1, progress=False)
    train_model("mlp", 12, "independent", tmp_path / "old-all", fraction=0.5, **common)
    train_model("mlp", 12, "independent", tmp_path / "old-part", classes="0-1", **common)
    for method in ("bct", "bt2"):
        closed = train_model("mlp", None, method, tmp_path / f"{method}-closed", old=tmp_path / "old-all", **common)
        added = train_model("mlp", None, method, tmp_path / f"{method}-added", old=tmp_path / "old-part", **common)
        assert (closed["influence"], closed["influence_scale"]) == ("nca", 32.0)
        assert closed["alpha"] == {"bct": 1.0, "bt2": 3.0}[method]  # each loss's default_alpha
        assert (added["influence"], added["influence_scale"]) == ("gallery", 128.0)
        # an explicit choice wins, and its scale is recorded
        own = train_model("mlp", None, method, tmp_path / f"{method}-own", old=tmp_path / "old-part",
                          influence="classifier", **common)
        assert own["influence"] == "classifier"
    gal = train_model("mlp", None, "bct", tmp_path / "gal", old=tmp_path / "old-all", influence="gallery",
                      influence_scale=32.0, **common)
    assert (gal["influence"], gal["influence_scale"]) == ("gallery", 32.0)
    nca = train_model("mlp", None, "bct", tmp_path / "nca", old=tmp_path / "old-all", influence_scale=8.0, **common)
    assert (nca["influence"], nca["influence_scale"]) == ("nca", 8.0)  # auto's scale can be set
    # without the old model's own inputs there is no old gallery: auto falls back to the paper's old classifier
    old_cfg = {"classes": ["0", "1", "2"], "trained_classes": ["0", "1", "2"]}
    classes = ["0", "1", "2"]
    assert auto_influence(get_loss("bct"), old_cfg, classes, classes, same_input=False) == "classifier"
    assert auto_influence(get_loss("bt2"), old_cfg, classes, classes, same_input=True) == "nca"
    assert auto_influence(get_loss("bt2"), dict(old_cfg, trained_classes=["0"]), classes, classes, True) == "gallery"
    assert train_model("mlp", 12, "independent", tmp_path / "ind", **common)["influence_scale"] is None
    for bad, match in ((dict(method="bct", old=tmp_path / "old-all", influence="classifier", influence_scale=8.0),
                        "influence_scale is for the nca, gallery"),
                       (dict(method="bct", old=tmp_path / "old-part", influence_scale=0.0), "must be positive"),
                       (dict(method="independent", influence_scale=8.0), "against an old model"),
                       (dict(method="bct", old=tmp_path / "old-part", alpha=-1.0), "alpha must be non-negative")):
        with pytest.raises(InvalidInputError, match=match):
            train_model("mlp", 12 if bad["method"] == "independent" else None, out=tmp_path / "bad", **common, **bad)
        assert not (tmp_path / "bad").exists()


def test_gallery_influence_trains_bct_and_bt2_and_is_refused_elsewhere(tmp_path):
    from repspace.compat.training import train_model
    from tests.conftest import make_space

    base = make_space(n=60, d=6)
    train_model("mlp", 12, "independent", tmp_path / "old", base_space=base, epochs=2, progress=False)
    for method in ("bct", "bt2"):
        cfg = train_model("mlp", None, method, tmp_path / method, base_space=base, old=tmp_path / "old", epochs=2,
                          progress=False, influence="gallery")
        assert cfg["influence"] == "gallery" and np.isfinite(cfg["history"][-1]["loss"])
    with pytest.raises(InvalidInputError, match="prototypes influence is for method 'bct'"):
        train_model("mlp", None, "bt2", tmp_path / "x", base_space=base, old=tmp_path / "old", epochs=1,
                    progress=False, influence="prototypes")


def test_train_model_resumes_after_a_kill_with_the_uninterrupted_weights(tmp_path, monkeypatch):
    from safetensors.numpy import load_file

    from repspace.compat.training import train_model
    from repspace.training import Checkpoint
    from tests.conftest import make_space

    base = make_space(n=70, d=6)
    train_model("mlp", 8, "independent", tmp_path / "old", base_space=base, epochs=2, batch_size=32, progress=False)
    kw = dict(base_space=base, old=tmp_path / "old", epochs=3, batch_size=32, progress=False, influence="gallery")
    full = train_model("mlp", None, "bct", tmp_path / "full", **kw)
    save = Checkpoint.save

    def killed_after_epoch_1(self, *args):
        save(self, *args)
        raise KeyboardInterrupt

    monkeypatch.setattr(Checkpoint, "save", killed_after_epoch_1)
    with pytest.raises(KeyboardInterrupt):
        train_model("mlp", None, "bct", tmp_path / "run", **kw)
    monkeypatch.setattr(Checkpoint, "save", save)
    assert (tmp_path / ".run.partial").is_dir() and not (tmp_path / "run").exists()
    with pytest.raises(InvalidInputError, match="partial run with other settings"):
        train_model("mlp", None, "bct", tmp_path / "run", **{**kw, "lr": 2e-3})
    resumed = train_model("mlp", None, "bct", tmp_path / "run", **kw)
    a, b = load_file(str(tmp_path / "full" / "model.safetensors")), load_file(str(tmp_path / "run" / "model.safetensors"))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert [h["loss"] for h in resumed["history"]] == [h["loss"] for h in full["history"]]
    assert not (tmp_path / ".run.partial").exists()
