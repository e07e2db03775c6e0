"""gradio_app: the /segment API through gradio_client against a server launched here, and the page's handlers.

The server runs the module-level ``demo`` built at import from ``SEG_WEIGHTS_DIR`` (the tiny
random-weight checkpoints) and ``SEG_DATA_DIR`` (synthetic pairs); it is closed at the end.
"""

from __future__ import annotations

import importlib
import os
import shutil
import socket
import struct
import sys
import threading
import time
import zlib
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no phoning home from tests

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402
from PIL import Image  # noqa: E402

from seg_core.inference import class_shares, load_image, predict  # noqa: E402
from seg_core.palette import CLASS_HEX, CLASS_NAMES, colorize  # noqa: E402
from seg_core.predictor import Predictor  # noqa: E402
from seg_core.registry import ARCH_NAMES  # noqa: E402
from seg_core.viz import legend  # noqa: E402
from seg_core.serve.slots import SLOTS  # noqa: E402
from gradio_tabs import api as api_tab, common as common_tab, own_models as own_tab, photo as photo_tab, video as video_tab, webcam as webcam_tab  # noqa: E402,F401
from tests.conftest import write_pairs  # noqa: E402

pytestmark = [  # pandas deprecations inside gradio's queue, not ours
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]

H, W = 48, 80  # not square, not a multiple of 32: the mask must come back at exactly this size


@pytest.fixture(scope="module")
def app(weights_dir, tmp_path_factory):
    """The ``gradio_app`` module, imported with the test weights and synthetic pairs."""
    tmp = tmp_path_factory.mktemp("gradio_app")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEG_WEIGHTS_DIR", str(weights_dir))
        mp.setenv("SEG_DATA_DIR", str(write_pairs(tmp / "pairs", n=3)))
        mp.setenv("SEG_EXAMPLES_CACHE", str(tmp / "examples"))
        if "gradio_app" in sys.modules:
            return importlib.reload(sys.modules["gradio_app"])
        return importlib.import_module("gradio_app")


@pytest.fixture(scope="module")
def client(app):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app.demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                    **common_tab.LAUNCH_KWARGS)
    try:
        yield Client(f"http://127.0.0.1:{port}/", verbose=False)
    finally:
        app.demo.close()


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "street.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)).save(path)
    return path


