"""Inference on arbitrary user images: decode safely, predict, map back to the original size.

``load_image`` turns whatever a user drops in (path, bytes, file object, PIL image, array) into an
``H x W x 3`` uint8 RGB array: EXIF rotation applied, RGBA composited on white, grayscale / palette
/ CMYK / 16-bit converted, animated images reduced to their first frame, and anything that is not
a decodable image, or is larger than ``MAX_PIXELS``, refused with an ``ImageError`` whose message
can be shown to the user as is.

``predict(runner, image)`` resizes the photo to the size the model was trained at (its config's
``input_size``; with ``None`` the native size, padded to a multiple of 32), runs it on any
``seg_core.runners.Runner``, and maps the scores back to the original size. With ``tta="flip"``
the photo and its mirror image go through the model together and their class probabilities are
averaged: twice the compute for a better mask. Photos travel as numpy arrays from decoding to mask.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from . import analysis
from .palette import CLASS_NAMES
from .registry import ENSEMBLE
from .runners import Runner, check_tta, upsampled_classes
from .transforms import normalize

#: Largest image accepted, in pixels (about 8K x 5K); larger ones are refused, not resized.
MAX_PIXELS = 40_000_000
#: Up to this many output pixels the logits are upsampled bilinearly; above, the mask is
#: upsampled with NEAREST (the logits of a 40 MP image would need 3 GB).
MAX_LOGIT_PIXELS = 4_194_304


class ImageError(ValueError):
    """The input is not an image we can segment; the message is meant for the user."""


def load_image(source, max_pixels: int = MAX_PIXELS, within: int | None = None) -> np.ndarray:
    """Decode ``source`` to an ``H x W x 3`` uint8 RGB array, or raise ``ImageError``.

    ``within``: a JPEG longer than that on its long side is decoded at a reduced scale (1/2, 1/4 or
    1/8: libjpeg's DCT scaling) that keeps its long side at least ``within``, for a photo shown
    (and segmented) at screen size: a 2048x1024 JPEG in a third of the time. Other formats, and
    arrays, come at full size; the caller shrinks the rest of the way (``seg_core.viz.fit_within``)."""
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
            if within is not None and im.format == "JPEG" and max(im.size) > within:  # (not MPO: seek() undoes it)
                s = within / max(im.size)
                im.draft(None, (max(1, math.ceil(im.width * s)), max(1, math.ceil(im.height * s))))
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


def _orientation(im: Image.Image) -> int:
    """A photo's EXIF orientation: 1 upright, 2-8 mirrored or turned (5-8 by a quarter)."""
    return im.getexif().get(ExifTags.Base.Orientation, 1)


def image_shape(data: bytes) -> tuple[int, int, int]:
    """The ``(H, W, 3)`` shape ``load_image(data)`` returns, from the file's header (the EXIF turn
    of a phone's photo included), without decoding it; raises ``ImageError`` as ``load_image``."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            if _orientation(im) in (5, 6, 7, 8):  # turned a quarter
                w, h = h, w
            return h, w, 3
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise ImageError(f"this file is not an image we can read ({type(err).__name__})") from None


def _from_pil(im: Image.Image, max_pixels: int) -> np.ndarray:
    if im.width * im.height > max_pixels:
        raise ImageError(f"the image is {im.width}x{im.height}; the limit is {max_pixels / 1e6:.0f} megapixels")
    if im.width == 0 or im.height == 0:
        raise ImageError("the image has no pixels")
    if getattr(im, "n_frames", 1) > 1:
        im.seek(0)  # animated GIF/WebP/APNG: segment the first frame
    if _orientation(im) in range(2, 9):  # a phone's turned photo
        im = ImageOps.exif_transpose(im)  # (it would copy an upright one)
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # Negative values would wrap around in uint8; float images in 0..1 are scaled like arrays.
        arr = np.nan_to_num(np.asarray(im, dtype=np.float64)).clip(0, None)
        top = arr.max() if arr.max() > 255 else (1.0 if im.mode == "F" and arr.max() <= 1 else 255.0)
        im = Image.fromarray((arr / top * 255).round().astype(np.uint8), mode="L")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, im)
    # One copy out of Pillow's buffer (convert() copies an RGB image too). A server's buffers are
    # fresh memory, so each copy also costs page faults: a 2048x1024 JPEG took 27 ms to decode in a
    # new process with the two copies, 19 ms without (13 ms once the memory is the process's).
    return np.array(im if im.mode == "RGB" else im.convert("RGB"))


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

    Not torch, because the default path runs OpenVINO next, and handing the CPU from torch's
    OpenMP threads to OpenVINO's pool costs more than the resize itself."""
    mean = np.asarray(cfg.mean, np.float32).reshape(3, 1, 1) * 255
    scale = 1 / (np.asarray(cfg.std, np.float32).reshape(3, 1, 1) * 255)
    h, w = cfg.input_size or image.shape[:2]

    def plane(c: int) -> np.ndarray:  # one float plane at a time: 160 MB each for a 40 MP photo, not 480
        p = image[..., c].astype(np.float32)
        return p if (h, w) == image.shape[:2] else np.asarray(Image.fromarray(p, "F").resize((w, h), Image.BILINEAR))

    return (np.stack([plane(c) for c in range(3)]) - mean) * scale


def prepare(image: np.ndarray, cfg) -> tuple[np.ndarray, tuple[int, int] | None]:
    """The ``1 x 3 x h x w`` model input of one photo and, for a model without a fixed input size,
    the ``(h, w)`` of the image inside the input padded to multiples of 32 (else ``None``)."""
    x = single_input(image, cfg)[None]
    if cfg.input_size is not None:
        return x, None
    h, w = x.shape[-2:]
    ph, pw = (-h) % 32, (-w) % 32
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (0, ph), (0, pw)), mode="reflect" if ph < h and pw < w else "edge")
    return x, (h, w)


