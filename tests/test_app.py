"""The Streamlit app: the pure helpers of ``ui``, and every page run headless with ``AppTest``.

Models are the random-weight 64x64 checkpoints of the ``weights_dir`` fixture, scenes the synthetic
pairs of ``write_pairs``; both reach the app through ``SEG_WEIGHTS_DIR`` / ``SEG_DATA_DIR``.
"""

from __future__ import annotations

import html
import io
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
import streamlit as st
from streamlit.testing.v1 import AppTest

from seg_core.inference import ImageError
from seg_core.palette import colorize
from seg_core.viz import fit_within, legend_rows, share_text
from ui.views import legend_html
from tests.conftest import ROOT, synthetic_pair, write_pairs
from ui import figures, scenes, views

TIMEOUT = 180  # seconds per script run: three CPU models, slow shared CI machines


def png(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt)
    return buf.getvalue()


def pair_image(h: int = 64, seed: int = 0) -> np.ndarray:
    photo, label = synthetic_pair(h, seed)
    return np.concatenate([photo, colorize(label)], axis=1)


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


def walk(node):
    """Every node of an AppTest element tree, depth first in page order."""
    yield node
    for child in getattr(node, "children", {}).values():
        yield from walk(child)


def grid_html(at: AppTest) -> str:
    """The Compare page's picture grid (``ui.views.image_grid_html``)."""
    return "\n".join(h.value for h in at.get("html") if "seg-grid" in h.value)


def grid_captions(at: AppTest) -> list[str]:
    return [html.unescape(c) for c in re.findall(r"<figcaption[^>]*>(.*?)</figcaption>", grid_html(at))] + [
        html.unescape(c) for c in re.findall(r"<div class='seg-note'[^>]*>(.*?): not available</div>", grid_html(at))]


def frames(at: AppTest) -> list[str]:
    """The pages of the page's iframes (the Overlays and Before / after views)."""
    return [n.proto.srcdoc for n in walk(at.main) if "srcdoc" in str(getattr(n, "proto", ""))[:20]]


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


# --- pure helpers ---------------------------------------------------------------------------------

def test_preload_script_names_only_the_frontends_chunks(tmp_path):
    """``app.py``'s one script that runs imports the Streamlit chunks a first upload would fetch: the
    installed Streamlit has all of them; from another folder only names shaped like a bundler's
    chunk reach the script (one with a quote would end its string); none found, no element."""
    from ui.common import LAZY_CHUNKS, preload_html

    shipped = preload_html()
    assert all(f'"{stem}.' in shipped for stem in LAZY_CHUNKS), shipped
    for name in ("axios.b9_x-1.js", "ButtonGroup.C1.js", "Metric.M2.js", "DownloadButton.x');alert(1);('.js", "Other.x.js"):
        (tmp_path / name).write_text("")
    names = re.search(r"(\[[^\]]*\])\.forEach", preload_html(tmp_path)).group(1)
    assert names == '["axios.b9_x-1.js", "ButtonGroup.C1.js", "Metric.M2.js"]'
    assert preload_html(tmp_path / "empty") == ""


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


def _recorded_decodes(monkeypatch) -> list:
    """Each ``load_image`` call of ``ui.scenes``, as its ``within`` (``None``: at full size)."""
    calls, original = [], scenes.load_image
    monkeypatch.setattr(scenes, "load_image", lambda *a, **k: (calls.append(k.get("within")), original(*a, **k))[1])
    return calls


def test_big_upload_is_decoded_at_screen_size_and_at_full_size_when_asked(monkeypatch):
    """A 2048x1024 JPEG becomes a scene decoded at 1024x512 (libjpeg's DCT scaling); its full-size
    pixels are decoded only when ``photo`` is asked for (a download, the Stress page)."""
    from benchmarks.scenes import jpeg, synthetic_street

    calls = _recorded_decodes(monkeypatch)
    data = jpeg(synthetic_street(2048, 1024))
    scene = scenes.scene_from_upload("street.jpg", data)
    assert calls == [scenes.DISPLAY_MAX_SIDE] and scene.label is None
    assert scene.screen_photo().shape == (512, 1024, 3) and scene.shape == (1024, 2048, 3)
    assert scene.photo.shape == (1024, 2048, 3) and calls == [scenes.DISPLAY_MAX_SIDE, None]
    assert scene.key == scenes.scene_from_upload("again.jpg", data).key  # the same file, the same key


def test_big_upload_pair_is_detected_at_screen_size_and_split_at_full_size():
    """A 2048x1024 photo | label JPEG: the verdict comes from its 1024x512 decode, the split from
    the full one; an odd 2:1 size (1025x513 at 1/2) is shown 2:1, so it is judged too."""
    scene = scenes.scene_from_upload("pair.jpg", png(pair_image(1024), "JPEG"))
    assert scene.label is not None and scene.photo.shape == (1024, 1024, 3) and scene.label.shape == (1024, 1024)
    photo, label = (np.asarray(Image.fromarray(a).resize((1025, 1025), Image.NEAREST)) for a in synthetic_pair(64))
    odd = png(np.concatenate([photo, colorize(label)], axis=1), "JPEG")  # 2050x1025: 1025x513 at 1/2
    assert scenes.upload_at_screen_size(odd)[0].shape == (512, 1024, 3)
    verdict = scenes.upload_pair_verdict(*scenes.upload_at_screen_size(odd)[:2])
    assert verdict is not None and verdict.is_pair


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


