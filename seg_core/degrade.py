"""Batched photo degradations for robustness training: blur (Gaussian, motion), noise, JPEG.

Each takes a 0..1 float batch ``N x 3 x H x W`` on any device and per-sample parameters, and is
written with plain torch ops (no per-sample Python loop, no host sync), so the same code runs in
the CPU trainer and on a GPU. The label is never touched: these change what the camera saw, not
what is there. JPEG is simulated rather than encoded: YCbCr, 4:2:0 chroma, 8x8 DCT and rounding by
libjpeg's quality-scaled tables, which is where JPEG loses information (the entropy coding after it
is lossless), so it needs no codec and runs on the batch where it lives.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# The example tables of the JPEG standard (ITU T.81, Annex K), which libjpeg scales by quality.
_LUMA_Q = [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
           14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
           49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99]
_CHROMA_Q = [17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66] + [99] * 4 + [24, 26, 56] + [99] * 5 + \
            [47, 66] + [99] * 38


def gaussian_kernels(sigma: torch.Tensor, k: int) -> torch.Tensor:
    """``N x k x k`` normalised Gaussian kernels; sigma 0 gives the identity (a centred delta)."""
    r = torch.arange(k, dtype=torch.float32) - (k - 1) / 2
    d2 = (r.view(1, -1, 1) ** 2 + r.view(1, 1, -1) ** 2)
    s = sigma.float().view(-1, 1, 1)
    w = torch.exp(-d2 / (2 * s.clamp_min(1e-3) ** 2))
    return w / w.sum((1, 2), keepdim=True)


def motion_kernels(length: torch.Tensor, angle: torch.Tensor, k: int) -> torch.Tensor:
    """``N x k x k`` kernels of a straight camera shake ``length`` pixels long at ``angle`` (radians):
    an anti-aliased line segment through the centre; length 0 gives the identity."""
    r = torch.arange(k, dtype=torch.float32) - (k - 1) / 2
    u, v = r.view(1, 1, -1), r.view(1, -1, 1)  # x, y
    c, s = torch.cos(angle).view(-1, 1, 1), torch.sin(angle).view(-1, 1, 1)
    along, across = u * c + v * s, (-u * s + v * c).abs()
    beyond = (along.abs() - length.float().view(-1, 1, 1) / 2).clamp_min(0)
    w = (1 - torch.sqrt(across**2 + beyond**2)).clamp_min(0)
    return w / w.sum((1, 2), keepdim=True)


def blur(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Filter each image of ``x`` with its own ``k x k`` kernel (one grouped convolution)."""
    n, ch, h, w = x.shape
    k = kernels.shape[-1]
    weight = kernels.to(x.device, x.dtype, non_blocking=True).repeat_interleave(ch, 0).unsqueeze(1)
    padded = F.pad(x.reshape(1, n * ch, h, w), [k // 2] * 4, mode="replicate")
    return F.conv2d(padded, weight, groups=n * ch).view(n, ch, h, w)


def gaussian_noise(x: torch.Tensor, std: torch.Tensor, seed: int) -> torch.Tensor:
    """``x`` plus zero-mean noise of per-sample ``std``, clipped to 0..1. The noise is drawn on
    ``x``'s device from ``seed`` (copying a CPU-drawn batch of noise to a GPU would cost more than
    the step's augmentation)."""
    g = torch.Generator(device=x.device).manual_seed(seed)
    noise = torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype)
    return (x + noise * std.to(x.device, x.dtype, non_blocking=True).view(-1, 1, 1, 1)).clamp(0, 1)


def _quant_tables(quality: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """libjpeg's ``jpeg_quality_scaling``: the standard tables scaled per sample, ``N x 8 x 8`` each."""
    q = quality.float().clamp(1, 100)
    scale = torch.where(q < 50, 5000 / q, 200 - 2 * q).view(-1, 1, 1)
    tables = []
    for base in (_LUMA_Q, _CHROMA_Q):
        t = torch.tensor(base, dtype=torch.float32).view(1, 8, 8)
        tables.append(torch.floor((t * scale + 50) / 100).clamp(1, 255))
    return tables[0], tables[1]


def _dct_matrix(device, dtype) -> torch.Tensor:
    i = torch.arange(8, dtype=torch.float64)
    m = torch.cos((2 * i.view(1, -1) + 1) * i.view(-1, 1) * math.pi / 16) * math.sqrt(2 / 8)
    m[0] /= math.sqrt(2)
    return m.to(dtype).to(device, non_blocking=True)  # no host sync on a GPU (as every copy here)


def _blocks_round(plane: torch.Tensor, table: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """DCT each 8x8 block of ``N x H x W`` levels, round by ``table`` (``N x 8 x 8``), invert."""
    n, h, w = plane.shape
    b = plane.view(n, h // 8, 8, w // 8, 8).permute(0, 1, 3, 2, 4)  # N x by x bx x 8 x 8
    coef = d @ b @ d.T
    t = table.to(plane.device, plane.dtype, non_blocking=True).view(n, 1, 1, 8, 8)
    coef = torch.round(coef / t) * t
    return (d.T @ coef @ d).permute(0, 1, 3, 2, 4).reshape(n, h, w)


def jpeg(x: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """``x`` as a baseline 4:2:0 JPEG of per-sample ``quality`` (1..100) would decode it."""
    n, _, h, w = x.shape
    ph, pw = -h % 16, -w % 16  # whole 16x16 macroblocks, padded as an encoder does (edge copies)
    v = F.pad(x, [0, pw, 0, ph], mode="replicate") * 255 if ph or pw else x * 255
    r, g, b = v[:, 0], v[:, 1], v[:, 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b
    luma_t, chroma_t = _quant_tables(quality)
    d = _dct_matrix(x.device, x.dtype)
    y = _blocks_round(y - 128, luma_t, d) + 128
    chroma = F.avg_pool2d(torch.stack([cb, cr], 1), 2)  # 4:2:0
    hh, hw = chroma.shape[-2:]
    chroma = torch.stack([_blocks_round(chroma[:, i], chroma_t, d) for i in range(2)], 1)
    chroma = F.interpolate(chroma, size=(hh * 2, hw * 2), mode="bilinear", align_corners=False)
    cb, cr = chroma[:, 0], chroma[:, 1]
    out = torch.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], 1)
    out = torch.round(out.clamp(0, 255)) / 255
    return out[:, :, :h, :w]
