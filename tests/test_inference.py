"""seg_core.inference: decoding whatever a user drops in, and predicting a mask of its size."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image
import torch.nn.functional as F
from torch import nn

from seg_core.config import ModelConfig
from seg_core.inference import ImageError, class_shares, image_shape, load_image, model_input, predict, predict_many, single_input
from seg_core.models import SegmentationNetwork, build_model
from seg_core.palette import CLASS_NAMES, IGNORE_INDEX
from seg_core.runners import TTA_MODES, TorchRunner, load_runner, upsampled_classes
from seg_core.transforms import normalize
from tests.conftest import ARCHS


@pytest.fixture(scope="module")
def unet() -> TorchRunner:
    torch.manual_seed(0)
    return TorchRunner(build_model(arch="unet", input_size=(64, 64)))


class Recorder(nn.Module):
    """A pointwise (1x1 conv) net that records the shape of every input it sees."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 19, 1)
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x):
        self.shapes.append(tuple(x.shape))
        return self.conv(x)


def _pointwise(input_size) -> TorchRunner:
    return TorchRunner(SegmentationNetwork(Recorder(), ModelConfig(input_size=input_size)))


def _photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _check_mask(mask: np.ndarray, hw: tuple[int, int]):
    assert mask.shape == hw and mask.dtype == np.uint8
    assert mask.max() < 19


