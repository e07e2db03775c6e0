"""Issue 29's defects, each pinned by a test that fails on the code before the fix (db478f0) and
passes after it. They use only what both versions have (``ui.scenes.looks_like_pair``, the page
scripts, ``Composer.legend``, the chart builders), so the same file runs on either checkout:
docs/ui_defects.md has the table of defects, tests and outcomes, and the commands to check it.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from benchmarks.browser import CHROMIUM, NO_CHROMIUM, Browser, serve_app, wait_for
from seg_core.data import list_pairs
from seg_core.registry import ARCH_NAMES, ENSEMBLE, display_name
from seg_core.video_compare import Composer
from tests.test_app import no_exception, page, texts
from tests.test_app_analysis import _click, env  # noqa: F401 (env: test weights, synthetic val pairs, own cache)
from tests.test_gradio_app import app  # noqa: F401 (fixture: gradio_app on the test weights)
from ui import explore, figures, scenes, views

MODELS = (*ARCH_NAMES, ENSEMBLE)
ZERO_MS = re.compile(r"(?<![\d.<])0 ms")  # "0 ms", not "10 ms" nor "<1 ms"


def read(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


# --- 1. a street photo taken for a photo | label pair ---------------------------------------------

@pytest.mark.slow
def test_real_photos_are_not_taken_for_pairs(real_data):
    """Half the val photos, each stretched to 2:1 and beside another photo: the old rule (60 % of
    the right half near a palette colour) took 60 and 52 of these 200 for pairs."""
    photos = [read(p)[:, :256] for p in list_pairs(real_data / "val")[::2]]
    taken = []
    for i, photo in enumerate(photos):
        stretched = np.asarray(Image.fromarray(photo).resize((512, 256), Image.BICUBIC))
        beside = np.concatenate([photo, photos[i - 1]], axis=1)
        taken += [(i, kind) for kind, image in (("stretched", stretched), ("beside", beside))
                  if scenes.looks_like_pair(image)]
    assert taken == []


# --- 3. the Gradio page: a wall of empty boxes, its tabs below it all ---------------------------

def test_the_gradio_landing_holds_the_photo_the_examples_and_the_overlays_only(app):  # noqa: F811 (fixture)
    """The page opened on a photo box, a checkpoint box, the class picture, the confidence picture
    and the overlays, all empty, with the Video and Webcam tabs below: now the tabs come first and
    the first one holds the photo, the examples and one overlay per model."""
    import gradio as gr

    def tab(block) -> str | None:
        while block is not None and not isinstance(block, gr.Tab):
            block = getattr(block, "parent", None)
        return block.label if block is not None else None

    def visible(block) -> bool:  # it and every block around it (the API's inputs sit in a hidden column)
        while block is not None:
            if getattr(block, "visible", True) is False:
                return False
            block = getattr(block, "parent", None)
        return True

    first = next(b for b in app.demo.blocks.values() if isinstance(b, gr.Tab)).label  # the tab shown on landing
    shown = [b for b in app.demo.blocks.values() if visible(b) and tab(b) in (None, first)
             and isinstance(b, (gr.Image, gr.AnnotatedImage, gr.File, gr.Dataset, gr.Plot, gr.Video))]
    kinds = [(type(b).__name__, b.label) for b in shown]
    assert not [k for k in kinds if k[0] in ("AnnotatedImage", "File")], kinds
    assert ("Dataset", "Cityscapes val scenes (click one)") in kinds
    assert {"U-Net", "FCN-VGG16", "FCN-ResNet50"} <= {label for _, label in kinds}


# --- 3. the comparison video's legend under the player's controls ---------------------------------

def test_the_video_legend_is_the_top_strip():
    comp = Composer(64, 128, ["A", "B", "C"])
    frame = comp.compose(np.full((64, 128, 3), 200, np.uint8), [np.full((64, 128), c, np.uint8) for c in (0, 10, 13)])
    assert len(comp.legend) > 0 and np.array_equal(frame[: len(comp.legend)], comp.legend)


# --- 4. pictures too small ------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_before_after_fills_the_panel_in_chromium(tmp_path):
    """A 512x256 photo in a 980 px panel was drawn 512 px wide; it fills the panel now."""
    url = views.data_url(np.full((256, 512, 3), 90, np.uint8))
    doc = tmp_path / "before_after.html"
    doc.write_text(views.before_after_html(url, {"U-Net": url, "FCN-VGG16": url}))
    browser = Browser(width=980, height=900)
    try:
        browser.call("Page.navigate", url=doc.as_uri())
        width = wait_for(lambda: browser.evaluate("(() => { const i = document.querySelector('#box img');"
                                                  " return i && i.complete ? i.getBoundingClientRect().width : null })()"),
                         30, "the before/after picture")
        assert width >= 960, width
    finally:
        browser.close()


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_a_clicked_scene_opens_where_the_click_was_in_chromium(weights_dir, pairs_dir, tmp_path, monkeypatch):
    """A point clicked on the explorer's scatter opened its scene some 1,400 px further down: the
    viewer (six panels) now starts in the upper half of the screen the click was made on."""
    monkeypatch.setenv("SEG_CACHE_DIR", str(tmp_path / "cache"))
    with serve_app(weights_dir, pairs_dir, tmp_path / "streamlit.log") as url:
        browser = Browser(width=1440, height=1000)
        try:
            browser.call("Page.navigate", url=f"{url}/explorer")
            wait_for(lambda: "Click a row of the table" in browser.text(), 180, "the explorer")
            point = wait_for(lambda: browser.evaluate("""(() => {
                const pts = document.querySelectorAll('.js-plotly-plot .scatterlayer .trace:first-child path.point');
                if (pts.length != 6) return null;
                pts[0].scrollIntoView({block: 'center'}); const r = pts[0].getBoundingClientRect();
                return [r.x + r.width / 2, r.y + r.height / 2]; })()"""), 60, "the scatter's six points")
            browser.painted()  # scrolled into view before the pointer moves there
            _click(browser, *point)
            top = wait_for(lambda: browser.evaluate("""(() => {
                const p = [...document.querySelectorAll('.js-plotly-plot')].find(p => p.querySelectorAll('.nsewdrag').length == 6);
                return p ? [p.getBoundingClientRect().top, innerHeight] : null })()"""), 120, "the scene's viewer")
            assert 0 <= top[0] < top[1] / 2, top
        finally:
            browser.close()


def test_the_viewer_caption_has_no_hover_grid_size(env):  # noqa: F811 (fixture)
    """The hover grid's size ("on a 61 x 128 grid") is a lab note, not something a visitor reads."""
    at = page("compare")
    at.query_params["scene"] = "3.jpg"
    at.run()
    at.segmented_control(key="view").set_value("Inspect").run()
    no_exception(at)
    assert "Drag to pan" in texts(at.caption)
    assert not re.search(r"\d+ x \d+ grid", texts(at.caption))