def test_views_html_grid_and_before_after_slider():
    photo, label = synthetic_pair(32)
    url = views.data_url(photo)
    assert url.startswith("data:image/jpeg;base64,") and views.data_url(colorize(label), "PNG").startswith("data:image/png")
    grid = views.image_grid_html([("Photo", url), ("U-Net <b>", None)])
    assert "grid-template-columns:repeat(auto-fit" in grid and "U-Net &lt;b&gt;: not available" in grid
    # a picture still being computed (the ensemble, after the three masks) says so in its place
    grid = views.image_grid_html([("Photo", url), ("All three (averaged)", None)], notes={"All three (averaged)": "averaging…"})
    assert "All three (averaged): averaging…" in grid and "not available" not in grid
    page = views.before_after_html(url, {"U-Net": url, "FCN-VGG16": url})
    assert page.count("<button") == 2 and "pointermove" in page and "clipPath" in page
    assert ".box img{display:block;width:100%" in page  # the panel's width, not the picture's 256 px


def test_paging_and_display_scale():
    assert scenes.page_of(list(range(50)), 3, 24) == [48, 49]
    assert scenes.page_of(list(range(50)), 99, 24) == [48, 49]
    big = np.zeros((600, 3000), np.uint8)
    assert scenes.display_scale(big, nearest=True).shape == (205, scenes.DISPLAY_MAX_SIDE)
    assert fit_within(big, 1000, nearest=True).shape == (200, 1000)
    small = np.zeros((10, 20, 3), np.uint8)
    assert scenes.display_scale(small) is small
    photo = np.random.default_rng(0).integers(0, 256, (100, 200, 3), dtype=np.uint8)
    # a whole factor is a box reduction (each pixel the mean of a 4x4 block), not a sparse bilinear sample
    assert np.array_equal(fit_within(photo, 50), np.asarray(Image.fromarray(photo).reduce(4)))
    assert fit_within(photo, 64).shape == (32, 64, 3)


def test_confusion_helpers_and_figures():
    mat = np.zeros((19, 19), np.int64)
    mat[0, 0], mat[0, 2], mat[2, 2] = 3, 1, 4
    assert np.allclose(scenes.row_normalize(mat)[0, [0, 2]], [0.75, 0.25])
    assert list(scenes.present_classes(mat)) == [0, 2]
    fig = figures.confusion_figure(mat, "t", scale="linear")
    assert list(fig.data[0].x) == ["road", "building"] and fig.data[0].z[0][0] == pytest.approx(0.75)
    assert fig.data[0].customdata[0][1].tolist() == [0.25, 1]  # share and pixels on hover
    assert len(figures.confusion_figure(mat, "t", only_present=False).data[0].x) == 19
    bars = figures.iou_figure({"unet": {"road": 0.9}, "fcn_vgg16": {"road": 0.8}})
    assert [t.name for t in bars.data] == ["U-Net", "FCN-VGG16"]
    assert bars.layout.xaxis.automargin and bars.layout.xaxis.tickangle == -45  # whole class names


def test_confusion_values_printed_above_a_few_percent_and_scales():
    mat = np.zeros((19, 19), np.int64)
    mat[0, 0], mat[0, 1], mat[1, 1], mat[1, 0] = 990, 10, 90, 10  # road: 1 % sidewalk; sidewalk: 10 % road
    linear, root = (figures.confusion_figure(mat, "t", scale=s).data[0] for s in ("linear", "sqrt"))
    assert linear.text.tolist() == [["99%", ""], ["10%", "90%"]]  # 1 % only on hover
    # sqrt makes the 1 % confusion ten times as visible as it is linearly
    assert root.z[0][1] == pytest.approx(0.1) and linear.z[0][1] == pytest.approx(0.01)
    assert figures.confusion_figure(mat, "t", scale="log").data[0].z[0][1] == pytest.approx(-2)
    with pytest.raises(ValueError, match="unknown scale"):
        figures.confusion_figure(mat, "t", scale="cubic")
    other = mat.copy()
    other[0, 0], other[0, 1] = 900, 100
    diff = figures.confusion_difference_figure(mat, other, "A - B").data[0]
    assert diff.z[0][1] == pytest.approx(0.01 - 0.1) and diff.text[0][1] == "-9" and diff.zmid == 0


def test_legend_lists_present_classes_with_shares():
    a = np.zeros((10, 10), np.uint8)
    b = a.copy()
    b[:5] = 10  # sky
    rows = legend_rows({"A": a, "B": b})
    assert [r["name"] for r in rows] == ["road", "sky"]
    assert rows[0]["share"] == {"A": 1.0, "B": 0.5}
    html = legend_html(rows, {"A": "Model A", "B": "Model B"})
    assert "sky" in html and "#4682b4" in html and "50.0%" in html and ">Model B</th>" in html
    assert "width:28px" in html and "border:1px solid #222" in html  # big, bordered swatches
    assert "FCN&#8209;VGG16" in legend_html(rows, {"A": "FCN-VGG16"})  # a title never breaks at its hyphen
    # on a phone the titles stand upright, so the four share columns fit (tests/test_app_browser.py measures it)
    assert "@container (max-width:560px)" in html and "writing-mode:vertical-rl" in html and "class='seg-legend'" in html
    assert share_text(0.0004) == "<0.1%" and share_text(0) == "–"


# --- pages ----------------------------------------------------------------------------------------

def test_app_entry_point_runs_and_navigates(env):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    no_exception(at)
    assert "label every pixel" in texts(at.caption)  # Compare: no title, its introduction a caption
    assert at.sidebar.text_input(key="data_dir").value == str(env)
    at.switch_page("app_pages/about.py").run()
    no_exception(at)
    assert at.title[0].value == "About"


