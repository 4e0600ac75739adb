"""The networks around the encoder for each objective: projectors, predictors, EMA teachers, decoders.

Each objective is a `repspace.training.TrainingLoss` holding the encoder (a `repspace.nets.CompatNet` without
classifier, the part that is saved) and its training-only heads; ``objective(x, generator=g)`` augments the
raw batch (labels and rows unused) and returns the scalar loss, ``after_step(step, total)`` updates teachers.
Only the encoder is saved in the model directory; the heads live in the resumable checkpoint.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from repspace.nets import CompatNet
from repspace.objectives.augment import FeatureAugment, ImageAugment
from repspace.objectives.losses import (BarlowTwinsLoss, BYOLLoss, CMIMLoss, EMATeacher, HydraLoss, MYOWLoss, NTXentLoss,
                                        OBoWLoss, SIELoss, SimSiamLoss, VICRegLoss, cosine_momentum)
from repspace.training import TrainingLoss


def mlp(i: int, h: int, o: int, last_bn: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(i, h), nn.BatchNorm1d(h), nn.ReLU(), nn.Linear(h, o)]
    if last_bn:
        layers.append(nn.BatchNorm1d(o, affine=False))
    return nn.Sequential(*layers)


def local_features(encoder: CompatNet, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(representation (n, dim), local features (n, C, P)): the CNN's pooled 3x3 feature map, or the MLP's hidden layer."""
    bb = encoder.backbone
    if encoder.arch == "cnn":
        h = bb.body(x)
        return bb.fc(h)[:, : encoder.dim], h.view(h.shape[0], -1, 9)
    hidden = bb.net[1](bb.net[0](x))
    return bb.net[2](hidden)[:, : encoder.dim], hidden.unsqueeze(2)


def default_augment(arch: str, method: str):
    if arch == "mlp":
        return FeatureAugment()
    return ImageAugment()