def _png_header(w: int, h: int) -> bytes:
    """A tiny PNG that only *claims* to be ``w x h`` (1-bit): the header is all a bomb needs."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


# --- decoding ---------------------------------------------------------------------------------

RGB = _photo(24, 40)


@pytest.mark.parametrize(
    "name, make",
    [
        ("RGB", lambda: Image.fromarray(RGB)),
        ("RGBA", lambda: Image.fromarray(np.dstack([RGB, np.full((24, 40), 128, np.uint8)]))),
        ("L", lambda: Image.fromarray(RGB[..., 0])),
        ("P", lambda: Image.fromarray(RGB).convert("P", palette=Image.Palette.ADAPTIVE)),
        ("I;16", lambda: Image.fromarray((RGB[..., 0].astype(np.uint16) * 257))),
        ("CMYK", lambda: Image.fromarray(RGB).convert("CMYK")),
        ("1", lambda: Image.fromarray(RGB[..., 0] > 128)),
    ],
)
def test_load_image_modes(name, make):
    im = make()
    assert im.mode == name
    fmt = "JPEG" if name == "CMYK" else "PNG"
    for source in (im, _encode(im, fmt)):
        out = load_image(source)
        assert out.shape == (24, 40, 3) and out.dtype == np.uint8


def test_rgba_is_composited_on_white():
    rgba = np.zeros((4, 4, 4), np.uint8)  # fully transparent black
    rgba[0, 0] = (255, 0, 0, 255)  # one opaque red pixel
    out = load_image(_encode(Image.fromarray(rgba), "PNG"))
    assert out[0, 0].tolist() == [255, 0, 0]
    assert (out[1:] == 255).all()


def test_16_bit_uses_the_full_range():
    a = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    out = load_image(_encode(Image.fromarray(a), "PNG"))
    assert out.min() == 0 and out.max() == 255  # not clipped to white, not crushed to black
    assert len(np.unique(out[..., 0])) > 200


def test_float_and_signed_pil_images():
    # 32-bit float images in 0..1 are scaled like float arrays (not crushed to black) ...
    ramp = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    out = load_image(Image.fromarray(ramp))
    assert out.min() == 0 and out.max() == 255
    assert np.abs(out.astype(int) - load_image(ramp)).max() <= 1  # rounding vs truncation
    # ... and negative 32-bit integers clip to black instead of wrapping around in uint8.
    signed = Image.fromarray(np.arange(-32, 32, dtype=np.int32).reshape(8, 8) * 20)
    out = load_image(signed)[..., 0]
    assert (out[:4] == 0).all()  # the negative half
    assert (np.diff(out.ravel().astype(int)) >= 0).all()  # still monotone


def test_exif_rotation_is_applied():
    im = Image.fromarray(_photo(20, 40))  # 40 wide, 20 high as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    data = _encode(im, "JPEG", exif=exif.tobytes())
    out = load_image(data)
    assert out.shape == (40, 20, 3)


def _street_jpeg(w: int, h: int, orientation: int = 1) -> bytes:
    """A smooth photo (what DCT scaling keeps) as a JPEG, with an EXIF turn if asked."""
    y, x = np.mgrid[0:h, 0:w]
    photo = np.stack([x * 255 // w, y * 255 // h, (x + y) * 127 // (w + h)], -1).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _encode(Image.fromarray(photo), "JPEG", quality=90, exif=exif.tobytes())


@pytest.mark.parametrize("w, h, within, want_hw", [
    (2048, 1024, 1024, (512, 1024)),  # 1/2
    (4000, 3000, 1024, (1500, 2000)),  # 1/2: at 1/4 the long side would be under 1024
    (4096, 2048, 500, (256, 512)),  # 1/8
    (1500, 800, 1024, (800, 1500)),  # under twice as long: full size
    (900, 600, 1024, (600, 900)),  # already small
])
def test_load_image_within_decodes_a_jpeg_at_a_reduced_scale(w, h, within, want_hw):
    """``within``: a JPEG's long side at least ``within``, by a power of two, close to the full
    decode shrunk to that size (the photo a page shows)."""
    data = _street_jpeg(w, h)
    small = load_image(data, within=within)
    assert small.shape == (*want_hw, 3)
    full = load_image(data)
    shrunk = np.asarray(Image.fromarray(full).resize(small.shape[1::-1], Image.BOX))
    assert np.abs(small.astype(int) - shrunk).mean() < 2


def test_load_image_within_checks_the_full_size_before_a_reduced_decode():
    """A JPEG whose header announces 10000x6000 (60 MP, a few hundred bytes): refused by its full
    size, although at 1/8 it would be 1250x750 (the reduced size must not pass the limit)."""
    data = bytearray(_encode(Image.fromarray(_photo(16, 16)), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 6000, 10000)  # height, width
    with pytest.raises(ImageError, match="10000x6000; the limit is 40 megapixels"):
        load_image(bytes(data), within=1024)


def test_load_image_within_keeps_other_formats_and_turns_a_phone_photo():
    photo = _photo(600, 2400)
    assert load_image(_encode(Image.fromarray(photo), "PNG"), within=1024).shape == (600, 2400, 3)
    assert load_image(_street_jpeg(2400, 1000, orientation=6), within=1024).shape == (1200, 500, 3)


@pytest.mark.parametrize("make", [lambda: _street_jpeg(300, 120), lambda: _street_jpeg(300, 120, orientation=6),
                                  lambda: _encode(Image.fromarray(_photo(50, 70)), "PNG"),
                                  lambda: _encode(Image.fromarray(_photo(50, 70)).convert("L"), "WEBP")])
def test_image_shape_is_the_shape_load_image_returns(make):
    """From the header alone, a phone's EXIF turn included."""
    data = make()
    assert image_shape(data) == load_image(data).shape


def test_image_shape_refuses_what_is_not_an_image():
    with pytest.raises(ImageError):
        image_shape(b"certainly not an image")


