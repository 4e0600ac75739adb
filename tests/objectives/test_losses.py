"""Losses: equal to lightly's (value and gradient) where lightly has them; properties of the others."""

import os
import sys
import types

import pytest
import torch

from repspace.objectives.losses import (BarlowTwinsLoss, BYOLLoss, CMIMLoss, EMATeacher, HydraLoss, MYOWLoss,
                                        NegativeCosineLoss, NTXentLoss, OBoWLoss, SIELoss, SimSiamLoss, VICRegLoss,
                                        dimension_std, effective_rank)


@pytest.fixture(scope="module")
def lightly_loss():
    """lightly 1.6's loss modules without torchvision: lightly needs torchvision, which cannot be installed
    beside torch 2.13 here, so lightly is installed with --no-deps and only the four loss files are imported
    (their package __init__ files, which import torchvision-based models, are bypassed)."""
    lightly = pytest.importorskip("lightly")
    root = os.path.dirname(lightly.__file__)
    saved = {k: sys.modules.get(k) for k in ("lightly.loss", "lightly.models", "lightly.models.modules", "lightly.models.utils")}
    for name, sub in (("lightly.loss", "loss"), ("lightly.models", "models"), ("lightly.models.modules", "models/modules")):
        if name not in sys.modules or not hasattr(sys.modules[name], "NTXentLoss" if name == "lightly.loss" else "__path__"):
            pkg = types.ModuleType(name)
            pkg.__path__ = [os.path.join(root, sub)]
            sys.modules[name] = pkg
    if "lightly.models.utils" not in sys.modules:  # only used by the distributed memory bank, never here
        sys.modules["lightly.models.utils"] = types.ModuleType("lightly.models.utils")
        sys.modules["lightly.models"].utils = sys.modules["lightly.models.utils"]
    from lightly.loss.barlow_twins_loss import BarlowTwinsLoss as LB
    from lightly.loss.negative_cosine_similarity import NegativeCosineSimilarity as LN
    from lightly.loss.ntx_ent_loss import NTXentLoss as LX
    from lightly.loss.vicreg_loss import VICRegLoss as LV

    yield {"ntxent": LX, "vicreg": LV, "barlow": LB, "negcos": LN}
    for k, v in saved.items():
        if v is None:
            sys.modules.pop(k, None)
        else:
            sys.modules[k] = v


def _value_and_grads(loss_fn, a, b):
    a, b = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
    loss = loss_fn(a, b)
    ga, gb = torch.autograd.grad(loss, [a, b])
    return loss.detach(), ga, gb


@pytest.mark.parametrize("name,ours,theirs", [
    ("ntxent", lambda: NTXentLoss(0.5), lambda L: L["ntxent"](temperature=0.5)),
    ("ntxent-t0.1", lambda: NTXentLoss(0.1), lambda L: L["ntxent"](temperature=0.1)),
    ("vicreg", lambda: VICRegLoss(), lambda L: L["vicreg"]()),
    ("barlow", lambda: BarlowTwinsLoss(5e-3), lambda L: L["barlow"](lambda_param=5e-3)),
    ("negcos", lambda: NegativeCosineLoss(), lambda L: L["negcos"]()),
])
def test_equals_lightly_value_and_gradient(lightly_loss, name, ours, theirs):
    g = torch.Generator().manual_seed(0)
    for n, d in ((32, 16), (64, 8)):
        a, b = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
        b = 0.6 * a + 0.4 * b  # correlated views, like real ones
        v1, ga1, gb1 = _value_and_grads(ours(), a, b)
        v2, ga2, gb2 = _value_and_grads(theirs(lightly_loss), a, b)
        assert torch.allclose(v1, v2, atol=1e-5, rtol=1e-5), (name, v1, v2)
        assert torch.allclose(ga1, ga2, atol=1e-5) and torch.allclose(gb1, gb2, atol=1e-5), name


def test_byol_and_simsiam_are_symmetric_negative_cosine_with_stop_gradient():
    torch.manual_seed(0)
    p_a, p_b, z_a, z_b = (torch.randn(16, 8, requires_grad=True) for _ in range(4))
    for loss_fn in (BYOLLoss(), SimSiamLoss()):
        loss = loss_fn(p_a, p_b, z_a, z_b)
        want = 0.5 * (NegativeCosineLoss()(p_a, z_b) + NegativeCosineLoss()(p_b, z_a))
        assert torch.allclose(loss, want)
        grads = torch.autograd.grad(loss, [p_a, p_b, z_a, z_b], allow_unused=True)
        assert grads[0].abs().sum() > 0 and grads[1].abs().sum() > 0
        assert grads[2] is None and grads[3] is None  # stop-gradient: no gradient reaches the targets


