"""Nine ImageNet-C corruptions at severities 1-5, for the Cityscapes-C protocol on our val split.

Definitions and per-severity parameters follow Hendrycks & Dietterich, "Benchmarking Neural Network
Robustness to Common Corruptions and Perturbations" (ICLR 2019, ``make_imagenet_c.py``), as packaged
in ``bethgelab/imagecorruptions`` (``imagecorruptions/corruptions.py``, Apache-2.0), which Kamann &
Rother, "Benchmarking the Robustness of Semantic Segmentation Models" (CVPR 2020), used for
Cityscapes. That package does not install here (scikit-image's old API, ``pkg_resources``, numba),
so the formulas are re-written with numpy, OpenCV and PIL only. Differences, all small: HSV through
OpenCV instead of scikit-image; the zoom inside ``snow`` is ``cv2.resize`` (pixel centres) instead of
``scipy.ndimage.zoom``; frost is left out (it needs the package's texture photos), snow stands in.

``corrupt(image, name, severity, seed)`` is deterministic given ``seed``: the random draws of a
corruption do not depend on the severity, so one seed gives one noise pattern that grows with the
severity (a slider moves smoothly). As in the package, the float result is clipped and truncated
to uint8.
"""

from __future__ import annotations

import io
import math
from typing import Callable, Sequence

import cv2
import numpy as np
from PIL import Image

SEVERITIES = (1, 2, 3, 4, 5)

Seed = int | Sequence[int]


def _unit(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) / 255.0


def _disk(radius: int, alias_blur: float) -> np.ndarray:
    """The defocus kernel: an aliased disk, normalised, then slightly Gaussian-blurred."""
    size, ksize = (8, (3, 3)) if radius <= 8 else (radius, (5, 5))
    grid = np.arange(-size, size + 1)
    xx, yy = np.meshgrid(grid, grid)
    disk = (xx**2 + yy**2 <= radius**2).astype(np.float32)
    disk /= disk.sum()
    return cv2.GaussianBlur(disk, ksize=ksize, sigmaX=alias_blur)


def _shift(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """``image`` moved by (dx, dy) pixels, the border row/column repeated into the gap."""
    out = image
    if dx < 0:
        out = np.roll(out, image.shape[1] + dx, axis=1)
        out[:, dx:] = out[:, dx - 1 : dx]
    elif dx > 0:
        out = np.roll(out, dx, axis=1)
        out[:, :dx] = out[:, dx : dx + 1]
    if dy < 0:
        out = np.roll(out, image.shape[0] + dy, axis=0)
        out[dy:, :] = out[dy - 1 : dy, :]
    elif dy > 0:
        out = np.roll(out, dy, axis=0)
        out[:dy, :] = out[dy : dy + 1, :]
    return out


def motion_kernel(radius: int, sigma: float) -> np.ndarray:
    """Weights of the ``2 radius + 1`` shifted copies: a one-sided Gaussian, summing to 1."""
    k = np.exp(-(np.arange(2 * radius + 1) ** 2) / (2 * sigma**2))
    return k / k.sum()


def _motion_blur(x: np.ndarray, radius: int, sigma: float, angle: float) -> np.ndarray:
    kernel = motion_kernel(radius, sigma)
    width = len(kernel)
    py, px = width * math.sin(math.radians(angle)), width * math.cos(math.radians(angle))
    hyp = math.hypot(py, px)
    out = np.zeros(x.shape, np.float32)
    for i, w in enumerate(kernel):
        dy, dx = -math.ceil(i * py / hyp - 0.5), -math.ceil(i * px / hyp - 0.5)
        if abs(dy) >= x.shape[0] or abs(dx) >= x.shape[1]:
            break  # the motion left the image
        out += w * _shift(x, dx, dy)
    return out


def plasma_fractal(rng: np.random.Generator, mapsize: int = 256, wibbledecay: float = 3) -> np.ndarray:
    """A ``mapsize`` square height map in [0, 1] by the diamond-square algorithm (fog's texture)."""
    if mapsize & (mapsize - 1):
        raise ValueError(f"mapsize must be a power of two, got {mapsize}")
    m = np.zeros((mapsize, mapsize), np.float32)
    step, wibble = mapsize, 100.0

    def wibbled_mean(a):
        return a / 4 + wibble * rng.uniform(-wibble, wibble, a.shape)

    while step >= 2:
        half = step // 2
        corners = m[0:mapsize:step, 0:mapsize:step]
        sq = corners + np.roll(corners, -1, axis=0)
        sq += np.roll(sq, -1, axis=1)
        m[half:mapsize:step, half:mapsize:step] = wibbled_mean(sq)
        dr = m[half:mapsize:step, half:mapsize:step]
        ul = m[0:mapsize:step, 0:mapsize:step]
        m[0:mapsize:step, half:mapsize:step] = wibbled_mean(dr + np.roll(dr, 1, axis=0) + ul + np.roll(ul, -1, axis=1))
        m[half:mapsize:step, 0:mapsize:step] = wibbled_mean(dr + np.roll(dr, 1, axis=1) + ul + np.roll(ul, -1, axis=0))
        step //= 2
        wibble /= wibbledecay
    m -= m.min()
    return m / m.max()


def _clipped_zoom(layer: np.ndarray, factor: float) -> np.ndarray:
    """The centre ``1/factor`` of a 2-D layer, zoomed back (bilinear) to at least its size."""
    h, w = layer.shape
    ch, cw = math.ceil(h / factor), math.ceil(w / factor)
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = layer[top : top + ch, left : left + cw]
    return cv2.resize(crop, (round(cw * factor), round(ch * factor)), interpolation=cv2.INTER_LINEAR)[:h, :w]


# Each corruption: (uint8 H x W x 3 image, severity 1-5, rng) -> float image in [0, 255].

def gaussian_noise(x, s, rng):
    c = (0.08, 0.12, 0.18, 0.26, 0.38)[s - 1]
    return np.clip(_unit(x) + rng.normal(size=x.shape, scale=c), 0, 1) * 255


def defocus_blur(x, s, rng):
    radius, alias = ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5))[s - 1]
    return np.clip(cv2.filter2D(_unit(x), -1, _disk(radius, alias)), 0, 1) * 255


