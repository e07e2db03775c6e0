"""seg_core.transforms: the batched joint photo/label augmentation."""

from __future__ import annotations

import pytest
import torch

from seg_core.config import IMAGENET_MEAN, IMAGENET_STD
from seg_core.palette import IGNORE_INDEX
from seg_core.transforms import Augment, augment_batch, color_jitter, normalize

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _batch(n: int = 4, h: int = 64, w: int = 64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, h, w), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 19, (n, h, w), generator=g, dtype=torch.uint8)
    labels[:, :5, :7] = IGNORE_INDEX
    return images, labels


def _identity(h: int, w: int, hflip: bool = False) -> Augment:
    return Augment(size=(h, w), scale=(1.0, 1.0), hflip=hflip, brightness=0.0, contrast=0.0, saturation=0.0)


def test_normalize():
    images = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    out = normalize(images)
    want = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(out[0, :, 0, 0], want)
    # 0..1 floats are not divided by 255 again
    assert torch.allclose(normalize(images.float() / 255), out)


@pytest.mark.parametrize("device", DEVICES)
def test_identity_settings_return_the_input(device):
    images, labels = _batch(h=64, w=96)
    images, labels = images.to(device), labels.to(device)
    x, y = augment_batch(images, labels, _identity(64, 96), torch.Generator().manual_seed(0))
    assert x.device.type == device and y.device.type == device
    assert x.shape == (4, 3, 64, 96) and x.dtype == torch.float32
    assert y.dtype == torch.long
    assert torch.allclose(x, normalize(images), atol=1e-4)
    assert torch.equal(y, labels.long())


def test_zoom_out_pads_labels_with_ignore_and_keeps_ids():
    images, labels = _batch(n=8)
    labels = labels % 7  # only ids 0..6 in the input, no ignore: every 255 out is padding
    aug = Augment(size=(64, 64), scale=(0.3, 0.5), hflip=True)
    x, y = augment_batch(images, labels, aug, torch.Generator().manual_seed(3))
    values = set(torch.unique(y).tolist())
    assert values <= set(range(7)) | {IGNORE_INDEX}
    assert len(values - {IGNORE_INDEX}) == 7  # the image content is still there, NEAREST-sampled
    # At zoom <= 0.5 the image covers at most a quarter of the crop: the rest is padding.
    pad = y == IGNORE_INDEX
    assert (pad.float().mean((1, 2)) >= 0.70).all()
    # The photo padding is the mean colour, i.e. zero after normalisation (bar a bilinear rim).
    zero = (x.abs() < 1e-6).all(1)
    assert (zero & pad).sum() > 0.9 * pad.sum()
    assert not zero[~pad].any()


def test_flip_really_mirrors():
    # One image repeated: with identity zoom/jitter each output is the input or its mirror.
    images, labels = _batch(n=1, h=32, w=48)
    images, labels = images.repeat(16, 1, 1, 1), labels.repeat(16, 1, 1)
    x, y = augment_batch(images, labels, _identity(32, 48, hflip=True), torch.Generator().manual_seed(0))
    plain, mirrored = normalize(images[:1]), torch.flip(normalize(images[:1]), dims=[3])
    flipped = []
    for i in range(16):
        is_plain = torch.allclose(x[i : i + 1], plain, atol=1e-4)
        is_mirror = torch.allclose(x[i : i + 1], mirrored, atol=1e-4)
        assert is_plain != is_mirror
        # the label goes with its photo
        want = torch.flip(labels[0], dims=[1]) if is_mirror else labels[0]
        assert torch.equal(y[i], want.long())
        flipped.append(is_mirror)
    assert any(flipped) and not all(flipped)


def test_no_flip_when_disabled():
    images, labels = _batch(n=16, h=32, w=32)
    x, y = augment_batch(images, labels, _identity(32, 32, hflip=False), torch.Generator().manual_seed(0))
    assert torch.equal(y, labels.long())


def test_same_seed_same_output_and_other_seed_differs():
    images, labels = _batch()
    aug = Augment(size=(48, 48))
    x1, y1 = augment_batch(images, labels, aug, torch.Generator().manual_seed(7))
    x2, y2 = augment_batch(images, labels, aug, torch.Generator().manual_seed(7))
    x3, y3 = augment_batch(images, labels, aug, torch.Generator().manual_seed(8))
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(x1, x3)
    assert x1.shape == (4, 3, 48, 48) and y1.shape == (4, 48, 48)


def test_crop_is_a_window_of_the_input():
    # Zoom 1, crop smaller than the image: the label crop is a contiguous window of the input.
    images, labels = _batch(n=2, h=64, w=64)
    aug = Augment(size=(32, 32), scale=(1.0, 1.0), hflip=False, brightness=0, contrast=0, saturation=0)
    _, y = augment_batch(images, labels, aug, torch.Generator().manual_seed(1))
    for i in range(2):
        found = any(
            torch.equal(y[i], labels[i, r : r + 32, c : c + 32].long()) for r in range(33) for c in range(33)
        )
        assert found


def test_color_jitter_stays_in_range_and_changes_pixels():
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    out = color_jitter(x, Augment(brightness=0.5, contrast=0.5, saturation=0.5), torch.Generator().manual_seed(1))
    assert out.min() >= 0 and out.max() <= 1
    assert not torch.allclose(out, x)
    same = color_jitter(x, Augment(brightness=0, contrast=0, saturation=0), torch.Generator().manual_seed(1))
    assert torch.allclose(same, x, atol=1e-6)