def test_compare_landing_shows_intro_and_example_scenes_at_once(env):
    at = run_page("compare")
    assert "label every pixel" in texts(at.caption)  # the one-line introduction, small: the result is the hero
    assert at.expander[0].proto.expanded and "6 validation pairs" in at.expander[0].label
    assert len(at.image) == 6  # the thumbnails of the six synthetic pairs, no click needed
    assert "Up to 20 MB and 40 megapixels" in texts(at.caption)  # the limits, beside the uploader
    assert at.file_uploader(key="uploads").proto.type == []  # any type: load_image decides


def test_compare_gallery_pick_shows_three_models(env):
    at = run_page("compare")
    at.button(key="gallery_2.jpg").click().run()
    no_exception(at)
    shown = grid_captions(at)
    for model in ("U-Net", "FCN-VGG16", "FCN-ResNet50"):
        assert any(c.startswith(model) and c.endswith("ms)") for c in shown), shown
    assert {"Photo", "Ground truth"} <= set(shown)
    assert at.session_state["scene"].name == "2.jpg"
    assert at.query_params["scene"] == "2.jpg"  # a link to this scene
    assert not at.expander[0].proto.expanded and "showing 2.jpg" in at.expander[0].label  # folded away
    assert not at.image  # and its thumbnails are not even drawn while it is closed
    at.session_state["gallery_open"] = True  # the user opens it again
    at.run()
    chosen = at.button(key="gallery_2.jpg")
    assert chosen.label == "✓ 2.jpg" and chosen.proto.type == "primary"
    assert at.button(key="gallery_3.jpg").proto.type == "secondary"
    assert len(at.get("download_button")) == 8  # two per model and the ensemble
    assert {m.label for m in at.metric} == {"U-Net", "FCN-VGG16", "FCN-ResNet50", "All three (averaged)"}
    legend = texts(at.get("html"))  # the legend table: one column per model, classes present
    assert all(f">{model.replace('-', '&#8209;')}</th>" in legend for model in ("U-Net", "FCN-VGG16", "FCN-ResNet50"))
    assert legend.count("<tr>") >= 2


def test_compare_legend_comes_right_after_the_masks(env):
    """The masks' grid and the legend are neighbours on the page (on a phone the grid wraps to
    two columns, and nothing else stands between them)."""
    at = compare_deep_link("1.jpg")
    kinds = [type(n).__name__ for n in walk(at.main) if type(n).__name__ in ("Html", "Markdown", "Metric", "Image")]
    htmls = [n.value for n in walk(at.main) if type(n).__name__ == "Html"]
    grid = next(i for i, h in enumerate(htmls) if "seg-grid" in h)
    assert "<table" in htmls[grid + 1]
    assert kinds.index("Html") < kinds.index("Metric")  # pictures before the times and downloads


def test_compare_draws_the_three_masks_before_the_ensemble_is_computed(env, monkeypatch, tmp_path, weights_dir):
    """First paint: the grid with the three masks and "averaging…" in the ensemble's cell is drawn
    before the ensemble is mixed; then the same grid is redrawn with it. The ensemble is mixed from
    the probabilities of the models' one pass (no second pass), and later reruns (another view,
    Inspect, back again) run no model and draw once, with the ensemble."""
    from seg_core.serve import photos

    shutil.copytree(weights_dir, tmp_path / "weights")  # a folder of its own: nothing cached by other tests
    use_weights(monkeypatch, tmp_path / "weights")
    events = []
    original_passes, original_mix, original_grid = photos.predict_many, photos.ensemble_of, views.image_grid_html

    def passes(runners, *args, **options):
        events.append(("pass", tuple(runners)))
        return original_passes(runners, *args, **options)

    def mix(*args, **options):
        events.append(("mix",))
        return original_mix(*args, **options)

    def grid(items, *args, notes=None, **options):
        events.append(("grid", tuple(c.split(" (")[0] for c, url in items if url is not None), bool(notes)))
        return original_grid(items, *args, notes=notes, **options)

    monkeypatch.setattr(photos, "predict_many", passes)
    monkeypatch.setattr(photos, "ensemble_of", mix)
    monkeypatch.setattr(photos.PhotoService, "warm_up", lambda self: None)  # its throwaway pass: tested on its own
    monkeypatch.setattr(views, "image_grid_html", grid)
    at = compare_deep_link("4.jpg")
    no_exception(at)
    models = ("U-Net", "FCN-VGG16", "FCN-ResNet50")
    assert events == [("pass", ("unet", "fcn_vgg16", "fcn_resnet50")), ("grid", ("Photo", "Ground truth", *models), True),
                      ("mix",), ("grid", ("Photo", "Ground truth", *models, "All three"), False)]
    assert "averaging…" not in grid_html(at) and "All three (averaged) (" in grid_html(at)
    events.clear()
    for view in ("Overlays", "Inspect", "Masks"):
        at.segmented_control(key="view").set_value(view).run()
    no_exception(at)
    assert [e for e in events if e[0] != "grid"] == [] and all(not e[2] for e in events)


