"""Post-hoc Matryoshka adaptor for a frozen space (after Yoon et al. 2024, "Matryoshka-Adaptor").

f(x) = (x - mean) W [+ residual MLP], W initialised to the PCA rotation, so training starts
from PCA's prefixes. Trained with MatryoshkaLoss over `dims`:
  unsupervised: SimilarityPreservationLoss — each prefix's cosine similarities should match
                the original space's, over the batch and over each item's top-k neighbours;
  supervised:   with `pairs` (queries paired row-wise with the items), InfoNCE between the
                adapted query prefix and the adapted item prefix at every dimension.
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

    def __init__(self, dims: Sequence[int] = (32, 64, 128, 256), kind: str = "linear", epochs: int = 40,
                 lr: float = 1e-3, batch_size: int = 256, topk: int = 10, pair_weight: float = 1.0,
                 similarity_weight: float = 1.0, temperature: float = 0.05, hidden: int = 256, seed: int = 0,
                 threads: int = 1) -> None:
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

    def _fit(self, X: np.ndarray, pairs: np.ndarray | None = None) -> None:
        import torch
        from torch import nn

        from repspace.compress.losses import InfoNCELoss, MatryoshkaLoss, SimilarityPreservationLoss

        d = X.shape[1]
        if self.kind not in ("linear", "mlp"):
            raise InvalidInputError(f"adaptor kind must be linear or mlp, got {self.kind!r}", param="kind")
        if max(self.dims) > d:
            raise DimensionMismatchError(f"dims {self.dims} exceed the space's dimension {d}", param="dims")
        dims = sorted(set(self.dims) | {d})
        self.dims_ = dims
        with seeded(self.seed, self.threads):
            self.mean_, Vt = pca(X)
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
            pair_loss = MatryoshkaLoss(InfoNCELoss(self.temperature), dims, weights)
            Xc = torch.from_numpy(X - self.mean_)
            Pc = torch.from_numpy(pairs - self.mean_) if pairs is not None else None

            def f(z):
                out = lin(z)
                return out + mlp(z) if self.kind == "mlp" else out

            rng = np.random.default_rng(self.seed)
            self.history_ = []
            for _ in range(self.epochs):
                total = 0.0
                order = rng.permutation(len(X))
                for s in range(0, len(X), self.batch_size):
                    b = torch.from_numpy(order[s : s + self.batch_size])
                    xb = Xc[b]
                    loss = self.similarity_weight * sim_loss(f(xb), xb)
                    if Pc is not None:
                        loss = loss + self.pair_weight * pair_loss(f(Pc[b]), f(xb))
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    total += float(loss.detach())
                self.history_.append(total)
            self.W_ = lin.weight.detach().numpy().T.copy()
            self.w1_, self.b1_ = mlp[0].weight.detach().numpy().T.copy(), mlp[0].bias.detach().numpy().copy()
            self.w2_, self.b2_ = mlp[2].weight.detach().numpy().T.copy(), mlp[2].bias.detach().numpy().copy()

    def _transform(self, X: np.ndarray) -> np.ndarray:
        Z = X - self.mean_
        out = Z @ self.W_
        if self.kind == "mlp":
            out = out + gelu_tanh(Z @ self.w1_ + self.b1_) @ self.w2_ + self.b2_
        return out
