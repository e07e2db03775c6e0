"""Segmentation metrics, all derived from one confusion matrix (torchvision references style).

``ConfusionMatrix`` accumulates ``mat[target, pred]`` counts with one ``bincount`` per batch and
skips ignored pixels. The derived metrics are pure functions of the matrix:

* pixel accuracy = trace / total
* class accuracy = mean over classes of recall (diagonal / row sum)
* IoU_c = diag / (row + col - diag); mIoU = nanmean over classes that occur in target or pred,
  so a class absent from both does not count as zero.
"""

from __future__ import annotations

import numpy as np
import torch

from .palette import IGNORE_INDEX


class ConfusionMatrix:
    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.mat = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch: ``pred`` and ``target`` hold class ids of the same shape."""
        pred, target = torch.as_tensor(pred), torch.as_tensor(target)
        if pred.shape != target.shape:
            raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
        n = self.num_classes
        t, p = target.reshape(-1).long(), pred.reshape(-1).long()
        keep = (t != self.ignore_index) & (t >= 0) & (t < n)
        counts = torch.bincount(n * t[keep] + p[keep], minlength=n * n)
        self.mat += counts.reshape(n, n).cpu()

    def reset(self) -> None:
        self.mat.zero_()

    def compute(self) -> dict:
        return summarize(self.mat.numpy())


def pixel_accuracy(mat: np.ndarray) -> float:
    total = mat.sum()
    return float(np.trace(mat) / total) if total else float("nan")


def class_accuracy(mat: np.ndarray) -> np.ndarray:
    """Recall per class; NaN for classes absent from the target."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.diag(mat) / mat.sum(1)


def iou_per_class(mat: np.ndarray) -> np.ndarray:
    """IoU per class; NaN for classes absent from both target and prediction."""
    diag = np.diag(mat).astype(np.float64)
    union = mat.sum(0) + mat.sum(1) - diag
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, diag / np.where(union > 0, union, 1), np.nan)


def summarize(mat: np.ndarray, class_names: tuple[str, ...] | None = None) -> dict:
    """All metrics of a confusion matrix as plain floats (JSON-ready; NaN for absent classes)."""
    mat = np.asarray(mat, dtype=np.int64)
    iou, acc = iou_per_class(mat), class_accuracy(mat)
    names = class_names or tuple(str(i) for i in range(len(mat)))
    return {
        "pixel_acc": pixel_accuracy(mat),
        "class_acc": float(np.nanmean(acc)) if np.isfinite(acc).any() else float("nan"),
        "miou": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
        "iou": {name: float(v) for name, v in zip(names, iou)},
    }
