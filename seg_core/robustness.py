"""Scoring a model on corrupted copies of a split (the Cityscapes-C protocol) and at another input
scale, image by image, so that two weights can be compared with a paired bootstrap.

``image_matrices`` gives one confusion matrix per image for a runner on (optionally corrupted)
photos; ``summarize_grid`` turns the matrices of the clean split, of every corruption and severity
and of the scale probe into the benchmark's numbers. Each image's corruption is seeded by its index
in the whole split (``image_seed``), so the select half, the judge half and all of val see the
same corrupted photo for one file. Numbers only here; figures live in ``ui/``.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import torch

from .analysis import miou_of
from .corruptions import corrupt
from .evaluate import image_confusions
from .inference import model_input
from .runners import Runner

#: The scale probe: the photos fed at this input size instead of the model's (objects 1.5x larger).
PROBE_SIZE = (384, 384)
#: Base of every image's corruption seed; changing it changes the benchmark (and its cache key).
CORRUPTION_SEED = 0


def image_seed(index: int, base: int = CORRUPTION_SEED) -> tuple[int, int]:
    """The seed of the corruption of the split's ``index``-th pair (same for every severity)."""
    return (base, int(index))


def corrupted_images(images: torch.Tensor, indices, name: str, severity: int,
                     base: int = CORRUPTION_SEED) -> torch.Tensor:
    """``N x 3 x H x W`` uint8 ``images`` corrupted one by one; ``indices`` are their places in the split."""
    out = [corrupt(np.ascontiguousarray(im.permute(1, 2, 0).numpy()), name, severity, image_seed(i, base))
           for im, i in zip(images, indices)]
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


def image_matrices(runner: Runner, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 16,
                   input_size: tuple[int, int] | None = None,
                   on_batch: Callable[[int, int], None] | None = None) -> np.ndarray:
    """``N x C x C`` confusion matrices (``[target, pred]``) of ``runner`` on uint8 ``images``, one
    per image, at the labels' resolution; ``input_size`` overrides the model's (the scale probe)."""
    cfg = runner.config
    if input_size is not None and tuple(input_size) != cfg.input_size:
        if hasattr(runner, "resized"):  # an export's input shape is fixed: reshape the network
            runner = runner.resized(tuple(input_size))
        cfg = dataclasses.replace(cfg, input_size=tuple(input_size))
    n = cfg.num_classes
    out = np.zeros((len(images), n, n), np.int64)
    out_hw = tuple(labels.shape[-2:])
    for i in range(0, len(images), batch_size):
        with torch.inference_mode():
            x = model_input(images[i : i + batch_size], cfg)
            masks = runner.masks(x, out_hw)
        out[i : i + len(masks)] = image_confusions(masks, labels[i : i + len(masks)].numpy(), n)
        if on_batch:
            on_batch(min(i + batch_size, len(images)), len(images))
    return out


def summarize_grid(clean: np.ndarray, grid: dict[tuple[str, int], np.ndarray],
                   probe: np.ndarray | None = None) -> dict:
    """The benchmark's numbers from per-image matrices: clean mIoU, mIoU per corruption and
    severity, their mean (mean corruption mIoU over every corruption and severity given, as in
    Kamann & Rother), relative robustness (mean corruption / clean) and the scale probe."""
    clean_miou = float(miou_of(clean.sum(0)))
    per = {}
    for (name, severity), mats in grid.items():
        per.setdefault(name, {})[str(severity)] = float(miou_of(mats.sum(0)))
    values = [v for sev in per.values() for v in sev.values()]
    mean_corr = float(np.mean(values)) if values else float("nan")
    out = {"clean": clean_miou, "corruptions": per, "mean_corruption": mean_corr,
           "relative": mean_corr / clean_miou if clean_miou > 0 else float("nan"),
           "per_corruption_mean": {k: float(np.mean(list(v.values()))) for k, v in per.items()}}
    if probe is not None:
        out["probe"] = {"input_size": list(PROBE_SIZE), "miou": float(miou_of(probe.sum(0))),
                        "delta": float(miou_of(probe.sum(0))) - clean_miou}
    return out
