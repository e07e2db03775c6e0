"""The val explorer, the "Is the difference real?" page, the mask viewer and the scene downloads.

Pure functions first (tables, shortcuts, confusion differences, the viewer's hover data and its
size bound, the ZIP), then both pages run headless with ``AppTest`` on the random-weight 64x64
checkpoints of ``weights_dir`` and the synthetic pairs of ``write_pairs``.
"""

from __future__ import annotations

import io
import json
import os
import time
import zipfile
from pathlib import Path

import numpy as np
import plotly.io as pio
import pytest
from PIL import Image

from benchmarks.browser import CHROMIUM, NO_CHROMIUM, Browser, serve_app, wait_for
from seg_core.analysis import ConfidenceStats
from seg_core.folder_confidence import confidence_stats, folder_confidence
from seg_core.folder_scores import folder_scores, rows
from seg_core.inference import Prediction
from seg_core.palette import CLASS_NAMES, IGNORE_INDEX
from seg_core.predictor import Predictor
from tests.conftest import synthetic_pair, write_pairs
from tests.test_app import no_exception, page, texts
from ui import downloads, explore, viewer


@pytest.fixture
def env(monkeypatch, weights_dir, tmp_path):
    """The app pointed at the test checkpoints, synthetic val pairs and an empty cache folder."""
    data = write_pairs(tmp_path / "val")
    monkeypatch.setenv("SEG_WEIGHTS_DIR", str(weights_dir))
    monkeypatch.setenv("SEG_DATA_DIR", str(data))
    monkeypatch.setenv("SEG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("SEG_PUBLIC", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    return data


def blocks(h: int, w: int, rng, values: int = 19, block: int = 8) -> np.ndarray:
    """Random ``h x w`` class ids in ``block``-pixel squares: regions, as masks have."""
    small = rng.integers(0, values, (-(-h // block), -(-w // block)))
    return np.kron(small, np.ones((block, block), np.int64))[:h, :w].astype(np.uint8)


def fake_predictions(h: int, w: int, seed: int = 0, models=("unet", "fcn_vgg16", "fcn_resnet50", "ensemble")):
    rng = np.random.default_rng(seed)
    return {n: Prediction(blocks(h, w, rng, block=max(1, h // 32)), 0.01,
                          np.kron(rng.random((max(1, h // 32), max(1, w // 32))), np.ones((8, 8))).astype(np.float16))
            for n in models}


def street(h: int, w: int) -> np.ndarray:
    """A photo-like picture: smooth gradients with a little noise (JPEG compresses it as a photo)."""
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (h + w)], -1)
    return (base + np.random.default_rng(0).normal(0, 4, base.shape)).clip(0, 255).astype(np.uint8)


def cell_of(cells: np.ndarray, grid: tuple[int, int], shape: tuple[int, int], y: int, x: int) -> list:
    return cells[int(y * grid[0] / shape[0]), int(x * grid[1] / shape[1])].tolist()


# --- the viewer -----------------------------------------------------------------------------------

def test_isolating_classes_narrows_the_errors_view_to_their_pixels():
    """The class filter did nothing in "Errors vs low confidence": now only the chosen classes'
    pixels are judged, the others count as unlabelled."""
    h, w = 64, 128
    label = blocks(h, w, np.random.default_rng(3))
    preds = fake_predictions(h, w, models=("unet",))
    every = dict(viewer.panels(street(h, w), preds, label, "Errors vs low confidence"))["U-Net"]
    cars = dict(viewer.panels(street(h, w), preds, label, "Errors vs low confidence", classes=[13]))["U-Net"]
    unlabelled = np.all(cars == viewer.ERROR_KINDS["no label"], axis=-1)
    assert np.array_equal(unlabelled, label != 13) and np.array_equal(cars[label == 13], every[label == 13])


@pytest.mark.parametrize("view", viewer.VIEWS)
def test_viewer_hover_data_stays_within_the_budget_on_a_large_scene(view):
    h, w = 1024, 2048
    photo, label = street(h, w), blocks(h, w, np.random.default_rng(2), block=32)
    fig = viewer.viewer_figure(photo, fake_predictions(h, w), label, view)
    hover = sum(len(json.dumps(t.customdata.tolist(), separators=(",", ":")))
                for t in fig.data if t.type == "heatmap")
    assert hover == fig.layout.meta["hover_bytes"] <= viewer.HOVER_BUDGET
    grid = fig.layout.meta["hover_grid"]
    assert grid[1] >= 64 and abs(grid[1] / grid[0] - 2) < 0.1  # fine enough to read, aspect kept
    assert len(pio.to_json(fig, validate=False)) < 2 * viewer.HOVER_BUDGET  # pictures are JPEG/PNG, small


def test_viewer_hover_reads_every_model_and_the_truth_at_the_cursor():
    photo, label = synthetic_pair(64)
    preds = fake_predictions(64, 64, models=("unet", "fcn_resnet50"))
    preds["unet"].mask[:] = 13  # car everywhere
    grid, cells, _ = viewer.hover_grid((64, 64), preds, label, panels=3)
    assert grid == (64, 64)  # small scenes: one cell per pixel
    y, x = 40, 10
    cell = cell_of(cells, grid, (64, 64), y, x)
    assert cell[:3] == [CLASS_NAMES[label[y, x]], "car", CLASS_NAMES[preds["fcn_resnet50"].mask[y, x]]]
    conf = preds["fcn_resnet50"].confidence[y, x]
    assert abs(cell[4] - 100 * conf) <= 3  # percent, from the model-resolution map
    template = viewer.hover_template(preds, label)
    assert "truth" in template and "U-Net" in template and "FCN-ResNet50" in template and "customdata[4]" in template
    fig = viewer.viewer_figure(photo, preds, label, "Masks")
    heatmaps = [t for t in fig.data if t.type == "heatmap"]
    assert len(heatmaps) == 4  # photo, truth, two models: each panel hovers
    axes = fig.to_plotly_json()["layout"]
    followers = [k for k in axes if k[1:5] == "axis" and k not in ("xaxis", "yaxis")]
    assert len(followers) == 10 and "matches" not in axes["xaxis"]  # 2 x 3 grid: x and y of 5 others
    assert all(axes[k]["matches"] == k[0] for k in followers)  # zoom and pan in one move every panel


def test_viewer_tight_budget_shrinks_the_grid_not_the_fields():
    preds = fake_predictions(256, 512)
    grid, cells, size = viewer.hover_grid((256, 512), preds, None, panels=5, budget=200_000)
    assert size <= 200_000 and cells.shape == (*grid, 8)
    assert grid[0] < 64


def test_isolating_classes_greys_out_the_others():
    mask = np.array([[0, 13], [2, 13]], np.uint8)
    out = viewer.mask_picture(mask, [13])
    assert (out[0, 0] == viewer.ISOLATED_OUT).all() and (out[0, 1] == (0, 0, 142)).all()
    assert (viewer.mask_picture(mask, []) == viewer.mask_picture(mask, None)).all()
    photo = np.full((2, 2, 3), 100, np.uint8)
    pictures = viewer.panels(photo, {"unet": Prediction(mask, 0.0)}, None, "Overlays", classes=[0], opacity=1.0)
    assert (pictures[1][1][0, 1] == 100).all() and (pictures[1][1][0, 0] == (128, 64, 128)).all()


def test_errors_vs_low_confidence_kinds_and_shares():
    label = np.array([[0, 0, 1, 1, IGNORE_INDEX]], np.uint8)
    mask = np.array([[0, 0, 0, 0, 0]], np.uint8)
    conf = np.array([[0.9, 0.2, 0.3, 0.9, 0.9]], np.float32)
    kinds = viewer.error_kinds(mask, label, conf, threshold=0.5)
    names = list(viewer.ERROR_KINDS)
    assert [names[k] for k in kinds[0]] == ["right, sure", "right, unsure", "wrong, unsure", "wrong, sure", "no label"]
    shares = viewer.error_shares(kinds)
    assert shares["wrong it was unsure of"] == 0.5 and shares["right, sure"] == 0.25


# --- tables and downloads -------------------------------------------------------------------------

def scores_of(weights_dir, pairs, tmp_path):
    pred = Predictor.from_dir(weights_dir)
    return pred, folder_scores(pred, pairs, cache_dir=tmp_path / "cache")


def test_scores_frame_matches_folder_scores_rows(weights_dir, tmp_path):
    pairs = write_pairs(tmp_path / "val", n=5)
    _, scores = scores_of(weights_dir, pairs, tmp_path)
    frame = explore.scores_frame(scores)
    for i, row in enumerate(rows(scores, CLASS_NAMES)):
        for name in scores["models"]:
            assert frame[f"{explore.title(name)} mIoU"][i] == pytest.approx(row[f"{name} mIoU"], nan_ok=True)
            assert frame[f"{explore.title(name)} pixel acc"][i] == pytest.approx(row[f"{name} pixel acc"])


def test_shortcuts_sort_as_they_say():
    scores = {"images": ["a", "b", "c"], "models": ["unet", "fcn_resnet50"], "disagreement": np.array([0.1, 0.5, 0.3]),
              "fringe": np.zeros((3, 19), bool)}
    eye = np.eye(19, dtype=np.int64)
    half = eye.copy()
    half[0, 1] = 1  # class 0: IoU 1/2
    scores["matrices"] = {"unet": np.stack([eye, half, half]), "fcn_resnet50": np.stack([half, eye, half])}
    frame = explore.scores_frame(scores)
    assert list(explore.shortcut(frame, "Largest disagreement", scores["models"])["image"]) == ["b", "c", "a"]
    unet_wins = explore.shortcut(frame, "Where U-Net beats FCN-ResNet50 most", scores["models"])
    assert unet_wins["image"][0] == "a" and unet_wins.columns[1] == "U-Net − FCN-ResNet50 mIoU"
    assert explore.shortcut(frame, "Where FCN-ResNet50 beats U-Net most", scores["models"])["image"][0] == "b"
    assert explore.shortcut(frame, "Hardest scenes", scores["models"])["image"][0] == "c"
    with pytest.raises(ValueError, match="needs both"):
        explore.shortcut(frame, SHORTCUT_BEATS, ["unet"])


SHORTCUT_BEATS = explore.SHORTCUTS[2]


def test_confusion_differences_rank_by_share_of_the_truth_class():
    a = np.diag([100, 100, 100]).astype(np.int64)
    b = a.copy()
    a[0, 1] = 50  # A calls 1/3 of class 0 class 1
    b[2, 0] = 10  # B calls 1/11 of class 2 class 0
    diff = explore.confusion_differences(a, b, top=5, class_names=("x", "y", "z"))
    assert list(diff["truth"]) == ["x", "z"] and list(diff["predicted as"]) == ["y", "x"]
    assert diff["A − B"][0] == pytest.approx(50 / 150) and diff["A − B"][1] == pytest.approx(-10 / 110)


def test_pair_table_says_which_differences_are_within_noise():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 50, (40, 19, 19))
    better = base.copy()
    idx = np.arange(19)
    better[:, idx, idx] += 200  # far more right pixels on every image
    same = base.copy()
    scores = {"models": ["unet", "fcn_vgg16", "fcn_resnet50"], "matrices": {"unet": better, "fcn_vgg16": base, "fcn_resnet50": same}}
    table = explore.pair_table(explore.pair_differences(scores, n_boot=200))
    verdicts = dict(zip(table["pair"], table["verdict"]))
    assert verdicts["U-Net − FCN-VGG16"] == "real" and verdicts["FCN-VGG16 − FCN-ResNet50"] == "within noise"


def test_scene_zip_holds_everything_and_the_json_scores():
    photo, label = synthetic_pair(32)
    preds = fake_predictions(32, 32)
    preds["unet"].mask[:] = label
    data = downloads.scene_zip("12.jpg", photo, preds, label)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        names = set(z.namelist())
        for model in preds:
            for part in ("overlay", "color", "ids", "confidence", "confidence_gray"):
                assert f"12/{model}_{part}.png" in names
        assert "12/truth_color.png" in names
        summary = json.loads(z.read("12/scene.json"))
        ids = np.asarray(Image.open(io.BytesIO(z.read("12/unet_ids.png"))))
    assert (ids == label).all()
    assert summary["models"]["unet"]["scores"]["pixel_acc"] == 1.0
    assert summary["models"]["unet"]["scores"]["miou"] == 1.0
    assert abs(sum(summary["models"]["fcn_vgg16"]["shares"].values()) - 1) < 1e-6
    assert 0 < summary["disagreement"] <= 1 and summary["size"] == [32, 32]


# --- folder confidence ----------------------------------------------------------------------------

def test_folder_confidence_is_cached_and_matches_direct_stats(weights_dir, tmp_path):
    from seg_core.data import load_split

    pairs = write_pairs(tmp_path / "val", n=4)
    pred = Predictor.from_dir(weights_dir)
    first = folder_confidence(pred, pairs, cache_dir=tmp_path / "cache")
    assert not first["cached"] and first["models"] == [*pred.models, "ensemble"]
    images, labels = load_split(pairs)
    direct = confidence_stats({"unet": pred.models["unet"]}, images, labels)["unet"]
    assert first["stats"]["unet"]["auroc"] == pytest.approx(direct.auroc())
    assert first["stats"]["unet"]["ece"] == pytest.approx(direct.ece())
    again = folder_confidence(pred, pairs, cache_dir=tmp_path / "cache")
    assert again["cached"] and again["stats"] == first["stats"]
    assert isinstance(direct, ConfidenceStats)


# --- the pages ------------------------------------------------------------------------------------

def test_explorer_scores_the_folder_then_reads_the_cache(env):
    at = page("explorer").run()
    no_exception(at)
    table = at.dataframe[0].value
    assert len(table) == 6 and "All three (averaged) mIoU" in table.columns
    assert "cached for the next visit" in texts(at.caption)
    assert "Click a row of the table" in texts(at.info)
    assert len(at.get("plotly_chart")) >= 2  # scatter, IoU per class
    t0 = time.perf_counter()
    again = page("explorer").run()
    no_exception(again)
    assert "read from the cache" in texts(again.caption)
    assert time.perf_counter() - t0 < 30  # no model runs (the AppTest start-up itself takes seconds)


def test_explorer_first_visit_shows_rows_before_the_folder_is_scored_and_resumes(env, monkeypatch):
    """A cold folder streams: the visitor leaves (the run is stopped, as Streamlit stops a closed
    session's run) while U-Net segments images 5-6; the page already shows the 4 rows scored, says
    so, and leaves no cache that reads as the whole folder. The next visit scores only images 5-6
    and shows what the unstreamed scoring gives."""
    import pandas as pd
    import streamlit as st

    from seg_core import folder_scores as fs
    from seg_core.data import list_pairs, load_split
    from seg_core.runners import TorchRunner

    monkeypatch.setattr(fs, "CHUNK", 2)
    segmented, leave_after = [], [4]
    scored = TorchRunner.masks_and_probabilities

    def counted(self, x, *args, **kwargs):
        if self.config.arch == "unet":
            if leave_after and sum(segmented) + len(x) > leave_after[0]:
                st.stop()
            segmented.append(len(x))
        return scored(self, x, *args, **kwargs)

    monkeypatch.setattr(TorchRunner, "masks_and_probabilities", counted)
    at = page("explorer").run()
    no_exception(at)
    assert sum(segmented) == 4
    assert list(at.dataframe[0].value["image"]) == ["1.jpg", "2.jpg", "3.jpg", "4.jpg"]
    assert "4 of 6 images scored so far" in at.get("progress")[0].proto.text
    assert not at.get("plotly_chart")  # the charts wait for the whole folder
    cache = Path(os.environ["SEG_CACHE_DIR"])
    assert not list(cache.glob("scores-*.npz")) and list(cache.glob("scores-*.parts/*.npz"))

    segmented.clear()
    leave_after.clear()
    at = page("explorer").run()
    no_exception(at)
    assert sum(segmented) == 2  # resumed after the two chunks already scored
    assert "cached for the next visit" in texts(at.caption) and not at.get("progress")
    pred = Predictor.from_dir(os.environ["SEG_WEIGHTS_DIR"])
    images, labels = load_split(env)
    whole = {"images": [p.name for p in list_pairs(env)],
             **fs.score_split(pred.models, images, labels, members=pred.ensemble())}
    pd.testing.assert_frame_equal(at.dataframe[0].value, explore.scores_frame(whole))
    assert list(cache.glob("scores-*.npz")) and not list(cache.glob("scores-*.parts"))


def test_explorer_shortcut_and_a_picked_scene_open_the_viewer(env):
    at = page("explorer")
    at.session_state["explorer_pick"] = "3.jpg"
    at.run()
    no_exception(at)
    assert at.session_state["scene"].name == "3.jpg" and at.session_state["scene"].label is not None
    assert any(b.label.startswith("Download everything") for b in at.get("download_button"))
    at.segmented_control(key="explorer_shortcut").set_value("Largest disagreement").run()
    no_exception(at)
    shown = at.dataframe[0].value
    assert list(shown.columns[:2]) == ["image", "disagreement"]
    assert list(shown["disagreement"]) == sorted(shown["disagreement"], reverse=True)
    at.button(key="explorer_show").click().run()  # the dialog stays open until dismissed; the button opens it too
    at.segmented_control(key="explorer_viewer_view").set_value("Errors vs low confidence").run()
    no_exception(at)
    assert "wrong it was unsure of" in texts(at.caption)


def test_explorer_segments_a_large_upload_at_screen_size(env, monkeypatch):
    """An upload brought from Compare: its masks and confidence maps are made (and cached) at
    screen size, not at the photo's full size."""
    from ui import common, scenes

    sizes, predictions = [], common.predictions

    def recorded(scene, photo=None, **options):
        sizes.append((scene.photo if photo is None else photo).shape)
        return predictions(scene, photo, **options)

    monkeypatch.setattr(common, "predictions", recorded)
    at = page("explorer")
    at.session_state["scene"] = scenes.Scene("wide.png", street(600, 1500))
    at.run()
    no_exception(at)
    assert sizes == []  # not opened by itself: one click away
    at.button(key="explorer_show").click().run()
    no_exception(at)
    assert sizes == [(410, 1024, 3)]
    assert "Shown and downloaded here at screen size (1024x410)" in texts(at.caption)


def test_explorer_in_public_mode_explains_and_stops(env, monkeypatch):
    monkeypatch.setenv("SEG_PUBLIC", "1")
    at = page("explorer").run()
    no_exception(at)
    assert "licence forbids sharing them" in texts(at.info)
    assert not at.dataframe


def test_explorer_without_a_val_folder_says_how_to_get_one(env, monkeypatch, tmp_path):
    monkeypatch.setenv("SEG_DATA_DIR", str(tmp_path / "nowhere"))
    at = page("explorer").run()
    no_exception(at)
    assert "does not exist" in texts(at.info) and "SEG_DATA_DIR" in texts(at.info)


def test_analysis_page_shows_auroc_ece_and_the_bootstrap(env):
    at = page("analysis").run()
    no_exception(at)
    models = at.dataframe[0].value
    assert list(models["model"]) == ["U-Net", "FCN-VGG16", "FCN-ResNet50", "All three (averaged)"]
    assert list(models.columns) == ["model", "mIoU", "pixel acc", "AUROC of confidence", "ECE", "backend"]  # scores first
    assert models["AUROC of confidence"].between(0, 1).all() and models["ECE"].between(0, 1).all()
    pairs = at.dataframe[1].value
    assert len(pairs) == 6 and set(pairs["verdict"]) <= {"real", "within noise", "no data"}
    assert (pairs["95 % interval from"] <= pairs["to"]).all()
    assert len(at.get("plotly_chart")) == 2  # reliability, per-class differences


def test_image_confusions_match_one_confusion_matrix_per_image():
    import torch

    from seg_core.evaluate import image_confusions
    from seg_core.metrics import ConfusionMatrix

    rng = np.random.default_rng(0)
    pred = rng.integers(0, 19, (3, 16, 16)).astype(np.uint8)
    target = rng.integers(0, 20, (3, 16, 16)).astype(np.uint8)
    target[target == 19] = IGNORE_INDEX
    mats = image_confusions(pred, target, 19)
    for j in range(3):
        cm = ConfusionMatrix(19)
        cm.update(torch.from_numpy(pred[j]), torch.from_numpy(target[j]))
        assert (mats[j] == cm.mat.numpy()).all()


# --- in a real browser ----------------------------------------------------------------------------

HOVER_JS = "Array.from(document.querySelectorAll('.hoverlayer .hovertext')).map(e => e.textContent).join('|')"


def _hover(browser, x: float, y: float, what: str, timeout: float = 30) -> str:
    """Move the pointer to (x, y) until Plotly shows a hover label (a plot still drawing misses a
    single move); returns the label's text."""
    def hovering():
        browser.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        return browser.evaluate(HOVER_JS)

    return wait_for(hovering, timeout, what)


def _click(browser, x: float, y: float) -> None:
    _hover(browser, x, y, "the point's hover label")  # Plotly clicks what it hovers
    for kind in ("mousePressed", "mouseReleased"):
        browser.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)


@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
@pytest.mark.slow
def test_scatter_click_opens_the_scene_and_hover_reads_every_model_in_chromium(weights_dir, pairs_dir, tmp_path,
                                                                               monkeypatch):
    monkeypatch.setenv("SEG_CACHE_DIR", str(tmp_path / "cache"))
    with serve_app(weights_dir, pairs_dir, tmp_path / "streamlit.log") as url:
        browser = Browser(width=1440, height=1400)
        try:
            browser.call("Page.navigate", url=f"{url}/explorer")
            wait_for(lambda: "Click a row of the table" in (browser.evaluate("document.body.innerText") or ""), 180,
                     "the explorer")
            point = wait_for(lambda: browser.evaluate("""(() => {
                const pts = document.querySelectorAll('.js-plotly-plot .scatterlayer .trace:first-child path.point');
                if (pts.length != 6) return null;
                pts[0].scrollIntoView({block: 'center'}); const r = pts[0].getBoundingClientRect();
                return [r.x + r.width / 2, r.y + r.height / 2]; })()"""), 60, "the scatter's six points")
            browser.painted()  # scrolled into view before the pointer moves there
            _click(browser, *point)
            wait_for(lambda: "Drag to pan" in (browser.evaluate("document.body.innerText") or ""), 120,
                     "the scene opened by the click")
            # where the click was: in a dialog over the page, not some 1,400 px further down
            top = wait_for(lambda: browser.evaluate("""(() => { const d = document.querySelector('[role=dialog]');
                return d && d.querySelector('.js-plotly-plot') ? [d.getBoundingClientRect().top, innerHeight] : null })()"""),
                60, "the dialog with the viewer")
            assert 0 <= top[0] < top[1] / 2, top
            # The viewer is the plot with six panels (photo, truth, three models, the ensemble).
            where = wait_for(lambda: browser.evaluate("""(() => {
                for (const p of document.querySelectorAll('.js-plotly-plot')) {
                  const d = p.querySelectorAll('.nsewdrag');
                  if (d.length == 6) { p.scrollIntoView(); const r = d[4].getBoundingClientRect();
                                       return [r.x + r.width / 2, r.y + r.height / 2]; } }
                return null; })()"""), 60, "the viewer's panels")
            hover = wait_for(lambda: "truth:" in (t := _hover(browser, *where, "the hover label")) and t, 60,
                             "the viewer's hover label")
        finally:
            browser.close()
    assert "truth:" in hover and "% sure" in hover
    for title in ("U-Net:", "FCN-VGG16:", "FCN-ResNet50:", "All three (averaged):"):
        assert title in hover, hover


def test_frozen_figure_serialises_like_the_figure_it_freezes():
    photo, label = synthetic_pair(64)
    fig = viewer.viewer_figure(photo, fake_predictions(64, 64), label, "Masks")
    frozen = viewer.FrozenFigure(fig)
    assert isinstance(frozen.to_dict()["data"][1]["customdata"], list)  # lists: orjson writes them fast
    assert json.loads(pio.to_json(frozen.to_dict(), validate=False)) == json.loads(pio.to_json(fig, validate=False))


def test_mirror_averaging_never_rescores_the_folder_without_a_confirmation(env):
    """The sidebar's switch is for one photo at a time; the explorer's own switch says its cost and
    rescoring all images waits for a click (it greyed the page for 1.5-2 min with no warning)."""
    first = page("explorer").run()
    no_exception(first)
    at = page("explorer")
    at.session_state["tta"] = True  # the sidebar's switch, flipped on another page
    at.run()
    no_exception(at)
    assert "read from the cache" in texts(at.caption) and not at.warning
    toggle = at.toggle(key="folder_tta")
    assert "scored again" in toggle.help and "twice as long" in toggle.help
    toggle.set_value(True).run()
    no_exception(at)
    assert "read from the cache" in texts(at.caption)  # nothing recomputed yet
    assert "scoring all 6 images again" in texts(at.warning)
    at.button(key="folder_tta_start").click().run()
    no_exception(at)
    assert "cached for the next visit" in texts(at.caption) and not at.warning
