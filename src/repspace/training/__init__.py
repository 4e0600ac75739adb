"""The one training loop: a loss (the model inside), data, an order, a schedule, checkpoints.

Every trained network in repspace goes through `fit`: compatible training (`repspace.compat.training`, losses in
`repspace.compat.losses`), the self-supervised objectives (`repspace.objectives`) and the Matryoshka fine-tune of
a sentence-transformers encoder (`repspace.compress.finetune`). Like sentence-transformers' one trainer and its
``losses/``, what differs between them lives in the loss, which holds the model it trains and follows one
convention (`TrainingLoss`): ``loss(x, y, rows=None, generator=None) -> scalar``.

- `Shuffle`: each epoch's batches of row numbers (and the generator the loss's augmentations draw from);
- `WarmupCosine`, `OneCycle`, `Schedule` (constant): the learning rate per step;
- `Checkpoint`: the whole training state after each epoch (safetensors + JSON), so that a killed run re-run with
  the same arguments resumes at the next epoch and ends with the weights of an uninterrupted one.

This package sits below compat/, objectives/ and compress/ and imports only ops/, `_io` and `errors`.
"""

from repspace.training.checkpoint import Checkpoint, fingerprint
from repspace.training.loop import fit
from repspace.training.loss import TrainingLoss
from repspace.training.order import Shuffle
from repspace.training.schedule import OneCycle, Schedule, WarmupCosine

__all__ = ["Checkpoint", "OneCycle", "Schedule", "Shuffle", "TrainingLoss", "WarmupCosine", "fingerprint", "fit"]