def test_ema_teacher_gets_no_gradient_and_follows_the_student():
    torch.manual_seed(0)
    student = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4))
    teacher = EMATeacher(student)
    assert all(not p.requires_grad for p in teacher.parameters())
    x = torch.randn(8, 4)
    loss = BYOLLoss()(student(x), student(x), teacher(x), teacher(x))
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    before = [p.clone() for p in teacher.parameters()]
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)
    teacher.update(student, momentum=0.9)
    for b, t, s in zip(before, teacher.parameters(), student.parameters()):
        assert torch.allclose(t, 0.9 * b + 0.1 * s)


def test_collapse_detectors():
    torch.manual_seed(0)
    iso = torch.randn(4000, 16)
    assert effective_rank(iso) > 15.5
    assert torch.allclose(dimension_std(iso), torch.full((16,), 16 ** -0.5), atol=0.02)
    line = torch.randn(500, 1) * torch.randn(1, 16)  # complete dimensional collapse onto one direction
    assert effective_rank(line) == pytest.approx(1.0, abs=1e-3)
    const = torch.ones(100, 16)
    assert effective_rank(const) == 0.0 and float(dimension_std(const).max()) == 0.0
    low = torch.randn(2000, 3) @ torch.randn(3, 16)
    assert 1.5 < effective_rank(low) < 3.01


def test_ntxent_prefers_aligned_views():
    torch.manual_seed(0)
    a = torch.randn(32, 8)
    assert NTXentLoss(0.5)(a, a + 0.01 * torch.randn(32, 8)) < NTXentLoss(0.5)(a, torch.randn(32, 8))


def test_myow_mines_the_nearest_other_item():
    keys = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    idx = MYOWLoss(k=1).mine(keys, keys)
    assert idx.tolist() == [1, 0, 3, 2]  # never itself
    values = torch.randn(4, 3)
    p = values[idx].clone().requires_grad_(True)
    loss = MYOWLoss(k=1)(p, keys, values, keys)
    assert loss.item() == pytest.approx(-1.0, abs=1e-6)


def test_hydra_gates_select_a_subspace():
    torch.manual_seed(0)
    hydra = HydraLoss(dim=8, num_classes=4, sparsity=0.0)
    y = torch.tensor([0, 1, 2, 3])
    g = hydra.gates(y, y.flip(0))
    assert g.shape == (4, 8) and bool(((g > 0) & (g < 1)).all())
    # pairs that agree only on the first two dimensions: a gate open there makes them positives
    za = torch.randn(4, 8)
    zb = torch.randn(4, 8)
    zb[:, :2] = za[:, :2]
    with torch.no_grad():
        hydra.gate_net[-1].weight.zero_()
        hydra.gate_net[-1].bias.copy_(torch.tensor([20.0, 20.0] + [-20.0] * 6))
    narrow = hydra(za, zb, y, y)
    with torch.no_grad():
        hydra.gate_net[-1].bias.fill_(20.0)
    wide = hydra(za, zb, y, y)
    assert narrow < wide
    # the gate network is trained by the loss
    hydra = HydraLoss(dim=8, num_classes=4)
    hydra(za, zb, y, y.flip(0)).backward()
    assert hydra.labels.weight.grad is not None and hydra.labels.weight.grad.abs().sum() > 0


def test_sie_hypernetwork_starts_at_identity_and_uses_the_parameters():
    torch.manual_seed(0)
    sie = SIELoss(equi_dim=4, param_dim=2)
    eq = torch.randn(6, 4)
    params = torch.randn(6, 2)
    assert torch.allclose(sie.predict(eq, params), eq, atol=0.2)
    inv = torch.randn(6, 3)
    loss = sie(inv, inv, eq, eq, params)
    loss.backward()
    assert sie.hypernet[0].weight.grad is not None


def test_obow_bag_of_words_and_online_vocabulary():
    torch.manual_seed(0)
    obow = OBoWLoss(rep_dim=8, channels=6, vocab_size=10)
    local = torch.randn(4, 6, 9)
    bow = obow.bag_of_words(local)
    assert bow.shape == (4, 10) and torch.allclose(bow.sum(1), torch.ones(4))
    before = obow.vocabulary.clone()
    obow.update_vocabulary(local)
    changed = (obow.vocabulary != before).any(1)
    assert int(changed.sum()) == 4 and int(obow.pointer) == 4
    # the words are raw local features (one per image), not normalised
    for row in obow.vocabulary[:4]:
        assert any(torch.allclose(row, local[i, :, p]) for i in range(4) for p in range(9))
    student = torch.randn(4, 8, requires_grad=True)
    loss = obow(student, local)
    assert loss.item() > 0
    loss.backward()
    assert student.grad is not None and obow.generator[0].weight.grad is not None
    assert torch.allclose(obow.weights().norm(dim=1), torch.ones(10), atol=1e-5)


