"""Inference on arbitrary user images: decode safely, predict, map back to the original size.

``load_image`` turns whatever a user drops in (path, bytes, file object, PIL image, array) into an
``H x W x 3`` uint8 RGB array: EXIF rotation applied, RGBA composited on white, grayscale / palette
/ CMYK / 16-bit converted, animated images reduced to their first frame, and anything that is not
a decodable image, or is larger than ``MAX_PIXELS``, refused with an ``ImageError`` whose message
can be shown to the user as is.

``predict(model, image)`` resizes the photo to the size the model was trained at (its config's
``input_size``; with ``None`` the native size, padded to a multiple of 32), runs it under
``torch.inference_mode()``, and maps the logits back to the original size. With ``tta="flip"``
the photo and its mirror image go through the model together and their class probabilities are
averaged (``scores``): twice the compute for a better mask.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from .models import SegmentationModel, model_device
from .palette import CLASS_NAMES
from .transforms import normalize

#: Largest image accepted, in pixels (about 8K x 5K); larger ones are refused, not resized.
MAX_PIXELS = 40_000_000
#: Up to this many output pixels the logits are upsampled bilinearly; above, the mask is
#: upsampled with NEAREST (the logits of a 40 MP image would need 3 GB).
MAX_LOGIT_PIXELS = 4_194_304
#: Test-time augmentation: ``"none"`` (one pass) or ``"flip"`` (the photo and its mirror image).
TTA_MODES = ("none", "flip")


class ImageError(ValueError):
    """The input is not an image we can segment; the message is meant for the user."""


def load_image(source, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode ``source`` to an ``H x W x 3`` uint8 RGB array, or raise ``ImageError``."""
    if isinstance(source, np.ndarray):
        return _from_array(source)
    if isinstance(source, Image.Image):
        return _from_pil(source, max_pixels)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ImageError("the file is empty")
        source = io.BytesIO(bytes(source))
    elif isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"{path} does not exist")
        if path.stat().st_size == 0:
            raise ImageError(f"{path.name} is empty")
    # Pillow's own bomb guard warns at MAX_IMAGE_PIXELS and raises at twice that; we check the
    # size ourselves from the header, before any pixel is decoded.
    try:
        with Image.open(source) as im:
            if im.width * im.height > max_pixels:
                raise ImageError(f"the image is {im.width}x{im.height}; the limit is {max_pixels / 1e6:.0f} megapixels")
            return _from_pil(im, max_pixels)
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageError(f"the image is too large; the limit is {max_pixels / 1e6:.0f} megapixels") from None
    except UnidentifiedImageError:
        raise ImageError("this file is not an image in a format we can read (JPEG, PNG, WebP, BMP, GIF, TIFF)") from None
    except Exception as err:  # noqa: BLE001 - a trust boundary: Pillow's decoders raise all sorts
        # (OSError, SyntaxError, TypeError, struct.error, ...) on corrupt files; found by fuzzing.
        raise ImageError(f"this image is corrupt or truncated and cannot be decoded ({type(err).__name__}: {err})") from None


def _from_pil(im: Image.Image, max_pixels: int) -> np.ndarray:
    if im.width * im.height > max_pixels:
        raise ImageError(f"the image is {im.width}x{im.height}; the limit is {max_pixels / 1e6:.0f} megapixels")
    if im.width == 0 or im.height == 0:
        raise ImageError("the image has no pixels")
    if getattr(im, "n_frames", 1) > 1:
        im.seek(0)  # animated GIF/WebP/APNG: segment the first frame
    im = ImageOps.exif_transpose(im)
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # Negative values would wrap around in uint8; float images in 0..1 are scaled like arrays.
        arr = np.nan_to_num(np.asarray(im, dtype=np.float64)).clip(0, None)
        top = arr.max() if arr.max() > 255 else (1.0 if im.mode == "F" and arr.max() <= 1 else 255.0)
        im = Image.fromarray((arr / top * 255).round().astype(np.uint8), mode="L")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, im)
    return np.asarray(im.convert("RGB")).copy()


