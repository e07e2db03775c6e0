"""The Gradio app's Stress test tab: its answer function on a val scene (with mIoU) and an upload,
the cache on a severity seen before, clear errors, and the tab in the built app."""

from __future__ import annotations

import json
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no phoning home from tests

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from gradio_tabs.stress import scene_choices, stress_outputs, stress_tab  # noqa: E402
from seg_core.predictor import Predictor  # noqa: E402
from seg_core.serve.stress import StressService  # noqa: E402
from tests.conftest import ARCHS, synthetic_pair, write_pairs  # noqa: E402

SUMMARY = {"split": "judge", "images": 2, "backend": "int8",
           "models": {n: {"clean": 0.5, "corruptions": {"fog": {str(s): 0.4 for s in range(1, 6)}}} for n in ARCHS}}


@pytest.fixture(scope="module")
def service(weights_dir):
    return StressService(Predictor.from_dir(weights_dir))


def test_val_scene_gives_masks_miou_and_a_marked_figure(service, pairs_dir):
    assert scene_choices(pairs_dir)[:2] == ["1.jpg", "2.jpg"] and scene_choices(None) == []
    gallery, fig, text = stress_outputs(service, SUMMARY, pairs_dir, "2.jpg", None, "Fog", 4)
    assert [c for _, c in gallery][:2] == ["Photo: fog, severity 4", "Ground truth"] and len(gallery) == 2 + len(ARCHS) + 1
    assert all(img.dtype == np.uint8 and img.shape[:2] == (256, 256) for img, _ in gallery)
    assert "U-Net" in text and "computed in" in text
    marks = [t for t in fig.data if t.marker.symbol == "diamond"]
    assert len(marks) == len(ARCHS) and all(list(t.x) == [4] for t in marks)
    _, _, again = stress_outputs(service, SUMMARY, pairs_dir, "2.jpg", None, "Fog", 4)
    assert "from the cache" in again


def test_upload_has_no_miou_and_bad_input_is_one_sentence(service, tmp_path):
    path = tmp_path / "street.png"
    Image.fromarray(synthetic_pair(64, seed=9)[0]).save(path)
    gallery, fig, text = stress_outputs(service, None, None, None, str(path), "Motion blur", 2)
    assert [c for _, c in gallery][0] == "Photo: motion blur, severity 2" and "Ground truth" not in [c for _, c in gallery]
    assert fig is None and "no mIoU" in text and "No benchmark results" in text
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(gr.Error):
        stress_outputs(service, None, None, None, str(tmp_path / "bad.png"), "Fog", 1)
    with pytest.raises(gr.Error, match="Pick a val scene"):
        stress_outputs(service, None, None, None, None, "Fog", 1)


def test_tab_builds_inside_blocks(weights_dir, tmp_path):
    (tmp_path / "corruption_bench.json").write_text(json.dumps(SUMMARY))
    with gr.Blocks() as demo:
        with gr.Tab("Stress test") as tab:
            stress_tab(Predictor.from_dir(weights_dir), tmp_path, write_pairs(tmp_path / "val", n=2), tab=tab)
    config = demo.get_config_file()
    labels = [c["props"].get("label") for c in config["components"]]
    assert "Severity (0 = the photo as it is)" in labels and "Photo and masks" in labels
