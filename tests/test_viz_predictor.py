"""seg_core.viz (overlays, legends, maps, PNG bytes) and seg_core.predictor (the shipped models)."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
from PIL import Image

from seg_core.palette import COLORS, IGNORE_INDEX, colorize
from seg_core.predictor import Missing, Predictor, train_command
from seg_core.viz import DISAGREE_COLOR, ERROR_COLORS, disagreement, disagreement_image, error_map, legend, overlay, png_bytes
from tests.conftest import ARCHS


def _scene(seed: int = 0):
    rng = np.random.default_rng(seed)
    photo = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    mask = rng.integers(0, 19, (12, 16)).astype(np.uint8)
    mask[:3, :4] = IGNORE_INDEX
    return photo, mask


# --- viz --------------------------------------------------------------------------------------


def test_overlay_alpha_0_is_the_photo():
    photo, mask = _scene()
    assert np.array_equal(overlay(photo, mask, alpha=0.0), photo)


def test_overlay_alpha_1_is_the_colour_mask_except_ignored():
    photo, mask = _scene()
    out = overlay(photo, mask, alpha=1.0)
    ignored = mask == IGNORE_INDEX
    assert np.array_equal(out[~ignored], colorize(mask)[~ignored])
    assert np.array_equal(out[ignored], photo[ignored])


def test_overlay_blends_and_clips_alpha():
    photo = np.full((1, 1, 3), 100, np.uint8)
    mask = np.zeros((1, 1), np.uint8)  # road (128, 64, 128)
    assert overlay(photo, mask, alpha=0.5)[0, 0].tolist() == [114, 82, 114]
    assert np.array_equal(overlay(photo, mask, alpha=7.0), overlay(photo, mask, alpha=1.0))
    assert overlay(photo, mask).dtype == np.uint8 and overlay(photo, mask).shape == (1, 1, 3)


def test_legend_lists_present_classes_largest_first():
    mask = np.array([[0, 0, 0, 13], [13, 2, 0, 0]], dtype=np.uint8)
    rows = legend(mask)
    assert [r["name"] for r in rows] == ["road", "car", "building"]
    assert [r["id"] for r in rows] == [0, 13, 2]
    assert rows[0]["color"] == "#%02x%02x%02x" % tuple(COLORS[0]) == "#804080"
    assert [r["share"] for r in rows] == pytest.approx([5 / 8, 2 / 8, 1 / 8])
    assert sum(r["share"] for r in rows) == pytest.approx(1.0)


def test_legend_of_random_mask_sums_to_one():
    mask = np.random.default_rng(1).integers(0, 19, (30, 40)).astype(np.uint8)
    rows = legend(mask)
    assert {r["id"] for r in rows} == set(np.unique(mask).tolist())
    assert sum(r["share"] for r in rows) == pytest.approx(1.0)
    assert all(a["share"] >= b["share"] for a, b in zip(rows, rows[1:]))


def test_disagreement_by_hand():
    a = np.array([[0, 1], [2, 3]])
    b = np.array([[0, 1], [2, 4]])
    c = np.array([[0, 5], [2, 3]])
    assert disagreement([a]).tolist() == [[False, False], [False, False]]
    assert disagreement([a, a.copy()]).sum() == 0
    assert disagreement([a, b]).tolist() == [[False, False], [False, True]]
    assert disagreement([a, b, c]).tolist() == [[False, True], [False, True]]
    # order does not matter
    assert disagreement([b, a, c]).tolist() == [[False, True], [False, True]]
    with pytest.raises(ValueError):
        disagreement([])


def test_disagreement_image():
    photo = np.zeros((2, 2, 3), np.uint8)
    out = disagreement_image(photo, [np.array([[0, 1], [1, 1]]), np.array([[0, 1], [1, 2]])])
    assert out[1, 1].tolist() == list(DISAGREE_COLOR)
    assert out[0, 0].tolist() == [64, 64, 64]  # dimmed gray of black


def test_disagreement_colour_is_far_from_every_class_colour():
    from seg_core.palette import COLORS

    nearest = np.sqrt(((COLORS.astype(float) - DISAGREE_COLOR) ** 2).sum(1)).min()
    assert nearest > 120, nearest  # magenta was 43 from sidewalk


def test_error_colours_differ_for_colour_blind_eyes():
    """Correct and wrong differ in lightness, not only in hue (red/green did not), and both differ
    from the ignored gray."""
    lum = {k: 0.299 * r + 0.587 * g + 0.114 * b for k, (r, g, b) in ERROR_COLORS.items()}
    assert abs(lum["correct"] - lum["wrong"]) > 40
    assert abs(lum["ignored"] - lum["wrong"]) > 40 and abs(lum["ignored"] - lum["correct"]) > 40


def test_error_map_by_hand():
    pred = np.array([[0, 1, 2], [3, 3, 3]])
    target = np.array([[0, 2, 2], [IGNORE_INDEX, 3, 4]])
    out = error_map(pred, target)
    c, w, i = ERROR_COLORS["correct"], ERROR_COLORS["wrong"], ERROR_COLORS["ignored"]
    assert out.tolist() == [[list(c), list(w), list(c)], [list(i), list(c), list(w)]]
    with pytest.raises(ValueError, match="differ in shape"):
        error_map(pred, target[:, :2])


@pytest.mark.parametrize("array", [np.arange(60, dtype=np.uint8).reshape(6, 10),
                                   np.random.default_rng(0).integers(0, 256, (6, 10, 3), dtype=np.uint8)])
def test_png_bytes_round_trip(array):
    data = png_bytes(array)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), array)


# --- predictor --------------------------------------------------------------------------------


def test_train_command():
    cmd = train_command("fcn_vgg16")
    assert "train_cli.py train --arch fcn_vgg16" in cmd and "weights/fcn_vgg16.safetensors" in cmd


def test_from_dir_loads_the_three_models(weights_dir):
    predictor = Predictor.from_dir(weights_dir)
    assert set(predictor.models) == set(ARCHS) and predictor.missing == {}
    for name, runner in predictor.models.items():
        assert runner.config.arch == name and runner.label == "PyTorch fp32"
        assert runner.path == weights_dir / f"{name}.safetensors"
        assert runner.file_bytes == runner.path.stat().st_size and runner.num_parameters > 0
    photo = np.random.default_rng(0).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    out = predictor.predict(photo)
    assert set(out) == set(ARCHS)
    assert all(p.mask.shape == (30, 50) and p.mask.dtype == np.uint8 for p in out.values())
    assert set(predictor.predict(photo, names=("unet",))) == {"unet"}


def test_from_dir_with_missing_and_corrupt_files(weights_dir, tmp_path):
    folder = tmp_path / "weights"
    folder.mkdir()
    shutil.copy(weights_dir / "unet.safetensors", folder)
    # fcn_vgg16 is missing; fcn_resnet50 is cut short, as by an interrupted copy
    raw = (weights_dir / "fcn_resnet50.safetensors").read_bytes()
    (folder / "fcn_resnet50.safetensors").write_bytes(raw[: len(raw) // 3])
    predictor = Predictor.from_dir(folder)
    assert set(predictor.models) == {"unet"}
    assert set(predictor.missing) == {"fcn_vgg16", "fcn_resnet50"}
    for name, missing in predictor.missing.items():
        assert isinstance(missing, Missing)
        assert missing.command == train_command(name) and f"--arch {name}" in missing.command
        assert "train_cli.py" not in missing.reason  # structured: the reason carries no command
    assert "no weights at" in predictor.missing["fcn_vgg16"].reason
    assert "not a valid safetensors checkpoint" in predictor.missing["fcn_resnet50"].reason
    out = predictor.predict(np.zeros((20, 20, 3), np.uint8))
    assert list(out) == ["unet"] and out["unet"].mask.shape == (20, 20)


def test_from_dir_refuses_another_archs_checkpoint(weights_dir, tmp_path):
    # A U-Net copied to the FCN-VGG16 name is refused by the arch guard, not silently loaded.
    folder = tmp_path / "weights"
    folder.mkdir()
    shutil.copy(weights_dir / "unet.safetensors", folder / "fcn_vgg16.safetensors")
    predictor = Predictor.from_dir(folder, names=("fcn_vgg16",))
    assert predictor.models == {}
    assert "holds a unet model, not fcn_vgg16" in predictor.missing["fcn_vgg16"].reason
