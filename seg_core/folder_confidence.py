"""Whether each model (and the ensemble) knows where it is wrong, over a folder of pairs, cached.

``folder_confidence(predictor, folder)`` runs every model on the folder once and accumulates, per
model, a ``seg_core.analysis.ConfidenceStats`` of its top-1 probability against the labels: the
AUROC of right against wrong pixels, the ECE and the reliability bins. The result is a small JSON
file in ``SEG_CACHE_DIR``, keyed like ``seg_core.folder_scores`` (model files, TTA, ensemble
weights, the folder's listing), so the page that shows it reads it back in milliseconds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .analysis import ConfidenceStats, ensemble_probabilities
from .data import load_split
from .files import atomic_path
from .folder_scores import cache_path
from .inference import ENSEMBLE, model_input
from .runners import upsampled_classes


def _top1_at(probs: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """``N x H x W`` top-1 probability at ``out_hw``, upsampled bilinearly from the model's size."""
    top1 = np.asarray(probs, np.float32).max(1)
    if tuple(top1.shape[-2:]) != tuple(out_hw):
        top1 = F.interpolate(torch.from_numpy(top1)[:, None], size=tuple(out_hw), mode="bilinear",
                             align_corners=False)[:, 0].clamp_(0, 1).numpy()
    return top1


def confidence_stats(runners: dict, images: torch.Tensor, labels: torch.Tensor, tta: str = "none",
                     ensemble: dict[str, float] | None = None, batch_size: int = 8,
                     on_batch: Callable[[int, int], None] | None = None) -> dict[str, ConfidenceStats]:
    """``{model name (and "ensemble"): ConfidenceStats}`` of uint8 ``images`` against ``labels``."""
    members = {n: w for n, w in (ensemble or {}).items() if n in runners and w > 0}
    stats = {n: ConfidenceStats() for n in [*runners, *([ENSEMBLE] if members else [])]}
    out_hw = tuple(labels.shape[-2:])
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            batch, y = images[i : i + batch_size], labels[i : i + batch_size].numpy()
            prepared, probs = {}, {}
            for name, runner in runners.items():
                cfg = runner.config
                key = (cfg.input_size, cfg.mean, cfg.std)
                if key not in prepared:
                    prepared[key] = model_input(batch, cfg)
                mask, probs[name] = runner.masks_and_probabilities(prepared[key], out_hw, tta)
                stats[name].update(_top1_at(probs[name], out_hw), mask, y)
            if members:
                mixed = ensemble_probabilities([probs[n] for n in members], list(members.values()))
                mask = upsampled_classes(torch.from_numpy(mixed), out_hw).numpy()
                stats[ENSEMBLE].update(_top1_at(mixed, out_hw), mask, y)
            if on_batch:
                on_batch(min(i + batch_size, len(images)), len(images))
    return stats


def summary(stats: ConfidenceStats) -> dict:
    return {"auroc": stats.auroc(), "ece": stats.ece(), "reliability": stats.reliability()}


def folder_confidence(predictor, folder: str | Path, tta: str = "none", ensemble: bool = True,
                      on_batch: Callable[[int, int], None] | None = None, cache_dir: Path | None = None) -> dict:
    """``{"models": [names], "stats": {name: {"auroc", "ece", "reliability"}}, "cached": bool}``
    for the pairs of ``folder``, from the cache when it is current."""
    folder = Path(folder)
    members = predictor.ensemble() if ensemble else {}
    path = cache_path("confidence", predictor, folder, tta=tta, ensemble=ensemble, cache_dir=cache_dir)
    if path.is_file():
        try:
            return {**json.loads(path.read_text()), "cached": True}
        except ValueError:
            pass  # a damaged file: computed again and replaced below
    images, labels = load_split(folder)
    stats = confidence_stats(predictor.models, images, labels, tta, members or None, on_batch=on_batch)
    out = {"models": list(stats), "stats": {n: summary(s) for n, s in stats.items()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".json") as tmp:
        Path(tmp).write_text(json.dumps(out))
    return {**out, "cached": False}
