"""Which per-image score rule resists the JPEG fringe of the val labels? Measured on a pairs folder.

The colour labels of *Cityscapes Image Pairs* are JPEGs: along colour edges the decoded label gets
a thin fringe of wrong classes (around a car: "truck", "bus"), and a per-image mIoU then averages
in classes that are not in the scene. Candidates, each applied to the label only:

* ``none``: every labelled pixel counts (today's per-image score);
* ``band1`` / ``band2``: ignore label pixels with a different label colour within 1 / 2 px;
* ``cc20`` / ``cc50``: ignore connected label regions (8-connected, one class) under 20 / 50 px;
* ``count50``: ignore a class whose label has fewer than 50 px in the image;
* ``core1`` / ``core2``: ignore a class all of whose label pixels lie in ``band1`` / ``band2``
  (it has no "core"); the classes that keep a core are scored on all their pixels.

For each, with and without the classes seen only in the prediction: how many label class
occurrences (image, class) survive, per class (fringe-prone truck / bus / train against thin but
real pole / traffic light / traffic sign), and the per-image mIoU of each shipped model. The masks
come from ``Predictor.from_dir(--weights)`` (the apps' default path) and are cached in ``--cache``.

    python benchmarks/per_image_rule.py --data ../shared/data/cityscapes_pairs/val
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from seg_core.data import list_pairs, read_pair
from seg_core.metrics import scored_label
from seg_core.palette import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES
from seg_core.predictor import Predictor

WATCH = ("truck", "bus", "train", "motorcycle", "pole", "traffic light", "traffic sign", "rider", "bicycle")


def band(label: np.ndarray, r: int) -> np.ndarray:
    """Pixels with a different label value (ignore included) within ``r`` px (Chebyshev)."""
    import cv2  # opencv-python-headless: in the project's venv, not in requirements.txt

    kernel = np.ones((2 * r + 1, 2 * r + 1), np.uint8)
    return cv2.dilate(label, kernel) != cv2.erode(label, kernel)


def small_components(label: np.ndarray, min_px: int) -> np.ndarray:
    import cv2

    out = np.zeros(label.shape, bool)
    for c in np.unique(label):
        if c == IGNORE_INDEX:
            continue
        n, comp, stats, _ = cv2.connectedComponentsWithStats((label == c).astype(np.uint8), connectivity=8)
        small = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] < min_px)
        small = small[small > 0]
        if len(small):
            out |= np.isin(comp, small)
    return out


def coreless_classes(label: np.ndarray, r: int) -> np.ndarray:
    """Pixels of the classes that have no pixel farther than ``r`` px from another label colour."""
    core = np.bincount(label[~band(label, r)].ravel(), minlength=256)
    return np.isin(label, np.flatnonzero(core == 0))


def rare_classes(label: np.ndarray, min_px: int) -> np.ndarray:
    counts = np.bincount(label.ravel(), minlength=256)
    return np.isin(label, np.flatnonzero((counts < min_px) & (counts > 0)))


RULES = {
    "none": lambda lab: np.zeros(lab.shape, bool),
    "band1": lambda lab: band(lab, 1),
    "band2": lambda lab: band(lab, 2),
    "cc20": lambda lab: small_components(lab, 20),
    "cc50": lambda lab: small_components(lab, 50),
    "count50": lambda lab: rare_classes(lab, 50),
    "core1": lambda lab: scored_label(lab) != lab,  # the rule chosen: seg_core.metrics.image_scores
    "core2": lambda lab: coreless_classes(lab, 2),
}


def miou(pred: np.ndarray, label: np.ndarray, pred_only: bool) -> float:
    keep = label != IGNORE_INDEX
    t, p = label[keep].astype(np.int64), pred[keep].astype(np.int64)
    mat = np.bincount(NUM_CLASSES * t + p, minlength=NUM_CLASSES ** 2).reshape(NUM_CLASSES, NUM_CLASSES)
    diag = np.diag(mat)
    union = mat.sum(0) + mat.sum(1) - diag
    counted = union > 0 if pred_only else mat.sum(1) > 0
    return float((diag[counted] / union[counted]).mean()) if counted.any() else float("nan")


def masks_of(files: list[Path], weights: str, cache: Path) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
    labels = [read_pair(f)[1] for f in files]
    if cache.is_file():
        saved = np.load(cache)
        if saved["names"].tolist() == [f.name for f in files]:
            return {k[5:]: saved[k] for k in saved.files if k.startswith("mask_")}, labels
    pred = Predictor.from_dir(weights)
    t0 = time.perf_counter()
    out = {n: [] for n in pred.models}
    for f in files:
        for n, p in pred.predict(read_pair(f)[0]).items():
            out[n].append(p.mask)
    print(f"predicted {len(files)} images with {', '.join(pred.backends().values())} in {time.perf_counter() - t0:.1f} s")
    masks = {n: np.stack(v) for n, v in out.items()}
    np.savez_compressed(cache, names=np.array([f.name for f in files]), **{f"mask_{n}": m for n, m in masks.items()})
    return masks, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data/cityscapes_pairs/val")
    parser.add_argument("--weights", default="weights")
    parser.add_argument("--cache", default="/tmp/per_image_rule_masks.npz")
    parser.add_argument("--example", default="3.jpg", help="an image whose scores are printed per rule")
    args = parser.parse_args()
    files = list_pairs(args.data)
    masks, labels = masks_of(files, args.weights, Path(args.cache))
    example = [f.name for f in files].index(args.example) if args.example in [f.name for f in files] else 0
    watch = [CLASS_NAMES.index(c) for c in WATCH]
    header = ("| rule | class occurrences kept | of those under 50 px | "
              + " | ".join(WATCH) + " | " + " | ".join(f"{n} mIoU (+pred-only)" for n in masks)
              + f" | {files[example].name}: " + " / ".join(masks) + " |")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    base_occ = None
    for rule, ignore in RULES.items():
        occ, small, per_class = 0, 0, np.zeros(NUM_CLASSES, int)
        scores = {n: ([], []) for n in masks}
        ex = []
        for i, label in enumerate(labels):
            counts0 = np.bincount(label.ravel(), minlength=256)[:NUM_CLASSES]
            kept = label.copy()
            kept[ignore(label)] = IGNORE_INDEX
            counts = np.bincount(kept.ravel(), minlength=256)[:NUM_CLASSES]
            occ += int((counts > 0).sum())
            small += int(((counts > 0) & (counts0 < 50)).sum())
            per_class += counts > 0
            for n, m in masks.items():
                scores[n][0].append(miou(m[i], kept, pred_only=False))
                scores[n][1].append(miou(m[i], kept, pred_only=True))
                if i == example:
                    ex.append(f"{scores[n][0][-1]:.3f} ({scores[n][1][-1]:.3f})")
        base_occ = base_occ or occ
        cells = [rule, f"{occ} ({occ / base_occ:.0%})", str(small)] + [str(per_class[c]) for c in watch]
        cells += [f"{np.nanmean(a):.3f} ({np.nanmean(b):.3f})" for a, b in scores.values()]
        cells.append(" / ".join(ex))
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
