"""seg_core.palette: decoding JPEG colour labels to train ids, and colouring them back."""

from __future__ import annotations

import numpy as np
import pytest

from seg_core import palette
from seg_core.palette import (
    CLASS_NAMES,
    COLORS,
    IGNORE_INDEX,
    MAX_DISTANCE,
    NUM_CLASSES,
    VOID_COLORS,
    colorize,
    decode_label,
    nearest_palette,
)


def test_palette_shape():
    assert NUM_CLASSES == 19 == len(CLASS_NAMES) == len(COLORS)
    assert COLORS.dtype == np.uint8 and COLORS.shape == (19, 3)
    assert CLASS_NAMES[0] == "road" and CLASS_NAMES[13] == "car" and CLASS_NAMES[18] == "bicycle"
    # No void colour doubles as a train colour: a train colour must decode to its own class.
    assert not {tuple(c) for c in VOID_COLORS} & {tuple(c) for c in COLORS}


def test_exact_colours_decode_to_their_ids():
    label = COLORS[None, :, :].repeat(3, axis=0)  # 3 x 19 x 3
    assert np.array_equal(decode_label(label), np.tile(np.arange(19, dtype=np.uint8), (3, 1)))


def test_noisy_colours_decode_to_their_ids():
    # The closest pair of palette colours (truck/caravan, bus/train) are 20 apart; noise of up to 3
    # per channel plus the 6-bit quantisation (up to 2) stays under half of that.
    rng = np.random.default_rng(0)
    ids = rng.integers(0, NUM_CLASSES, (64, 64))
    noisy = (COLORS[ids].astype(np.int16) + rng.integers(-3, 4, (64, 64, 3))).clip(0, 255).astype(np.uint8)
    assert np.array_equal(decode_label(noisy), ids)


@pytest.mark.parametrize("color", [tuple(int(v) for v in c) for c in VOID_COLORS])
def test_void_colours_are_ignored(color):
    label = np.full((4, 4, 3), color, dtype=np.uint8)
    assert (decode_label(label) == IGNORE_INDEX).all()


@pytest.mark.parametrize("color", [(0, 255, 0), (255, 255, 255), (255, 0, 255), (0, 255, 255)])
def test_far_colours_are_ignored(color):
    assert nearest_palette(np.array(color, dtype=np.uint8)[None])[1][0] > MAX_DISTANCE
    label = np.full((2, 3, 3), color, dtype=np.uint8)
    assert (decode_label(label) == IGNORE_INDEX).all()


def test_max_distance_threshold_is_used():
    # 30 away from road in one channel: within the default 40, beyond a threshold of 20.
    road = COLORS[0].astype(int)
    label = np.array([[road + (0, 0, 30)]], dtype=np.uint8)
    assert decode_label(label)[0, 0] == 0
    assert decode_label(label, max_distance=20.0)[0, 0] == IGNORE_INDEX


def test_colorize_then_decode_round_trips():
    rng = np.random.default_rng(1)
    ids = rng.integers(0, NUM_CLASSES, (32, 48)).astype(np.uint8)
    ids[::5, ::7] = IGNORE_INDEX
    color = colorize(ids)
    assert color.shape == (32, 48, 3) and color.dtype == np.uint8
    assert np.array_equal(color[ids == IGNORE_INDEX], np.zeros(((ids == IGNORE_INDEX).sum(), 3), np.uint8))
    assert np.array_equal(decode_label(color), ids)


def test_colorize_ignore_colour():
    mask = np.array([[0, IGNORE_INDEX]], dtype=np.uint8)
    out = colorize(mask, ignore_color=(1, 2, 3))
    assert out[0, 0].tolist() == COLORS[0].tolist() and out[0, 1].tolist() == [1, 2, 3]


def test_decode_is_a_table_lookup_matching_nearest_palette(monkeypatch):
    """Vectorised: after the table is built, decoding never calls the per-colour search; and the
    table agrees with the exact nearest colour at every bin centre we probe."""
    rng = np.random.default_rng(2)
    centres = (rng.integers(0, 64, (64, 64, 3)) * 4 + 2).astype(np.uint8)  # 6-bit bin centres
    idx, dist = nearest_palette(centres)
    expected = np.where((idx < NUM_CLASSES) & (dist <= MAX_DISTANCE), idx, IGNORE_INDEX)
    assert np.array_equal(decode_label(centres), expected)

    def boom(*a, **k):
        raise AssertionError("decode_label must not search colours per pixel")

    monkeypatch.setattr(palette, "nearest_palette", boom)
    out = decode_label(np.zeros((256, 256, 3), np.uint8))
    assert out.shape == (256, 256) and out.dtype == np.uint8
    assert palette._lut_cache[MAX_DISTANCE].shape == (64**3,)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((8, 8), np.uint8),
        np.zeros((8, 8, 4), np.uint8),
        np.zeros((8, 8, 3), np.float32),
        np.zeros((8, 8, 3), np.int64),
        np.zeros((2, 8, 8, 3), np.uint8),
    ],
)
def test_bad_input_raises(bad):
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        decode_label(bad)


def test_real_val_labels(real_data):
    """The first 20 real val labels: valid ids, the usual street classes on top, a plausible
    ignored share (the module docstring measures 19.6 % over all of val)."""
    from seg_core.data import list_pairs, read_pair

    files = list_pairs(real_data / "val")[:20]
    labels = np.stack([read_pair(f)[1] for f in files])
    assert labels.shape[0] == 20
    assert set(np.unique(labels).tolist()) <= set(range(NUM_CLASSES)) | {IGNORE_INDEX}
    counts = np.bincount(labels.ravel(), minlength=256)
    ignored = counts[IGNORE_INDEX] / labels.size
    assert 0.05 < ignored < 0.40
    top = [CLASS_NAMES[i] for i in np.argsort(-counts[:NUM_CLASSES])]
    assert top[0] == "road"
    assert {"building", "vegetation"} <= set(top[:3])
    assert "car" in top[:5]
    big4 = sum(counts[CLASS_NAMES.index(n)] for n in ("road", "car", "building", "vegetation"))
    assert big4 / counts[:NUM_CLASSES].sum() > 0.6


def test_nearest_palette_is_the_exact_nearest_colour():
    """The per-colour loop gives what the plain N x K x 3 distance gives, bit for bit (ties too)."""
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    rgb[0, :5] = np.concatenate([palette.COLORS, palette.VOID_COLORS])[:5]  # exact palette hits
    colours = np.concatenate([palette.COLORS, palette.VOID_COLORS]).astype(np.float32)
    d2 = ((rgb.reshape(-1, 3).astype(np.float32)[:, None] - colours[None]) ** 2).sum(-1)
    idx, dist = nearest_palette(rgb)
    assert np.array_equal(idx.ravel(), d2.argmin(1))
    assert np.array_equal(dist.ravel(), np.sqrt(d2.min(1)))
    assert idx.shape == dist.shape == (40, 50)
