"""Augmentations made of torch ops only (no torchvision), batched, seeded by a torch.Generator.

- `ImageAugment` for small grey images (n, 1, H, W) in [-1, 1]: random resized crop, horizontal flip and
  rotation composed into one affine warp (`grid_sample`), brightness/contrast jitter and Gaussian noise.
  Every view comes with its parameters (`ImageAugment.PARAMS`), which SIE uses.
- `FeatureAugment` for frozen-encoder vectors (n, d) (text spaces): feature dropout and Gaussian noise,
  so an MLP head over e.g. bbc-news MiniLM vectors can be trained self-supervised.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _uniform(n: int, lo: float, hi: float, g: torch.Generator | None) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


class ImageAugment:
    """Random resized crop + flip + rotation (one affine warp), jitter and noise for (n, 1, H, W) images.

    ``aug(x, generator) -> (views, params)``; params (n, 7) columns `PARAMS`: crop width and height
    (fractions of the image), crop centre x, y (in [-1, 1]), flip (0/1), rotation angle (radians), noise std.
    """

    PARAMS = ("crop_w", "crop_h", "centre_x", "centre_y", "flip", "angle", "noise")

    def __init__(self, crop_scale: tuple[float, float] = (0.5, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3),
                 flip: bool = True, rotation: float = 15.0, jitter: float = 0.3, noise: float = 0.1) -> None:
        self.crop_scale, self.ratio, self.flip = crop_scale, ratio, flip
        self.rotation, self.jitter, self.noise = rotation, jitter, noise

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        g = generator
        area = _uniform(n, *self.crop_scale, g)
        logr = _uniform(n, math.log(self.ratio[0]), math.log(self.ratio[1]), g)
        w = torch.sqrt(area * logr.exp()).clamp(max=1.0)
        h = torch.sqrt(area / logr.exp()).clamp(max=1.0)
        cx = (torch.rand(n, generator=g) * 2 - 1) * (1 - w)
        cy = (torch.rand(n, generator=g) * 2 - 1) * (1 - h)
        flip = (torch.rand(n, generator=g) < 0.5).float() if self.flip else torch.zeros(n)
        angle = _uniform(n, -1.0, 1.0, g) * math.radians(self.rotation)
        noise = _uniform(n, 0.0, self.noise, g)
        return torch.stack([w, h, cx, cy, flip, angle, noise], dim=1)

    def apply(self, x: torch.Tensor, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        n = x.shape[0]
        w, h, cx, cy, flip, angle, noise = params.T
        cos, sin = torch.cos(angle), torch.sin(angle)
        sx = w * (1 - 2 * flip)  # output -> input coordinates: scale (and mirror), rotate, translate
        theta = torch.stack([torch.stack([sx * cos, -h * sin, cx], 1), torch.stack([sx * sin, h * cos, cy], 1)], 1)
        grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
        # pad with the background value (-1 = black) rather than zeros (= mid grey)
        out = F.grid_sample(x + 1, grid, mode="bilinear", padding_mode="zeros", align_corners=False) - 1
        if self.jitter:
            b = _uniform(n, -self.jitter, self.jitter, generator).view(n, 1, 1, 1)
            c = _uniform(n, 1 - self.jitter, 1 + self.jitter, generator).view(n, 1, 1, 1)
            out = (out * c + b)
        out = out + noise.view(n, 1, 1, 1) * torch.randn(out.shape, generator=generator)
        return out.clamp(-1.5, 1.5)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        params = self.sample(x.shape[0], generator)
        return self.apply(x, params, generator), params


class FeatureAugment:
    """Feature dropout + Gaussian noise on (n, d) frozen-encoder vectors.

    ``aug(x, generator) -> (views, params)``; params (n, 2): the dropout rate and the noise std (relative to the
    batch's feature std) drawn for each item, uniform in [0, dropout] and [0, noise]."""

    PARAMS = ("dropout", "noise")

    def __init__(self, dropout: float = 0.3, noise: float = 0.5) -> None:
        if not 0 <= dropout < 1:
            raise ValueError("dropout must be in [0, 1)")
        self.dropout, self.noise = dropout, noise

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.stack([_uniform(n, 0.0, self.dropout, generator), _uniform(n, 0.0, self.noise, generator)], 1)

    def apply(self, x: torch.Tensor, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        p, s = params[:, :1], params[:, 1:]
        keep = (torch.rand(x.shape, generator=generator) >= p).to(x.dtype)
        scale = x.std(0, keepdim=True).clamp_min(1e-6) if x.shape[0] > 1 else x.abs().mean().clamp_min(1e-6)
        return x * keep / (1 - p) + s * scale * torch.randn(x.shape, generator=generator)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        params = self.sample(x.shape[0], generator)
        return self.apply(x, params, generator), params
