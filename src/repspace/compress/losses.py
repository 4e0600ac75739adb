"""Embedding losses (torch), each a small nn.Module, in the sentence-transformers shape, and `PairLoss`.

The criteria take embeddings; `PairLoss` is the training loss (`repspace.training.TrainingLoss`) that
holds a sentence-transformers model and scores its embeddings of (query, document) texts with one of them.
`MatryoshkaLoss` wraps any base loss whose forward takes embeddings and evaluates it on the
first m coordinates for each m in `dims`, summing with `weights` — so prefixes of every
length are trained to work on their own (Kusupati et al. 2022).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from repspace.training import TrainingLoss


class InfoNCELoss(nn.Module):
    """Multiple-negatives ranking / InfoNCE: queries (B, d) vs documents (B, d); row i's positive is
    document i, the other documents of the batch are negatives. Symmetric when `symmetric`."""

    def __init__(self, temperature: float = 0.05, symmetric: bool = True) -> None:
        super().__init__()
        self.temperature = temperature
        self.symmetric = symmetric

    def forward(self, queries: torch.Tensor, documents: torch.Tensor) -> torch.Tensor:
        logits = F.normalize(queries, dim=-1) @ F.normalize(documents, dim=-1).T / self.temperature
        target = torch.arange(len(queries), device=queries.device)
        loss = F.cross_entropy(logits, target)
        return (loss + F.cross_entropy(logits.T, target)) / 2 if self.symmetric else loss


class SupConLoss(nn.Module):
    """Supervised contrastive loss (Khosla et al. 2020): embeddings (B, d), labels (B,); items with the
    same label are positives of each other."""

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        self.temperature = temperature

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        z = F.normalize(embeddings, dim=-1)
        logits = z @ z.T / self.temperature
        eye = torch.eye(len(z), dtype=torch.bool, device=z.device)
        logits = logits.masked_fill(eye, float("-inf"))
        pos = (labels[:, None] == labels[None, :]) & ~eye
        log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
        n_pos = pos.sum(1)
        has = n_pos > 0
        per_item = -(log_prob.masked_fill(~pos, 0).sum(1)[has] / n_pos[has])
        return per_item.mean() if has.any() else logits.new_zeros(())


class SimilarityPreservationLoss(nn.Module):
    """Unsupervised Matryoshka-Adaptor objective (Yoon et al. 2024): the adapted embeddings' cosine
    similarities should equal the original ones, over all pairs in the batch and, with extra weight,
    over each item's top-k original neighbours."""

    def __init__(self, topk: int = 10, topk_weight: float = 1.0) -> None:
        super().__init__()
        self.topk = topk
        self.topk_weight = topk_weight

    def forward(self, adapted: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
        a = F.normalize(adapted, dim=-1)
        o = F.normalize(original, dim=-1)
        sa, so = a @ a.T, o @ o.T
        diff = (sa - so).abs()
        loss = diff.mean()
        if self.topk and self.topk_weight:
            k = min(self.topk + 1, len(o))
            idx = so.topk(k, dim=1).indices[:, 1:]
            loss = loss + self.topk_weight * diff.gather(1, idx).mean()
        return loss


class RankDistillationLoss(nn.Module):
    """Listwise distillation of the original space's neighbourhoods: for each item of the batch, the KL divergence
    from the softmax of the original cosine similarities to the other items (temperature t) to the adapted one's.
    A low t concentrates the target on each item's nearest neighbours, which is what top-k retrieval keeps."""

    def __init__(self, temperature: float = 0.05) -> None:
        super().__init__()
        self.temperature = temperature

    def forward(self, adapted: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
        a = F.normalize(adapted, dim=-1)
        o = F.normalize(original, dim=-1)
        eye = torch.eye(len(a), dtype=torch.bool, device=a.device)
        target = F.log_softmax((o @ o.T / self.temperature).masked_fill(eye, -1e9), dim=1)
        student = F.log_softmax((a @ a.T / self.temperature).masked_fill(eye, -1e9), dim=1)
        return F.kl_div(student, target, log_target=True, reduction="batchmean")


class MatryoshkaLoss(nn.Module):
    """Sum over m in `dims` of weight_m * base_loss(first m coordinates of each embedding argument).

    Tensor arguments of `forward` whose last dimension equals the full dimension are truncated;
    other arguments (labels, original vectors of another size) are passed through unchanged, except
    those named in `fixed`, which are never truncated."""

    def __init__(self, base: nn.Module, dims: Sequence[int], weights: Sequence[float] | None = None,
                 n_truncated: int | None = None) -> None:
        super().__init__()
        self.base = base
        self.dims = list(dims)
        self.weights = list(weights) if weights is not None else [1.0] * len(self.dims)
        if len(self.weights) != len(self.dims):
            raise ValueError("one weight per dimension")
        self.n_truncated = n_truncated

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        n = len(args) if self.n_truncated is None else self.n_truncated
        total = args[0].new_zeros(())
        for m, w in zip(self.dims, self.weights):
            cut = [a[..., :m] if i < n else a for i, a in enumerate(args)]
            total = total + w * self.base(*cut)
        return total


class PairLoss(TrainingLoss):
    """`criterion(embed(queries), embed(documents))` for a batch x = (queries, documents) of texts, embedded by
    the sentence-transformers model `model` (its pooled ``sentence_embedding``); labels, rows, generator unused."""

    def __init__(self, model: nn.Module, criterion: nn.Module) -> None:
        super().__init__()
        self.model, self.criterion = model, criterion

    def embed(self, texts: list[str]) -> torch.Tensor:
        st = self.model
        prep = getattr(st, "preprocess", None) or st.tokenize
        features = {k: (v.to(st.device) if hasattr(v, "to") else v) for k, v in prep(texts).items()}
        return st(features)["sentence_embedding"]

    def forward(self, x, y=None, rows=None, generator=None) -> torch.Tensor:
        queries, documents = x
        return self.criterion(self.embed(queries), self.embed(documents))


def layer_embeddings(st: nn.Module, texts: list[str], layers: Sequence[int]) -> dict[int, torch.Tensor]:
    """The pooled embedding a sentence-transformers model `st` would make if it ran only its first L transformer
    layers, for each L in `layers` (0 = the token embeddings), from one forward pass: the transformer module returns
    every layer's hidden states (`all_layer_embeddings`), and each goes through the model's later modules (pooling,
    normalisation) as the token embeddings."""
    prep = getattr(st, "preprocess", None) or st.tokenize
    features = {k: (v.to(st.device) if hasattr(v, "to") else v) for k, v in prep(texts).items()}
    config = st[0].auto_model.config
    keep = config.output_hidden_states
    config.output_hidden_states = True
    try:
        out = st[0](features)
    finally:
        config.output_hidden_states = keep
    hidden = out["all_layer_embeddings"]
    result = {}
    for layer in layers:
        f = {**out, "token_embeddings": hidden[layer]}
        for module in list(st)[1:]:
            f = module(f)
        result[layer] = f["sentence_embedding"]
    return result


class LayerPairLoss(TrainingLoss):
    """2D Matryoshka (Li et al. 2024, "2D Matryoshka Sentence Embeddings"; sentence-transformers' `AdaptiveLayerLoss`
    and `Matryoshka2dLoss` are the reference): `criterion` (typically `MatryoshkaLoss(InfoNCELoss)`, the dimension
    axis) on the embeddings of the last layer and of every layer in `layers` (the depth axis), so the model's first L
    layers make usable embeddings on their own. x = (queries, documents) texts. One forward pass gives every layer.

        loss = criterion(last) + prior_weight * mean over L in layers, L < last, of criterion(layer L)
               + kl_weight * mean over L of KL(softmax(q_last . d_last / t) || softmax(q_L . d_L / t))

    The KL term pulls each shallow layer's in-batch query→document similarity distribution towards the full model's
    (detached); sentence-transformers' AdaptiveLayerLoss instead compares softmaxes over the embedding coordinates.
    Unlike its random choice of one layer per step, every listed layer is trained at every step (a forward pass
    computes them all; only the loss terms are extra)."""

    def __init__(self, model: nn.Module, criterion: nn.Module, layers: Sequence[int], prior_weight: float = 1.0,
                 kl_weight: float = 1.0, kl_temperature: float = 0.05) -> None:
        super().__init__()
        self.model, self.criterion = model, criterion
        from repspace.encoders.sentence import layer_list

        self.n_layers = len(layer_list(model)[2])
        self.layers = sorted({int(layer) for layer in layers if int(layer) != self.n_layers})
        self.prior_weight, self.kl_weight, self.kl_temperature = prior_weight, kl_weight, kl_temperature

    def forward(self, x, y=None, rows=None, generator=None) -> torch.Tensor:
        queries, documents = x
        every = self.layers + [self.n_layers]
        q, d = layer_embeddings(self.model, list(queries), every), layer_embeddings(self.model, list(documents), every)
        last = self.n_layers
        loss = self.criterion(q[last], d[last])
        if not self.layers:
            return loss
        target = F.softmax(F.normalize(q[last], dim=-1) @ F.normalize(d[last], dim=-1).T / self.kl_temperature,
                           dim=-1).detach()
        prior = q[last].new_zeros(())
        for layer in self.layers:
            prior = prior + self.criterion(q[layer], d[layer]) / len(self.layers)
            if self.kl_weight:
                logits = F.normalize(q[layer], dim=-1) @ F.normalize(d[layer], dim=-1).T / self.kl_temperature
                kl = F.kl_div(F.log_softmax(logits, dim=-1), target, reduction="batchmean")
                prior = prior + self.kl_weight * kl / len(self.layers)
        return loss + self.prior_weight * prior


class LayerDistillLoss(TrainingLoss):
    """The depth axis of 2D Matryoshka taught by distillation (the sentence-transformers model-distillation recipe,
    `MSELoss` of a shallower student against a frozen teacher's embeddings, applied to each depth of one model): the
    pooled embedding of the model's first L layers learns the teacher's embedding of the same text, for every L in
    `layers`, on unlabelled texts. x = texts, y = the teacher's embeddings of them (B, D), unit-normalised.

        loss = mean over L of [ mean(1 - cos(e_L, t)) + rank_weight * criterion(e_L, t) ]

    `criterion` is `MatryoshkaLoss(RankDistillationLoss, dims, n_truncated=1)`: the in-batch neighbourhoods of each
    prefix of e_L learn the teacher's full-dimensional ones (the dimension axis), as the post-hoc adaptor does.
    Listing the last layer keeps the full model where the teacher put it while the shallow layers move."""

    def __init__(self, model: nn.Module, layers: Sequence[int], dims: Sequence[int], rank_weight: float = 1.0,
                 temperature: float = 0.05) -> None:
        super().__init__()
        self.model = model
        self.layers = sorted({int(layer) for layer in layers})
        self.rank_weight = rank_weight
        self.criterion = MatryoshkaLoss(RankDistillationLoss(temperature), dims, n_truncated=1)

    def forward(self, x, y=None, rows=None, generator=None) -> torch.Tensor:
        embedded = layer_embeddings(self.model, list(x), self.layers)
        total = y.new_zeros(())
        for layer in self.layers:
            e = embedded[layer]
            total = total + (1 - F.cosine_similarity(e, y, dim=-1)).mean()
            if self.rank_weight:
                total = total + self.rank_weight * self.criterion(e, y)
        return total / len(self.layers)
