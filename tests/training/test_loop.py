"""The one training loop (repspace.training): resuming equals an uninterrupted run, the loss convention."""

import numpy as np
import pytest
import torch
from torch import nn

from repspace.errors import InvalidInputError
from repspace.ops.torchstate import seeded
from repspace.training import Checkpoint, OneCycle, Schedule, Shuffle, TrainingLoss, WarmupCosine, fit


class NoisyRegression(TrainingLoss):
    """A linear model with BatchNorm, an augmentation drawn from the loop's generator and noise from torch's
    global RNG, and a counter buffer updated in after_step: every piece of state a checkpoint must carry."""

    def __init__(self) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def forward(self, x, y=None, rows=None, generator=None):
        jitter = torch.randn(x.shape, generator=generator) * 0.1 if generator is not None else 0.0
        pred = self.model(x + jitter + 0.01 * torch.randn(x.shape)).squeeze(1)
        return ((pred - y) ** 2).mean()

    def after_step(self, step, total):
        self.steps.fill_(step)


class Stop(Exception):
    pass


def _run(tmp_path, rng, schedule, epochs=3, stop_after=None, seed=0):
    x = torch.randn(50, 4, generator=torch.Generator().manual_seed(1))
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0])
    with seeded(seed, threads=1):
        loss = NoisyRegression()
        opt = torch.optim.AdamW(loss.param_groups(), lr=1e-2)

        def on_epoch(epoch, row):
            if epoch == stop_after:
                raise Stop

        history = fit(loss, x, y, order=Shuffle(len(x), 16, seed, rng=rng), optimizer=opt, epochs=epochs,
                      schedule=schedule(), checkpoint=Checkpoint.beside(tmp_path / "m", f"{rng}"), progress=False,
                      on_epoch=on_epoch)
    return loss, history


@pytest.mark.parametrize("rng", ["epoch", "run", "numpy"])
@pytest.mark.parametrize("schedule", [Schedule, lambda: OneCycle(1e-2), lambda: WarmupCosine(1e-2)],
                         ids=["constant", "onecycle", "warmupcosine"])
def test_resumed_run_equals_uninterrupted(tmp_path, rng, schedule):
    full, full_history = _run(tmp_path / "a", rng, schedule)
    with pytest.raises(Stop):
        _run(tmp_path / "b", rng, schedule, stop_after=1)
    assert (tmp_path / "b" / ".m.partial" / "state.json").is_file()
    resumed, history = _run(tmp_path / "b", rng, schedule)  # continues at epoch 2
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    assert int(resumed.steps) == 3 * 4
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in history]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in full_history]


def test_checkpoint_of_other_settings_is_refused(tmp_path):
    with pytest.raises(Stop):
        _run(tmp_path, "run", Schedule, stop_after=1)
    x, y = torch.randn(8, 4), torch.randn(8)
    loss = NoisyRegression()
    with pytest.raises(InvalidInputError, match="partial run with other settings"):
        fit(loss, x, y, order=Shuffle(8, 4, 0), optimizer=torch.optim.SGD(loss.parameters(), lr=0.1), epochs=2,
            checkpoint=Checkpoint.beside(tmp_path / "m", "other"), progress=False)


def test_shuffle_orders():
    full = Shuffle(10, 4, 0, rng="run")
    batches, g = full.epoch(0)
    assert len(full) == 3 and [len(b) for b in batches] == [4, 4, 2] and g is not None
    assert sorted(torch.cat(batches).tolist()) == list(range(10))
    dropped = Shuffle(10, 4, 0, rng="epoch", drop_last=True)
    assert len(dropped) == 2 and [len(b) for b in dropped.epoch(0)[0]] == [4, 4]
    small = Shuffle(3, 4, 0, rng="numpy", drop_last=True)  # fewer items than a batch: one batch of all
    batches, g = small.epoch(0)
    assert len(small) == 1 and sorted(batches[0].tolist()) == [0, 1, 2] and g is None
    assert batches[0].tolist() == np.random.default_rng(0).permutation(3).tolist()
    # "epoch": any epoch's order is known without the ones before
    assert torch.equal(Shuffle(10, 4, 5).epoch(3)[0][0], Shuffle(10, 4, 5).epoch(3)[0][0])


def test_every_loss_family_follows_the_convention():
    from repspace.compat.losses import LOSSES, CompatLoss
    from repspace.compress.losses import InfoNCELoss, PairLoss
    from repspace.nets import CompatNet
    from repspace.objectives import OBJECTIVES, build_objective

    assert issubclass(CompatLoss, TrainingLoss) and issubclass(PairLoss, TrainingLoss)
    assert all(issubclass(cls, TrainingLoss) for cls in [*LOSSES.values(), *OBJECTIVES.values()])
    torch.manual_seed(0)
    x, y, rows, g = torch.randn(16, 6), torch.randint(0, 3, (16,)), torch.arange(16), torch.Generator().manual_seed(0)
    model = CompatNet("mlp", 8, 3, "linear", 0, 6)
    compat = LOSSES["independent"].for_training(model)
    assert compat(x, y, rows=rows, generator=g).ndim == 0
    assert [id(p) for p in compat.param_groups()[0]["params"]] == [id(p) for p in model.parameters()]
    objective = build_objective("simclr", CompatNet("mlp", 8, 0, "none", 0, 6), (6,))
    assert objective(x, None, rows=rows, generator=g).ndim == 0

    class Texts(nn.Module):  # a stand-in sentence-transformers model: one learned vector per text
        device = "cpu"

        def __init__(self):
            super().__init__()
            self.table = nn.Embedding(4, 8)

        def tokenize(self, texts):
            return {"ids": torch.tensor([int(t) for t in texts])}

        def forward(self, features):
            return {"sentence_embedding": self.table(features["ids"])}

    pairs = PairLoss(Texts(), InfoNCELoss())
    assert pairs((["0", "1"], ["2", "3"]), None, rows=torch.arange(2), generator=None).ndim == 0


def test_non_finite_loss_names_the_learning_rate():
    class Exploding(TrainingLoss):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(()))

        def forward(self, x, y=None, rows=None, generator=None):
            return self.w * float("nan")

    loss = Exploding()
    with pytest.raises(InvalidInputError, match="the loss became nan at epoch 1") as e:
        fit(loss, torch.zeros(4, 1), None, order=Shuffle(4, 2, 0), optimizer=torch.optim.SGD(loss.parameters(), lr=1),
            epochs=1, label="train x", progress=False)
    assert e.value.param == "lr"