# --- 5. numbers that disagree or mislead ----------------------------------------------------------

def test_no_time_on_compare_reads_zero_ms(env):  # noqa: F811 (fixture)
    """A file decoded in 0.1 ms read "decoding the file 0 ms", as if it had cost nothing."""
    at = page("compare")
    photo = read(list_pairs(env)[0])[:, :64]
    at.session_state["scene"] = scenes.Scene("fast.png", photo, None, "upload", decode_seconds=0.0001)
    at.run()
    no_exception(at)
    shown = texts(at.caption) + "\n" + "\n".join(m.value for m in at.metric)
    assert "decoding the file" in shown and not ZERO_MS.search(shown), shown


def test_the_gradio_timing_line_never_reads_zero_ms(weights_dir):
    import gradio_tabs.photo as photo_tab
    from seg_core.predictor import Predictor
    from tests.conftest import synthetic_pair

    pred = Predictor.from_dir(weights_dir)
    state = photo_tab.compare(pred, synthetic_pair(64, seed=6)[0])
    state["seconds"][ENSEMBLE] = 0.0002  # the mean of three small probability maps: well under a millisecond
    timing = photo_tab.compare_views(state, 0.5, tuple(pred.models), 0)[1]
    assert display_name(ENSEMBLE) in timing and not ZERO_MS.search(timing), timing


