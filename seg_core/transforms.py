"""Joint photo/label transforms, batched in torch so they run wherever the batch lives (CPU or GPU).

Random scale + crop + horizontal flip is one affine warp of the whole batch (``affine_grid`` +
``grid_sample``): the photo is sampled bilinearly, the label with NEAREST, and the label outside
the image is padded with 255 (ignore). Photos are normalised *before* the warp, so padding is the
mean colour (zero). Colour jitter (brightness, contrast, saturation) is per sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .config import IMAGENET_MEAN, IMAGENET_STD
from .palette import IGNORE_INDEX


@dataclass
class Augment:
    size: tuple[int, int] = (128, 128)  # output crop (H, W)
    scale: tuple[float, float] = (0.75, 1.5)  # zoom relative to the stored images (log-uniform)
    hflip: bool = True
    brightness: float = 0.25
    contrast: float = 0.25
    saturation: float = 0.25


def normalize(images: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """uint8 (or 0..1 float) ``N x 3 x H x W`` → float normalised with ``mean``/``std``."""
    x = images.float()
    if images.dtype == torch.uint8:
        x = x / 255.0
    # Built on the CPU and copied without waiting: torch.tensor(..., device="cuda") syncs the host.
    m = torch.tensor(mean, dtype=x.dtype).view(1, 3, 1, 1).to(x.device, non_blocking=True)
    s = torch.tensor(std, dtype=x.dtype).view(1, 3, 1, 1).to(x.device, non_blocking=True)
    return (x - m) / s


def _uniform(n: int, lo: float, hi: float, g: torch.Generator, device) -> torch.Tensor:
    return (torch.rand(n, generator=g) * (hi - lo) + lo).to(device, non_blocking=True)


def color_jitter(x: torch.Tensor, aug: Augment, g: torch.Generator) -> torch.Tensor:
    """Per-sample brightness, contrast and saturation on a 0..1 float batch."""
    n = x.shape[0]
    b = _uniform(n, 1 - aug.brightness, 1 + aug.brightness, g, x.device).view(n, 1, 1, 1)
    c = _uniform(n, 1 - aug.contrast, 1 + aug.contrast, g, x.device).view(n, 1, 1, 1)
    s = _uniform(n, 1 - aug.saturation, 1 + aug.saturation, g, x.device).view(n, 1, 1, 1)
    x = x * b
    gray = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    x = (x - gray.mean((2, 3), keepdim=True)) * c + gray.mean((2, 3), keepdim=True)
    gray = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    x = (x - gray) * s + gray
    return x.clamp(0, 1)


def augment_batch(images: torch.Tensor, labels: torch.Tensor, aug: Augment, g: torch.Generator,
                  mean=IMAGENET_MEAN, std=IMAGENET_STD) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 photos ``N x 3 x H x W`` and labels ``N x H x W`` → normalised crops and long labels.

    Randomness comes only from ``g`` (a CPU generator), so a seeded run is reproducible on any
    device; the few random numbers are copied to the device without waiting for it.
    """
    n, _, h, w = images.shape
    out_h, out_w = aug.size
    device = images.device
    x = color_jitter(images.float() / 255.0, aug, g)
    x = normalize(x, mean, std)

    lo, hi = torch.log(torch.tensor(aug.scale[0])), torch.log(torch.tensor(aug.scale[1]))
    zoom = torch.exp(torch.rand(n, generator=g) * (hi - lo) + lo)
    # Half-extent of the crop in the input's normalised [-1, 1] coordinates.
    ax, ay = out_w / (zoom * w), out_h / (zoom * h)
    cx = (torch.rand(n, generator=g) * 2 - 1) * (1 - ax).abs()
    cy = (torch.rand(n, generator=g) * 2 - 1) * (1 - ay).abs()
    flip = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0) if aug.hflip else torch.ones(n)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = ax * flip, cx
    theta[:, 1, 1], theta[:, 1, 2] = ay, cy
    grid = F.affine_grid(theta.to(device, non_blocking=True), [n, 3, out_h, out_w], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # Labels + 1 so that zero padding becomes -1 → ignore after the shift back.
    y = F.grid_sample((labels.float() + 1).unsqueeze(1), grid, mode="nearest", padding_mode="zeros",
                      align_corners=False).squeeze(1).long() - 1
    y.masked_fill_((y < 0) | (y == IGNORE_INDEX), IGNORE_INDEX)  # not y[mask] = ...: no nonzero(), no host sync
    return x, y
