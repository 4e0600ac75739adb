"""Augmentations: torch ops only, seeded, parameters exposed and meaningful."""

import math

import torch

from repspace.objectives.augment import FeatureAugment, ImageAugment


def _img(n=4, s=8):
    torch.manual_seed(0)
    return torch.rand(n, 1, s, s) * 2 - 1


def test_identity_parameters_give_the_input():
    x = _img()
    aug = ImageAugment(jitter=0.0)
    ident = torch.tensor([[1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]]).repeat(len(x), 1)
    assert torch.allclose(aug.apply(x, ident), x, atol=1e-5)


def test_flip_and_rotation_parameters_do_what_they_say():
    x = _img()
    aug = ImageAugment(jitter=0.0)
    flip = torch.tensor([[1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0]]).repeat(len(x), 1)
    assert torch.allclose(aug.apply(x, flip), x.flip(-1), atol=1e-5)
    quarter = torch.tensor([[1.0, 1.0, 0.0, 0.0, 0.0, math.pi / 2, 0.0]]).repeat(len(x), 1)
    rotated = aug.apply(x, quarter)
    assert any(torch.allclose(rotated, torch.rot90(x, k, dims=(2, 3)), atol=1e-4) for k in (1, -1))


def test_views_are_seeded_shaped_and_parameters_in_range():
    x = _img(16)
    aug = ImageAugment(rotation=30.0, noise=0.1)
    a, pa = aug(x, torch.Generator().manual_seed(1))
    b, pb = aug(x, torch.Generator().manual_seed(1))
    c, _ = aug(x, torch.Generator().manual_seed(2))
    assert a.shape == x.shape and pa.shape == (16, len(ImageAugment.PARAMS))
    assert torch.equal(a, b) and torch.equal(pa, pb) and not torch.equal(a, c)
    assert bool((pa[:, 5].abs() <= math.radians(30) + 1e-6).all())
    assert bool(((pa[:, 0] > 0) & (pa[:, 0] <= 1)).all()) and set(pa[:, 4].tolist()) <= {0.0, 1.0}


def test_feature_augment():
    torch.manual_seed(0)
    x = torch.randn(64, 32)
    aug = FeatureAugment(dropout=0.5, noise=0.2)
    v, p = aug(x, torch.Generator().manual_seed(0))
    assert v.shape == x.shape and p.shape == (64, 2)
    assert bool((p[:, 0] <= 0.5).all()) and bool((p[:, 1] <= 0.2).all())
    none = torch.zeros(64, 2)
    assert torch.allclose(aug.apply(x, none), x)
    dropped = aug.apply(x, torch.tensor([[0.5, 0.0]]).repeat(64, 1), torch.Generator().manual_seed(0))
    frac = float((dropped == 0).float().mean())
    assert 0.4 < frac < 0.6
