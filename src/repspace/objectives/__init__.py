"""Self-supervised representation-learning objectives: train an encoder without labels.

Losses (`repspace.objectives.losses`, one small nn.Module each): NT-Xent (SimCLR), VICReg, Barlow
Twins, BYOL / SimSiam (negative cosine, stop-gradient, EMA teacher), MYOW, Hydra, SIE, OBoW, cMIM.
Augmentations made of torch ops (`repspace.objectives.augment`). One resumable training loop
(`train_objective`), exposed as ``repspace train --method simclr|...``. See docs/objectives.md.
"""

from repspace.objectives.augment import FeatureAugment, ImageAugment
from repspace.objectives.losses import (BarlowTwinsLoss, BYOLLoss, CMIMLoss, EMATeacher, HydraLoss, MYOWLoss,
                                        NegativeCosineLoss, NTXentLoss, OBoWLoss, SIELoss, SimSiamLoss, VICRegLoss,
                                        dimension_std, effective_rank, singular_spectrum)
from repspace.objectives.methods import METHODS, OBJECTIVES, build_objective
from repspace.objectives.training import train_objective


def demo_section(*args, **kwargs):
    """The demo report's "Learning without labels" section (see repspace.objectives.demo)."""
    from repspace.objectives.demo import demo_section as _demo_section

    return _demo_section(*args, **kwargs)


__all__ = [
    "METHODS", "OBJECTIVES", "build_objective", "train_objective", "demo_section", "ImageAugment", "FeatureAugment",
    "NTXentLoss", "VICRegLoss", "BarlowTwinsLoss", "NegativeCosineLoss", "BYOLLoss", "SimSiamLoss", "MYOWLoss",
    "HydraLoss", "SIELoss", "OBoWLoss", "CMIMLoss", "EMATeacher", "effective_rank", "dimension_std",
    "singular_spectrum",
]
