"""seg_core.data.pair_verdict: an upload is split into photo and ground truth only when its right
half is a colour label, never when it is two photos side by side or one stretched photo."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from seg_core.data import list_pairs, pair_verdict
from seg_core.palette import colorize
from tests.conftest import synthetic_pair
from benchmarks.scenes import synthetic_street


def read(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def stretched(photo: np.ndarray) -> np.ndarray:
    h = photo.shape[0]
    return np.asarray(Image.fromarray(photo).resize((2 * h, h), Image.BICUBIC))


def test_a_drawn_pair_is_a_pair_and_says_why():
    photo, label = synthetic_pair(64)
    verdict = pair_verdict(np.concatenate([photo, colorize(label)], axis=1))
    assert verdict.is_pair and verdict.reason.startswith("A photo | label pair:") and "\n" not in verdict.reason


@pytest.mark.parametrize("seed", range(6))
def test_drawn_2to1_streets_are_not_pairs(seed):
    verdict = pair_verdict(synthetic_street(512, 256, seed=seed))
    assert not verdict.is_pair and verdict.reason.startswith("One photo: only")


def test_two_labels_and_other_shapes_are_not_pairs():
    label = colorize(synthetic_pair(64)[1])
    both = pair_verdict(np.concatenate([label, label], axis=1))
    assert not both.is_pair and "both halves look like labels" in both.reason
    square = pair_verdict(np.zeros((64, 64, 3), np.uint8))
    assert not square.is_pair and "64x64 is not twice as wide as high" in square.reason


@pytest.mark.slow
def test_every_val_pair_is_detected(real_data):
    missed = [p.name for p in list_pairs(real_data / "val") if not pair_verdict(read(p)).is_pair]
    assert missed == []


@pytest.mark.slow
def test_no_real_photo_pair_is_taken_for_one(real_data):
    """Each val photo stretched to 2:1, and val photos side by side (the issue's 13 of 30 mistaken
    under the old 60 % rule), also darkened (black is a void colour) and made grey."""
    photos = [read(p)[:, :256] for p in list_pairs(real_data / "val")[::2]]
    taken = []
    for i, photo in enumerate(photos):
        grey = np.repeat(photo.mean(-1, keepdims=True), 3, -1).astype(np.uint8)
        side = np.concatenate([photo, photos[i - 1]], axis=1)
        for kind, image in (("stretched", stretched(photo)), ("side by side", side),
                            ("dark", (side * 0.3).astype(np.uint8)), ("grey", stretched(grey))):
            if pair_verdict(image).is_pair:
                taken.append((i, kind))
    assert taken == []
