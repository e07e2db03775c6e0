"""What every runner shares: the ``Runner`` protocol, ``RunnerError``, the metadata keys of an
exported file, and the torch helpers behind masks and probabilities (``TorchOps``: from a backend's
logits to masks, softmax, mirror-image averaging). The backends: ``torch_runner``, ``onnx_runner``,
``openvino_runner``; ``seg_core.runners`` picks one for a file."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from ..config import TTA_MODES, ModelConfig

INPUT_NAME, OUTPUT_NAME = "image", "logits"
#: Suffixes of exported files, most preferred first (``weights/<name><suffix>``).
EXPORT_SUFFIXES = (".int8.xml", ".xml", ".int8.onnx", ".onnx")
META_KEYS = ("config", "source_sha256", "precision", "parameters", "calibration")


class RunnerError(ValueError):
    """An exported model file is missing, malformed, or its runtime is not installed."""


@runtime_checkable
class Runner(Protocol):
    """What every backend provides; see the module docstring."""

    config: ModelConfig
    path: Path | None
    label: str
    num_parameters: int
    file_bytes: int

    def logits(self, x) -> np.ndarray: ...

    def probabilities(self, x, tta: str = "none") -> np.ndarray: ...

    def masks(self, x, out_hw: tuple[int, int], tta: str = "none",
              valid_hw: tuple[int, int] | None = None) -> np.ndarray: ...

    def masks_and_probabilities(self, x, out_hw: tuple[int, int], tta: str = "none",
                                valid_hw: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]: ...


def check_tta(tta: str) -> None:
    if tta not in TTA_MODES:
        raise ValueError(f"unknown test-time augmentation {tta!r}; choose one of {TTA_MODES}")


def classes(scores: torch.Tensor) -> torch.Tensor:
    """``N x H x W`` argmax over the classes of ``N x C x H x W`` scores, taken channels-last:
    on the CPU, argmax over dim 1 of a contiguous NCHW tensor is about 10x slower."""
    return scores.contiguous(memory_format=torch.channels_last).argmax(1)


def upsampled_classes(scores: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
    """``N x H x W`` class ids at ``out_hw``: the argmax of the scores upsampled bilinearly
    (``F.interpolate``, ``align_corners=False``; unless already that size).

    On the CPU only the pixels that need it are blended (``_blended_classes``): the same ids, a
    4-5x shorter time for 256x256 scores shown at 1024x512 (docs/page_speed.md)."""
    if tuple(scores.shape[-2:]) == tuple(out_hw):
        return classes(scores)
    if scores.device.type == "cpu" and out_hw[0] * out_hw[1] > scores.shape[-2] * scores.shape[-1]:
        return _blended_classes(scores.float(), tuple(out_hw))
    return classes(F.interpolate(scores.float(), size=tuple(out_hw), mode="bilinear", align_corners=False))


def _source_pixels(out: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each of ``out`` output pixels along one axis, its two source pixels out of ``size`` and
    the second one's weight, computed as ``F.interpolate`` does (float32, half-pixel centres,
    clamped at the edges)."""
    src = ((torch.arange(out, dtype=torch.float32) + 0.5) * (torch.tensor(float(size)) / out) - 0.5).clamp_(min=0)
    first = src.long().clamp_(max=size - 1)
    return first.numpy(), (first + 1).clamp_(max=size - 1).numpy(), (src - first).clamp_(0, 1).numpy()


