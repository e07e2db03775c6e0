"""What a person reads says the same thing everywhere: one palette, one set of display names and one
colour per model (charts of both apps, the Gradio class picture, the video summary), times that
never read "0 ms". Files and API fields keep the stable ids."""

from __future__ import annotations

from pathlib import Path

from seg_core.palette import CLASS_HEX, CLASS_NAMES, COLORS
from seg_core.registry import ARCH_NAMES, ENSEMBLE, display_name, model_color
from seg_core.viz import ms_text
from seg_core.video import VideoInfo
from seg_core.video_compare import VideoResult
from ui import explore, figures
from ui.figures import flicker_figure

MODELS = (*ARCH_NAMES, ENSEMBLE)


def test_every_model_has_its_own_colour_and_own_models_others():
    colours = [model_color(n) for n in MODELS] + [model_color(n, ("a", "b")) for n in ("a", "b")]
    assert len(set(colours)) == len(colours)
    assert CLASS_HEX["road"] == "#%02x%02x%02x" % tuple(COLORS[0]) == "#804080"


def test_charts_give_each_model_the_same_colour_and_name():
    iou = figures.iou_figure({n: {c: 0.5 for c in CLASS_NAMES} for n in MODELS})
    bins = [{"confidence": 0.5, "accuracy": 0.4, "pixels": 10}]
    reliability = explore.reliability_figure({"models": list(MODELS), "stats": {n: {"reliability": bins} for n in MODELS}})
    rows = [{"frame": i, "time_s": i / 10, "segmented": 1, "disagreement": 0.1,
             **{f"flicker_{n}": 0.05 for n in ARCH_NAMES}, **{f"flicker_flow_{n}": 0.02 for n in ARCH_NAMES}}
            for i in range(3)]
    flicker = flicker_figure(rows, ARCH_NAMES)
    for n in MODELS:
        assert next(t for t in iou.data if t.name == display_name(n)).marker.color == model_color(n)
        assert next(t for t in reliability.data if t.name == display_name(n)).line.color == model_color(n)
    for n in ARCH_NAMES:
        lines = [t for t in flicker.data if t.name.startswith(display_name(n) + " flicker")]
        assert len(lines) == 2 and {t.line.color for t in lines} == {model_color(n)}


def test_the_video_summary_uses_display_names():
    rows = [{"frame": 0, "segmented": 1, "disagreement": 0.1, "flicker_fcn_vgg16": 0.05, "flicker_flow_fcn_vgg16": ""}]
    result = VideoResult(VideoInfo(64, 48, 10, 1, 0.1, "h264"), ("fcn_vgg16",), 1, 1, 1.0, rows)
    assert "FCN-VGG16 flicker 5.0%" in result.summary() and "fcn_vgg16" not in result.summary()


def test_times_never_read_zero_ms():
    from seg_core.viz import ms_text

    assert ms_text(0.0) == ms_text(0.0004) == "<1 ms" and ms_text(0.0123) == "12 ms"


def test_both_apps_report_the_ensembles_time_as_the_same_thing(weights_dir):
    """Gradio asks for the ensemble with the masks, Streamlit's Compare a step after them (its first
    paint): both get ``PhotoService``'s ensemble, whose time is the mixing of the probabilities the
    members' passes kept, and both word it with ``viz.ENSEMBLE_TIME`` (Gradio once showed 35 ms and
    Streamlit 693 ms for the same ensemble, each meaning something else)."""
    import gradio_tabs.photo as photo_tab
    from seg_core.predictor import Predictor
    from seg_core.serve.photos import Photo, PhotoService
    from seg_core.viz import ENSEMBLE_TIME
    from tests.conftest import synthetic_pair

    image = synthetic_pair(64, seed=6)[0]
    gradio_pred = Predictor.from_dir(weights_dir)
    state = photo_tab.compare(gradio_pred, image)  # one call: masks and ensemble
    streamlit = PhotoService(Predictor.from_dir(weights_dir), "streamlit-test")
    first = streamlit.compare(Photo.of(image), ensemble=False)  # the three first, the ensemble after
    assert ENSEMBLE not in first
    second = streamlit.compare(Photo.of(image))
    for seconds in (state["seconds"], {n: p.seconds for n, p in second.items()}):
        members = sum(seconds[n] for n in ARCH_NAMES)
        assert 0 < seconds[ENSEMBLE] < members  # the mixing, not the passes again
    assert all(second[n] is first[n] for n in ARCH_NAMES)  # no model ran for the ensemble
    timing = photo_tab.compare_views(state, 0.5, tuple(gradio_pred.models), 0)[1]
    assert f"Ensemble {ms_text(state['seconds'][ENSEMBLE])} ({ENSEMBLE_TIME})" in timing.replace(display_name(ENSEMBLE), "Ensemble")
    page = (Path(__file__).parents[1] / "app_pages" / "compare.py").read_text()
    assert page.count("ENSEMBLE_TIME") >= 3  # imported, in the caption and in the ensemble's metric help
