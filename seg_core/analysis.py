"""How the models differ and how sure they are: confidence maps, their calibration, the ensemble,
and paired bootstrap intervals over images.

* ``confidence(probs)``: 1 - normalised entropy of the class probabilities, in [0, 1], 1 = sure
  (chosen over the top-1 probability and the top-1/top-2 margin by its AUROC on val; README).
* ``ConfidenceStats``: accumulates, pixel by pixel, whether a confidence tells right from wrong
  (AUROC, from histograms) and whether the top-1 probability is calibrated (ECE, reliability bins).
* ``ensemble_probabilities``: the weighted mean of several models' probabilities.
* ``bootstrap_difference``: the interval of mIoU(A) - mIoU(B) when the images are resampled,
  from per-image confusion matrices, so that "is the difference real?" has an answer.
"""

from __future__ import annotations

import numpy as np

from .metrics import iou_per_class

CONFIDENCE_KINDS = ("entropy", "top1", "margin")


def confidence(probs: np.ndarray, kind: str = "entropy") -> np.ndarray:
    """``... x h x w`` float32 confidence in [0, 1] of ``... x C x h x w`` probabilities."""
    probs = np.asarray(probs, dtype=np.float32)
    c = probs.shape[-3]
    if kind == "entropy":
        ent = -(probs * np.log(np.clip(probs, 1e-12, 1.0))).sum(-3)
        return np.clip(1.0 - ent / np.log(c), 0.0, 1.0).astype(np.float32)
    if kind == "top1":
        return probs.max(-3)
    if kind == "margin":
        top2 = np.partition(probs, c - 2, axis=-3)[..., c - 2 :, :, :]
        return (top2[..., 1, :, :] - top2[..., 0, :, :]).astype(np.float32)
    raise ValueError(f"unknown confidence {kind!r}; choose one of {CONFIDENCE_KINDS}")


class ConfidenceStats:
    """Right/wrong pixel counts per confidence bin (AUROC) and per top-1 probability bin (ECE)."""

    def __init__(self, bins: int = 1000, ece_bins: int = 15):
        self.bins, self.ece_bins = bins, ece_bins
        self.right = np.zeros(bins, np.int64)
        self.wrong = np.zeros(bins, np.int64)
        self.ece_count = np.zeros(ece_bins, np.int64)
        self.ece_right = np.zeros(ece_bins, np.int64)
        self.ece_conf = np.zeros(ece_bins, np.float64)

    def update(self, conf: np.ndarray, pred: np.ndarray, target: np.ndarray, ignore_index: int = 255,
               top1: np.ndarray | None = None) -> None:
        """Add pixels: ``conf`` the confidence, ``pred`` / ``target`` class ids of the same shape,
        ``top1`` the top-1 probability for calibration (default: ``conf``)."""
        keep = np.asarray(target) != ignore_index
        ok = (np.asarray(pred) == np.asarray(target))[keep]
        c = np.asarray(conf, np.float64)[keep]
        idx = np.minimum((c * self.bins).astype(np.int64), self.bins - 1)
        self.right += np.bincount(idx[ok], minlength=self.bins)
        self.wrong += np.bincount(idx[~ok], minlength=self.bins)
        p = c if top1 is None else np.asarray(top1, np.float64)[keep]
        e = np.minimum((p * self.ece_bins).astype(np.int64), self.ece_bins - 1)
        self.ece_count += np.bincount(e, minlength=self.ece_bins)
        self.ece_right += np.bincount(e[ok], minlength=self.ece_bins)
        self.ece_conf += np.bincount(e, weights=p, minlength=self.ece_bins)

    def auroc(self) -> float:
        """Probability that a right pixel is more confident than a wrong one (ties count half)."""
        n_right, n_wrong = self.right.sum(), self.wrong.sum()
        if not n_right or not n_wrong:
            return float("nan")
        wrong_below = np.cumsum(self.wrong) - self.wrong  # wrong pixels in lower bins
        return float((self.right * (wrong_below + 0.5 * self.wrong)).sum() / (n_right * n_wrong))

    def reliability(self) -> list[dict]:
        """Per top-1 probability bin: mean probability, accuracy, pixel count."""
        return [{"confidence": float(self.ece_conf[i] / n), "accuracy": float(self.ece_right[i] / n), "pixels": int(n)}
                for i, n in enumerate(self.ece_count) if n]

    def ece(self) -> float:
        """Expected calibration error of the top-1 probability (weighted |accuracy - confidence|)."""
        total = self.ece_count.sum()
        return float(sum(r["pixels"] * abs(r["accuracy"] - r["confidence"]) for r in self.reliability()) / total)


def ensemble_probabilities(probs: list[np.ndarray], weights: list[float] | None = None) -> np.ndarray:
    """The weighted mean of several models' ``... x C x h x w`` probabilities (equal weights by default)."""
    if not probs:
        raise ValueError("an ensemble needs at least one model")
    w = np.full(len(probs), 1 / len(probs)) if weights is None else np.asarray(weights, np.float64)
    if len(w) != len(probs) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"ensemble weights {list(w)} do not fit {len(probs)} models")
    w = w / w.sum()
    out = np.zeros_like(np.asarray(probs[0], np.float32))
    for p, wi in zip(probs, w):
        out += np.float32(wi) * np.asarray(p, np.float32)
    return out


def miou_of(mats: np.ndarray) -> np.ndarray:
    """mIoU of each ``C x C`` confusion matrix in ``... x C x C`` (classes absent from both: skipped)."""
    with np.errstate(invalid="ignore"):
        return np.nanmean(_class_iou(np.asarray(mats, np.float64)), axis=-1)


def bootstrap_difference(mats_a: np.ndarray, mats_b: np.ndarray, samples: int = 2000, seed: int = 0,
                         level: float = 0.95) -> dict:
    """Paired bootstrap over images of mIoU(A) - mIoU(B) and of each class's IoU difference.

    ``mats_a`` / ``mats_b``: ``N x C x C`` per-image confusion matrices of two models on the same
    N images. Returns the observed difference, the ``level`` percentile interval, and per class.
    """
    a, b = np.asarray(mats_a, np.int64), np.asarray(mats_b, np.int64)
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"per-image confusion matrices of one shape expected, got {a.shape} and {b.shape}")
    n, c, _ = a.shape
    counts = np.random.default_rng(seed).multinomial(n, np.full(n, 1 / n), size=samples).astype(np.float64)
    sa = (counts @ a.reshape(n, -1)).reshape(samples, c, c)
    sb = (counts @ b.reshape(n, -1)).reshape(samples, c, c)
    lo_q, hi_q = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    diff = miou_of(sa) - miou_of(sb)
    per_class = _class_iou(sa) - _class_iou(sb)
    observed = float(miou_of(a.sum(0)) - miou_of(b.sum(0)))
    obs_class = iou_per_class(a.sum(0)) - iou_per_class(b.sum(0))
    with np.errstate(invalid="ignore"):
        lo_c, hi_c = np.nanpercentile(per_class, [lo_q, hi_q], axis=0)
    return {"difference": observed, "low": float(np.percentile(diff, lo_q)), "high": float(np.percentile(diff, hi_q)),
            "per_class": [{"difference": float(d), "low": float(lo), "high": float(hi)}
                          for d, lo, hi in zip(obs_class, lo_c, hi_c)]}


def _class_iou(mats: np.ndarray) -> np.ndarray:
    diag = np.diagonal(mats, axis1=-2, axis2=-1)
    union = mats.sum(-1) + mats.sum(-2) - diag
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, diag / np.where(union > 0, union, 1), np.nan)