def test_both_apps_say_what_the_ensembles_time_is(env, weights_dir):  # noqa: F811 (fixture)
    """The ensemble read 693 ms in Streamlit and 35 ms in Gradio, each meaning something else; by
    db478f0 both measured the mean of the kept probabilities, but Gradio's line said only
    "(averaged)". Both now say it is the mean of the members' probabilities."""
    import gradio_tabs.photo as photo_tab
    from seg_core.predictor import Predictor
    from tests.conftest import synthetic_pair

    pred = Predictor.from_dir(weights_dir)
    timing = photo_tab.compare_views(photo_tab.compare(pred, synthetic_pair(64, seed=6)[0]), 0.5, tuple(pred.models), 0)[1]
    at = page("compare")
    at.query_params["scene"] = "3.jpg"
    at.run()
    no_exception(at)
    streamlit = next(m.help for m in at.metric if m.label.startswith(display_name(ENSEMBLE)))
    for said in (timing, streamlit):
        assert "mean of" in said and "members' probabilities" in said, said


def test_recomputed_metrics_say_on_what_and_with_which_backend(env):  # noqa: F811 (fixture)
    """After recomputing on 4 images the page still read as whole-val figures, with no backend."""
    at = page("benchmark").run()
    at.number_input(key="bench_limit").set_value(4).run()
    at.button(key="bench_recompute").click().run()
    no_exception(at)
    headings = [m.value for m in at.markdown if m.value.startswith("####")]
    metrics = next(h for h in headings if "etrics" in h and "Recompute" not in h)
    assert "4" in metrics and "Whole-val" not in metrics, headings
    table = at.dataframe[0].value
    assert table.apply(lambda row: " ".join(map(str, row)), axis=1).str.contains("fp32").all(), table


@pytest.mark.parametrize("name", ["analysis", "explorer"])
def test_the_folder_pages_name_the_backend_and_the_images(env, name):  # noqa: F811 (fixture)
    """'Is the difference real?' (int8) and Benchmark (fp32) gave two mIoUs of U-Net, neither
    saying which backend: the folder pages say it, and on how many images."""
    at = page(name).run()
    no_exception(at)
    shown = "\n".join([texts(at.markdown), texts(at.caption)] + [str(d.value.to_dict()) for d in at.dataframe])
    assert "PyTorch fp32" in shown and "6 images" in shown


def test_each_model_has_one_colour_on_every_chart():
    """The IoU bars, the reliability diagram and the flicker plot each coloured the models by their
    order in that chart, so one model had different colours on different pages."""
    iou = figures.iou_figure({n: {"road": 0.5} for n in MODELS})
    bins = [{"confidence": 0.5, "accuracy": 0.4, "pixels": 10}]
    shown = (ENSEMBLE, "fcn_resnet50")  # another order and a subset, as a page may show
    reliability = explore.reliability_figure({"models": list(shown), "stats": {n: {"reliability": bins} for n in shown}})
    rows = [{"frame": 0, "time_s": 0.0, "segmented": 1, "disagreement": 0.1,
             **{f"flicker_{n}": 0.05 for n in ARCH_NAMES}, **{f"flicker_flow_{n}": "" for n in ARCH_NAMES}}]
    flicker = figures.flicker_figure(rows, ARCH_NAMES[::-1])

    def colour(fig, name: str, part: str):
        trace = next(t for t in fig.data if t.name.startswith(display_name(name)))
        return getattr(trace, part).color

    bars = {n: colour(iou, n, "marker") for n in MODELS}
    assert None not in bars.values() and len(set(bars.values())) == len(MODELS), bars
    assert all(colour(reliability, n, "line") == bars[n] for n in shown)
    assert all(colour(flicker, n, "line") == bars[n] for n in ARCH_NAMES)


def test_the_video_summary_reads_display_names():
    from seg_core.video import VideoInfo
    from seg_core.video_compare import VideoResult

    rows = [{"frame": 0, "segmented": 1, "disagreement": 0.1, "flicker_fcn_vgg16": 0.05, "flicker_flow_fcn_vgg16": ""}]
    summary = VideoResult(VideoInfo(64, 48, 10, 1, 0.1, "h264"), ("fcn_vgg16",), 1, 1, 1.0, rows).summary()
    assert "FCN-VGG16 flicker 5.0%" in summary and "fcn_vgg16" not in summary