class Objective(TrainingLoss):
    """A self-supervised objective; a parameter group with ``fixed_lr: True`` keeps the base learning rate."""

    uses_teacher = False

    def __init__(self, encoder: CompatNet, augment=None) -> None:
        super().__init__()
        self.encoder = encoder
        self.augment = augment or default_augment(encoder.arch, getattr(self, "method", ""))

    def views(self, x: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        a, pa = self.augment(x, g)
        b, pb = self.augment(x, g)
        return a, b, pa, pb


class SimCLR(Objective):
    method = "simclr"

    def __init__(self, encoder: CompatNet, proj_dim: int = 64, temperature: float = 0.2, **kw) -> None:
        super().__init__(encoder, **kw)
        self.projector = mlp(encoder.dim, 256, proj_dim)
        self.criterion = NTXentLoss(temperature)

    def forward(self, x, y=None, rows=None, generator=None):
        a, b, _, _ = self.views(x, generator)
        return self.criterion(self.projector(self.encoder(a)), self.projector(self.encoder(b)))


class VICReg(Objective):
    """VICReg: an expander MLP (encoder.dim → `hidden` → `proj_dim`) and `VICRegLoss(lam, mu, nu)`.

    Short-run settings (docs/objectives.md): a 1,024-wide expander (the paper's is 8,192; 256 before) and the
    invariance weight `lam` 12.5 against variance 25 and covariance 1 (the paper's 25 / 25 / 1). `crop_scale`
    sets this method's random-resized-crop area range (default: the shared augmentation's 0.5–1)."""

    method = "vicreg"

    def __init__(self, encoder: CompatNet, proj_dim: int = 1024, hidden: int = 1024, lam: float = 12.5, mu: float = 25.0,
                 nu: float = 1.0, crop_scale: tuple[float, float] | None = None, **kw) -> None:
        if crop_scale is not None and kw.get("augment") is None and encoder.arch == "cnn":
            kw["augment"] = ImageAugment(crop_scale=tuple(crop_scale))
        super().__init__(encoder, **kw)
        self.projector = mlp(encoder.dim, hidden, proj_dim)
        self.criterion = VICRegLoss(lam, mu, nu)

    def forward(self, x, y=None, rows=None, generator=None):
        a, b, _, _ = self.views(x, generator)
        return self.criterion(self.projector(self.encoder(a)), self.projector(self.encoder(b)))


class Barlow(Objective):
    method = "barlow"

    def __init__(self, encoder: CompatNet, proj_dim: int = 256, lam: float = 5e-3, **kw) -> None:
        super().__init__(encoder, **kw)
        self.projector = mlp(encoder.dim, 256, proj_dim)
        self.criterion = BarlowTwinsLoss(lam)

    def forward(self, x, y=None, rows=None, generator=None):
        a, b, _, _ = self.views(x, generator)
        return self.criterion(self.projector(self.encoder(a)), self.projector(self.encoder(b)))


class SimSiam(Objective):
    """SimSiam: projector (BN on its output) + bottleneck predictor (proj_dim → proj_dim/2 → proj_dim), stop-gradient.

    As in the paper, the predictor keeps a fixed learning rate (`fixed_predictor_lr`, its own optimiser group
    outside the cosine schedule); the projector is 256-d (the paper's 2048 scaled down like VICReg's here)."""

    method = "simsiam"

    def __init__(self, encoder: CompatNet, proj_dim: int = 256, fixed_predictor_lr: bool = True, **kw) -> None:
        super().__init__(encoder, **kw)
        self.projector = mlp(encoder.dim, 256, proj_dim, last_bn=True)
        self.predictor = mlp(proj_dim, proj_dim // 2, proj_dim)
        self.criterion = SimSiamLoss()
        self.fixed_predictor_lr = fixed_predictor_lr

    def param_groups(self):
        """The paper's predictor keeps its learning rate fixed (no decay), which it reports works better."""
        if not self.fixed_predictor_lr:
            return super().param_groups()
        pred = set(map(id, self.predictor.parameters()))
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in pred]
        return [{"params": rest}, {"params": list(self.predictor.parameters()), "fixed_lr": True}]

    def forward(self, x, y=None, rows=None, generator=None):
        a, b, _, _ = self.views(x, generator)
        z_a, z_b = self.projector(self.encoder(a)), self.projector(self.encoder(b))
        return self.criterion(self.predictor(z_a), self.predictor(z_b), z_a, z_b)


class BYOL(Objective):
    """BYOL: online encoder + projector + predictor against an EMA teacher (encoder + projector).

    Teacher momentum `momentum` → 1 along a cosine. The default base is 0.9, not the paper's 0.99–0.996: the
    teacher averages ~1/(1 − m) steps, a negligible part of the paper's ~10⁵ steps but a fifth of a
    500-step run at 0.99 (docs/objectives.md, "Settings for short runs"); pass 0.99 for long runs."""

    method = "byol"
    uses_teacher = True

    def __init__(self, encoder: CompatNet, proj_dim: int = 64, momentum: float = 0.9, **kw) -> None:
        super().__init__(encoder, **kw)
        self.projector = mlp(encoder.dim, 256, proj_dim)
        self.predictor = mlp(proj_dim, 256, proj_dim)
        self.teacher = EMATeacher(self.student())
        self.momentum = momentum
        self.criterion = BYOLLoss()

    def student(self) -> nn.Module:
        return nn.Sequential(self.encoder, self.projector)

    def forward(self, x, y=None, rows=None, generator=None):
        a, b, _, _ = self.views(x, generator)
        p_a, p_b = self.predictor(self.projector(self.encoder(a))), self.predictor(self.projector(self.encoder(b)))
        return self.criterion(p_a, p_b, self.teacher(a), self.teacher(b))

    def after_step(self, step, total):
        self.teacher.update(self.student(), cosine_momentum(step, total, self.momentum))


class MYOW(BYOL):
    """BYOL + MYOW's mined-view term through a second projector / predictor: for each anchor, the teacher's
    representation mines a nearest neighbour among a pool of candidates and the anchor must predict that
    neighbour's (second) teacher projection.

    Pool: the batch's other items plus a queue of the last `queue_size` items' teacher representations and
    projections (the paper mines from a candidate pool larger than one batch; a queue gives that pool without
    encoding extra images; 0 = batch only). Schedule: the mined term is off for the first `warmup` fraction of
    the steps and ramped in linearly over the next `rampup` fraction (the paper's implementation warms BYOL
    up before mining too: neighbours in a random network's space are mostly not same-class images)."""

    method = "myow"

    def __init__(self, encoder: CompatNet, proj_dim: int = 64, mined_weight: float = 0.3, k: int = 1,
                 queue_size: int = 1024, warmup: float = 0.2, rampup: float = 0.3, **kw) -> None:
        nn.Module.__init__(self)
        self.encoder = encoder
        self.augment = kw.pop("augment", None) or default_augment(encoder.arch, "myow")
        self.projector = mlp(encoder.dim, 256, proj_dim)
        self.predictor = mlp(proj_dim, 256, proj_dim)
        self.projector2 = mlp(proj_dim, 128, 32)
        self.predictor2 = mlp(32, 128, 32)
        self.teacher = EMATeacher(self.student())
        self.momentum, self.mined_weight = kw.get("momentum", 0.9), mined_weight
        self.warmup, self.rampup = warmup, rampup
        self.criterion, self.mined = BYOLLoss(), MYOWLoss(k=k)
        self.register_buffer("queue_keys", torch.zeros(queue_size, encoder.dim))
        self.register_buffer("queue_values", torch.zeros(queue_size, 32))
        self.register_buffer("queue_filled", torch.zeros((), dtype=torch.long))
        self.register_buffer("queue_pointer", torch.zeros((), dtype=torch.long))
        self.register_buffer("progress", torch.zeros(()))  # step / total, set by after_step

    def student(self) -> nn.Module:
        return nn.ModuleList([self.encoder, self.projector, self.projector2])

    def mined_scale(self) -> float:
        """The mined term's weight now: 0 during the warm-up, then a linear ramp to `mined_weight`."""
        t = float(self.progress)
        if t < self.warmup:
            return 0.0
        return self.mined_weight * min(1.0, (t - self.warmup) / self.rampup) if self.rampup > 0 else self.mined_weight

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        size = self.queue_keys.shape[0]
        if size == 0:
            return
        keys, values = keys[-size:], values[-size:]
        idx = (self.queue_pointer + torch.arange(len(keys))) % size
        self.queue_keys[idx], self.queue_values[idx] = keys, values
        self.queue_pointer.copy_((self.queue_pointer + len(keys)) % size)
        self.queue_filled.copy_(torch.clamp(self.queue_filled + len(keys), max=size))

    def forward(self, x, y=None, rows=None, generator=None):
        a, b, _, _ = self.views(x, generator)
        z_a, z_b = self.projector(self.encoder(a)), self.projector(self.encoder(b))
        enc_t, proj_t, proj2_t = self.teacher.net
        with torch.no_grad():
            r_a, r_b = enc_t(a), enc_t(b)
            t_a, t_b = proj_t(r_a), proj_t(r_b)
            v_b = proj2_t(t_b)
        byol = self.criterion(self.predictor(z_a), self.predictor(z_b), t_a, t_b)
        filled = int(self.queue_filled)
        keys = torch.cat([r_b, self.queue_keys[:filled]])
        values = torch.cat([v_b, self.queue_values[:filled]])
        mined = self.mined(self.predictor2(self.projector2(z_a)), keys, values, r_a, generator=generator)
        self.enqueue(r_b, v_b)
        return byol + self.mined_scale() * mined

    def after_step(self, step, total):
        super().after_step(step, total)
        self.progress.fill_(step / max(1, total))


class Hydra(Objective):
    """SimCLR-style views plus arbitrary pairs (each item with a random other item of the batch) as positives
    through Hydra's gated filter; pseudo-classes from an online k-means over the detached projections."""

    method = "hydra"

    def __init__(self, encoder: CompatNet, proj_dim: int = 64, pseudo_classes: int = 16, temperature: float = 0.2, **kw) -> None:
        super().__init__(encoder, **kw)
        self.projector = mlp(encoder.dim, 256, proj_dim)
        self.criterion = HydraLoss(proj_dim, pseudo_classes, temperature=temperature)
        self.register_buffer("centroids", F.normalize(torch.randn(pseudo_classes, proj_dim), dim=1))

    @torch.no_grad()
    def pseudo_labels(self, z: torch.Tensor) -> torch.Tensor:
        zn = F.normalize(z.detach(), dim=1)
        y = (zn @ self.centroids.T).argmax(1)
        for c in y.unique():
            m = zn[y == c].mean(0)
            self.centroids[c] = F.normalize(0.9 * self.centroids[c] + 0.1 * m, dim=0)
        return y

    def forward(self, x, y=None, rows=None, generator=None):
        a, b, _, _ = self.views(x, generator)
        z_a, z_b = self.projector(self.encoder(a)), self.projector(self.encoder(b))
        y = self.pseudo_labels(z_a)
        perm = torch.randperm(len(y), generator=generator)
        return 0.5 * (self.criterion(z_a, z_b, y, y) + self.criterion(z_a, z_b[perm], y, y[perm]))


class SIE(Objective):
    """First half of the representation invariant, second half equivariant to the augmentation.

    The hypernetwork gets the relative rotation (cos, sin), whether one view is mirrored and, with
    `crop_params`, the crops' log scale ratios and centre offsets (the paper conditions on every augmentation
    parameter). The rotation range is ±15° as for every other method (it was ±45°, which cost ~3 kNN points on
    Fashion-MNIST at 6 epochs)."""

    method = "sie"

    def __init__(self, encoder: CompatNet, inv_proj: int = 256, equi_proj: int = 32, crop_params: bool = True, **kw) -> None:
        super().__init__(encoder, **kw)
        self.crop_params = crop_params
        self.split = encoder.dim // 2
        self.inv_projector = mlp(self.split, 256, inv_proj)
        self.equi_projector = mlp(encoder.dim - self.split, 128, equi_proj)
        self.criterion = SIELoss(equi_proj, self.param_dim())

    def param_dim(self) -> int:
        if not isinstance(self.augment, ImageAugment):
            return 2
        return 7 if self.crop_params else 3

    def relative_params(self, pa: torch.Tensor, pb: torch.Tensor) -> torch.Tensor:
        """The transformation from view a to view b: (cos, sin) of the rotation, whether one view is mirrored,
        and (with `crop_params`) the crops' log scale ratios and centre offsets."""
        if isinstance(self.augment, ImageAugment):
            d = pb[:, 5] - pa[:, 5]
            cols = [torch.cos(d), torch.sin(d), (pa[:, 4] != pb[:, 4]).float()]
            if self.crop_params:
                cols += [torch.log(pb[:, 0] / pa[:, 0]), torch.log(pb[:, 1] / pa[:, 1]), pb[:, 2] - pa[:, 2], pb[:, 3] - pa[:, 3]]
            return torch.stack(cols, 1)
        return pb - pa

    def halves(self, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return r[:, : self.split], r[:, self.split:]

    def forward(self, x, y=None, rows=None, generator=None):
        a, b, pa, pb = self.views(x, generator)
        (ia, ea), (ib, eb) = self.halves(self.encoder(a)), self.halves(self.encoder(b))
        return self.criterion(self.inv_projector(ia), self.inv_projector(ib), self.equi_projector(ea),
                              self.equi_projector(eb), self.relative_params(pa, pb))


class OBoW(Objective):
    """OBoW as in the authors' implementation (github.com/valeoai/obow): the EMA teacher sees the original image
    (only mirrored at random) and turns a feature map into a bag of visual words; the student predicts that
    bag from its representation of each of two augmented crops (`OBoWLoss`: Euclidean soft assignment with
    the adaptive inverse temperature, raw-feature words, the weight generator and κ scaling).

    `level`: the teacher's feature map — ``"pooled"`` (default), the CNN's 3×3 pooled map that its linear
    layer reads, or ``"conv"``, its last convolutional map before that pooling (14×14 on 28×28 images, the
    border dropped as in the paper; words pushed as 3×3 local averages, the paper's "local_average" update).
    `teacher_view`: ``"original"`` (the paper) or ``"other"`` (each crop predicts the other crop's bag).
    `projector` > 0 puts an MLP of that width between the representation and the prediction (not in the
    paper). Short-run settings (docs/objectives.md): teacher momentum 0.9 → 1 (paper 0.99 → 1), 1,024 words
    (paper 8,192), the pooled map. For the MLP head the local features are its hidden layer."""

    method = "obow"
    uses_teacher = True

    def __init__(self, encoder: CompatNet, vocab_size: int = 1024, momentum: float = 0.9, inv_delta: float = 15.0,
                 kappa: float = 5.0, bow_pool: str = "max", level: str = "pooled", teacher_view: str = "original",
                 projector: int = 0, **kw) -> None:
        super().__init__(encoder, **kw)
        if level not in ("conv", "pooled"):
            raise ValueError("level must be 'conv' or 'pooled'")
        if teacher_view not in ("original", "other"):
            raise ValueError("teacher_view must be 'original' or 'other'")
        bb = encoder.backbone
        if encoder.arch == "cnn":
            channels = bb.fc.in_features // 9
        else:
            channels = bb.net[0].out_features
        self.level, self.teacher_view = level, teacher_view
        self.criterion = OBoWLoss(encoder.dim, channels, vocab_size, inv_delta, kappa, bow_pool)
        self.teacher = EMATeacher(encoder)
        self.momentum = momentum
        # optional student head between the representation and the prediction (0 = none, as in the paper)
        self.projector = mlp(encoder.dim, projector, encoder.dim) if projector else nn.Identity()
        self.register_buffer("warm", torch.zeros((), dtype=torch.bool))

    def teacher_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(local features (n, C, P) for the bag of words, candidate words (n, C, P') for the vocabulary)."""
        net = self.teacher.net
        if net.arch != "cnn" or self.level == "pooled":
            _, loc = local_features(net, x)
            return loc, loc
        h = x
        for layer in net.backbone.body:
            if isinstance(layer, nn.AdaptiveAvgPool2d):
                break
            h = layer(h)
        if min(h.shape[2:]) > 4:
            h = h[:, :, 1:-1, 1:-1]  # the paper drops the map's border
        words = F.avg_pool2d(h, 3, stride=1) if min(h.shape[2:]) >= 3 else h
        return h.flatten(2), words.flatten(2)

    def forward(self, x, y=None, rows=None, generator=None):
        a, b, _, _ = self.views(x, generator)
        obow = self.criterion
        with torch.no_grad():
            if self.teacher_view == "original":
                flip = torch.rand(len(x), generator=generator) < 0.5
                xs = [torch.where(flip.view(-1, *[1] * (x.dim() - 1)), x.flip(-1), x) if x.dim() == 4 else x]
            else:
                xs = [b, a]
            feats = [self.teacher_features(v) for v in xs]
            if not bool(self.warm):  # fill the vocabulary with real features before the first step
                for _ in range(max(1, obow.vocabulary.shape[0] // max(1, len(x)))):
                    obow.update_vocabulary(torch.cat([w for _, w in feats]), generator)
                self.warm.fill_(True)
            targets = [obow.bag_of_words(loc, track=True) for loc, _ in feats]
        t_a, t_b = targets[0], targets[-1]  # one target (the original image) for both crops, or one per other crop
        loss = 0.5 * (obow(self.projector(self.encoder(a)), target=t_a) + obow(self.projector(self.encoder(b)), target=t_b))
        obow.update_vocabulary(feats[0][1], generator)
        return loss

    def after_step(self, step, total):
        self.teacher.update(self.encoder, cosine_momentum(step, total, self.momentum))


class CMIM(Objective):
    """Probabilistic auto-encoder: mean = the encoder's representation, log-variance from a linear head,
    an MLP decoder back to the input; no augmentation. The A-MIM terms are per-item log-likelihoods
    (`per_dim=False`; dividing them by the number of pixels left mostly the contrastive term)."""

    method = "cmim"

    def __init__(self, encoder: CompatNet, input_shape: tuple[int, ...] = (1, 8, 8), contrastive_weight: float = 1.0,
                 temperature: float = 0.2, recon_sigma: float = 0.5, per_dim: bool = False, **kw) -> None:
        super().__init__(encoder, **kw)
        self.input_shape = tuple(input_shape)
        d_in = math.prod(self.input_shape)
        self.logvar = nn.Linear(encoder.dim, encoder.dim)
        nn.init.zeros_(self.logvar.weight)
        nn.init.constant_(self.logvar.bias, -2.0)
        out = [nn.Tanh()] if encoder.arch == "cnn" else []
        self.decoder = nn.Sequential(nn.Linear(encoder.dim, 256), nn.ReLU(), nn.Linear(256, d_in), *out)
        self.criterion = CMIMLoss(contrastive_weight, temperature, recon_sigma, per_dim)

    def forward(self, x, y=None, rows=None, generator=None):
        n = x.shape[0]
        mu = self.encoder(x)
        logvar = self.logvar(mu).clamp(-8, 4)
        z = mu + torch.randn(mu.shape, generator=generator) * (0.5 * logvar).exp()
        x_hat = self.decoder(z)
        mu_re = self.encoder(x_hat.view(n, *self.input_shape))
        return self.criterion(x.reshape(n, -1), x_hat, mu, logvar, z, mu_re)


OBJECTIVES: dict[str, type[Objective]] = {c.method: c for c in (SimCLR, VICReg, Barlow, BYOL, SimSiam, MYOW, Hydra, SIE, OBoW, CMIM)}
METHODS = tuple(OBJECTIVES)


def build_objective(method: str, encoder: CompatNet, input_shape: tuple[int, ...], **options) -> Objective:
    cls = OBJECTIVES[method]
    if cls is CMIM:
        return cls(encoder, input_shape=input_shape, **options)
    return cls(encoder, **options)