def test_animated_gif_first_frame():
    frames = [Image.new("RGB", (16, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    out = load_image(buf.getvalue())
    assert out.shape == (8, 16, 3) and out[0, 0].tolist() == [255, 0, 0]


def test_paths_and_file_objects(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(RGB).save(path)
    assert np.array_equal(load_image(path), RGB)
    assert np.array_equal(load_image(str(path)), RGB)
    with open(path, "rb") as f:
        assert np.array_equal(load_image(f), RGB)


@pytest.mark.parametrize(
    "arr, hw",
    [
        (RGB[..., 0], (24, 40)),  # H x W
        (np.dstack([RGB, np.zeros((24, 40), np.uint8)]), (24, 40)),  # H x W x 4
        (RGB.astype(np.float32) / 255, (24, 40)),  # 0..1 floats
        (RGB.astype(np.float64), (24, 40)),  # 0..255 floats
        (RGB.astype(np.int32) * 2 - 100, (24, 40)),  # out-of-range ints are clipped
    ],
)
def test_arrays(arr, hw):
    out = load_image(arr)
    assert out.shape == (*hw, 3) and out.dtype == np.uint8


def test_float_array_scaling():
    assert np.abs(load_image(RGB.astype(np.float32) / 255).astype(int) - RGB).max() <= 1


@pytest.mark.parametrize("shape", [(0, 5, 3), (5, 5, 2), (5, 5, 3, 1), (7,)])
def test_bad_arrays(shape):
    with pytest.raises(ImageError, match="shape"):
        load_image(np.zeros(shape, np.uint8))


def _truncated_jpeg() -> bytes:
    data = _encode(Image.fromarray(_photo(64, 64)), "JPEG", quality=90)
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"hello, this is just some text\n" * 10, "not an image"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect/></svg>', "not an image"),
        (b"<!DOCTYPE html><html><body>hi</body></html>", "not an image"),
        (_truncated_jpeg(), "corrupt or truncated"),
        (_png_header(50000, 50000), "too large|limit"),  # Pillow's own bomb guard trips first
        (_png_header(7000, 7000), "7000x7000; the limit is 40 megapixels"),  # our header check
    ],
)
def test_bad_bytes(data, message):
    with pytest.raises(ImageError, match=message):
        load_image(data)


def test_bad_files(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        load_image(empty)
    with pytest.raises(ImageError, match="does not exist"):
        load_image(tmp_path / "nope.jpg")
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header(50000, 50000))
    with pytest.raises(ImageError):
        load_image(bomb)


def test_max_pixels_is_checked_before_decoding():
    with pytest.raises(ImageError, match="limit"):
        load_image(_encode(Image.fromarray(_photo(64, 64)), "PNG"), max_pixels=1000)
    with pytest.raises(ImageError, match="limit"):
        load_image(Image.new("RGB", (64, 64)), max_pixels=1000)


# --- predicting -------------------------------------------------------------------------------


@pytest.mark.parametrize("hw", [(64, 64), (37, 91), (1, 1), (1, 200), (128, 48)])
def test_predict_any_size(unet, hw):
    _check_mask(predict(unet, _photo(*hw)), hw)


@pytest.mark.parametrize("mode", ["RGBA", "L", "P", "I;16", "CMYK"])
def test_predict_any_mode(unet, mode):
    im = Image.fromarray(_photo(37, 91))
    im = {
        "RGBA": lambda: im.convert("RGBA"),
        "L": lambda: im.convert("L"),
        "P": lambda: im.convert("P", palette=Image.Palette.ADAPTIVE),
        "I;16": lambda: Image.fromarray(np.asarray(im.convert("L")).astype(np.uint16) * 200),
        "CMYK": lambda: im.convert("CMYK"),
    }[mode]()
    assert im.mode == mode
    _check_mask(predict(unet, _encode(im, "JPEG" if mode == "CMYK" else "PNG")), (37, 91))


def test_predict_exif_rotated_jpeg(unet):
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _encode(Image.fromarray(_photo(30, 50)), "JPEG", exif=exif.tobytes())
    _check_mask(predict(unet, data), (50, 30))


@pytest.mark.parametrize("arr", [RGB[..., 0], np.dstack([RGB, RGB[..., :1]]), RGB / 255.0])
def test_predict_arrays(unet, arr):
    _check_mask(predict(unet, arr), (24, 40))


def test_predict_non_contiguous_arrays(unet):
    # A BGR->RGB flip (``img[..., ::-1]``) has negative strides; a crop is not contiguous either.
    bgr = _photo(40, 60, seed=5)
    rgb = np.ascontiguousarray(bgr[..., ::-1])
    assert np.array_equal(predict(unet, bgr[..., ::-1]), predict(unet, rgb))
    big = _photo(80, 120, seed=6)
    assert np.array_equal(predict(unet, big[10:50, 20:80]), predict(unet, big[10:50, 20:80].copy()))


def test_predict_empty_array(unet):
    with pytest.raises(ImageError):
        predict(unet, np.zeros((0, 10, 3), np.uint8))


def test_predict_resizes_to_the_input_size():
    model = _pointwise((64, 96))
    predict(model, _photo(37, 91))
    assert model.model.net.shapes == [(1, 3, 64, 96)]


@pytest.mark.parametrize("hw", [(37, 91), (64, 64), (1, 1), (33, 2)])
def test_native_size_pads_to_32_and_crops_back(hw):
    model = _pointwise(None)
    image = _photo(*hw)
    mask = predict(model, image)
    h, w = hw
    assert model.model.net.shapes == [(1, 3, -(-h // 32) * 32, -(-w // 32) * 32)]  # padded, not resized
    _check_mask(mask, hw)
    # A pointwise net: the cropped prediction must be the prediction of the unpadded pixels.
    with torch.no_grad():
        x = normalize(torch.from_numpy(image).permute(2, 0, 1)[None])
        want = model.model.net.conv(x).argmax(1)[0].numpy()
    assert np.array_equal(mask, want)


@pytest.mark.parametrize("hw", [(256, 512), (1024, 2048), (37, 91), (300, 200), (64, 64), (1, 1)])
def test_single_input_equals_the_batched_torch_input(hw):
    """The per-upload PIL/numpy preprocessing equals ``model_input`` (torch, antialiased) when
    shrinking, enlarging or keeping the size."""
    image = _photo(*hw, seed=1)
    for size in [(64, 64), (64, 96), None]:
        cfg = ModelConfig(arch="unet", input_size=size, mean=(0.3, 0.4, 0.5), std=(0.2, 0.25, 0.3))
        want = model_input(torch.from_numpy(image).permute(2, 0, 1)[None], cfg)[0].numpy()
        got = single_input(image, cfg)
        assert got.dtype == np.float32 and got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-4)  # one grey level is 0.02 here


def test_predict_is_deterministic(unet):
    image = _photo(50, 70, seed=3)
    assert np.array_equal(predict(unet, image), predict(unet, image))


def test_predict_many(weights_dir):
    models = {arch: load_runner(weights_dir / f"{arch}.safetensors", arch=arch) for arch in ARCHS}
    image = _encode(Image.fromarray(_photo(45, 77)), "PNG")
    out = predict_many(models, image)
    assert list(out) == list(ARCHS)
    # the shared decode and resize are timed once, apart from each model
    assert out.decode_seconds > 0 and out.prepare_seconds > 0
    for name, pred in out.items():
        _check_mask(pred.mask, (45, 77))
        assert pred.seconds > 0
        # the same mask as predicting with that model alone
        assert np.array_equal(pred.mask, predict(models[name], image))
    with pytest.raises(ImageError):
        predict_many(models, b"not an image")


def test_flip_tta_of_a_pointwise_net_is_its_plain_mask():
    """A 1x1-conv net commutes with mirroring, so averaging over the mirror image (flipped back)
    changes nothing; a photo that is not symmetric catches a flip left undone. (At the native
    size: no resizing, whose interpolation of probabilities instead of logits could move an argmax.)"""
    model = _pointwise(None)
    image = _photo(40, 60, seed=7)
    assert not np.array_equal(image, image[:, ::-1])
    assert np.array_equal(predict(model, image, tta="flip"), predict(model, image))


def test_flip_tta_averages_the_probabilities_of_photo_and_mirror_image(unet):
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        net = unet.model
        expected = (net(x).softmax(1) + net(x.flip(-1)).softmax(1).flip(-1)) / 2
        got = torch.from_numpy(unet.probabilities(x.numpy(), "flip"))
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(torch.from_numpy(unet.probabilities(x.numpy())), net(x).softmax(1), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(torch.from_numpy(unet.logits(x.numpy())), net(x), atol=1e-5, rtol=1e-4)
        # the mask predict gives is the argmax of those probabilities, upsampled to the photo
        image = _photo(64, 96, seed=2)
        x1 = model_input(torch.from_numpy(image).permute(2, 0, 1)[None], unet.config)
        want = upsampled_classes(torch.from_numpy(unet.probabilities(x1.numpy(), "flip")), (64, 96))[0].numpy()
    assert (predict(unet, image, tta="flip") == want).mean() >= 0.999
    out = predict_many({"unet": unet}, image, tta="flip")
    assert np.array_equal(out["unet"].mask, predict(unet, image, tta="flip"))


@pytest.mark.parametrize("call", [lambda m, im: predict(m, im, tta="vertical"),
                                  lambda m, im: predict_many({"u": m}, im, tta="multiscale"),
                                  lambda m, im: m.probabilities(np.zeros((1, 3, 64, 64), np.float32), "FLIP"),
                                  lambda m, im: m.masks(np.zeros((1, 3, 64, 64), np.float32), (64, 64), "FLIP")])
def test_unknown_tta_is_refused(unet, call):
    with pytest.raises(ValueError, match="unknown test-time augmentation"):
        call(unet, _photo(16, 16))
    assert TTA_MODES == ("none", "flip")


def test_class_shares():
    mask = np.array([[0, 0, 0, 13], [13, 2, IGNORE_INDEX, IGNORE_INDEX]], dtype=np.uint8)
    shares = class_shares(mask)
    assert list(shares) == ["road", "car", "building"]  # largest first, only present classes
    assert shares == pytest.approx({"road": 0.5, "car": 2 / 6, "building": 1 / 6})
    assert sum(shares.values()) == pytest.approx(1.0)
    assert class_shares(np.full((3, 3), IGNORE_INDEX, np.uint8)) == {}


def test_class_shares_of_a_prediction(unet):
    shares = class_shares(predict(unet, _photo(40, 60)))
    assert shares and set(shares) <= set(CLASS_NAMES)
    assert sum(shares.values()) == pytest.approx(1.0)


def _interpolated_ids(scores: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
    """The definition: every channel upsampled bilinearly, then the first argmax."""
    return F.interpolate(scores, size=out_hw, mode="bilinear", align_corners=False).argmax(1)


@pytest.mark.parametrize("shape, out_hw", [((1, 19, 32, 32), (64, 128)), ((2, 19, 24, 40), (97, 131)),
                                           ((3, 5, 7, 9), (50, 61)), ((1, 4, 1, 1), (4, 6)), ((1, 3, 5, 1), (11, 7))])
def test_upsampled_classes_equal_the_argmax_of_the_upsampled_scores(shape, out_hw):
    """Scores in regions (a smooth field, as a network's are): every id is the one of
    ``F.interpolate`` then argmax, also with a batch, odd scales and one-pixel sides."""
    g = torch.Generator().manual_seed(sum(shape) + sum(out_hw))
    field = F.interpolate(torch.randn(shape[0], shape[1], 3, 3, generator=g), size=shape[2:], mode="bilinear")
    scores = 4 * field + 0.05 * torch.randn(shape, generator=g)
    got = upsampled_classes(scores, out_hw)
    assert got.shape == (shape[0], *out_hw)
    assert torch.equal(got.long(), _interpolated_ids(scores, out_hw))


def test_upsampled_classes_differ_only_at_float_ties_on_noise():
    """Pure noise puts class boundaries everywhere (every pixel is blended): the ids may differ
    from ``F.interpolate``'s only where two classes' blended scores tie to float rounding."""
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(2, 19, 64, 96, generator=g)
    out_hw = (300, 401)
    got, want = upsampled_classes(scores, out_hw).long(), _interpolated_ids(scores, out_hw)
    differ = (got != want).nonzero()
    assert len(differ) <= 1e-4 * got.numel()
    up = F.interpolate(scores, size=out_hw, mode="bilinear", align_corners=False)
    for b, y, x in differ.tolist():
        a, c = up[b, want[b, y, x], y, x], up[b, got[b, y, x], y, x]
        assert abs(a - c) <= 1e-5 * max(1.0, abs(a))


def test_upsampled_classes_keep_the_size_and_shrink_as_before():
    """Same size: the argmax; a smaller size (a photo smaller than the model's input): as before."""
    scores = torch.randn(1, 19, 16, 24, generator=torch.Generator().manual_seed(1))
    assert torch.equal(upsampled_classes(scores, (16, 24)).long(), scores.argmax(1))
    assert torch.equal(upsampled_classes(scores, (9, 10)).long(), _interpolated_ids(scores, (9, 10)))
