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


# -- robustness ops: photometric (hue, gamma), aspect, and the camera degradations -----------------

from seg_core import degrade  # noqa: E402

CAMERA = dict(blur_p=1.0, noise_p=1.0, jpeg_p=1.0)


def _smooth(n: int = 2, h: int = 64, w: int = 64, seed: int = 0) -> torch.Tensor:
    """0..1 photos with structure at several scales (upsampled noise), as a JPEG encoder expects."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, h // 8, w // 8, generator=g)
    fine = torch.rand(n, 3, h, w, generator=g)
    return (0.8 * torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear") + 0.2 * fine).clamp(0, 1)


@pytest.mark.parametrize("device", DEVICES)
def test_camera_ops_change_the_photo_never_the_label(device):
    images, labels = _batch(n=6, h=64, w=96)
    images, labels = images.to(device), labels.to(device)
    aug = Augment(size=(64, 96), scale=(1.0, 1.0), hflip=False, brightness=0, contrast=0, saturation=0, **CAMERA)
    x, y = augment_batch(images, labels, aug, torch.Generator().manual_seed(0))
    assert torch.equal(y, labels.long())  # not blurred, not noised, not compressed
    assert x.device.type == device and x.shape == (6, 3, 64, 96)
    assert ((x - normalize(images)).abs().mean((1, 2, 3)) > 0.02).all()


def test_camera_ops_keep_the_ignore_padding():
    images, labels = _batch(n=8)
    labels = labels % 7
    aug = Augment(size=(64, 64), scale=(0.3, 0.5), aspect=0.5, hue=0.1, gamma=0.5, **CAMERA)
    x, y = augment_batch(images, labels, aug, torch.Generator().manual_seed(3))
    assert set(torch.unique(y).tolist()) <= set(range(7)) | {IGNORE_INDEX}
    assert ((y == IGNORE_INDEX).float().mean((1, 2)) >= 0.6).all()
    assert torch.isfinite(x).all()


def test_all_ops_are_reproducible_from_the_generator():
    images, labels = _batch()
    aug = Augment(size=(48, 48), hue=0.1, gamma=0.5, aspect=0.3, blur_p=0.5, noise_p=0.5, jpeg_p=0.5)
    x1, y1 = augment_batch(images, labels, aug, torch.Generator().manual_seed(7))
    x2, y2 = augment_batch(images, labels, aug, torch.Generator().manual_seed(7))
    x3, _ = augment_batch(images, labels, aug, torch.Generator().manual_seed(8))
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(x1, x3)


def test_ops_that_are_off_draw_nothing():
    # The old recipe's output does not change when the new ops exist but are off.
    images, labels = _batch()
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    augment_batch(images, labels, Augment(size=(32, 32)), g1)
    augment_batch(images, labels, Augment(size=(32, 32), blur_sigma=3, noise_std=0.2, jpeg_quality=(5, 6)), g2)
    assert torch.equal(torch.rand(4, generator=g1), torch.rand(4, generator=g2))


def test_hue_keeps_grays_and_a_full_turn_and_moves_colours():
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    gray = x.mean(1, keepdim=True).expand(-1, 3, -1, -1)
    m = __import__("seg_core.transforms", fromlist=["_hue_matrices"])._hue_matrices
    turn = m(torch.tensor([1.0, 0.0]))
    assert torch.allclose(torch.einsum("nij,njhw->nihw", turn, x), x, atol=1e-5)
    half = m(torch.tensor([0.5, 0.25]))
    assert torch.allclose(torch.einsum("nij,njhw->nihw", half, gray), gray, atol=1e-5)
    assert (torch.einsum("nij,njhw->nihw", half, x) - x).abs().mean() > 0.05
    no_hue = Augment(brightness=0, contrast=0, saturation=0)
    out = color_jitter(x, Augment(brightness=0, contrast=0, saturation=0, hue=0.5), torch.Generator().manual_seed(1))
    assert not torch.allclose(out, x, atol=1e-3)
    assert torch.allclose(color_jitter(x, no_hue, torch.Generator().manual_seed(1)), x)


def test_gamma_bends_the_midtones_and_keeps_black_and_white():
    x = torch.tensor([0.0, 0.25, 0.5, 1.0]).view(1, 1, 1, 4).expand(16, 3, 1, 4).contiguous()
    out = color_jitter(x, Augment(brightness=0, contrast=0, saturation=0, gamma=1.0), torch.Generator().manual_seed(0))
    assert torch.allclose(out[..., 0], x[..., 0]) and torch.allclose(out[..., 3], x[..., 3])
    mid = out[:, 0, 0, 2]
    assert (mid < 0.49).any() and (mid > 0.51).any()  # gamma above and below 1
    assert ((mid >= 0.5 ** 2 - 1e-6) & (mid <= 0.5 ** 0.5 + 1e-6)).all()  # gamma within [1/2, 2]


def test_aspect_jitter_zooms_x_and_y_differently():
    h = w = 128
    cols = (torch.arange(w) // 4 % 19).view(1, 1, w).expand(8, h, w).to(torch.uint8)
    images = torch.zeros(8, 3, h, w, dtype=torch.uint8)

    def run_lengths(labels, aspect):
        aug = Augment(size=(64, 64), scale=(1.0, 1.0), hflip=False, aspect=aspect)
        _, y = augment_batch(images, labels, aug, torch.Generator().manual_seed(0))
        return y

    def mean_run(y):  # along the last axis: pixels per label change
        return y.shape[-1] / ((y[..., 1:] != y[..., :-1]).float().sum(-1).mean(-1) + 1)

    zx = mean_run(run_lengths(cols, 0.5)[:, 0:1])
    zy = mean_run(run_lengths(cols.transpose(1, 2).contiguous(), 0.5).transpose(1, 2)[:, 0:1])
    assert ((zx / zy - 1).abs() > 0.05).any()  # some samples stretched
    assert (zx / zy).max() < 1.6 and (zx / zy).min() > 1 / 1.6  # within 1 + aspect, bar rounding
    same_x = mean_run(run_lengths(cols, 0.0)[:, 0:1])
    same_y = mean_run(run_lengths(cols.transpose(1, 2).contiguous(), 0.0).transpose(1, 2)[:, 0:1])
    assert torch.allclose(same_x, same_y, rtol=0.1)


def test_blur_kernels():
    delta = degrade.gaussian_kernels(torch.tensor([0.0]), 7)
    assert delta[0, 3, 3] == 1 and delta.sum() == 1
    g = degrade.gaussian_kernels(torch.tensor([1.5]), 9)
    assert torch.allclose(g.sum(), torch.tensor(1.0)) and torch.allclose(g[0], g[0].T)
    line = degrade.motion_kernels(torch.tensor([7.0]), torch.tensor([0.0]), 9)
    assert torch.allclose(line.sum(), torch.tensor(1.0))
    assert line[0, 4].sum() > 0.99 and (line[0, 4, 1:8] > 0).all()  # a horizontal streak 7 px long
    still = degrade.motion_kernels(torch.tensor([0.0]), torch.tensor([1.0]), 9)
    assert torch.allclose(still, degrade.gaussian_kernels(torch.tensor([0.0]), 9))


def test_blur_removes_detail_and_an_identity_kernel_does_not():
    x = _smooth()
    k = degrade.gaussian_kernels(torch.tensor([0.0, 2.0]), 11)
    out = degrade.blur(x, k)
    assert torch.allclose(out[0], x[0], atol=1e-6)

    def detail(t):
        return (t[..., 1:] - t[..., :-1]).abs().mean()

    assert detail(out[1]) < 0.5 * detail(x[1])
    # a horizontal streak removes horizontal detail, much less the vertical
    m = degrade.blur(x, degrade.motion_kernels(torch.tensor([9.0, 9.0]), torch.tensor([0.0, 0.0]), 11))
    horizontal = (m[..., 1:] - m[..., :-1]).abs().mean() / (x[..., 1:] - x[..., :-1]).abs().mean()
    vertical = (m[..., 1:, :] - m[..., :-1, :]).abs().mean() / (x[..., 1:, :] - x[..., :-1, :]).abs().mean()
    assert horizontal < 0.6 * vertical


def test_noise_has_the_asked_std():
    x = torch.full((2, 3, 64, 64), 0.5)
    out = degrade.gaussian_noise(x, torch.tensor([0.0, 0.05]), seed=1)
    assert torch.equal(out[0], x[0])
    assert abs(float((out[1] - x[1]).std()) - 0.05) < 0.003
    assert torch.equal(out, degrade.gaussian_noise(x, torch.tensor([0.0, 0.05]), seed=1))


def test_jpeg_matches_a_real_encoder():
    import io

    import numpy as np
    from PIL import Image

    x = _smooth(n=3, h=64, w=80)
    qualities = (10, 50, 95)
    ours = degrade.jpeg(x, torch.tensor(qualities, dtype=torch.float32))
    assert ours.shape == x.shape
    losses = []
    for i, q in enumerate(qualities):
        arr = (x[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=q, subsampling=2)
        pil = torch.from_numpy(np.array(Image.open(buf))).permute(2, 0, 1).float() / 255
        real_loss = (pil - x[i]).abs().mean()
        # The simulation is much closer to libjpeg's decode than the decode is to the original.
        assert (ours[i] - pil).abs().mean() < 0.35 * real_loss, q
        losses.append(float((ours[i] - x[i]).abs().mean()))
    assert losses[0] > losses[1] > losses[2]  # lower quality, more damage
