"""Joint photo/label transforms, batched in torch so they run wherever the batch lives (CPU or GPU).

Random scale + crop + horizontal flip is one affine warp of the whole batch (``affine_grid`` +
``grid_sample``): the photo is sampled bilinearly, the label with NEAREST, and the label outside
the image is padded with 255 (ignore). Photos are normalised *before* the warp, so padding is the
mean colour (zero). Colour jitter (brightness, contrast, saturation, hue, gamma) is per sample, on
the stored photo. The camera degradations of ``seg_core.degrade`` (blur, noise, JPEG), when on,
act on the output crop, as a camera would on the frame the model sees; the label is never touched.
Every op that is off draws no random numbers, so a config without it augments as it always did.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .config import IMAGENET_MEAN, IMAGENET_STD
from .degrade import blur, gaussian_kernels, gaussian_noise, jpeg, motion_kernels
from .palette import IGNORE_INDEX


@dataclass
class Augment:
    size: tuple[int, int] = (128, 128)  # output crop (H, W)
    scale: tuple[float, float] = (0.75, 1.5)  # zoom relative to the stored images (log-uniform)
    hflip: bool = True
    brightness: float = 0.25
    contrast: float = 0.25
    saturation: float = 0.25
    hue: float = 0.0  # hue rotated by up to this fraction of a turn either way
    gamma: float = 0.0  # gamma drawn log-uniformly from [1 / (1 + gamma), 1 + gamma]
    aspect: float = 0.0  # x/y zoom ratio drawn log-uniformly from [1 / (1 + aspect), 1 + aspect]
    blur_p: float = 0.0  # chance of a blur per image: half Gaussian, half motion
    blur_sigma: float = 2.0  # largest Gaussian sigma, output pixels (the smallest is 0.5)
    motion_length: float = 9.0  # longest motion-blur streak, output pixels (the shortest is 3)
    noise_p: float = 0.0  # chance of Gaussian noise per image
    noise_std: float = 0.08  # its largest std on the 0..1 scale (drawn uniformly from 0)
    jpeg_p: float = 0.0  # chance of JPEG re-compression per image
    jpeg_quality: tuple[float, float] = (10.0, 90.0)  # its quality range

    @property
    def degrades(self) -> bool:
        return self.blur_p > 0 or self.noise_p > 0 or self.jpeg_p > 0


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


# RGB → YIQ (NTSC): a hue shift is a rotation of the (I, Q) chroma plane, one 3x3 matrix per sample.
_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def _hue_matrices(turns: torch.Tensor) -> torch.Tensor:
    a = turns * 2 * torch.pi
    rot = torch.zeros(len(a), 3, 3)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = a.cos(), -a.sin(), a.sin(), a.cos()
    return torch.linalg.inv(_YIQ) @ rot @ _YIQ


def color_jitter(x: torch.Tensor, aug: Augment, g: torch.Generator) -> torch.Tensor:
    """Per-sample brightness, contrast, saturation, hue and gamma on a 0..1 float batch."""
    n = x.shape[0]
    b = _uniform(n, 1 - aug.brightness, 1 + aug.brightness, g, x.device).view(n, 1, 1, 1)
    c = _uniform(n, 1 - aug.contrast, 1 + aug.contrast, g, x.device).view(n, 1, 1, 1)
    s = _uniform(n, 1 - aug.saturation, 1 + aug.saturation, g, x.device).view(n, 1, 1, 1)
    x = x * b
    gray = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    x = (x - gray.mean((2, 3), keepdim=True)) * c + gray.mean((2, 3), keepdim=True)
    gray = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    x = (x - gray) * s + gray
    if aug.hue:
        m = _hue_matrices(torch.rand(n, generator=g) * 2 * aug.hue - aug.hue)
        x = torch.einsum("nij,njhw->nihw", m.to(x.device, x.dtype, non_blocking=True), x)
    x = x.clamp(0, 1)
    if aug.gamma:
        lg = math.log1p(aug.gamma)
        gamma = torch.exp(_uniform(n, -lg, lg, g, x.device)).view(n, 1, 1, 1)
        x = x**gamma
    return x


def _odd(v: float) -> int:
    return int(math.ceil(v)) // 2 * 2 + 1


def degrade(x: torch.Tensor, aug: Augment, g: torch.Generator) -> torch.Tensor:
    """Blur, then noise, then JPEG (the order of a camera), each on a random subset of a 0..1
    batch. Images left out go through the same ops as identities (a delta kernel, zero noise, a
    ``where``), so the batch keeps its shape and nothing waits for a GPU to pick a subset."""
    n = x.shape[0]
    if aug.blur_p:
        u = torch.rand(n, generator=g)
        is_gauss, is_motion = u < aug.blur_p / 2, (u >= aug.blur_p / 2) & (u < aug.blur_p)
        sigma = (torch.rand(n, generator=g) * (aug.blur_sigma - 0.5) + 0.5) * is_gauss
        length = (torch.rand(n, generator=g) * (aug.motion_length - 3) + 3) * is_motion
        angle = torch.rand(n, generator=g) * torch.pi
        k = max(_odd(5 * aug.blur_sigma), _odd(aug.motion_length))
        kernels = torch.where(is_motion.view(n, 1, 1), motion_kernels(length, angle, k), gaussian_kernels(sigma, k))
        x = blur(x, kernels)
    if aug.noise_p:
        std = torch.rand(n, generator=g) * aug.noise_std * (torch.rand(n, generator=g) < aug.noise_p)
        x = gaussian_noise(x, std, int(torch.randint(2**62, (1,), generator=g)))
    if aug.jpeg_p:
        lo, hi = aug.jpeg_quality
        quality = torch.round(torch.rand(n, generator=g) * (hi - lo) + lo)
        chosen = (torch.rand(n, generator=g) < aug.jpeg_p).to(x.device, non_blocking=True).view(n, 1, 1, 1)
        x = torch.where(chosen, jpeg(x, quality), x)
    return x


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
    zx = zy = zoom
    if aug.aspect:
        la = math.log1p(aug.aspect)
        ratio = torch.exp(torch.rand(n, generator=g) * 2 * la - la).sqrt()
        zx, zy = zoom * ratio, zoom / ratio
    # Half-extent of the crop in the input's normalised [-1, 1] coordinates.
    ax, ay = out_w / (zx * w), out_h / (zy * h)
    cx = (torch.rand(n, generator=g) * 2 - 1) * (1 - ax).abs()
    cy = (torch.rand(n, generator=g) * 2 - 1) * (1 - ay).abs()
    flip = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0) if aug.hflip else torch.ones(n)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = ax * flip, cx
    theta[:, 1, 1], theta[:, 1, 2] = ay, cy
    grid = F.affine_grid(theta.to(device, non_blocking=True), [n, 3, out_h, out_w], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if aug.degrades:
        # Back to 0..1 for the camera ops (the padding becomes the mean colour), then normalised again.
        m = torch.tensor(mean, dtype=x.dtype).view(1, 3, 1, 1).to(device, non_blocking=True)
        s = torch.tensor(std, dtype=x.dtype).view(1, 3, 1, 1).to(device, non_blocking=True)
        x = normalize(degrade(x * s + m, aug, g), mean, std)
    # Labels + 1 so that zero padding becomes -1 → ignore after the shift back.
    y = F.grid_sample((labels.float() + 1).unsqueeze(1), grid, mode="nearest", padding_mode="zeros",
                      align_corners=False).squeeze(1).long() - 1
    y.masked_fill_((y < 0) | (y == IGNORE_INDEX), IGNORE_INDEX)  # not y[mask] = ...: no nonzero(), no host sync
    return x, y
