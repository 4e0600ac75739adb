"""Self-supervised representation-learning losses, one small ``nn.Module`` each.

Every loss takes embeddings (and, where the method needs them, targets or augmentation parameters)
and returns a scalar; the networks that produce those embeddings (projectors, predictors, EMA
teachers) live in `repspace.objectives.methods`. The four losses that lightly also implements
(`NTXentLoss`, `VICRegLoss`, `BarlowTwinsLoss`, `NegativeCosineLoss`) equal lightly 1.6's value
and gradient at the same defaults (tests/objectives/test_losses.py).
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "NTXentLoss", "VICRegLoss", "BarlowTwinsLoss", "NegativeCosineLoss", "BYOLLoss", "SimSiamLoss", "MYOWLoss",
    "HydraLoss", "SIELoss", "OBoWLoss", "CMIMLoss", "EMATeacher", "effective_rank", "dimension_std",
    "singular_spectrum",
]


# --------------------------------------------------------------------------- collapse detectors

def singular_spectrum(z: torch.Tensor) -> torch.Tensor:
    """Singular values of the centred embedding matrix (n, d), descending: the dimensional-collapse curve."""
    z = z.detach().double()
    return torch.linalg.svdvals(z - z.mean(0))


def effective_rank(z: torch.Tensor) -> float:
    """exp(entropy of the normalised singular values) of the centred (n, d) embeddings (Roy & Vetterli 2007).

    d for isotropic embeddings, 1 when every item lies on one line (complete collapse)."""
    s = singular_spectrum(z)
    if s.sum() <= 1e-12:
        return 0.0
    p = s / s.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def dimension_std(z: torch.Tensor) -> torch.Tensor:
    """Per-dimension std of the L2-normalised embeddings (SimSiam's collapse monitor).

    About 1/sqrt(d) in every dimension when the embeddings spread over the sphere; 0 when collapsed."""
    return F.normalize(z.detach().float(), dim=1).std(0)


# --------------------------------------------------------------------------- contrastive / joint-embedding

class NTXentLoss(nn.Module):
    """NT-Xent / InfoNCE of SimCLR (Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual
    Representations", arXiv:2002.05709).

    Inputs: ``z_a``, ``z_b`` (n, d) projections of two views of the same n items. Each of the 2n
    embeddings must pick its partner among the 2n - 1 others (cosine similarity / temperature).

    Example::

        loss = NTXentLoss(temperature=0.5)(projector(encoder(view_a)), projector(encoder(view_b)))
    """

    def __init__(self, temperature: float = 0.5) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError("temperature must be positive")
        self.temperature = temperature

    def forward(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        n = z_a.shape[0]
        z = F.normalize(torch.cat([z_a, z_b]), dim=1)
        sim = z @ z.T / self.temperature
        sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
        target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
        return F.cross_entropy(sim, target)


class VICRegLoss(nn.Module):
    """VICReg (Bardes, Ponce & LeCun 2022, "VICReg: Variance-Invariance-Covariance Regularization for
    Self-Supervised Learning", arXiv:2105.04906).

    Inputs: ``z_a``, ``z_b`` (n, d) expander outputs of two views. Loss = lam * MSE(z_a, z_b)
    + mu * mean hinge(1 - std) per dimension (variance) + nu * squared off-diagonal covariance / d:
    the variance and covariance terms prevent collapse without negatives.

    Example::

        loss = VICRegLoss()(expander(encoder(view_a)), expander(encoder(view_b)))
    """

    def __init__(self, lam: float = 25.0, mu: float = 25.0, nu: float = 1.0, eps: float = 1e-4) -> None:
        super().__init__()
        self.lam, self.mu, self.nu, self.eps = lam, mu, nu, eps

    def variance(self, z: torch.Tensor) -> torch.Tensor:
        return F.relu(1.0 - torch.sqrt(z.var(dim=0) + self.eps)).mean()

    @staticmethod
    def covariance(z: torch.Tensor) -> torch.Tensor:
        n, d = z.shape
        z = z - z.mean(0)
        cov = z.T @ z / (n - 1)
        off = cov - torch.diag(torch.diagonal(cov))
        return off.pow(2).sum() / d

    def forward(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        inv = F.mse_loss(z_a, z_b)
        var = 0.5 * (self.variance(z_a) + self.variance(z_b))
        cov = self.covariance(z_a) + self.covariance(z_b)
        return self.lam * inv + self.mu * var + self.nu * cov


class BarlowTwinsLoss(nn.Module):
    """Barlow Twins (Zbontar et al. 2021, "Barlow Twins: Self-Supervised Learning via Redundancy Reduction",
    arXiv:2103.03230).

    Inputs: ``z_a``, ``z_b`` (n, d) projector outputs of two views. Each dimension is standardised over
    the batch; the (d, d) cross-correlation is pushed to the identity: sum (1 - C_ii)^2 + lam * sum_{i!=j} C_ij^2.

    Example::

        loss = BarlowTwinsLoss(lam=5e-3)(projector(encoder(view_a)), projector(encoder(view_b)))
    """

    def __init__(self, lam: float = 5e-3, eps: float = 1e-5) -> None:
        super().__init__()
        self.lam, self.eps = lam, eps

    def _standardise(self, z: torch.Tensor) -> torch.Tensor:
        return (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + self.eps)

    def forward(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        n = z_a.shape[0]
        c = self._standardise(z_a).T @ self._standardise(z_b) / n
        diag = torch.diagonal(c)
        on = (diag - 1).pow(2).sum()
        off = c.pow(2).sum() - diag.pow(2).sum()
        return on + self.lam * off


class NegativeCosineLoss(nn.Module):
    """Mean negative cosine similarity, the distance of BYOL and SimSiam (see `BYOLLoss`, `SimSiamLoss`).

    Inputs: ``p`` (n, d) predictions, ``z`` (n, d) targets. Gradient flows into both; the methods detach z.

    Example::

        loss = NegativeCosineLoss()(predictor(z_online), z_target.detach())
    """

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return -F.cosine_similarity(p, z, dim=1, eps=self.eps).mean()


class BYOLLoss(nn.Module):
    """BYOL (Grill et al. 2020, "Bootstrap Your Own Latent", arXiv:2006.07733): symmetric negative cosine between
    the online network's predictions and the EMA teacher's projections of the other view.

    Inputs: ``p_a``, ``p_b`` (n, d) online predictions of views a, b; ``t_a``, ``t_b`` (n, d) teacher projections.
    The targets are detached here (stop-gradient), and the teacher is an `EMATeacher` that gets no gradient.
    The paper's 2 - 2 cos equals 2 + 2 * this loss.

    Example::

        teacher = EMATeacher(nn.Sequential(encoder, projector))
        loss = BYOLLoss()(pred(proj(enc(a))), pred(proj(enc(b))), teacher(a), teacher(b)); ...; teacher.update(student, 0.99)
    """

    def __init__(self) -> None:
        super().__init__()
        self.cos = NegativeCosineLoss()

    def forward(self, p_a: torch.Tensor, p_b: torch.Tensor, t_a: torch.Tensor, t_b: torch.Tensor) -> torch.Tensor:
        return 0.5 * (self.cos(p_a, t_b.detach()) + self.cos(p_b, t_a.detach()))


class SimSiamLoss(nn.Module):
    """SimSiam (Chen & He 2021, "Exploring Simple Siamese Representation Learning", arXiv:2011.10566): BYOL's
    symmetric negative cosine without a teacher: the target is the same network's projection, stop-gradient.

    Inputs: ``p_a``, ``p_b`` (n, d) predictions; ``z_a``, ``z_b`` (n, d) projections (detached here).

    Example::

        z_a, z_b = proj(enc(a)), proj(enc(b))
        loss = SimSiamLoss()(pred(z_a), pred(z_b), z_a, z_b)
    """

    def __init__(self) -> None:
        super().__init__()
        self.cos = NegativeCosineLoss()

    def forward(self, p_a: torch.Tensor, p_b: torch.Tensor, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        return 0.5 * (self.cos(p_a, z_b.detach()) + self.cos(p_b, z_a.detach()))


class EMATeacher(nn.Module):
    """A frozen copy of a student network updated as an exponential moving average (BYOL, MYOW, OBoW).

    Its parameters never require gradients; ``update(student, momentum)`` sets
    teacher <- momentum * teacher + (1 - momentum) * student (buffers are copied)."""

    def __init__(self, student: nn.Module) -> None:
        super().__init__()
        self.net = copy.deepcopy(student)
        for p in self.net.parameters():
            p.requires_grad_(False)

    def forward(self, *args, **kwargs):
        with torch.no_grad():
            return self.net(*args, **kwargs)

    @torch.no_grad()
    def update(self, student: nn.Module, momentum: float) -> None:
        for t, s in zip(self.net.parameters(), student.parameters()):
            t.mul_(momentum).add_(s.detach(), alpha=1 - momentum)
        for t, s in zip(self.net.buffers(), student.buffers()):
            t.copy_(s)


def cosine_momentum(step: int, total: int, base: float = 0.99) -> float:
    """BYOL's teacher momentum schedule: from `base` to 1 along a cosine over the training steps."""
    return 1 - (1 - base) * (math.cos(math.pi * step / max(1, total)) + 1) / 2


# --------------------------------------------------------------------------- mined views, arbitrary pairs

class MYOWLoss(nn.Module):
    """MYOW's across-sample prediction (Azabou et al. 2021, "Mine Your Own vieW: Self-Supervised Learning Through
    Across-Sample Prediction", arXiv:2102.10106).

    Inputs: ``p`` (n, d) online predictions (through MYOW's second projector/predictor), ``keys`` (m, e)
    teacher representations used to mine neighbours, ``values`` (m, d) teacher projections of the same
    candidates, and ``query_keys`` (n, e) the teacher representations of the n anchors. With ``exclude_self``
    the first n candidates are the anchors' own items (e.g. the batch, then a queue of past batches) and
    row i never mines candidate i. For each anchor, one of its `k` nearest candidates (cosine on the keys) is drawn
    and the anchor must predict that neighbour's projection (negative cosine, target detached): a "view"
    mined from the data instead of made by augmentation. MYOW adds this term to BYOL's.

    Example::

        loss = byol_term + MYOWLoss(k=1)(pred2(proj2(enc(a))), t_rep, t_proj2, t_rep)
    """

    def __init__(self, k: int = 1, exclude_self: bool = True) -> None:
        super().__init__()
        self.k, self.exclude_self = k, exclude_self
        self.cos = NegativeCosineLoss()

    def mine(self, query_keys: torch.Tensor, keys: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n,) indices into keys: a random one of each query's k nearest neighbours."""
        with torch.no_grad():
            sim = F.normalize(query_keys, dim=1) @ F.normalize(keys, dim=1).T
            n = sim.shape[0]
            if self.exclude_self and sim.shape[1] >= n:  # the first n keys are the anchors' own items
                sim[:, :n].fill_diagonal_(float("-inf"))
            k = min(self.k, keys.shape[0] - 1) if self.exclude_self else min(self.k, keys.shape[0])
            top = sim.topk(max(1, k), dim=1).indices
            pick = torch.randint(0, top.shape[1], (top.shape[0], 1), generator=generator)
            return top.gather(1, pick.to(top.device)).squeeze(1)

    def forward(self, p: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, query_keys: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
        idx = self.mine(query_keys, keys, generator)
        return self.cos(p, values[idx].detach())


class HydraLoss(nn.Module):
    """Hydra's contrastive loss on arbitrary pairs through a gated feature filter (Wu et al. 2024, "Rethinking
    Positive Pairs in Contrastive Learning", arXiv:2410.18200).

    Any two items may be a positive pair; the pair's (pseudo-)classes ``y_a``, ``y_b`` select a gate
    g = sigmoid(f_g((E[y_a] + E[y_b]) / 2)) in [0, 1]^d that switches dimensions on or off, and the pair must
    be each other's nearest neighbour only in that subspace (NT-Xent on g * z, each row with its own gate).
    An L1 pull on the gates (``sparsity``) keeps the subspaces selective. Trainable: E, f_g.

    Inputs: ``z_a``, ``z_b`` (n, d) projections (row i of z_b is row i's positive), ``y_a``, ``y_b`` (n,) class ids
    in [0, num_classes) — true classes, or pseudo-classes when training without labels.

    Example::

        hydra = HydraLoss(dim=64, num_classes=16)
        loss = hydra(z[a_idx], z_other_view[b_idx], pseudo[a_idx], pseudo[b_idx])
    """

    def __init__(self, dim: int, num_classes: int, label_dim: int = 32, temperature: float = 0.5,
                 sparsity: float = 1e-3) -> None:
        super().__init__()
        self.labels = nn.Embedding(num_classes, label_dim)
        self.gate_net = nn.Sequential(nn.Linear(label_dim, label_dim), nn.ReLU(), nn.Linear(label_dim, dim))
        nn.init.constant_(self.gate_net[-1].bias, 2.0)  # start with (almost) every dimension open: plain SimCLR
        self.temperature, self.sparsity = temperature, sparsity

    def gates(self, y_a: torch.Tensor, y_b: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.gate_net((self.labels(y_a) + self.labels(y_b)) / 2))

    def forward(self, z_a: torch.Tensor, z_b: torch.Tensor, y_a: torch.Tensor, y_b: torch.Tensor) -> torch.Tensor:
        n = z_a.shape[0]
        g = self.gates(y_a, y_b)  # (n, d): row i's subspace
        qa = F.normalize(z_a * g, dim=1)
        # row i compares its anchor with every candidate inside its own subspace
        cand = F.normalize(z_b.unsqueeze(0) * g.unsqueeze(1), dim=2)  # (n, n, d)
        logits = torch.einsum("id,ijd->ij", qa, cand) / self.temperature
        target = torch.arange(n, device=z_a.device)
        return F.cross_entropy(logits, target) + self.sparsity * g.abs().mean()


# --------------------------------------------------------------------------- equivariance

class SIELoss(nn.Module):
    """SIE, Split Invariant-Equivariant representations (Garrido, Najman & LeCun 2023, "Self-supervised learning of
    Split Invariant Equivariant representations", arXiv:2302.10283).

    The embedding is split into an invariant part (VICReg invariance between the views) and an equivariant
    part, which must be predicted from the other view through a linear map whose weights a hypernetwork
    generates from the augmentation parameters relating the views: eq_b ~ W(params) @ eq_a. VICReg's
    variance and covariance terms on both parts prevent collapse. Trainable: the hypernetwork.

    Inputs: ``inv_a``, ``inv_b`` (n, d_i); ``eq_a``, ``eq_b`` (n, d_e); ``params`` (n, p) — e.g. (cos, sin) of
    the rotation from view a to view b.

    Example::

        sie = SIELoss(equi_dim=32, param_dim=2)
        loss = sie(inv(enc(a)), inv(enc(b)), eq(enc(a)), eq(enc(b)), rotation_params)
    """

    def __init__(self, equi_dim: int, param_dim: int, inv_weight: float = 25.0, equi_weight: float = 25.0,
                 var_weight: float = 25.0, cov_weight: float = 1.0) -> None:
        super().__init__()
        self.equi_dim = equi_dim
        self.hypernet = nn.Sequential(nn.Linear(param_dim, 64), nn.ReLU(), nn.Linear(64, equi_dim * equi_dim))
        with torch.no_grad():  # start at the identity map
            self.hypernet[-1].weight.mul_(0.01)
            self.hypernet[-1].bias.copy_(torch.eye(equi_dim).flatten())
        self.vic = VICRegLoss(0.0, 1.0, 1.0)
        self.w_inv, self.w_eq, self.w_var, self.w_cov = inv_weight, equi_weight, var_weight, cov_weight

    def predict(self, eq_a: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        W = self.hypernet(params).view(-1, self.equi_dim, self.equi_dim)
        return torch.einsum("nij,nj->ni", W, eq_a)

    def forward(self, inv_a: torch.Tensor, inv_b: torch.Tensor, eq_a: torch.Tensor, eq_b: torch.Tensor,
                params: torch.Tensor) -> torch.Tensor:
        inv = F.mse_loss(inv_a, inv_b)
        eq = F.mse_loss(self.predict(eq_a, params), eq_b)
        reg = 0.0
        for z in (inv_a, inv_b, eq_a, eq_b):
            reg = reg + self.w_var * self.vic.variance(z) / 2 + self.w_cov * self.vic.covariance(z) / 2
        return self.w_inv * inv + self.w_eq * eq + reg


# --------------------------------------------------------------------------- bag of visual words

class OBoWLoss(nn.Module):
    """OBoW (Gidaris et al. 2021, "OBoW: Online Bag-of-Visual-Words Generation for Self-Supervised Learning",
    arXiv:2012.11552), following the authors' implementation (github.com/valeoai/obow, ``builder_obow.py``).

    Teacher side (`bag_of_words`): each of the P local teacher features (n, C, P) — raw, not normalised — is
    softly assigned to the K visual words by squared Euclidean distance, softmax(-inv_delta / δ̄ · dist),
    where δ̄ is a running mean (decay 0.99) of each feature's distance to its nearest word, so the
    sharpness adapts to the feature scale; the codes are max-pooled over positions (or averaged,
    ``bow_pool="avg"``) and L1-normalised into a bag of words. Student side: a weight generator (L2-normalise
    → Linear → BN → ReLU → Linear → L2-normalise) maps each word to a prediction weight; the logits are
    ``kappa`` × student representation · weight, and the loss is the cross-entropy to the bag of words.
    The vocabulary is an online queue into which `update_vocabulary` pushes one random local teacher
    feature per image. Trainable: the weight generator.

    Inputs: ``student`` (n, d) representations, ``teacher_local`` (n, C, P) teacher local features.

    Example::

        obow = OBoWLoss(rep_dim=128, channels=64, vocab_size=256)
        loss = obow(enc(a), teacher_local_features(x)); obow.update_vocabulary(teacher_local_features(x))
    """

    def __init__(self, rep_dim: int, channels: int, vocab_size: int = 256, inv_delta: float = 15.0,
                 kappa: float = 5.0, bow_pool: str = "max", decay: float = 0.99) -> None:
        super().__init__()
        if bow_pool not in ("max", "avg"):
            raise ValueError("bow_pool must be 'max' or 'avg'")
        if inv_delta <= 0 or kappa <= 0:
            raise ValueError("inv_delta and kappa must be positive")
        self.generator = nn.Sequential(nn.Linear(channels, 2 * rep_dim, bias=False), nn.BatchNorm1d(2 * rep_dim),
                                       nn.ReLU(), nn.Linear(2 * rep_dim, rep_dim))
        self.register_buffer("vocabulary", torch.randn(vocab_size, channels).clamp(min=0))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))
        self.register_buffer("min_distance_mean", torch.zeros(()))  # 0 = not yet set: the first batch's value
        self.inv_delta, self.kappa, self.bow_pool, self.decay = inv_delta, kappa, bow_pool, decay

    @torch.no_grad()
    def distances(self, teacher_local: torch.Tensor) -> torch.Tensor:
        """(n, C, P) -> (n, P, K) squared Euclidean distances of the local features to the words."""
        f = teacher_local.transpose(1, 2)
        v = self.vocabulary
        return (f.pow(2).sum(2, keepdim=True) + v.pow(2).sum(1) - 2 * f @ v.T).clamp_min(0)

    @torch.no_grad()
    def bag_of_words(self, teacher_local: torch.Tensor, track: bool = False) -> torch.Tensor:
        """(n, C, P) -> (n, K) distribution over words. ``track`` updates the running mean nearest-word distance."""
        dist = self.distances(teacher_local)
        mu = dist.min(2).values.mean()
        if track or float(self.min_distance_mean) <= 0:
            first = float(self.min_distance_mean) <= 0
            self.min_distance_mean.copy_(mu if first else self.decay * self.min_distance_mean + (1 - self.decay) * mu)
        codes = torch.softmax(-self.inv_delta / self.min_distance_mean.clamp_min(1e-8) * dist, dim=2)
        bow = codes.max(dim=1).values if self.bow_pool == "max" else codes.mean(dim=1)
        return F.normalize(bow, p=1, dim=1)

    @torch.no_grad()
    def update_vocabulary(self, teacher_local: torch.Tensor, generator: torch.Generator | None = None) -> None:
        """Push one random local feature of each image (n, C, P) into the queue, replacing the oldest words."""
        n, _, p = teacher_local.shape
        pos = torch.randint(0, p, (n,), generator=generator)
        feats = teacher_local[torch.arange(n), :, pos.to(teacher_local.device)]
        k = self.vocabulary.shape[0]
        idx = (self.pointer + torch.arange(min(n, k), device=feats.device)) % k
        self.vocabulary[idx] = feats[: len(idx)]
        self.pointer.copy_((self.pointer + len(idx)) % k)

    def weights(self) -> torch.Tensor:
        """(K, d) prediction weights: the generator applied to the (current) L2-normalised words."""
        return F.normalize(self.generator(F.normalize(self.vocabulary.clone(), dim=1)), dim=1)

    def logits(self, student: torch.Tensor) -> torch.Tensor:
        return self.kappa * student @ self.weights().T

    def forward(self, student: torch.Tensor, teacher_local: torch.Tensor | None = None,
                target: torch.Tensor | None = None) -> torch.Tensor:
        """Cross-entropy between the student's predicted word distribution and the teacher's bag of words
        (computed from ``teacher_local``, or given as ``target`` (n, K))."""
        if target is None:
            if teacher_local is None:
                raise ValueError("give teacher_local or target")
            target = self.bag_of_words(teacher_local)
        return -(target * torch.log_softmax(self.logits(student), dim=1)).sum(1).mean()


# --------------------------------------------------------------------------- mutual information machine

class CMIMLoss(nn.Module):
    """cMIM, contrastive Mutual Information Machine (Livne 2024, "cMIM: A Contrastive Mutual Information Framework
    for Unified Generative and Discriminative Representation Learning", arXiv:2502.19642).

    A probabilistic auto-encoder trained with the A-MIM objective — reconstruction -log p(x|z) plus the
    symmetric latent term -1/2 (log q(z|x) + log P(z)) with a standard normal prior — plus a contrastive term
    that needs no augmentation: the code of an item must be closer to the code re-encoded from its own
    reconstruction than to the other items' (InfoNCE). This is repspace's reading of the paper, scaled down.

    Inputs: ``x`` (n, D) flattened inputs, ``x_hat`` (n, D) reconstructions, ``mu``, ``logvar`` (n, d) the
    encoder's posterior, ``z`` (n, d) a sample from it, ``mu_re`` (n, d) the posterior mean re-encoded from x_hat.

    The A-MIM terms are per-item log-likelihoods (Gaussian p(x|z) with std ``recon_sigma``, summed over the D
    inputs and d latents), as in the paper, plus ``contrastive_weight`` × InfoNCE. ``per_dim=True`` divides the
    A-MIM terms by D (repspace's earlier scaling: the reconstruction then weighs ~1/D of the contrastive term).

    Example::

        mu, logvar = enc(x); z = mu + eps * exp(logvar / 2); x_hat = dec(z); mu_re, _ = enc(x_hat)
        loss = CMIMLoss()(x, x_hat, mu, logvar, z, mu_re)
    """

    def __init__(self, contrastive_weight: float = 1.0, temperature: float = 0.2, recon_sigma: float = 0.5,
                 per_dim: bool = False) -> None:
        super().__init__()
        self.w, self.sigma, self.per_dim = contrastive_weight, recon_sigma, per_dim
        self.nce = NTXentLoss(temperature)

    def forward(self, x: torch.Tensor, x_hat: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor,
                mu_re: torch.Tensor) -> torch.Tensor:
        recon = ((x - x_hat) ** 2).sum(1).mean() / (2 * self.sigma ** 2)
        log_q = (-0.5 * (logvar + (z - mu) ** 2 / logvar.exp())).sum(1)
        log_p = (-0.5 * z ** 2).sum(1)
        latent = -0.5 * (log_q + log_p).mean()
        amim = recon + latent
        if self.per_dim:
            amim = amim / x.shape[1]
        return amim + self.w * self.nce(mu, mu_re)