def motion_blur(x, s, rng):
    radius, sigma = ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15))[s - 1]
    return np.clip(_motion_blur(x.astype(np.float32), radius, sigma, rng.uniform(-45, 45)), 0, 255)


def snow(x, s, rng):
    loc, scale, zoom, thresh, radius, sigma, blend = (
        (0.1, 0.3, 3, 0.5, 10, 4, 0.8), (0.2, 0.3, 2, 0.5, 12, 4, 0.7), (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
        (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65), (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55))[s - 1]
    x = _unit(x)
    layer = _clipped_zoom(rng.normal(loc, scale, x.shape[:2]).astype(np.float32), zoom)
    layer[layer < thresh] = 0
    layer = _motion_blur(np.clip(layer, 0, 1), radius, sigma, rng.uniform(-135, -45))
    layer = (np.round(layer * 255).astype(np.uint8) / np.float32(255))[..., None]
    grey = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)[..., None]
    x = blend * x + (1 - blend) * np.maximum(x, grey * 1.5 + 0.5)
    return np.clip(x + layer + np.rot90(layer, k=2), 0, 1) * 255


def fog(x, s, rng):
    amount, decay = ((1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4))[s - 1]
    h, w = x.shape[:2]
    x = _unit(x)
    top = x.max()
    size = 1 << (max(h, w) - 1).bit_length()
    x = x + amount * plasma_fractal(rng, size, decay)[:h, :w, None]
    return np.clip(x * top / (top + amount), 0, 1) * 255


def brightness(x, s, rng):
    c = (0.1, 0.2, 0.3, 0.4, 0.5)[s - 1]
    hsv = cv2.cvtColor(_unit(x), cv2.COLOR_RGB2HSV)
    hsv[..., 2] = np.clip(hsv[..., 2] + c, 0, 1)
    return np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), 0, 1) * 255


def contrast(x, s, rng):
    c = (0.4, 0.3, 0.2, 0.1, 0.05)[s - 1]
    x = _unit(x)
    means = x.mean(axis=(0, 1), keepdims=True)
    return np.clip((x - means) * c + means, 0, 1) * 255


def jpeg_compression(x, s, rng):
    quality = (25, 18, 15, 10, 7)[s - 1]
    buf = io.BytesIO()
    Image.fromarray(x).save(buf, "JPEG", quality=quality)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"))


def pixelate(x, s, rng):
    c = (0.6, 0.5, 0.4, 0.3, 0.25)[s - 1]
    h, w = x.shape[:2]
    small = Image.fromarray(x).resize((int(w * c), int(h * c)), Image.BOX)
    return np.asarray(small.resize((w, h), Image.NEAREST))


#: The benchmark's corruptions, fixed before any training: weather, light, noise, blur and digital.
CORRUPTIONS: dict[str, Callable[[np.ndarray, int, np.random.Generator], np.ndarray]] = {
    "brightness": brightness, "contrast": contrast, "fog": fog, "snow": snow,
    "gaussian_noise": gaussian_noise, "motion_blur": motion_blur, "defocus_blur": defocus_blur,
    "jpeg_compression": jpeg_compression, "pixelate": pixelate,
}
CORRUPTION_NAMES = tuple(CORRUPTIONS)


def corrupt(image: np.ndarray, name: str, severity: int, seed: Seed = 0) -> np.ndarray:
    """``image`` (``H x W x 3`` uint8, sides >= 32) corrupted by ``name`` at ``severity`` 1-5;
    the same ``(image, name, severity, seed)`` always gives the same uint8 result."""
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; choose one of {', '.join(CORRUPTION_NAMES)}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be an integer from 1 to 5, got {severity!r}")
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 32:
        raise ValueError(f"corrupt needs an H x W x 3 uint8 image of at least 32x32, got {image.dtype} {image.shape}")
    out = CORRUPTIONS[name](np.ascontiguousarray(image), severity, np.random.default_rng(seed))
    return np.clip(out, 0, 255).astype(np.uint8)