def huge_png(path, width=8000, height=6000):
    """A valid PNG header announcing 48 MP (over the 40 MP limit); the pixels are never decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
                     + chunk(b"IEND", b""))
    return path


# ------------------------------------------------------------------------------------------ the API

@pytest.mark.parametrize("model", ["unet", "fcn_vgg16", "fcn_resnet50"])
def test_segment_api_returns_class_ids_and_shares(app, client, photo, model):
    png, shares = client.predict(handle_file(str(photo)), model, api_name="/segment")
    with Image.open(png) as im:
        assert im.format == "PNG" and im.mode == "L"
        ids = np.asarray(im)
    assert ids.shape == (H, W) and ids.max() < len(CLASS_NAMES)
    assert sum(shares.values()) == pytest.approx(1.0)
    assert set(shares) <= set(CLASS_NAMES)
    assert shares == pytest.approx(class_shares(ids))
    # The same mask as seg_core gives locally (up to argmax ties from thread-dependent summation).
    assert (ids == predict(app.predictor.models[model], photo)).mean() > 0.99


def test_api_lists_its_endpoints(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert sorted(endpoints) == ["/analyze", "/segment", "/segment_inline", "/segment_video"]
    for name in ("/segment", "/segment_inline"):
        assert [p["parameter_name"] for p in endpoints[name]["parameters"]] == ["image", "model"]
    assert [p["parameter_name"] for p in endpoints["/analyze"]["parameters"]] == ["image", "tta"]


def test_segment_api_takes_the_ensemble(app, client, photo):
    png, shares = client.predict(handle_file(str(photo)), "ensemble", api_name="/segment")
    ids = np.asarray(Image.open(png))
    expected = app.predictor.predict(load_image(photo), names=("ensemble",))["ensemble"].mask
    assert ids.shape == (H, W) and (ids == expected).mean() > 0.99 and sum(shares.values()) == pytest.approx(1.0)


def test_analyze_returns_every_model_with_its_confidence_in_one_call(app, client, photo):
    import base64
    import io

    answer = client.predict(handle_file(str(photo)), "none", api_name="/analyze")
    assert answer["size"] == [H, W] and 0 <= answer["disagreement"] <= 1 and answer["shared_ms"] >= 0
    assert list(answer["models"]) == ["unet", "fcn_vgg16", "fcn_resnet50", "ensemble"]
    local = app.predictor.predict(load_image(photo), confidence=True, ensemble=True)
    for name, entry in answer["models"].items():
        mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(entry["mask_png_base64"]))))
        conf = np.asarray(Image.open(io.BytesIO(base64.b64decode(entry["confidence_png_base64"]))))
        assert mask.shape == conf.shape == (H, W) and conf.dtype == np.uint8
        assert (mask == local[name].mask).mean() > 0.99
        assert np.abs(conf / 255 - local[name].confidence).max() < 0.02
        assert 0 < entry["mean_confidence"] <= 1 and sum(entry["shares"].values()) == pytest.approx(1.0)


def test_segment_inline_returns_the_same_mask_in_the_answer(client, photo):
    import base64
    import io

    png, shares = client.predict(handle_file(str(photo)), "unet", api_name="/segment")
    answer = client.predict(handle_file(str(photo)), "unet", api_name="/segment_inline")
    with Image.open(io.BytesIO(base64.b64decode(answer["mask_png_base64"]))) as im:
        inline = np.asarray(im)
    assert np.array_equal(inline, np.asarray(Image.open(png))) and answer["shares"] == pytest.approx(shares)
    with pytest.raises(AppError, match="Unknown model 'deeplab'"):
        client.predict(handle_file(str(photo)), "deeplab", api_name="/segment_inline")


def _inline_mask(answer: dict) -> np.ndarray:
    import base64
    import io

    with Image.open(io.BytesIO(base64.b64decode(answer["mask_png_base64"]))) as im:
        return np.asarray(im)


def test_plain_http_api_answers_in_one_post(app, photo):
    from starlette.testclient import TestClient

    with TestClient(api_tab.rest_api(app.predictor)) as http:
        answer = http.post(f"{api_tab.REST_PATH}?model=fcn_vgg16", content=photo.read_bytes())
        assert answer.status_code == 200
        local = app.predictor.predict(load_image(photo), ("fcn_vgg16",))["fcn_vgg16"].mask
        assert np.array_equal(_inline_mask(answer.json()), local)
        assert answer.json()["shares"] == pytest.approx(class_shares(local))
        assert http.post(api_tab.REST_PATH, content=photo.read_bytes()).status_code == 200  # unet by default


def test_plain_http_api_refusals_are_sentences(app, photo, monkeypatch):
    from starlette.testclient import TestClient

    with TestClient(api_tab.rest_api(app.predictor)) as http:
        for body, query, status, words in [
            (b"not an image", "", 400, "not an image in a format we can read"),
            (b"", "", 400, "the file is empty"),
            (photo.read_bytes(), "?model=deeplab", 400, "Unknown model 'deeplab'; choose one of: unet"),
        ]:
            answer = http.post(api_tab.REST_PATH + query, content=body)
            assert answer.status_code == status and words in answer.json()["error"], answer.text
        monkeypatch.setattr(api_tab, "MAX_BODY_BYTES", 100)
        answer = http.post(api_tab.REST_PATH, content=photo.read_bytes())
        assert answer.status_code == 413 and "over" in answer.json()["error"]


def test_plain_http_api_refuses_at_once_when_full(app, photo):
    import threading

    from starlette.testclient import TestClient

    body = photo.read_bytes()
    api = api_tab.rest_api(app.predictor, waiting=0)  # room for the one running request only
    with TestClient(api) as http:
        results = []
        SLOTS.acquire()  # the cores are busy: the first request waits for its slot
        try:
            first = threading.Thread(target=lambda: results.append(http.post(api_tab.REST_PATH, content=body)))
            first.start()
            deadline = time.monotonic() + 10
            while api.state.admitted == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            second = http.post(api_tab.REST_PATH, content=body)
            assert second.status_code == 503 and second.headers["Retry-After"] == "1"
            assert "Busy" in second.json()["error"]
        finally:
            SLOTS.release()
        first.join(30)
        assert results and results[0].status_code == 200  # the waiting one was answered
        assert http.post(api_tab.REST_PATH, content=body).status_code == 200  # and the room is free again


def test_entry_point_serves_the_page_and_the_plain_api(app, photo):
    from starlette.testclient import TestClient

    demo = app.build_demo(app.predictor, None)  # its own: closing it must not stop the module's served demo
    with TestClient(api_tab.http_app(demo, app.predictor)) as http:
        page = http.get("/")
        assert page.status_code == 200 and "gradio" in page.text.lower()
        assert http.post(api_tab.REST_PATH, content=photo.read_bytes()).status_code == 200
        assert http.get("/gradio_api/info").json()["named_endpoints"]["/segment"]


def test_old_masks_are_pruned_at_most_once_a_minute(app, tmp_path, monkeypatch):
    import os

    monkeypatch.setattr(api_tab, "_last_prune", [0.0])
    old, new, preview = tmp_path / "mask-old.png", tmp_path / "mask-new.png", tmp_path / "preview-old.png"
    for path in (old, new, preview):
        path.write_bytes(b"x")
    os.utime(old, (1000.0, 1000.0))
    os.utime(preview, (1000.0, 1000.0))  # a TIFF's PNG preview, long since copied by gradio
    now = 1000.0 + api_tab.MASK_MAX_AGE_S + 1
    os.utime(new, (now, now))
    api_tab._prune(tmp_path, now)
    assert not old.exists() and new.exists() and not preview.exists()
    old.write_bytes(b"x")
    os.utime(old, (1000.0, 1000.0))
    api_tab._prune(tmp_path, now + api_tab.MASK_PRUNE_EVERY_S - 1)  # too soon: the folder is not listed again
    assert old.exists()
    api_tab._prune(tmp_path, now + api_tab.MASK_PRUNE_EVERY_S)
    assert not old.exists()


@pytest.mark.parametrize("kind, message", [
    ("text", "not an image in a format we can read"),
    ("empty", "is empty"),
    ("truncated", "corrupt or truncated"),
    ("huge", "8000x6000; the limit is 40 megapixels"),
])
def test_segment_api_bad_image_is_a_clear_error(client, photo, tmp_path, kind, message):
    path = tmp_path / f"bad_{kind}.png"
    if kind == "text":
        path.write_text("this is not a picture\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path = tmp_path / "bad_truncated.jpg"
        data = photo.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        huge_png(path)
    with pytest.raises(AppError, match=message) as err:
        client.predict(handle_file(str(path)), "unet", api_name="/segment")
    assert "Cannot segment this file" in str(err.value)
    assert "Traceback" not in str(err.value)


def test_segment_api_unknown_model_is_a_clear_error(client, photo):
    with pytest.raises(AppError, match=r"Unknown model 'deeplab'; choose one of: unet, fcn_vgg16, fcn_resnet50"):
        client.predict(handle_file(str(photo)), "deeplab", api_name="/segment")


# --------------------------------------------------------------------- handlers, without a server

def test_model_names_and_missing_models(app, weights_dir, tmp_path, photo):
    shutil.copy(weights_dir / "unet.safetensors", tmp_path / "unet.safetensors")
    partial = Predictor.from_dir(tmp_path)
    assert common_tab.model_key(partial, " U-Net ") == "unet"
    with pytest.raises(gr.Error) as err:
        api_tab.segment_api(partial, str(photo), "fcn_resnet50", tmp_path / "masks")
    assert "not available on this server" in err.value.message
    assert "python train_cli.py train --arch fcn_resnet50" in err.value.message
    # The loaded model still answers.
    png, shares = api_tab.segment_api(partial, str(photo), "unet", tmp_path / "masks")
    assert np.asarray(Image.open(png)).shape == (H, W) and sum(shares.values()) == pytest.approx(1.0)

    note = common_tab.missing_note(partial)
    assert "FCN-VGG16" in note and "`python train_cli.py train --arch fcn_resnet50" in note
    demo = app.build_demo(partial, data_dir=tmp_path / "nowhere")
    props = {c["props"].get("elem_id"): c["props"] for c in demo.config["components"]}
    assert props["missing-models"]["visible"] and "FCN-ResNet50" in props["missing-models"]["value"]
    assert "SEG_DATA_DIR" in props["no-examples"]["value"]


def test_compare_and_render(app, photo, monkeypatch):
    monkeypatch.setattr(photo_tab, "DISPLAY_MAX_SIDE", 40)  # display copies are downscaled, masks too
    state = photo_tab.compare(app.predictor, {"path": str(photo)})
    names = (*app.predictor.models, "ensemble")
    assert state["size"] == (H, W) and state["photo"].shape == (24, 40, 3)
    assert list(state["masks"]) == list(names) and all(m.shape == (24, 40) for m in state["masks"].values())

    legend_html, timing, *overlays = photo_tab.compare_views(state, 0.0, names)
    slider, annotated, sure = photo_tab.inspect_views(state, "fcn_vgg16", 0.0)
    assert len(overlays) == 4 and np.array_equal(slider[0], state["photo"])
    assert np.array_equal(overlays[0], state["photo"])  # opacity 0: the photo itself
    top = state["legend"][0]  # one table for all the models, shares from the full-size masks
    assert top["name"] in legend_html and top["color"] in legend_html
    assert all(f">{m.replace('-', '&#8209;')}</th>" in legend_html for m in ("U-Net", "FCN-VGG16", "FCN-ResNet50"))
    assert "Image 80x48 px" in timing and "FCN-ResNet50" in timing and "All three (averaged)" in timing
    # the chosen model's classes, one mask each for the annotated picture, and its confidence
    picture, parts = annotated
    assert np.array_equal(picture, state["photo"]) and next(name for _, name in parts) == \
        legend(state["masks"]["fcn_vgg16"])[0]["name"]
    assert sum(m.sum() for m, _ in parts) == state["masks"]["fcn_vgg16"].size  # every pixel in one class
    assert sure.shape == (24, 40) and sure.dtype == np.uint8
    _, _, *opaque = photo_tab.compare_views(state, 1.0, names)
    assert np.array_equal(opaque[0], colorize(state["masks"]["unet"]))
    assert np.array_equal(photo_tab.slider_pair(state, "unet", 1.0)[1], opaque[0])  # the opacity redraws the slider
    assert np.array_equal(photo_tab.inspect_views(state, "not loaded", 1.0)[0][1], opaque[0])  # the first model
    assert photo_tab.compare_views(None, 0.5, names) == ["", "", None, None, None, None]
    assert photo_tab.inspect_views(None, "unet", 0.5) == [None, None, None]


def test_a_new_photo_sends_the_compare_tab_first_and_the_inspect_tab_after(app):
    """The annotated picture (one PNG per class) held the first paint back by 0.44 s: a new photo's
    event sends the Compare tab's pictures, and a chained event the Inspect tab's."""
    config = app.demo.get_config_file()
    label = {c["id"]: c["props"].get("elem_id") or c["props"].get("label") for c in config["components"]}
    deps = config["dependencies"]
    photo_event = next(d for d in deps if [t[1] for t in d["targets"]] == ["change"]
                       and label[d["targets"][0][0]] and label[d["targets"][0][0]].startswith("Photo")
                       and len(d["outputs"]) > 4)
    sent = {label[o] for o in photo_event["outputs"]}
    assert {"U-Net", "FCN-VGG16", "FCN-ResNet50"} <= sent and "legend" in sent
    assert not sent & {"Photo / mask", "confidence", "classes"}
    after = next(d for d in deps if d["trigger_after"] == photo_event["id"])
    assert {label[o] for o in after["outputs"]} == {"Photo / mask", "classes", "confidence"}


def test_clicking_a_class_reports_its_share_in_every_model(app, photo):
    state = photo_tab.compare(app.predictor, {"path": str(photo)})
    top = state["legend"][0]
    evt = gr.SelectData(None, {"index": 0, "value": {"label": top["name"]}})
    report = photo_tab.class_report(state, evt)
    assert report.startswith(f"**{top['name']}**") and "U-Net" in report and "All three (averaged)" in report
    assert photo_tab.class_report(state, gr.SelectData(None, {"index": 0, "value": {"label": "nothing"}})) == ""


def test_mirror_image_averaging_in_the_page(app, photo):
    state = photo_tab.compare(app.predictor, {"path": str(photo)}, "flip")
    rgb = load_image(photo)
    expected = app.predictor.predict(rgb, tta="flip")
    assert state["tta"] == "flip" and all(np.array_equal(state["masks"][n], p.mask) for n, p in expected.items())
    names = tuple(app.predictor.models)
    assert "Mirror-image averaging" in photo_tab.compare_views(state, 0.5, names)[1]
    assert "Mirror-image" not in photo_tab.compare_views(photo_tab.compare(app.predictor, {"path": str(photo)}), 0.5, names)[1]
    # ticking the box re-runs the comparison on the current photo
    config = app.demo.get_config_file()
    box = next(c["id"] for c in config["components"] if c["props"].get("label", "").startswith("Mirror-image"))
    assert any([box, "change"] in [list(t) for t in d["targets"]] for d in config["dependencies"])


def test_bad_inputs_in_the_page(app, tmp_path):
    with pytest.raises(gr.Error, match="No image"):
        photo_tab.compare(app.predictor, None)
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(gr.Error) as err:
        photo_tab.compare(app.predictor, {"path": str(tmp_path / "notes.png")})
    assert err.value.message.startswith("Cannot segment this file: this file is not an image")


def test_examples_are_photo_halves_cached_outside_the_repo(app, tmp_path):
    pairs = write_pairs(tmp_path / "pairs", n=3)
    photos = photo_tab.example_photos(pairs, tmp_path / "cache", n=2)
    assert [p.stem for p in photos] == ["1", "2"]
    assert np.array_equal(load_image(photos[0]), load_image(pairs / "1.jpg")[:, :64])
    stamp = photos[0].stat().st_mtime_ns
    assert photo_tab.example_photos(pairs, tmp_path / "cache", n=2) == photos  # cached, not cropped again
    assert photos[0].stat().st_mtime_ns == stamp
    assert photo_tab.example_photos(tmp_path / "missing", tmp_path / "cache") == []
    # the module-level demo got its examples from SEG_DATA_DIR
    datasets = [c for c in app.demo.config["components"] if c["type"] == "dataset"]
    assert len(datasets) == 1 and len(datasets[0]["props"]["samples"]) == 3


def test_served_app_segments_the_landing_scene_while_it_starts(app, weights_dir, tmp_path, monkeypatch):
    """``warm=True`` (``python gradio_app.py``): every model segments the landing scene before any
    visitor comes, at the size the page shows, twice: the first use into a cache of its own (its
    times are start-up times), then the pass that every page load is handed. A test build (the
    default) runs nothing until a page loads."""
    from seg_core import settings
    from seg_core.serve.photos import Photo, PhotoService

    calls = []
    original = PhotoService.compare
    monkeypatch.setattr(PhotoService, "compare", lambda self, photo, *a, **k: calls.append(photo.pixels.shape) or original(self, photo, *a, **k))
    first = photo_tab.example_photos(settings.EXAMPLES_DIR, tmp_path / "crops")[0]
    shown = Photo.at_screen_size(load_image(first))
    app.build_demo(Predictor.from_dir(weights_dir), settings.EXAMPLES_DIR, tmp_path / "crops")
    assert not any(t.name == "warm-landing" for t in threading.enumerate()) and calls == []
    served = Predictor.from_dir(weights_dir)
    app.build_demo(served, settings.EXAMPLES_DIR, tmp_path / "crops", warm=True)
    for thread in [t for t in threading.enumerate() if t.name == "warm-landing"]:
        thread.join(timeout=60)
    assert calls == [shown.pixels.shape] * 2
    assert PhotoService.of(served).ready(shown)  # the second pass is the one kept


def test_landing_is_handed_to_each_page_load_without_running_a_model(app, weights_dir, tmp_path, monkeypatch):
    """A Space's page opens on the first example with its masks: the photo input holds it from the
    start, and the page's load event gets the masks computed once (it set the photo, whose change
    queued a request in the inference slot for every visitor, cached or not). Two loads, one pass."""
    from seg_core import settings
    from seg_core.serve.photos import PhotoService

    calls = []
    original = PhotoService.compare
    monkeypatch.setattr(PhotoService, "compare", lambda self, photo, *a, **k: calls.append(1) or original(self, photo, *a, **k))
    demo = app.build_demo(Predictor.from_dir(weights_dir), settings.EXAMPLES_DIR, tmp_path / "crops")
    config = demo.config
    photo_input = next(c for c in config["components"] if c["props"].get("label") == "Photo")
    assert photo_input["props"]["value"]["orig_name"].startswith("kitti_")
    loads = [d for d in config["dependencies"] if [t[1] for t in d["targets"]] == ["load"]]
    assert len(loads) == 1 and not loads[0]["queue"]
    fn = demo.fns[loads[0]["id"]].fn
    for _ in range(2):
        state, legend, timing, *pictures = fn()[:-1]
        assert set(state["masks"]) >= set(ARCH_NAMES) and "U-Net" in timing and pictures[0] is not None
    assert calls == [1]


def test_weights_repo_that_cannot_be_had_leaves_the_page_up_with_the_reason(app, monkeypatch, tmp_path):
    """SEG_WEIGHTS_REPO set to a repo the Hub does not have: no model, the sentence at the top."""
    from huggingface_hub.errors import RepositoryNotFoundError

    from seg_core import served_weights
    from tests.conftest import refuse_hub_downloads

    refuse_hub_downloads(monkeypatch, RepositoryNotFoundError, "404 Repository Not Found")
    monkeypatch.setenv("SEG_WEIGHTS_REPO", "lab/gone")
    predictor, note, folder = app.load_predictor()
    assert folder is None
    assert not predictor.models and note.startswith("the weights repo lab/gone (SEG_WEIGHTS_REPO) does not exist")
    demo = app.build_demo(predictor, data_dir=None, weights_note=note)
    props = {c["props"].get("elem_id"): c["props"] for c in demo.config["components"]}
    assert props["missing-models"]["visible"] and "lab/gone" in props["missing-models"]["value"]
    served_weights._download.cache_clear()


def test_public_mode_shows_no_server_path(app, monkeypatch, tmp_path):
    monkeypatch.setenv("SEG_PUBLIC", "1")
    demo = app.build_demo(app.predictor, data_dir=tmp_path / "secret-folder")
    props = {c["props"].get("elem_id"): c["props"] for c in demo.config["components"]}
    assert "secret-folder" not in props["no-examples"]["value"]
    assert "no folder of Cityscapes pairs on this server" in props["no-examples"]["value"]


# ------------------------------------------------------------------------------------------- video

@pytest.fixture
def clip(tmp_path):
    from tests.clips import panning_frames, write_clip

    return write_clip(tmp_path / "drive.mp4", panning_frames(6))


def test_segment_video_api(client, clip):
    import csv

    from seg_core.video import probe

    video, table, summary = client.predict(handle_file(str(clip)), "unet, fcn_vgg16", 2, api_name="/segment_video")
    info = probe(video)
    assert info.codec == "h264" and info.frames == 6 and info.fps == 10
    rows = list(csv.DictReader(open(table)))
    assert len(rows) == 6 and [r["segmented"] for r in rows] == ["1", "0"] * 3
    assert summary["models"] == ["unet", "fcn_vgg16"] and summary["frames"] == 6 and summary["segmented"] == 3
    assert 0 <= summary["flicker"]["unet"] <= 1 and 0 <= summary["disagreement"] <= 1
    assert "frames/s" in summary["summary"]


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_text("text, not a video"), "not a video file we can read"),
    (lambda p: Image.new("RGB", (32, 32)).save(p, format="PNG"), r"is an image \(png\)"),
])
def test_segment_video_api_bad_video_is_a_clear_error(client, tmp_path, make, message):
    path = tmp_path / "bad.mp4"
    make(path)
    with pytest.raises(AppError, match=message) as err:
        client.predict(handle_file(str(path)), "", 1, api_name="/segment_video")
    assert "Cannot segment this video" in str(err.value) and "Traceback" not in str(err.value)


def test_segment_video_api_unknown_model_and_bad_every(client, clip):
    with pytest.raises(AppError, match="Unknown model 'deeplab'"):
        client.predict(handle_file(str(clip)), "deeplab", 1, api_name="/segment_video")
    with pytest.raises(AppError, match="between 1 and 30"):
        client.predict(handle_file(str(clip)), "", 0, api_name="/segment_video")


def test_video_tab_handler_writes_into_fresh_folders(app, clip, tmp_path):
    first = video_tab._segment_video(app.predictor, {"path": str(clip)}, None, 1, tmp_path / "videos")
    second = video_tab._segment_video(app.predictor, {"video": {"path": str(clip)}}, "unet", 3, tmp_path / "videos")
    assert Path(first[0]).parent != Path(second[0]).parent
    assert first[3].names == ("unet", "fcn_vgg16", "fcn_resnet50") and second[3].segmented == 2


def test_video_tab_runs_and_cuts_frames_into_panels(app, clip):
    gallery = next(b for b in app.demo.blocks.values() if getattr(b, "label", None) == "Panels of this frame")
    assert gallery.parent.visible is False  # no wall of empty result boxes before a clip is segmented
    fns = {f.fn.__name__: f.fn for f in app.demo.fns.values()}
    video, summary, figure, slider, files, state, results = fns["on_run"]({"path": str(clip)}, 1,
                                                                         progress=lambda *a, **k: None)
    assert "6 frames (6 segmented)" in summary and len(files) == 2 and state["frames"] == 6
    assert results.visible is True  # the chart, frame slider, panels and downloads: hidden until now
    assert {t.name for t in figure.data} >= {"disagreement", "U-Net flicker"}
    panels = fns["on_frame"](state, 4)
    assert [title for _, title in panels] == ["Photo", "U-Net", "FCN-VGG16", "FCN-ResNet50"]
    assert panels[0][0].shape == (64, 96, 3)
    assert fns["on_frame"](None, 0) == []


def test_the_video_tab_offers_the_example_clip(app):
    """The button puts the server-made KITTI clip in the clip box, described; it segments like an upload."""
    from seg_core import examples

    path, line = video_tab.example_clip()
    assert Path(path).name == examples.CLIP_NAME and "24 frames" in line and "KITTI" in line
    fns = {f.fn.__name__: f.fn for f in app.demo.fns.values()}
    assert fns["example_clip"]() == (path, line)  # the button's handler, the same clip (made once)
    _, summary, *_ = fns["on_run"]({"path": path}, 8, progress=lambda *a, **k: None)
    assert "24 frames (3 segmented)" in summary


def test_webcam_frames_come_back_as_overlays_with_the_frame_rate(app):
    frame = np.random.default_rng(0).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    picture, rate, state = webcam_tab.live_frame(app.predictor, frame, "unet", None)
    assert picture.shape == (288, 512, 3) and rate == "U-Net: 0.0 frames/s"
    for _ in range(3):
        picture, rate, state = webcam_tab.live_frame(app.predictor, frame, "unet", state)
    assert len(state["times"]) == 4 and float(rate.split(": ")[1].split()[0]) > 0
    assert webcam_tab.live_frame(app.predictor, None, "unet", state)[0] is None
    with pytest.raises(gr.Error, match="Unknown model"):
        webcam_tab.live_frame(app.predictor, frame, "deeplab", state)
    assert "webcam_section" in dir(webcam_tab) and any(f.fn.__name__ == "on_camera" and f.concurrency_id == "webcam"
                                               for f in app.demo.fns.values())


def test_page_errors_stay_readable_in_the_page(app, tmp_path):
    """A bad file: the reason goes into the error box under the input (no exception, so no bare
    "Error" pills); the next good photo hides it again."""
    names = tuple(app.predictor.models)
    (tmp_path / "notes.png").write_text("hello")
    out = photo_tab.on_photo(app.predictor, {"path": str(tmp_path / "notes.png")}, "unet", 0.5, False, names, tmp_path)
    box = out[-1]
    assert box["visible"] and box["value"].startswith("**Bad image:** Cannot segment this file: this file is not an image")
    assert out[1] is None and out[2] == "" and out[4] is None  # no state, no legend, no overlay
    good = tmp_path / "street.png"
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(good)
    out = photo_tab.on_photo(app.predictor, {"path": str(good)}, "unet", 0.5, False, names, tmp_path)
    assert out[-1]["visible"] is False and out[1]["size"] == (H, W)
    config = app.demo.get_config_file()
    assert any(c["props"].get("elem_id") == "page-error" for c in config["components"])


def test_tiff_upload_gets_a_png_preview(app, tmp_path):
    names = tuple(app.predictor.models)
    tiff = tmp_path / "street.tif"
    pixels = np.random.default_rng(2).integers(0, 256, (H, W, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tiff, format="TIFF")
    preview, *rest = photo_tab.on_photo(app.predictor, {"path": str(tiff)}, "unet", 0.5, False, names, tmp_path)
    assert preview.endswith(".png") and np.array_equal(load_image(preview), pixels)
    assert all(isinstance(r, dict) and r.get("__type__") == "update" for r in rest)  # skipped: the PNG's change runs
    again = photo_tab.on_photo(app.predictor, {"path": preview}, "unet", 0.5, False, names, tmp_path)
    assert again[1]["size"] == (H, W)  # the PNG is segmented, not converted again


def test_legend_has_no_heavy_borders_and_shows_all_models(app):
    assert "#legend table" in common_tab.LAUNCH_KWARGS["css"] and "border: none !important" in common_tab.LAUNCH_KWARGS["css"]
    config = app.demo.get_config_file()
    assert any(c["props"].get("elem_id") == "legend" for c in config["components"])


def test_webcam_asks_the_camera_for_small_frames(app):
    # gradio's default asks for 1920x1440: each frame then costs the browser and the server far
    # more than the model (docs/benchmarks.md, "Webcam")
    camera = next(b for b in app.demo.blocks.values() if isinstance(b, gr.Image) and b.label == "Camera")
    video = camera.webcam_options.constraints["video"]
    assert video["width"]["ideal"] <= 640 and video["height"]["ideal"] <= 480
    assert max(video["width"]["ideal"], video["height"]["ideal"]) >= webcam_tab.LIVE_MAX_SIDE  # not below what is segmented


def test_the_class_picture_uses_the_cityscapes_palette(app):
    # gradio's own colours (building red, road orange) under a legend in Cityscapes colours misled
    classes = next(b for b in app.demo.blocks.values() if isinstance(b, gr.AnnotatedImage))
    assert classes.color_map == CLASS_HEX


def test_an_mp4v_clip_is_described_not_played_and_its_comparison_is_h264(app, tmp_path):
    """Browsers cannot play mp4v: gradio's player popped "Video not playable" for a clip that
    segments fine. The clip goes into a file box with one line about it; the comparison is H.264."""
    from seg_core.video import probe
    from tests.clips import panning_frames, write_clip

    players = [b for b in app.demo.blocks.values() if isinstance(b, gr.Video) and b.interactive is not False]
    assert players == []
    clip = write_clip(tmp_path / "old.mp4", panning_frames(4), codec="mpeg4")
    assert probe(clip).codec == "mpeg4"
    assert video_tab.describe_clip({"path": str(clip), "orig_name": "old.mp4"}).startswith("**old.mp4**: 96x64, 10 frames/s")
    fns = {f.fn.__name__: f.fn for f in app.demo.fns.values()}
    video, *_ = fns["on_run"]({"path": str(clip)}, 1, progress=lambda *a, **k: None)
    assert probe(video).codec == "h264"
    (tmp_path / "notes.mp4").write_text("not a video")
    assert video_tab.describe_clip({"path": str(tmp_path / "notes.mp4")}).startswith("**Cannot use notes.mp4:**")


def test_tabs_are_at_the_top_and_compare_holds_the_examples_and_every_overlay(app):
    """The page opened as a wall of boxes with Video and Webcam below it all: now the tabs come
    first, and Compare holds the photo, the examples and each model's overlay."""
    tabs = [b for b in app.demo.blocks.values() if isinstance(b, gr.Tab)]
    assert [t.label for t in tabs] == ["Compare", "Inspect", "Video", "Webcam", "Your model", "Stress test"]
    compare = tabs[0]

    def inside(block, parent) -> bool:
        while block is not None:
            if block is parent:
                return True
            block = getattr(block, "parent", None)
        return False

    overlays = [b for b in app.demo.blocks.values() if isinstance(b, gr.Image) and b.label in ("U-Net", "FCN-VGG16", "FCN-ResNet50")]
    assert len(overlays) == 3 and all(inside(o, compare) for o in overlays)
    gallery = [b for b in app.demo.blocks.values() if isinstance(b, gr.Dataset)]
    assert gallery and inside(gallery[0], compare)
