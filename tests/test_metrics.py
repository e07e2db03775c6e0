"""seg_core.metrics: the confusion matrix and the metrics derived from it, checked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seg_core.metrics import ConfusionMatrix, class_accuracy, iou_per_class, pixel_accuracy, summarize

# A 3-class example worked on paper (rows = target, columns = prediction):
#
#   target  0 0 0 0 1 1 1 2 2 255
#   pred    0 0 0 1 1 1 2 2 0   1
#
#   mat = [[3, 1, 0],      row sums 4, 3, 2 (the 255 pixel is dropped)
#          [0, 2, 1],      col sums 4, 3, 2
#          [1, 0, 1]]      trace 6, total 9
#
#   pixel acc = 6/9
#   recall    = 3/4, 2/3, 1/2          -> class acc = (3/4 + 2/3 + 1/2) / 3 = 23/36
#   IoU       = 3/(4+4-3) = 3/5, 2/(3+3-2) = 1/2, 1/(2+2-1) = 1/3
#   mIoU      = (3/5 + 1/2 + 1/3) / 3 = 43/90
TARGET = torch.tensor([0, 0, 0, 0, 1, 1, 1, 2, 2, 255])
PRED = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 0, 1])
MAT = np.array([[3, 1, 0], [0, 2, 1], [1, 0, 1]])


def test_confusion_matrix_by_hand():
    cm = ConfusionMatrix(3)
    cm.update(PRED, TARGET)
    assert np.array_equal(cm.mat.numpy(), MAT)


def test_metrics_by_hand():
    assert pixel_accuracy(MAT) == pytest.approx(6 / 9)
    assert np.allclose(class_accuracy(MAT), [3 / 4, 2 / 3, 1 / 2])
    assert np.allclose(iou_per_class(MAT), [3 / 5, 1 / 2, 1 / 3])
    out = summarize(MAT, ("a", "b", "c"))
    assert out["pixel_acc"] == pytest.approx(6 / 9)
    assert out["class_acc"] == pytest.approx(23 / 36)
    assert out["miou"] == pytest.approx(43 / 90)
    assert out["iou"] == pytest.approx({"a": 3 / 5, "b": 1 / 2, "c": 1 / 3})


def test_updates_accumulate_over_batches_and_shapes():
    cm = ConfusionMatrix(3)
    cm.update(PRED[:5].view(1, 5), TARGET[:5].view(1, 5))
    cm.update(PRED[5:].view(5, 1), TARGET[5:].view(5, 1))
    assert np.array_equal(cm.mat.numpy(), MAT)
    assert cm.compute()["miou"] == pytest.approx(43 / 90)
    cm.reset()
    assert cm.mat.sum() == 0


def test_ignored_pixels_do_not_count():
    cm = ConfusionMatrix(3)
    target = torch.full((4, 4), 255)
    target[0, 0] = 1
    pred = torch.zeros(4, 4, dtype=torch.long)  # wrong everywhere; only one pixel is scored
    cm.update(pred, target)
    assert cm.mat.sum() == 1 and cm.mat[1, 0] == 1
    assert cm.compute()["pixel_acc"] == 0.0
    # A custom ignore index, and out-of-range targets, are dropped too.
    cm = ConfusionMatrix(3, ignore_index=2)
    cm.update(torch.tensor([0, 1, 2, 0]), torch.tensor([2, 1, 7, 0]))
    assert cm.mat.sum() == 2 and np.trace(cm.mat.numpy()) == 2


def test_miou_skips_absent_classes():
    # 4 classes; class 3 appears in neither target nor prediction: NaN, not a zero in the mean.
    # mat = [[2,0,0,0],[0,1,1,0],[0,0,0,0],[0,0,0,0]]: IoU 1, 1/2, 0 (predicted, never present), NaN
    cm = ConfusionMatrix(4)
    cm.update(torch.tensor([0, 0, 1, 2]), torch.tensor([0, 0, 1, 1]))
    out = cm.compute()
    iou = list(out["iou"].values())
    assert iou[:3] == pytest.approx([1.0, 0.5, 0.0]) and math.isnan(iou[3])
    assert out["miou"] == pytest.approx(0.5)  # (1 + 0.5 + 0) / 3, not / 4
    # class acc skips classes absent from the target (2 and 3): (1 + 1/2) / 2
    assert out["class_acc"] == pytest.approx(0.75)


def test_empty_matrix_is_nan_not_an_error():
    out = ConfusionMatrix(3).compute()
    assert math.isnan(out["pixel_acc"]) and math.isnan(out["miou"]) and math.isnan(out["class_acc"])


def test_perfect_prediction():
    t = torch.randint(0, 19, (2, 8, 8), generator=torch.Generator().manual_seed(0))
    cm = ConfusionMatrix(19)
    cm.update(t, t)
    out = cm.compute()
    assert out["pixel_acc"] == 1.0 and out["miou"] == pytest.approx(1.0) and out["class_acc"] == pytest.approx(1.0)


def test_shape_mismatch():
    with pytest.raises(ValueError, match="differ in shape"):
        ConfusionMatrix(3).update(torch.zeros(2, 3), torch.zeros(3, 2))


# --- the per-image rule (seg_core.metrics.image_scores) ------------------------------------------

def fringed_label() -> np.ndarray:
    """Road with a 10x10 car whose outline decodes as a 1 px ring of "truck" (JPEG fringe), and a
    2 px wide, 20 px tall pole."""
    from seg_core.palette import CLASS_NAMES

    label = np.full((32, 32), CLASS_NAMES.index("road"), np.uint8)
    label[9:21, 9:21] = CLASS_NAMES.index("truck")
    label[10:20, 10:20] = CLASS_NAMES.index("car")
    label[2:22, 26:28] = CLASS_NAMES.index("pole")
    return label


def test_image_scores_skip_classes_with_no_core_and_count_only_labelled_classes():
    from seg_core.metrics import image_scores, scored_label
    from seg_core.palette import CLASS_NAMES, IGNORE_INDEX

    label = fringed_label()
    truck, car, pole, road = (CLASS_NAMES.index(c) for c in ("truck", "car", "pole", "road"))
    kept = scored_label(label)
    assert (kept[label == truck] == IGNORE_INDEX).all()  # the ring: no pixel 2 px from another colour
    assert (kept[label == pole] == IGNORE_INDEX).all()  # a hair-thin pole goes too (the rule's price)
    assert (kept[label == car] == car).all() and (kept[label == road] == road).all()
    perfect = np.where(label == truck, car, label)  # the model sees a car where the fringe says truck
    scores = image_scores(perfect, label, CLASS_NAMES)
    assert sorted(scores["skipped"]) == sorted([truck, pole])
    # pole pixels are ignored, so the prediction (car inside the ring, road elsewhere) scores 1
    assert scores["pixel_acc"] == 1.0 and scores["miou"] == 1.0
    plain = image_scores(np.where(label == pole, road, perfect), label, CLASS_NAMES)
    assert plain["miou"] == 1.0  # pole pixels predicted as road: not scored either
    spurious = perfect.copy()
    spurious[0, 0] = CLASS_NAMES.index("train")  # seen only in the prediction
    s = image_scores(spurious, label, CLASS_NAMES)
    assert np.isnan(s["iou"]["train"]) and s["miou"] < 1.0 and s["iou"]["road"] < 1.0
    assert s["miou"] == pytest.approx((1.0 + s["iou"]["road"]) / 2)  # road and car averaged, not train


def test_image_scores_keep_a_thick_class_whole():
    from seg_core.metrics import image_scores
    from seg_core.palette import CLASS_NAMES

    label = np.zeros((16, 16), np.uint8)
    label[4:12, 4:12] = CLASS_NAMES.index("sky")
    pred = np.zeros_like(label)
    s = image_scores(pred, label, CLASS_NAMES)
    assert s["skipped"] == [] and s["pixel_acc"] == pytest.approx(1 - 64 / 256)
    assert s["iou"]["sky"] == 0.0  # its edge pixels count: the rule drops classes, not borders
