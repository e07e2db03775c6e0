"""The nine corruptions: shape and dtype kept, distortion growing with the severity, seeded
reproducibility, and one value per corruption worked out from its published formula."""

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from seg_core.corruptions import (CORRUPTION_NAMES, SEVERITIES, _disk, corrupt, motion_kernel,
                                  plasma_fractal)

BLURS = ("motion_blur", "defocus_blur", "pixelate")


def scene(h=96, w=128, seed=1) -> np.ndarray:
    """A street-like test image: a sky-to-road gradient, blocks of colour and fine texture."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, h)[:, None, None]
    img = 60 + 120 * y * np.array([0.8, 1.0, 1.2]) + np.zeros((h, w, 3))
    for _ in range(12):
        top, left = rng.integers(0, h - 16), rng.integers(0, w - 16)
        img[top : top + rng.integers(6, 24), left : left + rng.integers(6, 24)] = rng.uniform(20, 235, 3)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def sharpness(a: np.ndarray) -> float:
    grey = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(np.abs(cv2.Laplacian(grey, cv2.CV_32F)).mean())


@pytest.mark.parametrize("name", CORRUPTION_NAMES)
def test_shape_dtype_and_seed(name):
    x = scene()
    a, b = corrupt(x, name, 3, seed=7), corrupt(x, name, 3, seed=7)
    assert a.shape == x.shape and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, x)
    if name in ("gaussian_noise", "fog", "snow", "motion_blur"):  # the random ones
        assert not np.array_equal(a, corrupt(x, name, 3, seed=8))


@pytest.mark.parametrize("name", CORRUPTION_NAMES)
def test_severity_monotone(name):
    """Blurs lose sharpness (mean |Laplacian|) with each severity; every other corruption moves
    further from the clean image (mean absolute difference), over four seeds: the published snow
    parameters make severity 3 only ~2 % further than 2 (sparser but bigger flakes)."""
    x = scene(256, 256)
    measure = []
    for s in SEVERITIES:
        outs = [corrupt(x, name, s, seed=k) for k in range(4)]
        measure.append(np.mean([-sharpness(o) if name in BLURS else np.abs(o.astype(float) - x).mean() for o in outs]))
    assert all(a < b for a, b in zip(measure, measure[1:])), measure


def test_bad_input_is_one_sentence():
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(scene(), "frost", 1)
    with pytest.raises(ValueError, match="severity"):
        corrupt(scene(), "fog", 6)
    with pytest.raises(ValueError, match="uint8"):
        corrupt(scene().astype(np.float32), "fog", 1)


# Known values, worked out from each formula.

def test_gaussian_noise_value():
    x = scene()
    noise = np.random.default_rng(5).normal(size=x.shape, scale=0.08)
    want = (np.clip(x / 255 + noise, 0, 1) * 255).astype(np.uint8)
    got = corrupt(x, "gaussian_noise", 1, seed=5)
    assert np.abs(got.astype(int) - want).max() <= 1  # float32 vs float64 at the truncation


def test_brightness_value():
    # Grey 100: V = 100/255 + 0.1 -> 125.5, truncated to 125; grey stays grey.
    got = corrupt(np.full((40, 40, 3), 100, np.uint8), "brightness", 1)
    assert set(np.unique(got)) <= {125, 126} and (got == 125).mean() > 0.99


def test_contrast_value():
    # Halves of 50 and 150: mean 100; at factor 0.4 -> 80 and 120.
    x = np.full((40, 40, 3), 50, np.uint8)
    x[:, 20:] = 150
    got = corrupt(x, "contrast", 1)
    assert np.all(np.abs(got[:, :20].astype(int) - 80) <= 1) and np.all(np.abs(got[:, 20:].astype(int) - 120) <= 1)


def test_fog_value():
    # A white image: (1 + 1.5 p) / 2.5 with p in [0, 1] spans 0.4 .. 1, i.e. 102 .. 255.
    got = corrupt(np.full((64, 64, 3), 255, np.uint8), "fog", 1, seed=2)
    assert abs(int(got.min()) - 102) <= 1 and got.max() == 255
    p = plasma_fractal(np.random.default_rng(0), 64, 2)
    assert p.min() == 0 and p.max() == 1


def test_snow_value():
    # A black image where no flake falls: (1 - 0.8) * 0.5 = 0.1 -> 25.5, truncated to 25.
    got = corrupt(np.zeros((64, 64, 3), np.uint8), "snow", 1, seed=0)
    assert got.min() == 25 and got.max() > 100


def test_blur_kernels_keep_flat_images():
    assert _disk(3, 0.1).sum() == pytest.approx(1, abs=1e-5)
    assert motion_kernel(10, 3).sum() == pytest.approx(1)
    assert motion_kernel(10, 3)[0] == motion_kernel(10, 3).max()  # one-sided: the current frame weighs most
    flat = np.full((48, 48, 3), 77, np.uint8)
    for name in ("defocus_blur", "motion_blur"):
        assert np.abs(corrupt(flat, name, 5).astype(int) - 77).max() <= 1


def test_jpeg_value():
    x = scene()
    buf = io.BytesIO()
    Image.fromarray(x).save(buf, "JPEG", quality=7)
    assert np.array_equal(corrupt(x, "jpeg_compression", 5), np.asarray(Image.open(buf).convert("RGB")))


def test_pixelate_value():
    # Severity 5 keeps a quarter of each side: 32x32 blocks of 4x4 equal pixels for a 128x128 image.
    x = scene(128, 128)
    got = corrupt(x, "pixelate", 5)
    blocks = got.reshape(32, 4, 32, 4, 3)
    assert np.all(blocks == blocks[:, :1, :, :1])
    assert got[:4, :4].mean(axis=(0, 1)) == pytest.approx(x[:4, :4].mean(axis=(0, 1)), abs=1)
