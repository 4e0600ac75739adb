"""Sparse codes for a frozen space (after Wen et al. 2025, "Beyond Matryoshka: Revisiting Sparse
Coding for Adaptive Representation", CSR): a top-k sparse autoencoder.

  z = TopK_k(ReLU((x - b_pre) W_enc + b_enc))        (n, hidden), k non-zeros per row
  x̂ = z W_dec + b_pre                                 decoder rows kept at unit norm
  loss = ||x - x̂||² / ||x - mean||²                   (normalised reconstruction)
       + aux_weight * AuxK: the residual x - x̂ rebuilt from the top-`aux_k` *dead* latents
         (not active for `dead_after` steps), which revives them
       + contrastive_weight * InfoNCE between the codes of paired queries and items (optional)

Codes are searched as sparse vectors (cosine of L2-normalised codes): `encode_sparse` returns a
scipy CSR matrix; the `sparse` index spec stores and searches them that way.
"""

from __future__ import annotations

import numpy as np

from repspace.compress.base import Compressor
from repspace.errors import InvalidInputError
from repspace.ops.torchstate import seeded


class CSRCompressor(Compressor):
    name = "csr"
    _state_keys = ("pre_bias_", "W_enc_", "b_enc_", "W_dec_")

    def __init__(self, k: int = 32, hidden: int | None = None, epochs: int = 60, lr: float = 1e-3,
                 batch_size: int = 256, aux_k: int = 256, aux_weight: float = 1 / 32, dead_after: int = 50,
                 contrastive_weight: float = 1.0, temperature: float = 0.05, seed: int = 0, threads: int = 1) -> None:
        self.k = k
        self.hidden = hidden
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.aux_k = aux_k
        self.aux_weight = aux_weight
        self.dead_after = dead_after
        self.contrastive_weight = contrastive_weight
        self.temperature = temperature
        self.seed = seed
        self.threads = threads

    # ---------------------------------------------------------------- training
    def _fit(self, X: np.ndarray, pairs: np.ndarray | None = None) -> None:
        import torch
        import torch.nn.functional as F

        from repspace.compress.losses import InfoNCELoss

        n, d = X.shape
        h = self.hidden or 4 * d
        if not 1 <= self.k <= h:
            raise InvalidInputError(f"k must be between 1 and the number of latents ({h}), got {self.k}", param="k")
        self.dims_ = [h]
        with seeded(self.seed, self.threads):
            Xt = torch.from_numpy(np.asarray(X, np.float32))
            Pt = torch.from_numpy(np.asarray(pairs, np.float32)) if pairs is not None else None
            data = torch.cat([Xt, Pt]) if Pt is not None else Xt
            pre = data.mean(0).clone().requires_grad_(True)
            var = ((data - data.mean(0)) ** 2).sum(1).mean()
            W_dec = F.normalize(torch.randn(h, d), dim=1)
            W_dec = W_dec.clone().requires_grad_(True)
            W_enc = W_dec.detach().T.clone().requires_grad_(True)
            b_enc = torch.zeros(h, requires_grad=True)
            opt = torch.optim.Adam([pre, W_enc, b_enc, W_dec], lr=self.lr)
            nce = InfoNCELoss(self.temperature)
            since = torch.zeros(h, dtype=torch.long)
            rng = np.random.default_rng(self.seed)
            self.history_ = []

            def code(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                a = torch.relu((x - pre) @ W_enc + b_enc)
                top = torch.topk(a, self.k, dim=1)
                return torch.zeros_like(a).scatter(1, top.indices, top.values), a

            for _ in range(self.epochs):
                total = 0.0
                for s in range(0, n, self.batch_size):
                    b = torch.from_numpy(rng.permutation(n)[: self.batch_size] if n > self.batch_size
                                         else np.arange(n))
                    xb = Xt[b] if Pt is None or s // self.batch_size % 2 == 0 else Pt[b]
                    z, a = code(xb)
                    recon = z @ W_dec + pre
                    loss = ((xb - recon) ** 2).sum(1).mean() / var
                    fired = (z > 0).any(0)
                    since = torch.where(fired, torch.zeros_like(since), since + 1)
                    dead = since > self.dead_after
                    if dead.any() and self.aux_weight:
                        k_aux = min(self.aux_k, int(dead.sum()))
                        a_dead = torch.where(dead, a, torch.zeros_like(a))
                        top = torch.topk(a_dead, k_aux, dim=1)
                        z_aux = torch.zeros_like(a).scatter(1, top.indices, top.values)
                        resid = (xb - recon).detach()
                        loss = loss + self.aux_weight * ((resid - z_aux @ W_dec) ** 2).sum(1).mean() / var
                    if Pt is not None and self.contrastive_weight:
                        zq, _ = code(Pt[b])
                        zi, _ = code(Xt[b])
                        loss = loss + self.contrastive_weight * nce(zq, zi)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    with torch.no_grad():
                        W_dec.copy_(F.normalize(W_dec, dim=1))
                    total += loss.item()
                self.history_.append(total)
            self.pre_bias_ = pre.detach().numpy().astype(np.float32)
            self.W_enc_ = W_enc.detach().numpy().astype(np.float32)
            self.b_enc_ = b_enc.detach().numpy().astype(np.float32)
            self.W_dec_ = W_dec.detach().numpy().astype(np.float32)
            self.dead_fraction_ = float((since > self.dead_after).float().mean())

    # --------------------------------------------------------------- inference
    def _codes(self, X: np.ndarray, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(n, d) -> top-k latent indices (n, k) and values (n, k), by blocks."""
        k = k or self.k
        if not 1 <= k <= self.W_enc_.shape[1]:
            raise InvalidInputError(f"k must be between 1 and {self.W_enc_.shape[1]}, got {k}")
        idx = np.empty((len(X), k), np.int64)
        val = np.empty((len(X), k), np.float32)
        for s in range(0, len(X), 8192):
            a = np.maximum((X[s : s + 8192] - self.pre_bias_) @ self.W_enc_ + self.b_enc_, 0)
            top = np.argpartition(-a, k - 1, axis=1)[:, :k]
            idx[s : s + 8192] = top
            val[s : s + 8192] = np.take_along_axis(a, top, 1)
        return idx, val

    def encode_sparse(self, X: np.ndarray, k: int | None = None):
        """(n, source_dim) -> scipy.sparse.csr_matrix (n, hidden) with at most k non-zeros per row."""
        import scipy.sparse as sp

        X = self._check(X)
        idx, val = self._codes(X, k)
        n, k = idx.shape
        m = sp.csr_matrix((val.ravel(), idx.ravel(), np.arange(0, n * k + 1, k)), shape=(n, self.W_enc_.shape[1]))
        m.eliminate_zeros()
        m.sort_indices()
        return m

    def _transform(self, X: np.ndarray) -> np.ndarray:
        idx, val = self._codes(X)
        out = np.zeros((len(X), self.W_enc_.shape[1]), np.float32)
        np.put_along_axis(out, idx, val, 1)
        return out

    def reconstruct(self, X: np.ndarray) -> np.ndarray:
        """Decode the codes back to the source space: (n, source_dim)."""
        return self._transform(self._check(X)) @ self.W_dec_ + self.pre_bias_
