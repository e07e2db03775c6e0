"""Evaluation of any runner on a split held in memory: masks batch by batch, one confusion matrix.

``evaluate(runner, images, labels)`` gives the metrics and the matrix; ``on_batch(done, total)`` is
called after each batch, so the CLI's tqdm bar and the Streamlit progress bar share this loop.
``compare_runners`` scores two runners of one model (e.g. fp32 and its int8 export) and the share
of pixels where their masks agree; ``evaluate_many`` scores several and their ensemble, per image.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch

from .inference import model_input
from .metrics import ConfusionMatrix, summarize
from .runners import Runner, upsampled_classes

OnBatch = Callable[[int, int], None]


def predict_batches(runner: Runner, images: torch.Tensor, out_hw: tuple[int, int], batch_size: int = 16,
                    tta: str = "none", on_batch: OnBatch | None = None) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield ``(start, N x H x W uint8 train ids)`` for uint8 ``images``, batch by batch, at ``out_hw``.

    Each batch is prepared on the images' device (a GPU during training) as
    ``seg_core.inference.predict`` prepares a single photo, and scored by ``runner.masks``.
    """
    cfg = runner.config
    for i in range(0, len(images), batch_size):
        with torch.inference_mode():  # not around the yield: the caller's code must run in its own mode
            x = model_input(images[i : i + batch_size], cfg)
            masks = torch.from_numpy(runner.masks(x, tuple(out_hw), tta))
        yield i, masks
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


def image_confusions(pred: np.ndarray, target: np.ndarray, n: int) -> np.ndarray:
    """``N x n x n`` confusion matrices (``[target, pred]``) of ``N x H x W`` class ids, one
    ``np.bincount`` for the batch (target ids of ``n`` and above, i.e. ignored, are skipped).
    A torch ``ConfusionMatrix`` per image costs 20x more on a busy 2-core machine (thread start-up)."""
    keep = target < n
    idx = np.arange(len(pred), dtype=np.int64)[:, None, None] * (n * n) + target.astype(np.int64) * n + pred
    return np.bincount(idx[keep], minlength=len(pred) * n * n).reshape(len(pred), n, n)


def evaluate_many(runners: dict[str, Runner], images: torch.Tensor, labels: torch.Tensor, batch_size: int = 16,
                  tta: str = "none", ensemble: dict[str, float] | None = None,
                  on_batch: OnBatch | None = None) -> dict[str, dict]:
    """Several runners (and, with ``ensemble`` = ``{name: weight}``, their ensemble under the key
    ``"ensemble"``) on one split, each image prepared once per distinct input config.

    Returns ``{name: {"metrics", "matrix", "image_matrices" (N x C x C), "disagreement" (N,)}}``;
    ``disagreement`` is each image's share of pixels where the models (not the ensemble) differ.
    """
    from .analysis import ensemble_probabilities
    from .inference import ENSEMBLE

    members = {n: w for n, w in (ensemble or {}).items() if n in runners and w > 0}
    names = list(runners) + ([ENSEMBLE] if members else [])
    first = next(iter(runners.values())).config
    n_cls = first.num_classes
    per_image = {n: np.zeros((len(images), n_cls, n_cls), np.int64) for n in names}
    disagreement = np.zeros(len(images))
    out_hw = tuple(labels.shape[-2:])
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            batch, y = images[i : i + batch_size], labels[i : i + batch_size].cpu()
            prepared, masks, probs = {}, {}, {}
            for name, runner in runners.items():
                cfg = runner.config
                key = (cfg.input_size, cfg.mean, cfg.std)
                if key not in prepared:
                    prepared[key] = model_input(batch, cfg)
                if name in members:
                    m, probs[name] = runner.masks_and_probabilities(prepared[key], out_hw, tta)
                else:
                    m = runner.masks(prepared[key], out_hw, tta)
                masks[name] = torch.from_numpy(m)
            if members:
                mixed = ensemble_probabilities([probs[n] for n in members], list(members.values()))
                masks[ENSEMBLE] = upsampled_classes(torch.from_numpy(mixed), out_hw).to(torch.uint8)
            stack = torch.stack([masks[n] for n in runners])
            disagreement[i : i + len(batch)] = ((stack != stack[:1]).any(0) & (y != 255)).flatten(1).float().mean(1).numpy()
            for name, m in masks.items():
                per_image[name][i : i + len(m)] = image_confusions(m.numpy(), y.numpy(), n_cls)
            if on_batch:
                on_batch(min(i + batch_size, len(images)), len(images))
    return {n: {"metrics": summarize(per_image[n].sum(0), first.class_names), "matrix": per_image[n].sum(0),
                "image_matrices": per_image[n], "disagreement": disagreement} for n in names}
