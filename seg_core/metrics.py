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


#: Per-image scores ignore a class whose label pixels all lie within this many pixels of another
#: label colour: the JPEG fringe of the val labels (``benchmarks/per_image_rule.py``, docs/analysis.md).
FRINGE_PX = 1
#: The rule in one sentence, for captions beside per-image scores.
IMAGE_SCORE_RULE = (f"Per-image scores skip a class whose label pixels all lie within {FRINGE_PX} px of another "
                    "label colour (JPEG fringe, e.g. 'truck' around cars; also hair-thin poles), and count only "
                    "classes in the label: a class seen only in the prediction lowers the true class's IoU "
                    "but is not averaged in itself.")


def edge_band(label: np.ndarray, r: int = FRINGE_PX) -> np.ndarray:
    """``H x W`` bool: pixels with a different label value (ignore included) within ``r`` px."""
    label = np.asarray(label)
    h, w = label.shape
    padded = np.pad(label, r, mode="edge")
    out = np.zeros((h, w), bool)
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            out |= padded[dy : dy + h, dx : dx + w] != label
    return out


def fringe_classes(label: np.ndarray, r: int = FRINGE_PX) -> np.ndarray:
    """Train ids of the classes of ``label`` that have no pixel beyond ``r`` px of another colour."""
    label = np.asarray(label)
    core = np.bincount(label[~edge_band(label, r)].ravel(), minlength=256)
    coreless = np.flatnonzero((core == 0) & (np.bincount(label.ravel(), minlength=256) > 0))
    return coreless[coreless != IGNORE_INDEX]


def scored_label(label: np.ndarray, r: int = FRINGE_PX) -> np.ndarray:
    """``label`` with its ``fringe_classes`` set to ignore."""
    label = np.asarray(label)
    coreless = fringe_classes(label, r)
    if not len(coreless):
        return label
    return np.where(np.isin(label, coreless), np.uint8(IGNORE_INDEX), label).astype(label.dtype)


def image_summary(mat: np.ndarray, skipped=(), class_names: tuple[str, ...] | None = None) -> dict:
    """``summarize`` of one image's confusion matrix under ``IMAGE_SCORE_RULE``: the rows of the
    ``skipped`` (fringe) classes are dropped, and a class with no scored label pixel (seen only in
    the prediction) gets IoU NaN and is not averaged. Adds ``confusion``, the matrix as scored."""
    mat = np.array(mat, dtype=np.int64)
    mat[list(skipped)] = 0
    out = summarize(mat, class_names)
    iou = iou_per_class(mat)
    iou[mat.sum(1) == 0] = np.nan
    names = class_names or tuple(str(i) for i in range(len(mat)))
    out["iou"] = {name: float(v) for name, v in zip(names, iou)}
    out["miou"] = float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")
    out["confusion"] = mat
    return out


def image_scores(mask: np.ndarray, label: np.ndarray, class_names: tuple[str, ...] | None = None) -> dict:
    """Scores of one predicted mask against its label under ``IMAGE_SCORE_RULE``: ``image_summary``'s
    keys and ``skipped`` (the label classes left out as fringe). Whole-split metrics do not use it."""
    from .palette import NUM_CLASSES

    cm = ConfusionMatrix(NUM_CLASSES)
    cm.update(torch.from_numpy(np.ascontiguousarray(mask)), torch.from_numpy(np.ascontiguousarray(label)))
    skipped = [int(c) for c in fringe_classes(label) if c < NUM_CLASSES]
    return {**image_summary(cm.mat.numpy(), skipped, class_names), "skipped": skipped}