def test_compare_views_opacity_and_before_after(env):
    at = compare_deep_link("1.jpg")
    no_exception(at)
    assert at.session_state["scene"].name == "1.jpg"
    at.segmented_control(key="view").set_value("Overlays").run()
    no_exception(at)
    (overlays,) = frames(at)
    # the masks laid over the photo, with an opacity slider that runs in the browser: no server slider
    assert all(f"{m} overlay" in overlays for m in ("U-Net", "FCN-VGG16", "FCN-ResNet50", "All three (averaged)"))
    assert 'type="range"' in overlays and "opacity:var(--a)" in overlays and not at.slider
    at.segmented_control(key="view").set_value("Before / after").run()
    no_exception(at)
    (page_html,) = frames(at)
    assert page_html.count("<button") == 4 and "pointermove" in page_html  # model choice and seam in the browser
    at.slider(key="opacity").set_value(0.9).run()  # the overlays under the seam are made on the server
    no_exception(at)
    assert frames(at) != [page_html]
    at.segmented_control(key="view").set_value("Disagreement").run()
    no_exception(at)
    assert any(c.startswith("cyan: the models disagree") for c in grid_captions(at))
    # the interactive viewer, with each model's confidence (computed only when opened)
    at.segmented_control(key="view").set_value("Inspect").run()
    no_exception(at)
    # one row of view buttons (the viewer's own repeated Masks and Overlays), one legend
    assert not [s for s in at.get("segmented_control") if s.key == "compare_viewer_view"]
    assert "Confidence" in at.segmented_control(key="view").options
    assert any(c.key and c.key.startswith("compare_viewer") for c in at.get("plotly_chart"))
    assert sum("seg-legend" in h.value for h in at.get("html")) == 1
    at.segmented_control(key="view").set_value("Confidence").run()
    no_exception(at)
    assert "the top-1 class probability" in texts(at.caption)


def test_the_models_are_warmed_up_once_when_loaded(env, monkeypatch):
    """Loading the models runs one throwaway pass (under "Loading the models…"): the first
    visitor's masks come sooner and their times are a warm server's (1.08 s cold for the first
    photo, 0.19 s after the warm-up, on the 2-core machine)."""
    from seg_core.serve.photos import PhotoService
    from ui import common

    calls = []
    monkeypatch.setattr(PhotoService, "warm_up", lambda self: calls.append(self.weights_key))
    common.load_service.clear()
    try:
        at = compare_deep_link("1.jpg")
        no_exception(at)
        at.run()
        assert len(calls) == 1, calls  # once per set of weights, not per run
    finally:
        common.load_service.clear()  # the next test loads (and warms) its own


def _first_paint_events(monkeypatch) -> list:
    """Record, in order: a callback starting a scene's masks, each ``common.predictions`` call (and
    whether its answer was already computed), and the pickers being drawn."""
    from ui import common, pickers

    events = []
    start, predictions, picker = getattr(common, "start_masks", None), common.predictions, pickers.scene_picker

    def started(scene):
        events.append("start_masks")
        start(scene)

    def predicted(scene, photo=None, ensemble=True, own=True):
        shot = common.photo_of(scene, photo)
        events.append(("predictions", ensemble, common.service().ready(shot, common.tta(), {}, ensemble)))
        return predictions(scene, photo, ensemble, own)

    def picked(*args, **kwargs):
        events.append("pickers")
        picker(*args, **kwargs)

    monkeypatch.setattr(common, "start_masks", started, raising=False)
    monkeypatch.setattr(common, "predictions", predicted)
    monkeypatch.setattr(pickers, "scene_picker", picked)
    return events


def test_compare_upload_masks_are_computed_in_its_callback_and_drawn_before_the_pickers(env, monkeypatch):
    """The uploader's callback computes the three masks and the ensemble before the rerun draws
    anything (so the models never share the cores with the drawing of the page's first elements),
    the page finds them ready, and draws them once, before the pickers (the pickers' elements
    reach the browser after): no "averaging…" grid first."""
    events = _first_paint_events(monkeypatch)
    grids, original_grid = [], views.image_grid_html
    monkeypatch.setattr(views, "image_grid_html", lambda items, *a, notes=None, **k: (
        grids.append(bool(notes)), original_grid(items, *a, notes=notes, **k))[1])
    at = page("compare").run()
    events.clear()
    photo, _ = synthetic_pair(48, seed=5)
    at.file_uploader(key="uploads").set_value(("street.png", png(photo), "image/png")).run()
    no_exception(at)
    assert "U-Net" in " ".join(grid_captions(at)) and "All three (averaged) (" in grid_html(at)
    assert events[:3] == ["start_masks", ("predictions", False, True), ("predictions", True, True)], events
    assert events.index("pickers") > 2, events
    assert grids == [False]  # one grid, with the ensemble


def test_compare_gallery_pick_masks_are_computed_in_its_callback(env, monkeypatch):
    events = _first_paint_events(monkeypatch)
    at = page("compare").run()
    events.clear()
    at.button(key="gallery_4.jpg").click().run()
    no_exception(at)
    assert at.session_state["scene"].name == "4.jpg"
    assert events[:2] == ["start_masks", ("predictions", False, True)], events
    assert events.index("pickers") > 2, events


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
    assert not [c for c in at.checkbox if c.key.startswith("as_pair")]  # 48x48 cannot be a pair
    assert "U-Net" in " ".join(grid_captions(at))
    at.selectbox(key="upload_pick").set_value(1).run()
    no_exception(at)
    assert at.checkbox(key="as_pair_pair.png").value is True  # auto-detected, and why in one line
    assert any(c.value.startswith("A photo | label pair: ") for c in at.caption)
    assert at.session_state["scene"].label is not None
    assert "**pair.png** (with ground truth)" in texts(at.markdown)
    at.checkbox(key="as_pair_pair.png").uncheck().run()
    assert at.session_state["scene"].label is None
    assert at.session_state["scene"].photo.shape == (64, 128, 3)


