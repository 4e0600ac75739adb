"""Post-hoc Matryoshka adaptor for a frozen space (after Yoon et al. 2024, "Matryoshka-Adaptor").

f(x) = (x - mean) W [+ residual MLP], W initialised to the PCA rotation, so training starts
from PCA's prefixes. Trained with MatryoshkaLoss over `dims`:
  unsupervised: SimilarityPreservationLoss — each prefix's cosine similarities should match
                the original space's, over the batch and over each item's top-k neighbours;
                with `rank_weight`, also RankDistillationLoss — each item's softmax over its batch
                neighbours (the teacher's similarities at `rank_temperature`) should be kept;
  supervised:   with `pairs` (queries paired row-wise with the items), InfoNCE between the
                adapted query prefix and the adapted item prefix at every dimension.
`unlabelled` items (e.g. a dictionary or a sentence corpus encoded by the same model) join the
items in the unsupervised objectives; the pairs stream cycles over its own rows meanwhile. One
epoch is one pass over items + unlabelled; `max_steps` caps the steps of the whole fit.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from repspace.compress.base import Compressor
from repspace.errors import DimensionMismatchError, InvalidInputError
from repspace.ops.linalg import gelu_tanh, pca
from repspace.ops.torchstate import seeded


class MatryoshkaAdaptor(Compressor):
    name = "matryoshka"
    _state_keys = ("mean_", "W_", "w1_", "b1_", "w2_", "b2_")
    takes_unlabelled = True

    def __init__(self, dims: Sequence[int] = (32, 64, 128, 256), kind: str = "linear", epochs: int = 40,
                 lr: float = 1e-3, batch_size: int = 256, topk: int = 10, pair_weight: float = 1.0,
                 similarity_weight: float = 1.0, temperature: float = 0.05, hidden: int = 256, seed: int = 0,
                 threads: int = 1, rank_weight: float = 0.0, rank_temperature: float = 0.05,
                 max_steps: int | None = None) -> None:
        self.dims = list(dims)
        self.kind = kind
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.topk = topk
        self.pair_weight = pair_weight
        self.similarity_weight = similarity_weight
        self.temperature = temperature
        self.hidden = hidden
        self.seed = seed
        self.threads = threads
        self.rank_weight = rank_weight
        self.rank_temperature = rank_temperature
        self.max_steps = max_steps

    def _fit(self, X: np.ndarray, pairs: np.ndarray | None = None, unlabelled: np.ndarray | None = None) -> None:
        import torch
        from torch import nn

        from repspace.compress.losses import (InfoNCELoss, MatryoshkaLoss, RankDistillationLoss,
                                              SimilarityPreservationLoss)

        d = X.shape[1]
        if self.kind not in ("linear", "mlp"):
            raise InvalidInputError(f"adaptor kind must be linear or mlp, got {self.kind!r}", param="kind")
        if max(self.dims) > d:
            raise DimensionMismatchError(f"dims {self.dims} exceed the space's dimension {d}", param="dims")
        dims = sorted(set(self.dims) | {d})
        self.dims_ = dims
        if self.max_steps is not None and (isinstance(self.max_steps, bool) or not isinstance(self.max_steps, int)
                                           or self.max_steps < 1):
            raise InvalidInputError(f"max_steps must be a positive integer; got {self.max_steps!r}", param="max_steps")
        U = X if unlabelled is None else np.vstack([X, unlabelled])  # what the unsupervised objectives see
        with seeded(self.seed, self.threads):
            self.mean_, Vt = pca(U)
            W0 = np.zeros((d, d))
            W0[:, : len(Vt)] = Vt.T
            lin = nn.Linear(d, d, bias=False).double()
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(W0.T))
            mlp = nn.Sequential(nn.Linear(d, self.hidden), nn.GELU(approximate="tanh"), nn.Linear(self.hidden, d)).double()
            with torch.no_grad():
                mlp[2].weight.zero_(); mlp[2].bias.zero_()
            params = list(lin.parameters()) + (list(mlp.parameters()) if self.kind == "mlp" else [])
            opt = torch.optim.Adam(params, lr=self.lr)
            weights = [1.0] * len(dims)
            sim_loss = MatryoshkaLoss(SimilarityPreservationLoss(self.topk), dims, weights, n_truncated=1)
            rank_loss = MatryoshkaLoss(RankDistillationLoss(self.rank_temperature), dims, weights, n_truncated=1)
            pair_loss = MatryoshkaLoss(InfoNCELoss(self.temperature), dims, weights)
            Uc = torch.from_numpy(U - self.mean_)
            Xc = Uc[: len(X)]
            Pc = torch.from_numpy(pairs - self.mean_) if pairs is not None else None

            def f(z):
                out = lin(z)
                return out + mlp(z) if self.kind == "mlp" else out

            rng = np.random.default_rng(self.seed)
            pair_order = rng.permutation(len(X))
            pair_pos = 0
            self.history_ = []
            step = 0
            for _ in range(self.epochs):
                total = 0.0
                order = rng.permutation(len(U))
                for s in range(0, len(U), self.batch_size):
                    b = torch.from_numpy(order[s : s + self.batch_size])
                    ub = Uc[b]
                    za = f(ub)
                    loss = self.similarity_weight * sim_loss(za, ub)
                    if self.rank_weight:
                        loss = loss + self.rank_weight * rank_loss(za, ub)
                    if Pc is not None:
                        if unlabelled is None:
                            pb = b  # items and their pairs, row for row (as before unlabelled items existed)
                        else:
                            if pair_pos + self.batch_size > len(X):
                                pair_order, pair_pos = rng.permutation(len(X)), 0
                            pb = torch.from_numpy(pair_order[pair_pos : pair_pos + self.batch_size])
                            pair_pos += self.batch_size
                        loss = loss + self.pair_weight * pair_loss(f(Pc[pb]), f(Xc[pb]))
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    total += float(loss.detach())
                    step += 1
                    if self.max_steps is not None and step >= self.max_steps:
                        break
                self.history_.append(total)
                if self.max_steps is not None and step >= self.max_steps:
                    break
            self.steps_ = step
            self.W_ = lin.weight.detach().numpy().T.copy()
            self.w1_, self.b1_ = mlp[0].weight.detach().numpy().T.copy(), mlp[0].bias.detach().numpy().copy()
            self.w2_, self.b2_ = mlp[2].weight.detach().numpy().T.copy(), mlp[2].bias.detach().numpy().copy()

    def _transform(self, X: np.ndarray) -> np.ndarray:
        Z = X - self.mean_
        out = Z @ self.W_
        if self.kind == "mlp":
            out = out + gelu_tanh(Z @ self.w1_ + self.b1_) @ self.w2_ + self.b2_
        return out
