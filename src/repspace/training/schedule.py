"""Learning-rate schedules of `repspace.training.fit`: set before a step, advanced after it."""

from __future__ import annotations

import math
from typing import Any

import torch


class Schedule:
    """A constant learning rate (the optimiser's own); the base of the other schedules."""

    def start(self, opt: torch.optim.Optimizer, total: int) -> None:
        """Called once before the first step (also when resuming) with the run's total number of steps."""

    def before_step(self, step: int) -> None:
        """Called before optimiser step `step` (0-based)."""

    def after_step(self) -> None:
        """Called after each optimiser step."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def warmup_cosine(step: int, total: int, lr: float, warmup: float = 0.1) -> float:
    """Linear warm-up over the first `warmup` fraction of the steps, then a cosine decay to 0."""
    w = max(1, int(warmup * total))
    if step < w:
        return lr * (step + 1) / w
    return lr * 0.5 * (1 + math.cos(math.pi * (step - w) / max(1, total - w)))


class WarmupCosine(Schedule):
    """`warmup_cosine` from `lr`, a pure function of the step (nothing to checkpoint); a parameter group marked
    ``fixed_lr`` (SimSiam's predictor) keeps `lr`."""

    def __init__(self, lr: float, warmup: float = 0.1) -> None:
        self.lr, self.warmup = lr, warmup

    def start(self, opt: torch.optim.Optimizer, total: int) -> None:
        self.opt, self.total = opt, total

    def before_step(self, step: int) -> None:
        for group in self.opt.param_groups:
            group["lr"] = self.lr if group.get("fixed_lr") else warmup_cosine(step, self.total, self.lr, self.warmup)


class OneCycle(Schedule):
    """torch's `OneCycleLR` (peak `lr`, warm-up `pct_start` of the steps; it cycles Adam's beta1 too)."""

    def __init__(self, lr: float, pct_start: float = 0.15) -> None:
        self.lr, self.pct_start = lr, pct_start
        self.sched: torch.optim.lr_scheduler.OneCycleLR | None = None

    def start(self, opt: torch.optim.Optimizer, total: int) -> None:
        self.sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr, total_steps=total,
                                                         pct_start=self.pct_start)

    def after_step(self) -> None:
        self.sched.step()

    def state_dict(self) -> dict[str, Any]:
        return self.sched.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sched.load_state_dict(state)