def _from_array(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or 0 in arr.shape:
        raise ImageError(f"an image array must be HxW, HxWx3 or HxWx4, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and arr.max(initial=0) <= 1.0:
            arr = arr * 255
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr[..., :3])


def model_input(images: torch.Tensor, cfg) -> torch.Tensor:
    """A uint8 ``N x 3 x H x W`` batch normalised with ``cfg``'s mean/std and resized (bilinear,
    antialiased) to its ``input_size``; with ``input_size=None`` the size is kept."""
    x = normalize(images, cfg.mean, cfg.std)
    if cfg.input_size is not None and tuple(x.shape[-2:]) != tuple(cfg.input_size):
        x = F.interpolate(x, size=tuple(cfg.input_size), mode="bilinear", align_corners=False, antialias=True)
    return x


def single_input(image: np.ndarray, cfg) -> np.ndarray:
    """``model_input`` for one ``H x W x 3`` uint8 photo, computed with PIL and numpy: a
    ``3 x h x w`` float32 array equal to ``model_input`` to 1e-4, i.e. float rounding (PIL's float
    resize is the same antialiased bilinear filter as torch's ``antialias=True``; tested).

    Not torch, because the fast path runs OpenVINO next: when torch's OpenMP threads hand the CPU
    over to OpenVINO's pool, the three int8 models took 3-4 ms longer (measured on 2 cores: 111 ms
    against 107 ms), more than the resize itself (1 ms)."""
    mean = np.asarray(cfg.mean, np.float32).reshape(3, 1, 1) * 255
    scale = 1 / (np.asarray(cfg.std, np.float32).reshape(3, 1, 1) * 255)
    h, w = cfg.input_size or image.shape[:2]
    planes = [image[..., c].astype(np.float32) for c in range(3)]
    if (h, w) != image.shape[:2]:
        planes = [np.asarray(Image.fromarray(p, "F").resize((w, h), Image.BILINEAR)) for p in planes]
    return (np.stack(planes) - mean) * scale


def _prepare(image: np.ndarray, model: SegmentationModel, device) -> tuple[torch.Tensor, tuple[int, int] | None]:
    """Normalised ``1 x 3 x h x w`` input and, when padded, the crop to undo."""
    cfg = model.config
    x = torch.from_numpy(single_input(image, cfg)).unsqueeze(0).to(device)
    if cfg.input_size is not None:
        return x, None
    h, w = x.shape[-2:]
    ph, pw = (-h) % 32, (-w) % 32
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


def _check_tta(tta: str) -> None:
    if tta not in TTA_MODES:
        raise ValueError(f"unknown test-time augmentation {tta!r}; choose one of {TTA_MODES}")


def scores(model, x: torch.Tensor, tta: str = "none") -> torch.Tensor:
    """``N x C x h x w`` class scores of ``model`` for the normalised batch ``x``: the logits, or
    with ``tta="flip"`` the mean of the softmax probabilities of ``x`` and of its left-right
    mirror image, mirrored back (one forward pass on a batch of ``2N``). Flipping is the
    test-time augmentation of mmsegmentation's ``aug_test``; measured on val with the shipped
    U-Net (run 4): mIoU 0.4646 -> 0.4733, pixel accuracy 0.9009 -> 0.9036 (``train_cli.py eval --tta flip``)."""
    _check_tta(tta)
    if tta == "none":
        return model(x)
    n = len(x)
    probs = model(torch.cat([x, x.flip(-1)])).float().softmax(1)
    return (probs[:n] + probs[n:].flip(-1)) / 2


def classes(logits: torch.Tensor) -> torch.Tensor:
    """``N x H x W`` argmax over the classes of ``N x C x H x W`` logits. On the CPU, argmax over
    dim 1 of a contiguous NCHW tensor is ~10x slower than over channels-last memory (measured:
    24 ms against 2.6 ms for 19 x 256 x 512), so the logits are laid out channels-last first."""
    return logits.contiguous(memory_format=torch.channels_last).argmax(1)


def upsampled_classes(logits: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
    """``N x H x W`` class ids at ``out_hw``: the logits upsampled bilinearly (unless already that
    size), then the argmax."""
    if tuple(logits.shape[-2:]) != tuple(out_hw):
        logits = F.interpolate(logits.float(), size=tuple(out_hw), mode="bilinear", align_corners=False)
    return classes(logits)


def _mask(model, x: torch.Tensor, crop, out_hw: tuple[int, int], tta: str = "none") -> np.ndarray:
    """The ``H x W`` uint8 mask at ``out_hw``. Above ``MAX_LOGIT_PIXELS`` the classes are taken at
    the model's resolution and the mask is upsampled with NEAREST. A ``FastModel`` upsamples and
    takes the argmax (and the test-time augmentation) in its runtime."""
    big = out_hw[0] * out_hw[1] > MAX_LOGIT_PIXELS
    if crop is None and hasattr(model, "masks"):
        ids = model.masks(x, tuple(x.shape[-2:]) if big else out_hw, tta)[0]
    else:
        logits = scores(model, x, tta)
        if crop is not None:
            logits = logits[..., : crop[0], : crop[1]]
        ids = upsampled_classes(logits, logits.shape[-2:] if big else out_hw)[0]
    mask = ids.to(torch.uint8).cpu().numpy()
    if mask.shape == tuple(out_hw):
        return mask
    return np.asarray(Image.fromarray(mask).resize(out_hw[::-1], Image.NEAREST))


@torch.inference_mode()
def predict(model: SegmentationModel, image, tta: str = "none") -> np.ndarray:
    """The ``H x W`` uint8 mask of train ids for ``image`` (anything ``load_image`` accepts);
    ``tta`` is one of ``TTA_MODES``."""
    _check_tta(tta)
    rgb = load_image(image)  # for a contiguous HxWx3 uint8 array this is a no-copy pass-through
    model.eval()
    x, crop = _prepare(rgb, model, model_device(model))
    return _mask(model, x, crop, rgb.shape[:2], tta)



@dataclass
class Prediction:
    mask: np.ndarray  # H x W uint8 train ids
    seconds: float  # wall time of this model's forward pass and upsampling


@torch.inference_mode()
def predict_many(models: dict[str, SegmentationModel], image, tta: str = "none") -> dict[str, Prediction]:
    """Masks of several models for one image; the image is decoded and preprocessed once per
    distinct (input size, mean, std)."""
    _check_tta(tta)
    rgb = load_image(image)
    prepared: dict[tuple, tuple[torch.Tensor, tuple[int, int] | None]] = {}
    out = {}
    for name, model in models.items():
        model.eval()
        t0 = time.perf_counter()
        cfg = model.config
        device = model_device(model)
        key = (tuple(cfg.input_size) if cfg.input_size else None, cfg.mean, cfg.std, str(device))
        if key not in prepared:
            prepared[key] = _prepare(rgb, model, device)
        x, crop = prepared[key]
        mask = _mask(model, x, crop, rgb.shape[:2], tta)
        out[name] = Prediction(mask, time.perf_counter() - t0)
    return out


def class_shares(mask: np.ndarray, class_names: tuple[str, ...] = CLASS_NAMES) -> dict[str, float]:
    """Fraction of the mask's pixels per class, for the classes present, largest first."""
    counts = np.bincount(np.asarray(mask).ravel(), minlength=256)[: len(class_names)]
    total = counts.sum()
    if total == 0:
        return {}
    order = np.argsort(-counts)
    return {class_names[i]: float(counts[i] / total) for i in order if counts[i] > 0}