def test_compare_big_upload_is_shown_without_a_full_size_decode(env, monkeypatch):
    """A 2048x1024 JPEG: the page decodes it at screen size only (1024x512, a third of the time),
    and says the downloads are computed at the photo's 2048x1024 (its full size decoded then)."""
    from benchmarks.scenes import jpeg, synthetic_street

    calls = _recorded_decodes(monkeypatch)
    at = page("compare").run()
    at.file_uploader(key="uploads").set_value(("street.jpg", jpeg(synthetic_street(2048, 1024)), "image/jpeg")).run()
    no_exception(at)
    assert calls == [scenes.DISPLAY_MAX_SIDE]
    assert "U-Net" in " ".join(grid_captions(at))
    assert "computed at screen size (1024x512); the downloads at the photo's 2048x1024" in texts(at.caption)
    assert at.session_state["scene"].photo.shape == (1024, 2048, 3) and calls == [scenes.DISPLAY_MAX_SIDE, None]


def test_compare_uploads_survive_a_page_change(env):
    """Compare → Ground truth → Compare: the uploaded photo is still offered and shown (the widget
    itself is emptied by Streamlit when its page is left)."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    photo, _ = synthetic_pair(48, seed=3)
    at.file_uploader(key="uploads").set_value(("street.png", png(photo), "image/png")).run()
    assert at.session_state["scene"].name == "street.png"
    at.switch_page("app_pages/ground_truth.py").run()
    no_exception(at)
    at.switch_page("app_pages/compare.py").run()
    no_exception(at)
    assert at.session_state["scene"].name == "street.png"
    assert [name for name, _, _ in at.session_state["uploaded_files"]] == ["street.png"]
    assert "**street.png**" in texts(at.markdown)


def test_compare_a_new_upload_set_replaces_the_kept_one(env):
    """The session keeps the widget's latest files only: a new set lets the previous one go."""
    at = page("compare").run()
    at.file_uploader(key="uploads").set_value([("a.png", png(synthetic_pair(48, seed=1)[0]), "image/png"),
                                              ("b.png", png(synthetic_pair(48, seed=2)[0]), "image/png")]).run()
    assert [name for name, _, _ in at.session_state["uploaded_files"]] == ["a.png", "b.png"]
    at.file_uploader(key="uploads").set_value(("c.png", png(synthetic_pair(48, seed=3)[0]), "image/png")).run()
    no_exception(at)
    assert [name for name, _, _ in at.session_state["uploaded_files"]] == ["c.png"]
    assert at.session_state["scene"].name == "c.png"


def test_compare_uploads_over_the_byte_bound_are_refused_by_name(env, monkeypatch):
    from ui import pickers

    photos = [png(synthetic_pair(48, seed=i)[0]) for i in range(3)]
    monkeypatch.setattr(pickers, "UPLOAD_MAX_BYTES", len(photos[0]) + len(photos[1]))
    at = page("compare").run()
    at.file_uploader(key="uploads").set_value([(f"{i}.png", data, "image/png") for i, data in enumerate(photos)]).run()
    no_exception(at)
    kept = at.session_state["uploaded_files"]
    assert [name for name, _, _ in kept] == ["0.png", "1.png"]
    assert sum(len(data) for _, _, data in kept) <= pickers.UPLOAD_MAX_BYTES
    assert any(w.value.startswith("Not kept: 2.png. Uploads may total") for w in at.warning)
    assert at.session_state["scene"].name == "0.png"  # the kept ones still work
    at.file_uploader(key="uploads").set_value(("2.png", photos[2], "image/png")).run()
    assert [name for name, _, _ in at.session_state["uploaded_files"]] == ["2.png"] and not at.warning


def test_compare_uploads_over_the_file_bound_are_refused(env, monkeypatch):
    from ui import pickers

    monkeypatch.setattr(pickers, "UPLOAD_MAX_FILES", 2)
    photo = png(synthetic_pair(48, seed=4)[0])
    at = page("compare").run()
    at.file_uploader(key="uploads").set_value([(f"{i}.png", photo, "image/png") for i in range(4)]).run()
    no_exception(at)
    assert len(at.session_state["uploaded_files"]) == 2
    assert any("Not kept: 2.png, 3.png." in w.value and "2 files at a time" in w.value for w in at.warning)


def _uploads_with_a_deleted_file():
    """The uploader's value after the user removed one of twelve photos: the two refused ones were
    let go from Streamlit's store, so the widget lists them as ``DeletedFile``."""
    import streamlit as st
    from streamlit.proto.Common_pb2 import FileURLs
    from streamlit.runtime.uploaded_file_manager import DeletedFile, UploadedFile, UploadedFileRec

    from ui import pickers

    st.session_state[pickers._UPLOAD_REFUSED] = "Not kept: p8.png, p9.png."
    st.session_state["uploads"] = [
        UploadedFile(UploadedFileRec("id1", "p1.png", "image/png", b"one"), FileURLs()), DeletedFile("id8")]
    pickers._keep_uploads()
    st.write(repr([name for name, _, _ in st.session_state[pickers.UPLOADS_KEY]]))


def test_removing_an_upload_after_some_were_refused_does_not_crash(env):
    at = AppTest.from_function(_uploads_with_a_deleted_file, default_timeout=TIMEOUT).run()
    no_exception(at)
    assert at.markdown[0].value == "['p1.png']"
    assert at.session_state["_upload_refused"] == "Not kept: p8.png, p9.png."  # still true


def test_upload_limit_text_states_the_session_bound(env):
    from ui import pickers

    at = page("compare").run()
    assert (f"{pickers.UPLOAD_MAX_FILES} images and {pickers.UPLOAD_MAX_BYTES / 2**20:.0f} MB in all"
            in texts(at.caption))


