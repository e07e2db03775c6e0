"""How the models differ and how sure they are: confidence maps, their calibration, the ensemble,
and paired bootstrap intervals over images.

* ``confidence(probs)``: the top-1 class probability, in [0, 1], 1 = sure (chosen over 1 - normalised
  entropy and the top-1/top-2 margin by its AUROC on val, and it is the quantity that ECE checks;
  docs/analysis.md).
* ``ConfidenceStats``: accumulates, pixel by pixel, whether a confidence tells right from wrong
  (AUROC, from histograms) and whether the top-1 probability is calibrated (ECE, reliability bins).
* ``ensemble_probabilities``: the weighted mean of several models' probabilities.
* ``paired_bootstrap``: the interval of mIoU(A) - mIoU(B) when the images are resampled, from
  per-image confusion matrices, so that "is the difference real?" has an answer.
"""

from __future__ import annotations

import warnings

import numpy as np

CONFIDENCE_KINDS = ("top1", "entropy", "margin")


def confidence(probs: np.ndarray, kind: str = "top1") -> np.ndarray:
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


def class_iou(mats: np.ndarray) -> np.ndarray:
    """IoU per class of each confusion matrix in ``... x C x C``; NaN for classes absent from both."""
    mats = np.asarray(mats, np.float64)
    diag = np.diagonal(mats, axis1=-2, axis2=-1)
    union = mats.sum(-1) + mats.sum(-2) - diag
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, diag / np.where(union > 0, union, 1), np.nan)


def miou_of(mats: np.ndarray) -> np.ndarray:
    """mIoU of each confusion matrix in ``... x C x C``, as ``seg_core.metrics.summarize`` computes
    it: classes absent from target and prediction do not count."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a matrix with no class present: NaN
        return np.nanmean(class_iou(mats), axis=-1)


def paired_bootstrap(new: np.ndarray, old: np.ndarray, n_boot: int = 2000, level: float = 0.95,
                     seed: int = 0) -> dict:
    """Interval of mIoU(new) - mIoU(old), and of each class's IoU difference, over images: both
    models' per-image confusion matrices (``N x C x C``) are resampled with the same image draws,
    so image difficulty cancels out. ``share_not_above_0``: the resamples where new is no better.

    With ``N x K x C x C`` (K conditions per image, e.g. corruptions and severities) the statistic
    is the mean over the K conditions of each condition's mIoU (and of each class's IoU)."""
    new, old = np.asarray(new), np.asarray(old)
    if new.shape != old.shape or new.ndim not in (3, 4):
        raise ValueError(f"per-image confusion matrices must match (N x C x C or N x K x C x C): {new.shape} vs {old.shape}")
    n, shape = len(new), new.shape[1:]
    draws = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    counts = np.zeros((n_boot, n))
    np.add.at(counts, (np.arange(n_boot)[:, None], draws), 1)
    # Counts times matrices in float64 (BLAS): exact while totals stay below 2**53.
    boot_new = (counts @ new.reshape(n, -1).astype(np.float64)).reshape(n_boot, *shape)
    boot_old = (counts @ old.reshape(n, -1).astype(np.float64)).reshape(n_boot, *shape)

    def stat(f, mats):  # f of each condition's matrix, averaged over the conditions
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a class absent under every condition
            v = f(mats)
            return v if new.ndim == 3 else np.nanmean(v, axis=mats.ndim - 3)

    deltas = stat(miou_of, boot_new) - stat(miou_of, boot_old)
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(deltas, [tail, 100 - tail])
    per_class = stat(class_iou, boot_new) - stat(class_iou, boot_old)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a class absent from every resample
        lo_c, hi_c = np.nanpercentile(per_class, [tail, 100 - tail], axis=0)
    obs_c = stat(class_iou, new.sum(0)) - stat(class_iou, old.sum(0))
    return {"delta": float(stat(miou_of, new.sum(0)) - stat(miou_of, old.sum(0))), "lo": float(lo), "hi": float(hi),
            "level": level, "n_boot": n_boot, "images": n, "share_not_above_0": float(np.mean(deltas <= 0)),
            "per_class": [{"delta": float(d), "lo": float(a), "hi": float(b)} for d, a, b in zip(obs_c, lo_c, hi_c)]}
