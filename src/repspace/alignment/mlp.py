"""Residual MLP translator (torch): y = ridge(x) + MLP(x), early stopping on a validation split.

The linear part starts from the ridge solution and the MLP's last layer from zero, so
training begins at the linear answer and can only improve on it (on the validation split).
Inference runs in numpy from the saved arrays.
"""

from __future__ import annotations

import numpy as np

from repspace.alignment.base import Translator
from repspace.alignment.linear import ridge_fit
from repspace.ops.linalg import gelu_tanh  # noqa: F401  (re-exported for old imports)
from repspace.ops.torchstate import seeded


class MLPTranslator(Translator):
    name = "mlp"
    min_pairs_rule = "at least 10 pairs"
    _state_keys = ("W_", "b_", "w1_", "b1_", "w2_", "b2_")

    def __init__(self, hidden: int = 512, epochs: int = 200, lr: float = 1e-3, weight_decay: float = 1e-4,
                 batch_size: int = 256, val_fraction: float = 0.1, patience: int = 15, alpha: float = 0.01,
                 seed: int = 0, threads: int = 1) -> None:
        self.hidden = hidden
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.val_fraction = val_fraction
        self.patience = patience
        self.alpha = alpha
        self.seed = seed
        self.threads = threads

    def min_pairs(self, dx: int, dy: int) -> int:
        return 10

    def _fit(self, X: np.ndarray, Y: np.ndarray) -> None:
        import torch
        from torch import nn

        with seeded(self.seed, self.threads):
            rng = np.random.default_rng(self.seed)
            perm = rng.permutation(len(X))
            n_val = max(1, int(round(self.val_fraction * len(X))))
            val, tr = perm[:n_val], perm[n_val:]
            ridge_W, ridge_b = ridge_fit(X[tr], Y[tr], self.alpha)
            lin = nn.Linear(X.shape[1], Y.shape[1]).double()
            mlp = nn.Sequential(nn.Linear(X.shape[1], self.hidden), nn.GELU(approximate="tanh"),
                                nn.Linear(self.hidden, Y.shape[1])).double()
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(ridge_W.T)); lin.bias.copy_(torch.from_numpy(ridge_b))
                mlp[2].weight.zero_(); mlp[2].bias.zero_()
            params = list(lin.parameters()) + list(mlp.parameters())
            opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
            Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)

            def loss_fn(xb, yb):
                pred = lin(xb) + mlp(xb)
                return ((pred - yb) ** 2).sum(1).mean()

            best, best_state, bad = float("inf"), None, 0
            self.history_ = []
            for _ in range(self.epochs):
                order = torch.from_numpy(rng.permutation(tr))
                for s in range(0, len(order), self.batch_size):
                    idx = order[s : s + self.batch_size]
                    opt.zero_grad()
                    loss_fn(Xt[idx], Yt[idx]).backward()
                    opt.step()
                with torch.no_grad():
                    v = float(loss_fn(Xt[val], Yt[val]))
                self.history_.append(v)
                if v < best - 1e-9:
                    best, bad = v, 0
                    best_state = [p.detach().clone() for p in params]
                else:
                    bad += 1
                    if bad >= self.patience:
                        break
            with torch.no_grad():
                for p, b in zip(params, best_state):
                    p.copy_(b)
            self.W_, self.b_ = lin.weight.detach().numpy().T.copy(), lin.bias.detach().numpy().copy()
            self.w1_, self.b1_ = mlp[0].weight.detach().numpy().T.copy(), mlp[0].bias.detach().numpy().copy()
            self.w2_, self.b2_ = mlp[2].weight.detach().numpy().T.copy(), mlp[2].bias.detach().numpy().copy()
            self.epochs_run_ = len(self.history_)

    def _transform(self, X: np.ndarray) -> np.ndarray:
        return X @ self.W_ + self.b_ + gelu_tanh(X @ self.w1_ + self.b1_) @ self.w2_ + self.b2_