def test_every_streamlit_cache_has_a_bound():
    """The caches are shared by all sessions: each must say how many entries it keeps, so that
    many visitors (many scenes, uploads, frames) cannot grow the server without limit."""
    import ast

    unbounded = []
    for path in sorted([*(ROOT / "ui").glob("*.py"), *(ROOT / "app_pages").glob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            for deco in getattr(node, "decorator_list", []):
                call = deco if isinstance(deco, ast.Call) else None
                target = call.func if call else deco
                if isinstance(target, ast.Attribute) and target.attr in ("cache_data", "cache_resource"):
                    if call is None or "max_entries" not in {k.arg for k in call.keywords}:
                        unbounded.append(f"{path.name}:{node.lineno} {node.name}")
    assert not unbounded, unbounded


def test_compare_upload_after_a_gallery_pick_replaces_it(env):
    at = compare_deep_link("2.jpg")
    photo, _ = synthetic_pair(48, seed=3)
    at.file_uploader(key="uploads").set_value(("street.png", png(photo), "image/png")).run()
    no_exception(at)
    assert at.session_state["scene"].name == "street.png" and "scene" not in at.query_params
    assert not at.expander[0].proto.expanded
    at.query_params["scene"] = "4.jpg"  # a val scene picked again (here through a link)
    at.run()
    assert at.session_state["scene"].name == "4.jpg"  # the stored upload does not take over again
    at.run()
    assert at.session_state["scene"].name == "4.jpg"


def test_compare_tiff_upload_is_accepted(env):
    photo, _ = synthetic_pair(48, seed=5)
    at = page("compare").run()
    at.file_uploader(key="uploads").set_value(("street.tif", png(photo, "TIFF"), "image/tiff")).run()
    no_exception(at)
    assert at.session_state["scene"].name == "street.tif" and not at.error
    # its decoding is timed once, apart from the models (whose arrays come decoded)
    assert at.session_state["scene"].decode_seconds > 0
    assert "Shared by the models, counted once: decoding the file" in texts(at.caption)


def test_compare_large_upload_is_drawn_at_screen_size(env):
    wide = np.random.default_rng(1).integers(0, 256, (300, 1500, 3), dtype=np.uint8)
    at = page("compare").run()
    at.file_uploader(key="uploads").set_value(("wide.png", png(wide), "image/png")).run()
    no_exception(at)
    assert at.session_state["scene"].photo.shape == (300, 1500, 3)
    assert "FCN-ResNet50" in " ".join(grid_captions(at)) and len(at.get("download_button")) == 8
    from base64 import b64decode

    first = re.search(r"src='data:image/jpeg;base64,([^']+)'", grid_html(at)).group(1)
    assert Image.open(io.BytesIO(b64decode(first))).size == (scenes.DISPLAY_MAX_SIDE, 205)


@pytest.mark.parametrize("name, data, reason", [
    ("bad.png", b"", "the file is empty"),
    ("bad.png", b"GIF89a but not really", "not an image in a format we can read"),
    ("bad.png", png(pair_image())[:300], "corrupt or truncated"),
    ("notes.txt", b"these are my notes", "not an image in a format we can read"),
])
def test_compare_bad_upload_shows_its_reason_not_a_traceback(env, name, data, reason):
    at = page("compare").run()
    at.file_uploader(key="uploads").set_value((name, data, "application/octet-stream")).run()
    no_exception(at)
    assert len(at.error) == 1 and f"Cannot use **{name}**" in at.error[0].value and reason in at.error[0].value
    assert "scene" not in at.session_state


def test_compare_without_weights_explains_and_still_shows_the_photo(env, monkeypatch, tmp_path):
    use_weights(monkeypatch, tmp_path / "no_weights")
    at = compare_deep_link("1.jpg")
    no_exception(at)
    info = texts(at.info)
    assert "No weights yet" in info
    assert "python train_cli.py train --arch fcn_resnet50" in texts(at.code)
    assert "Photo" in grid_captions(at) and not any(c.startswith("U-Net (") for c in grid_captions(at))


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
    assert any(c.startswith("U-Net (") for c in grid_captions(at))
    at.segmented_control(key="view").set_value("Disagreement").run()
    assert any("Needs at least two models" in c.value for c in at.caption)


def test_weights_copied_in_while_running_are_picked_up(env, monkeypatch, weights_dir, tmp_path):
    folder = use_weights(monkeypatch, tmp_path / "growing")
    at = compare_deep_link("1.jpg")
    assert "No weights yet" in texts(at.info)
    shutil.copy(weights_dir / "unet.safetensors", folder / "unet.safetensors")
    at.run()
    no_exception(at)
    assert any(c.startswith("U-Net (") for c in grid_captions(at)) and len(at.warning) == 2


def test_landing_without_val_folder_explains_and_invites_an_upload(env, monkeypatch, tmp_path):
    monkeypatch.setenv("SEG_DATA_DIR", str(tmp_path / "nowhere"))
    at = page("compare").run()
    no_exception(at)
    info = texts(at.info)
    assert "may not be redistributed" in info and "Upload a street photo" in info and "SEG_DATA_DIR" in info
    assert at.file_uploader(key="uploads") and not at.expander


def test_gallery_pages(env, tmp_path, monkeypatch):
    monkeypatch.setenv("SEG_DATA_DIR", str(write_pairs(tmp_path / "many", n=30, h=32)))
    at = page("compare").run()
    assert len(at.image) == 24
    at.number_input(key="gallery_page").set_value(2).run()
    no_exception(at)
    assert len(at.image) == 6 and at.button(key="gallery_30.jpg")


@pytest.mark.parametrize("wanted", ["../val/1.jpg", "/etc/passwd", "..", "sub/1.jpg"])
def test_scene_query_parameter_never_takes_a_path(env, wanted):
    at = compare_deep_link(wanted)
    no_exception(at)
    assert "scene" not in at.session_state
    assert "not a path" in texts(at.warning) or "not among the validation scenes" in texts(at.warning)


def test_ground_truth_page_scores_the_shared_scene(env):
    at = run_page("ground_truth")
    assert "needs a scene with a label" in texts(at.info)
    at.button(key="gallery_3.jpg").click().run()  # the page's own gallery, same session state
    no_exception(at)
    assert at.subheader[0].value == "3.jpg"
    table = at.dataframe[0].value
    assert list(table["model"]) == ["U-Net", "FCN-VGG16", "FCN-ResNet50", "All three (averaged)"]
    assert table["pixel acc"].between(0, 1).all()
    assert {"Photo", "Ground truth"} <= set(grid_captions(at))
    assert "minmax(min(400px" in grid_html(at)  # as wide as Compare's (six in a row were ~200 px at 1440)
    # the per-image rule, stated in the heading's tooltip (a rule, not a caption to read each time)
    assert "within 1 px of another label colour" in next(m.help for m in at.markdown if m.value == "#### Scores on this image")
    assert "blue: right, orange: wrong" in texts(at.caption)
    charts = at.get("plotly_chart")  # one tab per model, and the A − B difference
    assert [c.key for c in charts] == ["gt_confusion_unet", "gt_confusion_fcn_vgg16", "gt_confusion_fcn_resnet50",
                                       "gt_confusion_ensemble", "gt_confusion_diff"]
    assert [t.label for t in at.tabs] == ["U-Net", "FCN-VGG16", "FCN-ResNet50", "All three (averaged)", "Difference"]
    assert sum("right" in c for c in grid_captions(at)) == 4  # the error maps: three models and the ensemble
    at.checkbox(key="gt_only_present").uncheck().run()
    no_exception(at)
    at.segmented_control(key="gt_scale").set_value("log").run()
    no_exception(at)
    at.selectbox(key="gt_confusion_diff_a").set_value("fcn_vgg16")
    at.selectbox(key="gt_confusion_diff_b").set_value("fcn_resnet50").run()
    no_exception(at)
    assert "FCN-VGG16 − FCN-ResNet50" in at.get("plotly_chart")[-1].proto.spec


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
    assert "#### Whole-val metrics, recorded in the checkpoints" in [m.value for m in at.markdown]
    at.number_input(key="bench_limit").set_value(4).run()
    at.button(key="bench_recompute").click().run()
    no_exception(at)
    metrics = at.dataframe[0].value
    assert metrics["mIoU"].between(0, 1).all()
    # what was computed, with which backend and on how many images (not "Whole-val" after 4)
    assert "#### Metrics on the first 4 val images" in [m.value for m in at.markdown]
    assert set(metrics["computed with, on"]) == {"PyTorch fp32, 4 val images", "mean of the members, PyTorch fp32, 4 val images"}
    assert list(metrics["model"]) == ["U-Net", "FCN-VGG16", "FCN-ResNet50", "All three (averaged)"]
    # the scores first, the long description last: a phone showed the model and the description only
    assert list(metrics.columns) == ["model", "mIoU", "pixel acc", "class acc", "computed with, on"]
    assert len(at.get("plotly_chart")) == 6  # IoU bars + four confusion matrices + their difference
    assert "median of 10 runs, in whole milliseconds" in texts(at.caption)


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
    assert "--time-budget 140m" in texts(at.code)  # as the README says
    for chart in at.get("graphviz_chart"):  # drawn at their size, big text, top to bottom
        assert "fontsize=15" in chart.proto.spec and "rankdir=TB" in chart.proto.spec
    assert "train_cli.py export --weights weights --format openvino --int8" in texts(at.code)
    assert "may not be redistributed" in texts(at.markdown)


@pytest.mark.slow
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
    """The sidebar toggle (rendered by app.py) makes each model predict with flip TTA, in one pass
    per model; the Compare page says so."""
    from seg_core.serve import photos

    shutil.copytree(weights_dir, tmp_path / "weights")  # a folder of its own: no masks cached by other tests
    use_weights(monkeypatch, tmp_path / "weights")

    asked = []
    original = photos.predict_many

    def recording(runners, image, tta="none", *args, **options):
        asked.append((tta, tuple(runners)))
        return original(runners, image, tta, *args, **options)

    monkeypatch.setattr(photos, "predict_many", recording)
    monkeypatch.setattr(photos.PhotoService, "warm_up", lambda self: None)  # its throwaway pass: tested on its own
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.query_params["scene"] = "3.jpg"
    at.run()
    no_exception(at)
    three = ("unet", "fcn_vgg16", "fcn_resnet50")
    assert not at.sidebar.toggle(key="tta").value and asked == [("none", three)]  # the ensemble runs no model
    assert not any("mirror-image" in c.value for c in at.caption)
    at.sidebar.toggle(key="tta").set_value(True).run()
    no_exception(at)
    assert asked == [("none", three), ("flip", three)]
    assert sum("mirror-image averaging" in c.value for c in at.caption) == 4  # three models and the ensemble
    at.sidebar.toggle(key="tta").set_value(False).run()  # back: the cached masks, no new prediction
    assert len(asked) == 2


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


# --- public mode ----------------------------------------------------------------------------------

def page_text(at: AppTest) -> str:
    """Everything a page sends to the browser, as text (every element's protobuf)."""
    return "\n".join(str(n.proto) for n in walk(at._tree) if getattr(n, "proto", None) is not None)


@pytest.fixture
def public(env, monkeypatch):
    monkeypatch.setenv("SEG_PUBLIC", "1")
    return env


def test_public_mode_pages_show_no_server_path(public, monkeypatch, weights_dir, tmp_path):
    """Every page, and a model without weights, in public mode: no folder of the server appears."""
    partial = use_weights(monkeypatch, tmp_path / "partial")
    shutil.copy(weights_dir / "unet.safetensors", partial / "unet.safetensors")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.query_params["scene"] = "2.jpg"
    at.run()
    no_exception(at)
    assert at.session_state["scene"].name == "2.jpg"  # the configured folder still works
    assert "its weights file is missing or unreadable" in texts(at.warning)
    for name in ("compare", "ground_truth", "benchmark", "about"):
        if name != "compare":
            at.switch_page(f"app_pages/{name}.py").run()
            no_exception(at)
        text = page_text(at)
        for secret in (str(public), str(partial), str(tmp_path), str(ROOT)):
            assert secret not in text, (name, secret)


def test_public_mode_has_no_folder_box_and_reads_only_the_configured_folder(public, tmp_path):
    elsewhere = write_pairs(tmp_path / "elsewhere", n=2)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.session_state["data_dir"] = str(elsewhere)  # what the folder box would have set
    at.run()
    no_exception(at)
    assert not [w for w in at.text_input if w.key == "data_dir"] and not at.sidebar.text_input
    assert "6 validation pairs" in at.expander[0].label  # the configured folder, not the other one


def test_public_mode_uses_only_data_it_may_publish(public, monkeypatch):
    """Without ``SEG_DATA_DIR``: the shipped KITTI scenes, never the Cityscapes pairs beside the
    repository; with a deployer's val folder, no whole-val recompute on the Benchmark page; errors
    without details (no traceback, no server path)."""
    from seg_core import settings

    monkeypatch.setattr(settings, "DEFAULT_DATA_DIR", public)  # pairs where local mode finds them
    monkeypatch.delenv("SEG_DATA_DIR")
    assert settings.data_dir() == settings.EXAMPLES_DIR
    monkeypatch.setenv("SEG_DATA_DIR", str(public))  # the deployer names a val folder
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    try:
        at.run()
        no_exception(at)
        assert st.get_option("client.showErrorDetails") == "none"
        at.switch_page("app_pages/benchmark.py").run()
        no_exception(at)
        assert not [b for b in at.button if b.key == "bench_recompute"]
        assert "not offered here" in texts(at.caption)
    finally:
        st.set_option("client.showErrorDetails", "full")  # a process-wide option: back for the other tests


@pytest.mark.parametrize("wanted", ["../elsewhere/1.jpg", str(Path("/tmp") / "x.jpg"), "..%2F1.jpg"])
def test_public_mode_query_parameter_names_no_path(public, tmp_path, wanted):
    write_pairs(tmp_path / "elsewhere", n=2)
    at = compare_deep_link(wanted)
    no_exception(at)
    assert "scene" not in at.session_state
    assert str(public) not in page_text(at)


def test_mask_data_url_is_the_colour_mask():
    from base64 import b64decode

    _, label = synthetic_pair(32)
    url = views.mask_data_url(label)
    with Image.open(io.BytesIO(b64decode(url.split(",", 1)[1]))) as im:
        assert im.mode == "P" and np.array_equal(np.asarray(im.convert("RGB")), colorize(label))


def test_large_upload_is_segmented_at_screen_size_and_downloaded_at_full_size(env, weights_dir):
    """A 1500 px wide upload: the masks shown are computed at 1024 px (the caption says so); the
    downloads get full-size masks, those of ``Predictor.predict`` on the whole photo."""
    from seg_core.predictor import Predictor
    from ui import common

    wide = np.random.default_rng(1).integers(0, 256, (300, 1500, 3), dtype=np.uint8)
    at = page("compare").run()
    at.file_uploader(key="uploads").set_value(("wide.png", png(wide), "image/png")).run()
    no_exception(at)
    assert "computed at screen size (1024x205); the downloads at the photo's 1500x300" in texts(at.caption)
    predictor = Predictor.from_dir(weights_dir)
    scene = at.session_state["scene"]
    served = common.PhotoService(predictor, "test")
    shown = predictor.predict(scenes.display_scale(wide))["unet"].mask
    full = served.full_size_mask(scene.photo, "unet", shown, "none")
    assert shown.shape == (205, 1024) and np.array_equal(full, predictor.predict(wide)["unet"].mask)
    small = predictor.predict(wide)["fcn_vgg16"].mask
    assert served.full_size_mask(scene.photo, "fcn_vgg16", small, "none") is small  # no second run


def test_the_ensemble_gets_its_own_column(env, monkeypatch):
    """The ensemble ("All three (averaged)") is shown after the three architectures, on Compare and
    on Ground truth, and it is the ensemble of Predictor.predict."""
    at = page("compare")
    at.query_params["scene"] = "5.jpg"
    at.run()
    no_exception(at)
    assert [c.split(" (")[0] for c in grid_captions(at)][-4:] == ["U-Net", "FCN-VGG16", "FCN-ResNet50", "All three"]
    at = run_page("ground_truth", scenes.scene_from_file(env / "5.jpg"))
    assert "All three (averaged)" in grid_captions(at)
    assert list(at.dataframe[0].value["model"])[-1] == "All three (averaged)"
