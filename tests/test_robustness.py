"""seg_core.robustness and benchmarks/corruption_bench.py: per-image matrices on corrupted photos,
the benchmark's numbers, its cache, the paired comparison of two weights folders, the figure."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from benchmarks import corruption_bench
from seg_core.corruptions import corrupt
from seg_core.data import load_split
from seg_core.evaluate import evaluate
from seg_core.registry import model_color
from seg_core.robustness import corrupted_images, image_matrices, image_seed, summarize_grid
from seg_core.runners import load_runner
from tests.conftest import ARCHS
from ui.robustness import read_summary, severity_figure


def test_image_matrices_add_up_to_evaluate(weights_dir, pairs_dir):
    images, labels = load_split(pairs_dir)
    runner = load_runner(weights_dir / "unet.safetensors")
    mats = image_matrices(runner, images, labels, batch_size=4)
    assert mats.shape == (len(images), 19, 19)
    assert np.array_equal(mats.sum(0), evaluate(runner, images, labels)[1])
    probe = image_matrices(runner, images, labels, input_size=(96, 96))  # another input size, same label size
    assert probe.sum() == mats.sum() and not np.array_equal(probe, mats)


def test_corruption_seeded_by_place_in_split(pairs_dir):
    images, _ = load_split(pairs_dir)
    both = corrupted_images(images[2:4], [2, 3], "gaussian_noise", 2)
    alone = corrupted_images(images[3:4], [3], "gaussian_noise", 2)
    assert torch.equal(both[1], alone[0])  # the same file gives the same photo in any selection
    want = corrupt(images[3].permute(1, 2, 0).numpy().copy(), "gaussian_noise", 2, image_seed(3))
    assert np.array_equal(alone[0].permute(1, 2, 0).numpy(), want)


def test_summarize_grid_values():
    eye = np.zeros((2, 3, 3), np.int64)
    eye[:, [0, 1, 2], [0, 1, 2]] = 10  # perfect: mIoU 1
    half = eye.copy()
    half[:, 0, 1] = 10  # class 0 half wrong: IoU(0) = 1/2, IoU(1) = 10/20 -> mIoU (0.5 + 0.5 + 1) / 3
    s = summarize_grid(eye, {("fog", 1): eye, ("fog", 2): half, ("snow", 1): half}, probe=half)
    assert s["clean"] == 1 and s["corruptions"]["fog"] == {"1": 1.0, "2": pytest.approx(2 / 3)}
    assert s["mean_corruption"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3) == s["relative"]
    assert s["per_corruption_mean"]["fog"] == pytest.approx(5 / 6)
    assert s["probe"]["delta"] == pytest.approx(-1 / 3) and s["probe"]["input_size"] == [384, 384]


@pytest.mark.slow
def test_benchmark_command_caches_compares_and_draws(weights_dir, pairs_dir, tmp_path, monkeypatch, capsys):
    args = ["--weights", str(weights_dir), "--data", str(pairs_dir), "--split", "all", "--backend", "fp32",
            "--corruptions", "fog,pixelate", "--severities", "1,3", "--cache", str(tmp_path / "cache"),
            "--out", str(tmp_path / "out"), "--summary", str(tmp_path / "corruption_bench.json"),
            "--compare", str(weights_dir)]
    assert corruption_bench.main(args) == 0
    result = json.loads((tmp_path / "out" / f"{weights_dir.name}_fp32_all.json").read_text())
    assert result["images"] == 6 and list(result["models"]) == list(ARCHS)
    unet = result["models"]["unet"]
    assert set(unet["corruptions"]) == {"fog", "pixelate"} and set(unet["corruptions"]["fog"]) == {"1", "3"}
    assert unet["relative"] == pytest.approx(unet["mean_corruption"] / unet["clean"])
    boot = result["compare"]["bootstrap"]["unet"]  # the same weights: no gain, an interval of zero width
    assert boot["mean_corruption_gain"] == boot["interval"][0] == boot["interval"][1] == 0
    assert (tmp_path / "out" / f"{weights_dir.name}_fp32_all.html").is_file()
    assert "| U-Net |" in capsys.readouterr().out
    # 3 models x (clean, 2 x 2 corrupted, probe), shared by the comparison (same files)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 18

    calls = []
    monkeypatch.setattr(corruption_bench, "image_matrices", lambda *a, **k: calls.append(a) or None)
    assert corruption_bench.main(args) == 0 and calls == []  # all from the cache
    again = json.loads((tmp_path / "corruption_bench.json").read_text())
    assert again["models"]["unet"]["corruptions"] == unet["corruptions"]
    assert read_summary(tmp_path)["models"]["fcn_vgg16"]["clean"] == result["models"]["fcn_vgg16"]["clean"]

    # another half of the split is another cache entry
    monkeypatch.undo()
    half = [a if a != "all" else "judge" for a in args[:-2]]  # without --compare
    assert corruption_bench.main(half) == 0
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 36


def test_benchmark_refuses_missing_int8(weights_dir, pairs_dir, tmp_path, capsys):
    code = corruption_bench.main(["--weights", str(weights_dir), "--data", str(pairs_dir), "--cache", str(tmp_path),
                                  "--out", str(tmp_path), "--corruptions", "fog", "--severities", "1"])
    assert code == 2 and "no int8 model" in capsys.readouterr().err


def test_severity_figure_marks_the_current_point():
    models = {n: {"clean": 0.5, "corruptions": {"fog": {"1": 0.4, "2": 0.3}, "snow": {"1": 0.2, "2": 0.1}}} for n in ARCHS}
    summary = {"models": models, "split": "judge", "images": 200, "backend": "int8"}
    fig = severity_figure(summary)
    assert len(fig.data) == 6 and [t.visible for t in fig.data].count(True) == 3
    assert list(fig.data[0].y) == [0.5, 0.4, 0.3] and len(fig.layout.updatemenus[0].buttons) == 2
    one = severity_figure(summary, "snow", current=(2, {"unet": 0.05, "fcn_vgg16": None}))
    marks = [t for t in one.data if t.marker.symbol == "diamond"]
    assert len(marks) == 1 and list(marks[0].x) == [2] and list(marks[0].y) == [0.05]
    assert list(one.data[0].y) == [0.5, 0.2, 0.1]
    assert [t.line.color for t in one.data[:3]] == [model_color(n) for n in ARCHS]  # the models' colours on every page
    assert marks[0].marker.color == model_color("unet")
    assert read_summary("/nonexistent") is None


def test_chart_titles_fit_a_phone_line_by_line():
    """The Stress test's and the Val explorer's titles were one line of ~60-70 characters, cut at
    the right of a 390 px screen; each line of a title now fits (~44 characters at plotly's size)."""
    import re

    import pandas as pd

    from ui.explore import scatter_figure

    summary = {"models": {n: {"clean": 0.5, "corruptions": {"gaussian_noise": {"1": 0.4}}} for n in ARCHS},
               "split": "judge", "images": 200, "backend": "int8"}
    frame = pd.DataFrame({"image": ["a", "b"], "disagreement": [0.1, 0.2],
                          "FCN-ResNet50 mIoU": [0.4, 0.5], "FCN-VGG16 mIoU": [0.3, 0.6]})
    for fig in (severity_figure(summary), scatter_figure(frame, "fcn_resnet50", "fcn_vgg16")):
        lines = [re.sub(r"<[^>]+>", "", line) for line in fig.layout.title.text.split("<br>")]
        assert all(len(line) <= 44 for line in lines), lines