def _to_size(mask: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    if mask.shape == tuple(out_hw):
        return mask
    return np.asarray(Image.fromarray(mask).resize(out_hw[::-1], Image.NEAREST))


def _mask(runner: Runner, x: np.ndarray, valid_hw, out_hw: tuple[int, int], tta: str,
          probabilities: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """The ``H x W`` uint8 mask at ``out_hw`` and, with ``probabilities``, the ``C x h x w`` class
    probabilities at the model's resolution (one pass of the network either way). Above
    ``MAX_LOGIT_PIXELS`` the classes are taken at the model's resolution and the mask is upsampled
    with NEAREST."""
    big = out_hw[0] * out_hw[1] > MAX_LOGIT_PIXELS
    target = tuple(valid_hw or x.shape[-2:]) if big else tuple(out_hw)
    if not probabilities:
        return _to_size(runner.masks(x, target, tta, valid_hw)[0], out_hw), None
    masks, probs = runner.masks_and_probabilities(x, target, tta, valid_hw)
    return _to_size(masks[0], out_hw), probs[0]


def predict(runner: Runner, image, tta: str = "none") -> np.ndarray:
    """The ``H x W`` uint8 mask of train ids for ``image`` (anything ``load_image`` accepts);
    ``tta`` is one of ``TTA_MODES``."""
    check_tta(tta)
    rgb = load_image(image)  # for a contiguous HxWx3 uint8 array this is a no-copy pass-through
    x, valid_hw = prepare(rgb, runner.config)
    return _mask(runner, x, valid_hw, rgb.shape[:2], tta)[0]


@dataclass
class Prediction:
    mask: np.ndarray  # H x W uint8 train ids
    seconds: float  # wall time of this model alone: forward pass, upsampling, argmax
    #: h x w float16 confidence in [0, 1] at the model's resolution (``seg_core.analysis.confidence``:
    #: the top-1 probability),
    #: when asked for; kept small so that caches of many scenes stay small.
    model_confidence: np.ndarray | None = None
    #: ``C x h x w`` float32 class probabilities at the model's resolution, when asked for: what an
    #: ensemble is mixed from later, without running the model again (``seg_core.serve`` lets them
    #: go once it is mixed).
    model_probabilities: np.ndarray | None = None

    @property
    def confidence(self) -> np.ndarray | None:
        """``H x W`` float32 confidence at the mask's size, upsampled bilinearly on each access."""
        if self.model_confidence is None:
            return None
        conf = self.model_confidence.astype(np.float32)
        if conf.shape != self.mask.shape:
            conf = np.asarray(Image.fromarray(conf, "F").resize(self.mask.shape[::-1], Image.BILINEAR))
        return np.clip(conf, 0.0, 1.0)


class Predictions(dict):
    """``{model name: Prediction}`` for one image, plus the time of the work the models share:
    decoding the image and preparing each distinct model input (resize, normalise)."""

    decode_seconds: float = 0.0
    prepare_seconds: float = 0.0



def predict_many(runners: dict[str, Runner], image, tta: str = "none", confidence: bool = False,
                 ensemble: dict[str, float] | None = None, names: Collection[str] | None = None,
                 probabilities: bool = False) -> Predictions:
    """Masks of several models for one image; the image is decoded once and prepared once per
    distinct (input size, mean, std), and those times are kept apart from each model's.

    ``confidence``: each prediction also gets its confidence map. ``ensemble`` (``{model name:
    weight}``): an ``"ensemble"`` entry is added, the mask of the weighted mean of those models'
    probabilities (``seg_core.analysis.ensemble_probabilities``), from the same passes.
    ``names``: the models whose masks are wanted (default: all); an ensemble member left out runs
    only its probabilities, at the model's resolution, and that time counts in the ensemble's.
    ``probabilities``: each prediction keeps its probabilities (model resolution), from the same
    pass, for ``ensemble_of`` later.
    """
    check_tta(tta)
    t0 = time.perf_counter()
    rgb = load_image(image)
    out = Predictions()
    out.decode_seconds = time.perf_counter() - t0
    prepared: dict[tuple, tuple[np.ndarray, tuple[int, int] | None]] = {}
    members = {n: w for n, w in (ensemble or {}).items() if n in runners and w > 0}
    probs = {}
    members_only = 0.0  # seconds of the passes run for the ensemble alone
    for name, runner in runners.items():
        cfg = runner.config
        key = (tuple(cfg.input_size) if cfg.input_size else None, cfg.mean, cfg.std)
        if key not in prepared:
            t0 = time.perf_counter()
            prepared[key] = prepare(rgb, cfg)
            out.prepare_seconds += time.perf_counter() - t0
        t0 = time.perf_counter()
        if names is not None and name not in names:
            if name in members:  # needed for the ensemble alone: no upsampling, no argmax
                probs[name] = _probabilities(runner, *prepared[key], tta)
                members_only += time.perf_counter() - t0
            continue
        mask, p = _mask(runner, *prepared[key], rgb.shape[:2], tta,
                        probabilities=confidence or probabilities or name in members)
        if name in members:
            probs[name] = p
        conf = analysis.confidence(p).astype(np.float16) if confidence else None
        out[name] = Prediction(mask, time.perf_counter() - t0, conf, p if probabilities else None)
    if members:
        out[ENSEMBLE] = _mix([probs[n] for n in members], list(members.values()), rgb.shape[:2], confidence)
        out[ENSEMBLE].seconds += members_only
    return out


def ensemble_of(preds: dict[str, Prediction], weights: dict[str, float], out_hw: tuple[int, int],
                confidence: bool = True) -> Prediction:
    """The ensemble's prediction from the probabilities the members' passes kept
    (``predict_many(probabilities=True)``): no model runs again; its ``seconds`` are the mixing."""
    return _mix([np.asarray(preds[n].model_probabilities, np.float32) for n in weights], list(weights.values()),
                out_hw, confidence)


def _mix(probs: list[np.ndarray], weights: list[float], out_hw: tuple[int, int], confidence: bool) -> Prediction:
    """The mask (and confidence) of the weighted mean of ``probs``, timed."""
    t0 = time.perf_counter()
    mixed = analysis.ensemble_probabilities(_same_size(probs), weights)
    mask = _mask_of_probabilities(mixed, out_hw)
    conf = analysis.confidence(mixed).astype(np.float16) if confidence else None
    return Prediction(mask, time.perf_counter() - t0, conf)


def _probabilities(runner: Runner, x: np.ndarray, valid_hw, tta: str) -> np.ndarray:
    """The ``C x h x w`` class probabilities at the model's resolution, cropped to ``valid_hw``."""
    probs = runner.probabilities(x, tta)[0]
    return probs if valid_hw is None else probs[:, : valid_hw[0], : valid_hw[1]]


def _same_size(probs: list[np.ndarray]) -> list[np.ndarray]:
    """Probability maps resized (bilinearly) to the largest of them, for models of other input sizes."""
    h, w = max(p.shape[-2:] for p in probs)
    return [p if p.shape[-2:] == (h, w) else
            F.interpolate(torch.from_numpy(p)[None], size=(h, w), mode="bilinear", align_corners=False)[0].numpy()
            for p in probs]


def _mask_of_probabilities(probs: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """The ``H x W`` uint8 argmax of ``C x h x w`` probabilities upsampled to ``out_hw`` (NEAREST
    above ``MAX_LOGIT_PIXELS``, as for a single model)."""
    big = out_hw[0] * out_hw[1] > MAX_LOGIT_PIXELS
    scores = torch.from_numpy(probs)[None]
    ids = upsampled_classes(scores, scores.shape[-2:] if big else out_hw)[0].to(torch.uint8).numpy()
    return _to_size(ids, out_hw)


def class_shares(mask: np.ndarray, class_names: tuple[str, ...] = CLASS_NAMES) -> dict[str, float]:
    """Fraction of the mask's pixels per class, for the classes present, largest first."""
    counts = np.bincount(np.asarray(mask).ravel(), minlength=256)[: len(class_names)]
    total = counts.sum()
    if total == 0:
        return {}
    order = np.argsort(-counts)
    return {class_names[i]: float(counts[i] / total) for i in order if counts[i] > 0}
