"""A drawn street scene, the one the benchmarks upload and the tests segment.

Sky, buildings with windows, trees, road and sidewalks, cars and a pole, blurred and with
sensor-like noise: something the models can segment, made here, so that no Cityscapes image is
needed or shipped (their licence forbids it). ``benchmarks/bench_page.py`` uploads it, and
``tests/test_shipped_weights.py`` checks the shipped int8 files on it.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def synthetic_street(width: int = 2048, height: int = 1024, seed: int = 0) -> np.ndarray:
    """A drawn street scene (sky, buildings, trees, road, sidewalk, cars, a pole): something the
    models can segment, made here, so that no Cityscapes image is needed or shipped."""
    rng = np.random.default_rng(seed)
    im = Image.new("RGB", (width, height))
    d = ImageDraw.Draw(im)
    horizon = int(height * 0.45)
    for y in range(horizon):  # sky, lighter towards the horizon
        t = y / horizon
        d.line([(0, y), (width, y)], fill=(int(110 + 90 * t), int(160 + 60 * t), int(220 + 20 * t)))
    x = 0
    while x < width:  # buildings with windows
        w = int(rng.integers(width // 12, width // 5))
        top = int(rng.integers(height // 10, horizon - height // 10))
        shade = int(rng.integers(70, 150))
        d.rectangle([x, top, x + w, horizon + height // 10], fill=(shade, shade - 5, shade - 10))
        for wy in range(top + 15, horizon, max(12, height // 30)):
            for wx in range(x + 10, x + w - 20, max(16, width // 60)):
                d.rectangle([wx, wy, wx + width // 160, wy + height // 80], fill=(40, 45, 60))
        x += w
    for _ in range(4):  # trees
        cx, cy, r = int(rng.integers(0, width)), horizon - int(rng.integers(0, height // 8)), int(rng.integers(height // 14, height // 7))
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(int(rng.integers(50, 90)), int(rng.integers(110, 150)), 50))
    d.rectangle([0, horizon + height // 10, width, height], fill=(128, 64, 128))  # road
    d.polygon([(0, horizon + height // 10), (width // 5, horizon + height // 10), (0, int(height * 0.8))], fill=(200, 190, 185))
    d.polygon([(width, horizon + height // 10), (width * 4 // 5, horizon + height // 10), (width, int(height * 0.8))], fill=(200, 190, 185))
    for k in range(3):  # cars
        cw, ch = width // 7, height // 8
        cx = int(width * (0.25 + 0.22 * k) + rng.integers(-width // 40, width // 40))
        cy = int(height * (0.62 + 0.06 * (k % 2)))
        colour = tuple(int(v) for v in rng.integers(20, 200, 3))
        d.rounded_rectangle([cx, cy, cx + cw, cy + ch], radius=ch // 4, fill=colour)
        d.rectangle([cx + cw // 5, cy - ch // 3, cx + cw * 4 // 5, cy + ch // 8], fill=tuple(max(0, c - 40) for c in colour))
        for wx in (cx + cw // 6, cx + cw * 5 // 6):
            d.ellipse([wx - ch // 5, cy + ch - ch // 5, wx + ch // 5, cy + ch + ch // 5], fill=(20, 20, 20))
    d.rectangle([int(width * 0.12), int(height * 0.2), int(width * 0.12) + width // 200, int(height * 0.75)], fill=(150, 150, 150))
    noise = rng.normal(0, 6, (height, width, 3))
    arr = np.asarray(im.filter(ImageFilter.GaussianBlur(1.2)), np.float32) + noise
    return arr.clip(0, 255).astype(np.uint8)


def jpeg(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=90)
    return buf.getvalue()
