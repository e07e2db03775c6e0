"""The Streamlit app: the pure helpers of ``ui``, and every page run headless with ``AppTest``.

Models are the random-weight 64x64 checkpoints of the ``weights_dir`` fixture, scenes the synthetic
pairs of ``write_pairs``; both reach the app through ``SEG_WEIGHTS_DIR`` / ``SEG_DATA_DIR``.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from seg_core.inference import ImageError
from seg_core.palette import colorize
from seg_core.viz import fit_within, legend_html, legend_rows, share_text
from tests.conftest import ROOT, synthetic_pair, write_pairs
from ui import figures, scenes

TIMEOUT = 180  # seconds per script run: three CPU models, slow shared CI machines


def png(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt)
    return buf.getvalue()


def pair_image(h: int = 64, seed: int = 0) -> np.ndarray:
    photo, label = synthetic_pair(h, seed)
    return np.concatenate([photo, colorize(label)], axis=1)


@pytest.fixture
def env(monkeypatch, weights_dir, tmp_path):
    """The app pointed at the test checkpoints and a folder of synthetic val pairs."""
    data = write_pairs(tmp_path / "val")
    monkeypatch.setenv("SEG_WEIGHTS_DIR", str(weights_dir))
    monkeypatch.setenv("SEG_DATA_DIR", str(data))
    return data


def page(name: str) -> AppTest:
    return AppTest.from_file(str(ROOT / "app_pages" / f"{name}.py"), default_timeout=TIMEOUT)


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def run_page(name: str, scene: scenes.Scene | None = None) -> AppTest:
    """Run a page (on ``scene`` when given) and check that it raised nothing."""
    at = page(name)
    if scene is not None:
        at.session_state["scene"] = scene
    at.run()
    no_exception(at)
    return at


def use_weights(monkeypatch, folder: Path) -> Path:
    """Point the app at the weights folder ``folder`` (created empty when it does not exist)."""
    folder.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("SEG_WEIGHTS_DIR", str(folder))
    return folder


def compare_deep_link(scene_name: str) -> AppTest:
    """The Compare page opened from a link that names a gallery scene."""
    at = page("compare")
    at.query_params["scene"] = scene_name
    return at.run()


def captions(at: AppTest) -> list[str]:
    return [c for image in at.image for c in image.captions]


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


# --- pure helpers ---------------------------------------------------------------------------------

def test_upload_decodes_png_jpeg_webp_bmp():
    photo, _ = synthetic_pair(32)
    for fmt in ("PNG", "JPEG", "WEBP", "BMP"):
        scene = scenes.scene_from_upload(f"x.{fmt.lower()}", png(photo, fmt))
        assert scene.photo.shape == (32, 32, 3) and scene.label is None


def test_upload_pair_is_detected_and_split():
    scene = scenes.scene_from_upload("pair.png", png(pair_image()))
    assert scene.photo.shape == (64, 64, 3) and scene.label.shape == (64, 64)
    noise = np.random.default_rng(0).integers(0, 256, (64, 128, 3), dtype=np.uint8)
    assert not scenes.looks_like_pair(noise)
    assert scenes.scene_from_upload("wide.png", png(noise)).label is None
    assert scenes.scene_from_upload("forced.png", png(pair_image()), as_pair=False).photo.shape == (64, 128, 3)


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"certainly not an image", "not an image"),
    (png(pair_image())[:200], "corrupt"),
])
def test_bad_uploads_raise_image_error(data, message):
    with pytest.raises(ImageError, match=message):
        scenes.scene_from_upload("bad.png", data)


def test_huge_upload_is_refused_before_decoding():
    with pytest.raises(ImageError, match="megapixels"):
        scenes.load_image(png(pair_image()), max_pixels=100)


def test_scene_key_follows_content():
    photo, label = synthetic_pair(32)
    assert scenes.Scene("a", photo).key == scenes.Scene("b", photo.copy()).key
    assert scenes.Scene("a", photo).key != scenes.Scene("a", photo, label).key


def test_before_after_reveals_left_part():
    before = np.zeros((4, 10, 3), np.uint8)
    after = np.full((4, 10, 3), 7, np.uint8)
    out = scenes.before_after(before, after, 0.5, line=0)
    assert (out[:, :5] == 7).all() and (out[:, 5:] == 0).all()
    assert (scenes.before_after(before, after, 0.0) == before).all()
    assert (scenes.before_after(before, after, 1.0) == after).all()
    assert (scenes.before_after(before, after, 0.5)[:, 4:6] == 255).all()  # the seam


def test_paging_and_display_scale():
    assert scenes.page_of(list(range(50)), 3, 24) == [48, 49]
    assert scenes.page_of(list(range(50)), 99, 24) == [48, 49]
    big = np.zeros((600, 3000), np.uint8)
    assert scenes.display_scale(big, nearest=True).shape == (205, scenes.DISPLAY_MAX_SIDE)
    assert fit_within(big, 1000, nearest=True).shape == (200, 1000)
    small = np.zeros((10, 20, 3), np.uint8)
    assert scenes.display_scale(small) is small


def test_confusion_helpers_and_figures():
    mat = np.zeros((19, 19), np.int64)
    mat[0, 0], mat[0, 2], mat[2, 2] = 3, 1, 4
    assert np.allclose(scenes.row_normalize(mat)[0, [0, 2]], [0.75, 0.25])
    assert list(scenes.present_classes(mat)) == [0, 2]
    fig = figures.confusion_figure(mat, "t")
    assert list(fig.data[0].x) == ["road", "building"] and fig.data[0].z[0][0] == pytest.approx(0.75)
    assert len(figures.confusion_figure(mat, "t", only_present=False).data[0].x) == 19
    bars = figures.iou_figure({"unet": {"road": 0.9}, "fcn_vgg16": {"road": 0.8}})
    assert [t.name for t in bars.data] == ["U-Net", "FCN-VGG16"]


def test_legend_lists_present_classes_with_shares():
    a = np.zeros((10, 10), np.uint8)
    b = a.copy()
    b[:5] = 10  # sky
    rows = legend_rows({"A": a, "B": b})
    assert [r["name"] for r in rows] == ["road", "sky"]
    assert rows[0]["share"] == {"A": 1.0, "B": 0.5}
    html = legend_html(rows, {"A": "Model A", "B": "Model B"})
    assert "sky" in html and "#4682b4" in html and "50.0%" in html and ">Model B</th>" in html
    assert share_text(0.0004) == "<0.1%" and share_text(0) == "–"


# --- pages ----------------------------------------------------------------------------------------

def test_app_entry_point_runs_and_navigates(env):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    no_exception(at)
    assert at.title[0].value == "Compare the models"
    assert at.sidebar.text_input(key="data_dir").value == str(env)
    at.switch_page("app_pages/about.py").run()
    no_exception(at)
    assert at.title[0].value == "About"


def test_compare_gallery_pick_shows_three_models(env):
    at = run_page("compare")
    assert "Upload a photo or pick a validation scene" in texts(at.info)
    at.radio(key="source").set_value("Validation gallery").run()
    assert len(at.image) == 6  # the thumbnails of the six synthetic pairs
    at.button(key="gallery_2.jpg").click().run()
    no_exception(at)
    shown = captions(at)
    for model in ("U-Net", "FCN-VGG16", "FCN-ResNet50"):
        assert any(c.startswith(model) and c.endswith("ms)") for c in shown), shown
        assert f"{model} overlay" in shown
    assert "Ground truth" in shown
    assert any("disagree" in c for c in shown)
    assert at.session_state["scene"].name == "2.jpg"
    assert len(at.get("download_button")) == 6
    assert {m.label for m in at.metric} == {"U-Net", "FCN-VGG16", "FCN-ResNet50"}
    legend = texts(at.get("html"))  # the legend table: one column per model, classes present
    assert all(f">{model}</th>" in legend for model in ("U-Net", "FCN-VGG16", "FCN-ResNet50"))
    assert legend.count("<tr>") >= 2


def test_compare_opacity_and_reveal_sliders_change_the_pictures(env):
    at = page("compare")
    at.query_params["scene"] = "1.jpg"
    at.run()
    no_exception(at)
    assert at.session_state["scene"].name == "1.jpg"

    def urls(prefix):
        return [url for im in at.image for url, c in zip(im.value, im.captions) if c.startswith(prefix)]

    overlay_before, seam_before = urls("U-Net overlay"), urls("left of the seam")
    at.slider(key="opacity").set_value(0.9).run()
    no_exception(at)
    assert urls("U-Net overlay") != overlay_before
    at.slider(key="reveal").set_value(10).run()
    assert urls("left of the seam") != seam_before
    at.selectbox(key="ba_model").set_value("fcn_resnet50").run()
    assert any(c.startswith("left of the seam: FCN-ResNet50") for c in captions(at))


def test_compare_upload_several_and_pick_one(env):
    at = page("compare").run()
    photo, _ = synthetic_pair(48, seed=3)
    at.file_uploader(key="uploads").set_value([
        ("street.png", png(photo), "image/png"),
        ("pair.png", png(pair_image()), "image/png"),
    ]).run()
    no_exception(at)
    assert at.session_state["scene"].name == "street.png"
    assert at.session_state["scene"].label is None
    assert "U-Net overlay" in captions(at)
    at.selectbox(key="upload_pick").set_value(1).run()
    no_exception(at)
    assert at.checkbox(key="as_pair_pair.png").value is True  # auto-detected
    assert at.session_state["scene"].label is not None
    assert "(with ground truth)" in at.subheader[0].value
    at.checkbox(key="as_pair_pair.png").uncheck().run()
    assert at.session_state["scene"].label is None
    assert at.session_state["scene"].photo.shape == (64, 128, 3)


def test_compare_large_upload_is_drawn_at_screen_size(env):
    wide = np.random.default_rng(1).integers(0, 256, (300, 1500, 3), dtype=np.uint8)
    at = page("compare").run()
    at.file_uploader(key="uploads").set_value(("wide.png", png(wide), "image/png")).run()
    no_exception(at)
    assert at.session_state["scene"].photo.shape == (300, 1500, 3)
    assert "FCN-ResNet50 overlay" in captions(at) and len(at.get("download_button")) == 6


@pytest.mark.parametrize("data", [b"", b"GIF89a but not really", png(pair_image())[:300]])
def test_compare_bad_upload_shows_an_error_not_a_traceback(env, data):
    at = page("compare").run()
    at.file_uploader(key="uploads").set_value(("bad.png", data, "image/png")).run()
    no_exception(at)
    assert len(at.error) == 1 and "Cannot use **bad.png**" in at.error[0].value
    assert "scene" not in at.session_state


def test_compare_without_weights_explains_and_still_shows_the_photo(env, monkeypatch, tmp_path):
    use_weights(monkeypatch, tmp_path / "no_weights")
    at = compare_deep_link("1.jpg")
    no_exception(at)
    info = texts(at.info)
    assert "No weights yet" in info
    assert "python train_cli.py train --arch fcn_resnet50" in texts(at.code)
    assert "Photo" in captions(at) and not any(c.startswith("U-Net") for c in captions(at))


def test_compare_with_one_model_warns_about_the_others(env, monkeypatch, weights_dir, tmp_path):
    partial = use_weights(monkeypatch, tmp_path / "partial")
    shutil.copy(weights_dir / "unet.safetensors", partial / "unet.safetensors")
    (partial / "fcn_vgg16.safetensors").write_bytes(b"broken")
    at = compare_deep_link("1.jpg")
    no_exception(at)
    warnings = texts(at.warning)
    assert "FCN-VGG16** is not available" in warnings and "Train it with" in warnings
    assert "FCN-ResNet50** is not available" in warnings
    assert "train_cli.py train --arch fcn_resnet50" in texts(at.code)
    assert "U-Net overlay" in captions(at)
    assert any("Needs at least two models" in c.value for c in at.caption)


def test_weights_copied_in_while_running_are_picked_up(env, monkeypatch, weights_dir, tmp_path):
    folder = use_weights(monkeypatch, tmp_path / "growing")
    at = compare_deep_link("1.jpg")
    assert "No weights yet" in texts(at.info)
    shutil.copy(weights_dir / "unet.safetensors", folder / "unet.safetensors")
    at.run()
    no_exception(at)
    assert "U-Net overlay" in captions(at) and len(at.warning) == 2


def test_gallery_without_folder_says_how_to_point_at_one(env, monkeypatch, tmp_path):
    monkeypatch.setenv("SEG_DATA_DIR", str(tmp_path / "nowhere"))
    at = page("compare").run()
    at.radio(key="source").set_value("Validation gallery").run()
    no_exception(at)
    assert "may not be redistributed" in texts(at.info) and "SEG_DATA_DIR" in texts(at.info)


def test_gallery_pages(env, tmp_path, monkeypatch):
    monkeypatch.setenv("SEG_DATA_DIR", str(write_pairs(tmp_path / "many", n=30, h=32)))
    at = page("compare").run()
    at.radio(key="source").set_value("Validation gallery").run()
    assert len(at.image) == 24
    at.number_input(key="gallery_page").set_value(2).run()
    no_exception(at)
    assert len(at.image) == 6 and at.button(key="gallery_30.jpg")


def test_ground_truth_page_scores_the_shared_scene(env):
    at = run_page("ground_truth")
    assert "needs a scene with a label" in texts(at.info)
    at.button(key="gallery_3.jpg").click().run()  # the page's own gallery, same session state
    no_exception(at)
    assert at.subheader[0].value == "3.jpg"
    table = at.dataframe[0].value
    assert list(table["model"]) == ["U-Net", "FCN-VGG16", "FCN-ResNet50"]
    assert table["pixel acc"].between(0, 1).all()
    assert len(at.get("plotly_chart")) == 3
    assert sum("right" in c for c in captions(at)) == 3  # the error maps
    at.checkbox(key="gt_only_present").uncheck().run()
    no_exception(at)


def test_ground_truth_page_uses_the_scene_from_compare(env):
    scene = scenes.scene_from_file(env / "4.jpg")
    at = run_page("ground_truth", scene)
    assert at.subheader[0].value == "4.jpg" and not at.info


def test_ground_truth_page_with_unlabelled_upload_explains(env):
    photo, _ = synthetic_pair(32)
    at = run_page("ground_truth", scenes.Scene("street.png", photo))
    assert "street.png, has no label" in texts(at.info)


def test_benchmark_page_facts_and_recompute(env):
    at = run_page("benchmark")
    facts = at.dataframe[-1].value
    assert list(facts["model"]) == ["U-Net", "FCN-VGG16", "FCN-ResNet50"]
    assert (facts["parameters (M)"] > 1).all() and (facts["file (MB)"] > 0).all()
    assert "no metrics recorded" in texts(at.caption)
    at.number_input(key="bench_limit").set_value(4).run()
    at.button(key="bench_recompute").click().run()
    no_exception(at)
    metrics = at.dataframe[0].value
    assert metrics["mIoU"].between(0, 1).all()
    assert len(at.get("plotly_chart")) == 4  # IoU bars + three confusion matrices


def test_benchmark_page_reads_metrics_recorded_in_checkpoints(env, monkeypatch, weights_dir, tmp_path):
    from seg_core.checkpoint import load_model, save_model

    model = load_model(weights_dir / "unet.safetensors")
    model.config.metrics = {"pixel_acc": 0.8, "class_acc": 0.5, "miou": 0.42, "iou": {"road": 0.9, "sky": 0.7}}
    save_model(model, tmp_path / "recorded" / "unet.safetensors", half=True)
    monkeypatch.setenv("SEG_WEIGHTS_DIR", str(tmp_path / "recorded"))
    at = run_page("benchmark")
    assert at.dataframe[0].value["mIoU"].iloc[0] == pytest.approx(0.42)
    assert len(at.get("plotly_chart")) == 1  # the IoU bars; no confusion matrix before a recompute
    assert len(at.warning) == 2  # the two FCNs have no weights there


def test_benchmark_and_ground_truth_without_weights(env, monkeypatch, tmp_path):
    use_weights(monkeypatch, tmp_path / "none")
    for name in ("benchmark", "ground_truth"):
        at = run_page(name, scenes.scene_from_file(env / "1.jpg"))
        assert "No weights yet" in texts(at.info)


def test_about_page(env):
    at = run_page("about")
    assert len(at.get("graphviz_chart")) == 2
    assert "--arch unet --data ../shared/data/cityscapes_pairs/train" in texts(at.code)
    assert "train_cli.py export --weights weights --format openvino --int8" in texts(at.code)
    assert "may not be redistributed" in texts(at.markdown)


def test_pages_show_the_backend_of_each_model(env, monkeypatch, weights_dir, tmp_path):
    """With an exported OpenVINO U-Net beside the checkpoints, Compare and Benchmark say which
    model runs on which backend."""
    from seg_core.checkpoint import load_model
    from seg_core.export import export_onnx, to_openvino

    folder = tmp_path / "fast"
    shutil.copytree(weights_dir, folder)
    source = folder / "unet.safetensors"
    to_openvino(export_onnx(load_model(source), tmp_path / "unet.onnx", source=source), folder / "unet.xml")
    monkeypatch.setenv("SEG_WEIGHTS_DIR", str(folder))
    at = run_page("compare", scenes.scene_from_file(env / "2.jpg"))
    assert {"OpenVINO fp32", "PyTorch fp32"} <= {c.value for c in at.caption}
    at = run_page("benchmark")
    facts = at.dataframe[-1].value
    assert list(facts["backend"]) == ["OpenVINO fp32", "PyTorch fp32", "PyTorch fp32"]
    assert facts["file (MB)"].iloc[0] > 0 and facts["parameters (M)"].iloc[0] > 1


def test_mirror_image_averaging_toggle_reaches_every_model(env, monkeypatch, weights_dir, tmp_path):
    """The sidebar toggle (rendered by app.py) makes each model predict with flip TTA; the
    Compare page says so, and its masks are those of ``Predictor.predict(tta="flip")``."""
    from seg_core.predictor import Predictor

    shutil.copytree(weights_dir, tmp_path / "weights")  # a folder of its own: no masks cached by other tests
    use_weights(monkeypatch, tmp_path / "weights")

    asked = []
    original = Predictor.predict

    def recording(self, image, names=None, tta="none"):
        asked.append(tta)
        return original(self, image, names, tta)

    monkeypatch.setattr(Predictor, "predict", recording)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.query_params["scene"] = "3.jpg"
    at.run()
    no_exception(at)
    assert not at.sidebar.toggle(key="tta").value and asked == ["none"]
    assert not any("mirror-image" in c.value for c in at.caption)
    at.sidebar.toggle(key="tta").set_value(True).run()
    no_exception(at)
    assert asked == ["none", "flip"]
    assert sum("mirror-image averaging" in c.value for c in at.caption) == 3
    at.sidebar.toggle(key="tta").set_value(False).run()  # back: the cached masks, no new prediction
    assert asked == ["none", "flip"]


def test_public_mode_has_no_folder_box_and_shows_no_server_path(env, monkeypatch, weights_dir):
    monkeypatch.setenv("SEG_PUBLIC", "1")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    no_exception(at)
    assert not [w for w in at.sidebar.text_input if w.key == "data_dir"]
    shown = texts(at.sidebar.caption) + texts(at.markdown) + texts(at.info)
    assert "Weights: shipped with the app" in texts(at.sidebar.caption)
    assert str(weights_dir) not in shown and str(env) not in shown


def test_a_weights_revision_the_hub_lacks_stops_the_page_with_the_reason(env, monkeypatch):
    from huggingface_hub.errors import RevisionNotFoundError

    from seg_core import served_weights
    from tests.conftest import refuse_hub_downloads

    refuse_hub_downloads(monkeypatch, RevisionNotFoundError, "404 Revision Not Found")
    monkeypatch.setenv("SEG_WEIGHTS_REPO", "lab/weights")
    monkeypatch.setenv("SEG_WEIGHTS_REVISION", "deadbeef")
    at = run_page("compare")
    assert "the weights repo lab/weights (SEG_WEIGHTS_REPO) has no revision 'deadbeef'" in texts(at.error)
    assert not at.image  # stopped before any model ran
    served_weights._download.cache_clear()