def _blended_classes(scores: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
    """``upsampled_classes`` without upsampling every channel of every pixel. An output pixel blends
    four source pixels with weights >= 0 that sum to 1; where the four have the same top class
    (the first one, as argmax takes), so has the blend (for each other class, a blend of smaller or
    equal scores, with the lower ids strictly smaller). Those pixels take that class; the others,
    between sources of different classes (6-10% of a street scene's), are blended in the order of
    ``F.interpolate``'s CPU kernel, so the ids are the same (tested).

    In NumPy, on one thread: a server shares its cores (other sessions, a browser on the same
    machine), and torch's two threads then wait for each other (``benchmarks/bench_busy_core.py``,
    one core busy: 29 ms median and 156 ms worst in torch, 19.5 and 25.5 ms here)."""
    n, c, h, w = scores.shape
    pixels = np.ascontiguousarray(scores.detach().numpy().transpose(0, 2, 3, 1))  # N x h x w x C: each pixel's scores side by side
    ids = pixels.argmax(-1).astype(np.uint8 if c <= 256 else np.int64)
    right = np.concatenate([ids[..., 1:], ids[..., -1:]], -1)  # the far edge repeated, as the clamp does
    below = np.concatenate([ids[:, 1:], ids[:, -1:]], 1)
    corner = np.concatenate([right[:, 1:], right[:, -1:]], 1)
    mixed = (ids != right) | (ids != below) | (ids != corner)  # a source pixel starting a 2x2 of several classes
    y0, y1, wy = _source_pixels(out_hw[0], h)
    x0, x1, wx = _source_pixels(out_hw[1], w)
    out = ids[:, y0][:, :, x0]
    b, ys, xs = np.nonzero(mixed[:, y0][:, :, x0])
    fy, fx = wy[ys, None], wx[xs, None]
    top, bottom, left, rgt = y0[ys], y1[ys], x0[xs], x1[xs]
    blend = ((pixels[b, top, left] * (1 - fx) + pixels[b, top, rgt] * fx) * (1 - fy)
             + (pixels[b, bottom, left] * (1 - fx) + pixels[b, bottom, rgt] * fx) * fy)
    out[b, ys, xs] = blend.argmax(1)
    return torch.from_numpy(out)


def model_files(path: str | Path) -> tuple[Path, ...]:
    """The files a model is read from: an OpenVINO ``.xml`` comes with its ``.bin`` (the weights)."""
    path = Path(path)
    return (path, path.with_suffix(".bin")) if path.suffix == ".xml" else (path,)


def model_file_bytes(path: str | Path | None) -> int:
    """Size on disk of a model file; an OpenVINO ``.xml`` counts with its ``.bin``."""
    if path is None:
        return 0
    return sum(p.stat().st_size for p in model_files(path) if p.is_file())


class TorchOps:
    """Masks and probabilities computed in torch from a backend's ``_logits`` (PyTorch, ONNX
    Runtime, and OpenVINO when the image was padded)."""

    config: ModelConfig

    def _logits(self, x) -> torch.Tensor:
        raise NotImplementedError

    def logits(self, x) -> np.ndarray:
        return self._logits(x).float().cpu().numpy()

    def _scores(self, x, tta: str) -> torch.Tensor:
        """The logits, or with ``tta="flip"`` the mean of the softmax of ``x`` and of its mirror
        image, mirrored back (one pass on a batch of 2N; mmsegmentation's flip ``aug_test``)."""
        check_tta(tta)
        if tta == "none":
            return self._logits(x)
        x = torch.as_tensor(x)
        n = len(x)
        probs = self._logits(torch.cat([x, x.flip(-1)])).float().softmax(1)
        return (probs[:n] + probs[n:].flip(-1)) / 2

    def probabilities(self, x, tta: str = "none") -> np.ndarray:
        scores = self._scores(x, tta).float()
        return (scores.softmax(1) if tta == "none" else scores).cpu().numpy()

    def masks(self, x, out_hw, tta="none", valid_hw=None) -> np.ndarray:
        scores = self._scores(x, tta)
        if valid_hw is not None:
            scores = scores[..., : valid_hw[0], : valid_hw[1]]
        return upsampled_classes(scores, out_hw).to(torch.uint8).cpu().numpy()

    def masks_and_probabilities(self, x, out_hw, tta="none", valid_hw=None) -> tuple[np.ndarray, np.ndarray]:
        """The masks of ``masks`` and the probabilities of ``probabilities`` (cropped to
        ``valid_hw``), from one pass of the network."""
        scores = self._scores(x, tta).float()
        if valid_hw is not None:
            scores = scores[..., : valid_hw[0], : valid_hw[1]]
        probs = scores.softmax(1) if tta == "none" else scores
        return upsampled_classes(scores, out_hw).to(torch.uint8).cpu().numpy(), probs.cpu().numpy()


def as_input(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):  # an evaluation batch prepared in torch
        x = x.detach().to("cpu", torch.float32).numpy()
    return np.ascontiguousarray(x, dtype=np.float32)


class Exported:
    """The metadata every exported file carries."""

    def __init__(self, path: Path, meta: dict[str, str], backend: str):
        if "config" not in meta:
            raise RunnerError(f"{path} carries no model config; export it with `train_cli.py export`")
        try:
            self.config = ModelConfig.from_json(meta["config"])
        except (ValueError, TypeError) as err:
            raise RunnerError(f"{path} has an invalid model config: {err}") from None
        self.path, self.meta, self.backend = path, meta, backend
        self.precision = meta.get("precision", "fp32")
        self.label = f"{backend} {self.precision}"
        self.num_parameters = int(meta.get("parameters") or 0)
        self.file_bytes = model_file_bytes(path)
