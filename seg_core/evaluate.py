"""Evaluation of any runner on a split held in memory: masks batch by batch, one confusion matrix.

``evaluate(runner, images, labels)`` gives the metrics and the matrix; ``on_batch(done, total)`` is
called after each batch, so the CLI's tqdm bar and the Streamlit progress bar share this loop.
``compare_runners`` scores two runners of one model (e.g. fp32 and its int8 export) and the share
of pixels where their masks agree.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch

from .inference import model_input
from .metrics import ConfusionMatrix, summarize
from .runners import Runner

OnBatch = Callable[[int, int], None]


def predict_batches(runner: Runner, images: torch.Tensor, out_hw: tuple[int, int], batch_size: int = 16,
                    tta: str = "none", on_batch: OnBatch | None = None) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield ``(start, N x H x W uint8 train ids)`` for uint8 ``images``, batch by batch, at ``out_hw``.

    Each batch is prepared on the images' device (a GPU during training) as
    ``seg_core.inference.predict`` prepares a single photo, and scored by ``runner.masks``.
    """
    cfg = runner.config
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            x = model_input(images[i : i + batch_size], cfg)
            yield i, torch.from_numpy(runner.masks(x, tuple(out_hw), tta))
            if on_batch:
                on_batch(min(i + batch_size, len(images)), len(images))


def evaluate(runner: Runner, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 16,
             tta: str = "none", on_batch: OnBatch | None = None) -> tuple[dict, np.ndarray]:
    """Metrics and confusion matrix of ``runner`` on uint8 ``images`` / ``labels``, at the labels'
    resolution; ``tta`` as in ``seg_core.runners``."""
    cfg = runner.config
    cm = ConfusionMatrix(cfg.num_classes)
    for i, pred in predict_batches(runner, images, labels.shape[-2:], batch_size, tta, on_batch):
        cm.update(pred, labels[i : i + len(pred)].cpu())
    mat = cm.mat.numpy()
    return summarize(mat, cfg.class_names), mat


def compare_runners(reference: Runner, other: Runner, images: torch.Tensor, labels: torch.Tensor,
                    batch_size: int = 16, on_batch: OnBatch | None = None) -> dict:
    """Metrics of two runners of one config and the share of pixels on which their masks agree."""
    cms = [ConfusionMatrix(reference.config.num_classes) for _ in range(2)]
    agree = 0
    runs = [predict_batches(reference, images, labels.shape[-2:], batch_size, on_batch=on_batch),
            predict_batches(other, images, labels.shape[-2:], batch_size)]
    for (i, a), (_, b) in zip(*runs):
        y = labels[i : i + len(a)].cpu()
        cms[0].update(a, y)
        cms[1].update(b, y)
        agree += int((a == b).sum())
    ref, exp = (summarize(c.mat.numpy(), reference.config.class_names) for c in cms)
    return {"reference": ref, "exported": exp, "agreement": agree / labels.numel(),
            "miou_delta": exp["miou"] - ref["miou"]}