def test_obow_adaptive_assignment_matches_the_paper():
    """softmax(-inv_delta / mean nearest-word distance * squared distance), max-pooled, L1-normalised; the
    adaptive inverse temperature makes the bag of words invariant to the features' scale."""
    torch.manual_seed(0)
    obow = OBoWLoss(rep_dim=8, channels=6, vocab_size=10, inv_delta=15.0)
    local = torch.rand(3, 6, 5)
    bow = obow.bag_of_words(local)
    dist = ((local.transpose(1, 2).unsqueeze(2) - obow.vocabulary) ** 2).sum(3)  # (n, P, K)
    mu = dist.min(2).values.mean()
    assert torch.isclose(obow.min_distance_mean, mu, rtol=1e-5)
    ref = torch.softmax(-15.0 / mu * dist, dim=2).max(1).values
    assert torch.allclose(bow, ref / ref.sum(1, keepdim=True), atol=1e-5)
    scaled = OBoWLoss(rep_dim=8, channels=6, vocab_size=10, inv_delta=15.0)
    scaled.vocabulary.copy_(obow.vocabulary * 7.0)
    assert torch.allclose(scaled.bag_of_words(local * 7.0), bow, atol=1e-5)
    # the running mean moves by (1 - decay) per tracked batch
    obow.bag_of_words(local * 2.0, track=True)
    mu2 = (((2 * local).transpose(1, 2).unsqueeze(2) - obow.vocabulary) ** 2).sum(3).min(2).values.mean()
    assert torch.isclose(obow.min_distance_mean, 0.99 * mu + 0.01 * mu2, rtol=1e-5)
    # a very sharp assignment of one position is the one-hot code of its nearest word
    sharp = OBoWLoss(rep_dim=8, channels=6, vocab_size=10, inv_delta=1e4)
    sharp.vocabulary.copy_(obow.vocabulary)
    one = sharp.bag_of_words(local[:, :, :1])
    assert torch.equal(one.argmax(1), dist[:, 0].argmin(1)) and torch.allclose(one.max(1).values, torch.ones(3), atol=1e-3)


def test_cmim_is_finite_and_rewards_good_reconstructions():
    torch.manual_seed(0)
    x = torch.randn(16, 20)
    mu, logvar = torch.randn(16, 4), torch.zeros(16, 4)
    z = mu + torch.randn(16, 4)
    cmim = CMIMLoss()
    good, bad = cmim(x, x, mu, logvar, z, mu), cmim(x, torch.randn(16, 20), mu, logvar, z, torch.randn(16, 4))
    assert torch.isfinite(good) and good < bad


def test_myow_mines_from_the_batch_and_a_queue_but_never_itself():
    keys = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # the batch's own items come first
    queue = torch.tensor([[0.95, 0.05], [0.05, 0.95], [-1.0, 0.0]])
    idx = MYOWLoss(k=1).mine(keys, torch.cat([keys, queue]))
    assert idx.tolist() == [2, 3]  # the nearest queued item, not the anchor itself (similarity 1)


def test_cmim_amim_terms_are_per_item_likelihoods():
    torch.manual_seed(0)
    x, x_hat = torch.randn(8, 20), torch.randn(8, 20)
    mu, logvar = torch.randn(8, 4), torch.zeros(8, 4)
    z = mu + torch.randn(8, 4)
    full = CMIMLoss(contrastive_weight=0.0)(x, x_hat, mu, logvar, z, mu)
    scaled = CMIMLoss(contrastive_weight=0.0, per_dim=True)(x, x_hat, mu, logvar, z, mu)
    recon = ((x - x_hat) ** 2).sum(1).mean() / (2 * 0.5 ** 2)
    latent = -0.5 * ((-0.5 * (z - mu) ** 2).sum(1) + (-0.5 * z ** 2).sum(1)).mean()
    assert full.item() == pytest.approx((recon + latent).item(), rel=1e-5)
    assert scaled.item() == pytest.approx(full.item() / 20, rel=1e-5)

