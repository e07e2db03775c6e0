"""The Gradio front end: U-Net, FCN-VGG16 and FCN-ResNet50 side by side on a photo, plus an HTTP API.

``python gradio_app.py`` serves it on http://127.0.0.1:7860 (``GRADIO_SERVER_NAME`` / ``_PORT``) with
uvicorn, the page and gradio's API at ``/`` and a plain HTTP API beside them (``rest_api``); on a
Hugging Face Space (``sdk: gradio``, ``app_file: gradio_app.py``) the same file is the entry point. The page and the API share
``seg_core`` (``Predictor``, ``load_image``, ``viz``) with the Streamlit app; no model code lives here.

Configuration (environment variables, read at import; defaults in ``seg_core.settings``):

- ``SEG_WEIGHTS_REPO`` (+ ``SEG_WEIGHTS_REVISION``): a Hub model repo (and commit) the weights are
  downloaded from at start-up (``seg_core.served_weights.weights_dir``); unset or offline, ``SEG_WEIGHTS_DIR``.
- ``SEG_WEIGHTS_DIR``: folder with ``unet.safetensors``, ``fcn_vgg16.safetensors`` and
  ``fcn_resnet50.safetensors`` (default ``weights/`` next to this file), and their int8 OpenVINO
  exports (``<name>.int8.xml`` + ``.bin``), which are used instead when they match the checkpoint
  (``SEG_BACKEND=pytorch`` forces PyTorch). The models are loaded once, at import. A missing or
  broken checkpoint is reported in the page, with the command that trains it, and the other
  models work.
- ``SEG_DATA_DIR``: a folder of labelled pairs (photo on the left half) for the examples gallery
  (default ``../shared/data/cityscapes_pairs/val`` next to the repo if present, else the 16 KITTI
  scenes of ``examples/``, credited under the gallery: ``settings.data_dir``). The photo halves of
  the first ``N_EXAMPLES`` are cropped once into ``SEG_EXAMPLES_CACHE`` (default
  ``<tmp>/seg_gradio_examples``, outside the repo: Cityscapes pairs are not ours to redistribute).
  Without the folder the page has no examples and says how to set it.

Limits, sized for a free Space (2 vCPU, 16 GB RAM):

- ``SEG_INFER_WORKERS`` / ``SEG_INFER_THREADS``: inferences at once (default 1) and CPU threads of
  each (default all), to fit the workers to the machine's cores.
- ``demo.queue(default_concurrency_limit=2, max_size=20)``: at most 20 requests wait in the queue;
  more are turned away with "queue full" rather than piling up. The page's segmentation and the
  ``/segment`` API share one slot (``concurrency_id="inference"``, limit 1), so one forward pass
  runs at a time with both cores; redrawing overlays (opacity, model picker) is cheap and may run
  beside it (``trigger_mode="always_last"``: a dragged slider queues one redraw, not dozens).
- ``launch(max_file_size="10mb")`` (``LAUNCH_KWARGS``): gradio refuses larger uploads before they
  reach us; ``seg_core.inference.load_image`` refuses images over 40 megapixels and anything that
  is not a decodable image with an ``ImageError``, shown as a ``gr.Error`` (never a traceback).
- Pictures in the page are downscaled to ``DISPLAY_MAX_SIDE`` on their long side, for display
  only: the models see the image as ``seg_core.inference`` prepares it, and the API returns the
  mask at the image's own size.

API (``api_name="segment"``)::

    from gradio_client import Client, handle_file
    client = Client("http://127.0.0.1:7860/")          # or "org/space-name" for a Space
    png_path, shares = client.predict(handle_file("street.jpg"), "unet", api_name="/segment")

``/segment_inline`` takes the same arguments and answers ``{"mask_png_base64": ..., "shares": ...}``:
the same PNG inside the answer, so no file is written, cached and fetched for it.

The plain HTTP API answers the same in one request, with no upload step, queue event or event
stream (about a third less server CPU per request; see README "Serving under load")::

    curl --data-binary @street.jpg "http://127.0.0.1:7860/v1/segment?model=unet"
    # {"mask_png_base64": ..., "shares": {...}}; 400/413 {"error": sentence}; 503 + Retry-After when full

``png_path`` is a local copy of a single-channel PNG at the image's size whose pixel values are
train ids (0..18, an index into ``seg_core.palette.CLASS_NAMES``); ``shares`` is
``{class name: fraction of pixels}`` for the classes present, largest first. The model is one of
``unet``, ``fcn_vgg16``, ``fcn_resnet50``. A bad image, an unknown model name or a model this
server lacks raises ``gradio_client.exceptions.AppError`` whose message says what is wrong.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import tempfile
import threading
import time
import uuid
from pathlib import Path

import gradio as gr
import numpy as np
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from PIL import Image

from seg_core import examples, settings
from seg_core.data import DataError, list_pairs
from seg_core.extra_models import ExtraModel, ExtraModelError, load_extra_model, predict_extra, source_key, source_name
from seg_core.files import atomic_path
from seg_core.inference import ENSEMBLE, ImageError, Predictions, class_shares, load_image
from seg_core.palette import CLASS_HEX
from seg_core.predictor import Predictor
from seg_core.config import TTA_MODES
from seg_core.registry import ARCH_NAMES, display_name
from seg_core.safety import BodyError, map_large_blocks, read_body, release_memory
from seg_core.served_weights import WeightsError, weights_source
from seg_core.viz import (disagreement, fit_within, legend, legend_html, legend_rows, ms_text, overlay, png_bytes,
                          share_text)

DATA_DIR = settings.data_dir()
EXAMPLES_CACHE = settings.examples_cache()
INFER_WORKERS, INFER_THREADS = settings.infer_workers(), settings.infer_threads()

N_EXAMPLES = 8
MAX_FILE_MB = 10
MAX_FILE_SIZE = f"{MAX_FILE_MB}mb"
QUEUE_MAX_SIZE = 20
DEFAULT_CONCURRENCY = 2
DISPLAY_MAX_SIDE = 1280
DEFAULT_OPACITY = 0.5
MASK_MAX_AGE_S = 600  # API mask PNGs are copied into gradio's cache on return; ours are pruned after this
MASK_PRUNE_EVERY_S = 60
#: The legend is a plain table: no borders from the theme's table style.
CSS = ("#legend table, #legend tr, #legend th, #legend td {border: none !important; background: transparent !important}"
       " #page-error {border-left: 4px solid #d1242f; padding-left: 8px}")
LAUNCH_KWARGS = {"max_file_size": MAX_FILE_SIZE, "css": CSS}
#: Formats a browser cannot show: the input gets a PNG copy as its preview.
NO_BROWSER_PREVIEW = ("TIFF",)


# ----------------------------------------------------------------------------------------- examples

def example_photos(data_dir: str | Path, cache_dir: str | Path = EXAMPLES_CACHE, n: int = N_EXAMPLES) -> list[Path]:
    """Photo halves of the first ``n`` pairs of ``data_dir``, cropped once into ``cache_dir``."""
    data_dir = Path(data_dir)
    try:
        pairs = list_pairs(data_dir)
    except DataError:
        return []
    # One sub-folder per data folder, so that two folders with a 1.jpg never share a crop.
    out_dir = Path(cache_dir) / hashlib.sha1(str(data_dir.resolve()).encode()).hexdigest()[:12]
    photos = []
    for pair in pairs[:n]:
        out = out_dir / f"{pair.stem}.png"
        if not out.is_file() or out.stat().st_mtime < pair.stat().st_mtime:
            try:
                rgb = load_image(pair)
            except ImageError:
                continue
            with atomic_path(out, suffix=".png") as tmp:  # two workers cropping at once never see half a file
                Image.fromarray(rgb[:, : rgb.shape[1] // 2]).save(tmp, format="PNG")
        photos.append(out)
    return photos


# ------------------------------------------------------------------------------------------- inputs

def _user_error(message: str, title: str = "Error") -> gr.Error:
    """A message for the user; no traceback in the server log, the request was at fault."""
    return gr.Error(message, title=title, print_exception=False)


def decode(value) -> np.ndarray:
    """The RGB array of an image payload (gradio file dict, path, bytes...), or a ``gr.Error``.

    Events run with ``preprocess=False`` so that gradio hands us the uploaded file untouched and
    every decoding failure goes through ``load_image``'s user-facing ``ImageError`` messages.
    """
    if value is None:
        raise _user_error("No image: drop a photo (JPEG, PNG, WebP...) on the input first.", title="No image")
    source = value
    if isinstance(value, dict):
        source = value.get("path")
        url = value.get("url") or ""
        if source is None and url.startswith("data:"):
            source = base64.b64decode(url.partition(",")[2])
    elif hasattr(value, "path"):
        source = value.path
    try:
        return load_image(source)
    except ImageError as err:
        raise _user_error(f"Cannot segment this file: {err}.", title="Bad image") from None


def model_key(predictor: Predictor, name) -> str:
    """The model a client asked for (``unet`` or ``U-Net``...), or a ``gr.Error`` that lists the choices."""
    known = {n: n for n in (*ARCH_NAMES, *predictor.models, *predictor.missing, ENSEMBLE)}
    known.update({display_name(n).lower(): n for n in ARCH_NAMES})
    key = known.get(str(name or "").strip().lower())
    if key is None:
        raise _user_error(f"Unknown model {name!r}; choose one of: {', '.join(known_models(predictor))}.",
                       title="Unknown model")
    if key == ENSEMBLE:
        if not predictor.ensemble():
            raise _user_error("The ensemble needs at least two models; this server has fewer.",
                              title="Model not available")
        return key
    if key not in predictor.models:
        why = str(predictor.missing[key]) if key in predictor.missing else "it is not loaded"
        raise _user_error(f"Model {key} is not available on this server: {why}", title="Model not available")
    return key


def known_models(predictor: Predictor) -> list[str]:
    return list(dict.fromkeys((*ARCH_NAMES, *predictor.models, *([ENSEMBLE] if predictor.ensemble() else []))))


#: One slot per inference worker, taken by every forward pass: gradio's events (whose queue already
#: limits them to the same number) and the plain HTTP API share the cores instead of oversubscribing them.
INFERENCE_SLOTS = threading.Semaphore(INFER_WORKERS)


@contextlib.contextmanager
def _inference(who: str = "The model"):
    """Around every forward pass: an inference slot, ahead of a running video job (which waits for
    this photo), and a failure (e.g. out of memory on a small Space) as a sentence."""
    from seg_core.video import PHOTOS_FIRST

    try:
        with PHOTOS_FIRST.photo(), INFERENCE_SLOTS:
            yield
    except (RuntimeError, MemoryError) as err:
        raise gr.Error(f"{who} failed on this image ({type(err).__name__}); try a smaller image.") from err


def _tta(tta) -> str:
    """``"none"`` or ``"flip"``, or a ``gr.Error`` naming the choices."""
    tta = "none" if tta in (None, "") else str(tta).strip().lower()
    if tta not in TTA_MODES:
        raise _user_error(f"tta must be one of {', '.join(TTA_MODES)}, not {tta!r}.", title="Bad value")
    return tta


# ---------------------------------------------------------------------------------------------- API
# Each request decodes its image inside its inference slot: a 40-megapixel image needs about a
# gigabyte while it is decoded and segmented, so only the N slots' images are ever in memory
# (README "Limits and safety"), not every admitted request's.

def _segment_png(predictor: Predictor, image, model: str) -> tuple[bytes, dict[str, float]]:
    """The mask PNG of one image and its class shares, decoded, segmented and encoded in one slot."""
    name = model_key(predictor, model)
    with _inference():
        mask = predictor.predict(decode(image), (name,))[name].mask
        return png_bytes(mask), class_shares(mask)


_last_prune = [0.0]


def _prune(out_dir: Path, now: float) -> None:
    """Delete mask and TIFF preview files older than ``MASK_MAX_AGE_S`` (gradio has copied them into
    its cache by then), at most once every ``MASK_PRUNE_EVERY_S``: listing the folder on every
    request would cost each one a stat per file kept (thousands under load)."""
    if now - _last_prune[0] < MASK_PRUNE_EVERY_S:
        return
    _last_prune[0] = now
    for old in [*out_dir.glob("mask-*.png"), *out_dir.glob("preview-*.png")]:
        try:
            if now - old.stat().st_mtime > MASK_MAX_AGE_S:
                old.unlink()
        except OSError:  # another worker removed it first
            pass


def segment_api(predictor: Predictor, image, model: str, out_dir: str | Path) -> tuple[str, dict[str, float]]:
    """``/segment``: a PNG of train ids at the image's size and the per-class pixel shares."""
    png, shares = _segment_png(predictor, image, model)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _prune(out_dir, time.time())
    path = out_dir / f"mask-{uuid.uuid4().hex}.png"
    path.write_bytes(png)
    return str(path), shares


def segment_inline_api(predictor: Predictor, image, model: str) -> dict:
    """``/segment_inline``: the same answer in the event's JSON (the PNG base64-encoded): no file is
    written, cached or fetched, one HTTP request fewer per call than ``/segment``."""
    png, shares = _segment_png(predictor, image, model)
    return {"mask_png_base64": base64.b64encode(png).decode("ascii"), "shares": shares}


def _png_base64(array: np.ndarray) -> str:
    return base64.b64encode(png_bytes(array)).decode("ascii")


def analyze_api(predictor: Predictor, image, tta: str = "none") -> dict:
    """``/analyze``: every loaded model and the ensemble in one call: each one's mask (PNG of train
    ids) and confidence (8-bit grey PNG, 255 = sure), both at the image's size, per-class shares and
    time; and the share of pixels where the models disagree."""
    if not predictor.models:
        raise _user_error("No model is loaded on this server.", title="No model")
    tta = _tta(tta)
    with _inference():
        rgb = decode(image)
        preds = predictor.predict(rgb, tta=tta, confidence=True, ensemble=True)
        singles = [p.mask for n, p in preds.items() if n != ENSEMBLE]
        return {
            "size": list(rgb.shape[:2]),
            "disagreement": float(disagreement(singles).mean()) if len(singles) > 1 else 0.0,
            "shared_ms": round(1000 * (preds.decode_seconds + preds.prepare_seconds), 1),
            "models": {name: {"mask_png_base64": _png_base64(p.mask),
                              "confidence_png_base64": _png_base64((p.confidence * 255).round().astype(np.uint8)),
                              "mean_confidence": float(p.model_confidence.astype(np.float32).mean()),
                              "shares": class_shares(p.mask), "ms": round(1000 * p.seconds, 1)}
                       for name, p in preds.items()},
        }


# -------------------------------------------------------------------------------------------- video

VIDEO_MAX_AGE_S = 3600  # result folders of /segment_video and the video tab; gradio copies what it returns


def _video_path(value) -> Path:
    """The local path of a video payload (gradio file dict, ``{"video": ...}``, path), or a ``gr.Error``."""
    if isinstance(value, dict):
        value = value.get("video", value)
        value = value.get("path") if isinstance(value, dict) else value
    elif hasattr(value, "path"):
        value = value.path
    if not value:
        raise _user_error("No video: upload a clip (mp4, mov, mkv, webm, avi) first.", title="No video")
    return Path(value)


def _job_dir(root: Path) -> Path:
    """A fresh folder for one video's outputs; folders older than ``VIDEO_MAX_AGE_S`` are removed."""
    import shutil

    root.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in root.iterdir():
        try:
            if now - old.stat().st_mtime > VIDEO_MAX_AGE_S:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass
    out = root / uuid.uuid4().hex
    out.mkdir()
    return out


def _segment_video(predictor: Predictor, video, models: str | None, every, out_root: str | Path, progress=None):
    """Segment a clip into a fresh folder under ``out_root``: (mp4 path, CSV path, summary, ``VideoResult``)."""
    from seg_core.video import PHOTOS_FIRST, VideoError, segment_video

    names = tuple(model_key(predictor, m) for m in str(models or "").replace(",", " ").split()) or None
    try:
        every = 1 if every in (None, "") else int(every)
    except (TypeError, ValueError):
        raise _user_error(f"every must be a whole number, not {every!r}.", title="Bad value") from None
    if not 1 <= every <= 30:
        raise _user_error("every must be between 1 and 30.", title="Bad value")
    source = _video_path(video)
    out = _job_dir(Path(out_root))
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in source.stem)[:60] or "video"
    video_path, csv_path = out / f"{stem}_compare.mp4", out / f"{stem}_frames.csv"
    try:
        result = segment_video(source, video_path, predictor, names=names, every=every, out_csv=csv_path,
                               progress=progress, pause=PHOTOS_FIRST.wait)
    except VideoError as err:
        raise _user_error(f"Cannot segment this video: {err}.", title="Bad video") from None
    summary = {"frames": result.frames, "segmented": result.segmented, "seconds": round(result.seconds, 3),
               "frames_per_s": round(result.fps, 2), "source_fps": float(result.info.fps),
               "size": [result.info.height, result.info.width], "models": list(result.names),
               "disagreement": result.mean("disagreement"),
               "flicker": {n: result.mean(f"flicker_{n}") for n in result.names},
               "flicker_motion_compensated": {n: result.mean(f"flicker_flow_{n}") for n in result.names},
               "summary": result.summary()}
    return str(video_path), str(csv_path), summary, result


VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")


def describe_clip(value) -> str:
    """One line on an uploaded clip (size, rate, length, codec), or why it cannot be used."""
    from seg_core.video import Limits, VideoError, probe

    path = _video_path(value)
    name = (value.get("orig_name") if isinstance(value, dict) else None) or path.name
    try:
        info = probe(path, Limits(max_bytes=MAX_FILE_MB * 2**20))
    except VideoError as err:
        return f"**Cannot use {name}:** {err}."
    return (f"**{name}**: {info.width}x{info.height}, {float(info.fps):.3g} frames/s, {info.frames} frames "
            f"({info.seconds:.1f} s), {info.codec}. The comparison plays in the browser (H.264).")


def video_section(predictor: Predictor, out_root: Path) -> None:
    """The Video tab's contents and the ``/segment_video`` API, inside the page's ``Blocks``.

    Video jobs have their own slot (``concurrency_id="video"``, limit 1): one at a time, the others
    wait in gradio's queue (their position is shown), and photos keep their own slot meanwhile."""
    from seg_core.video import Composer, Limits, read_frame

    limits = Limits(max_bytes=MAX_FILE_MB * 2**20)  # gradio refuses larger uploads first
    gr.Markdown(f"Upload a clip ({limits.describe()}). Each frame goes "
                "through every model; the result shows the photo and each model's overlay side by side, with "
                "each model's flicker (pixels whose class changes from one segmented frame to the next).")
    with gr.Row():
        with gr.Column(scale=1):
            # A file box, not a player: a browser cannot play many valid clips (mp4v, AVI) and
            # gradio's player then pops "Video not playable" although the clip segments fine. What
            # is played is the comparison, always H.264.
            clip = gr.File(label="Clip (mp4, mov, mkv, webm, avi)", file_types=list(VIDEO_SUFFIXES),
                           elem_id="video-clip")
            clip_info = gr.Markdown(elem_id="video-clip-info")
            every = gr.Slider(1, 30, value=1, step=1, label="Segment every Nth frame (the mask is held in between)")
            run = gr.Button("Segment the video", variant="primary")
        with gr.Column(scale=2):
            result_video = gr.Video(label="Comparison", interactive=False)
            summary = gr.Markdown()
    plot = gr.Plot(label="Disagreement and flicker over time")
    frame = gr.Slider(0, 1, value=0, step=1, label="Frame (its panels below)", interactive=True)
    panels = gr.Gallery(label="Panels of this frame", columns=4, height="auto")
    files = gr.File(label="Downloads: comparison video and per-frame CSV", file_count="multiple")
    job = gr.State(None)

    def on_run(value, n, progress=gr.Progress()):
        from seg_core.video import flicker_figure

        def tick(done, total):
            progress(done / total, desc=f"frame {done} of {total}")

        video_path, csv_path, info, result = _segment_video(predictor, value, None, n, out_root, tick)
        state = {"video": video_path, "frames": result.frames, "size": info["size"], "models": info["models"]}
        return (video_path, info["summary"], flicker_figure(result.rows, result.names),
                gr.Slider(0, max(1, result.frames - 1), value=0), [video_path, csv_path], state)

    def on_frame(state, index):
        if not state:
            return []
        names = [display_name(n) for n in state["models"]]
        # The comparison video is the grid itself: cut its frame back into the panels.
        composer = Composer(*state["size"], names)
        picture = read_frame(state["video"], min(int(index), state["frames"] - 1))
        return [(p, t) for t, p in composer.panels(picture).items()]

    clip.upload(describe_clip, clip, clip_info, preprocess=False, api_visibility="private")
    clip.clear(lambda: "", None, clip_info, api_visibility="private")
    run.click(on_run, [clip, every], [result_video, summary, plot, frame, files, job], preprocess=False,
              concurrency_limit=1, concurrency_id="video", api_visibility="private")
    frame.release(on_frame, [job, frame], panels, api_visibility="private")
    result_video.change(on_frame, [job, frame], panels, api_visibility="private")

    with gr.Column(visible=False):
        api_video = gr.File(label="video")
        api_models = gr.Textbox(label="models", value="")
        api_every = gr.Number(label="every", value=1, precision=0)
        api_out_video = gr.File(label="comparison video (mp4)")
        api_out_csv = gr.File(label="per-frame statistics (csv)")
        api_summary = gr.JSON(label="summary")
        api_button = gr.Button("segment_video")

    def segment_video_api(video, models, every):
        """Segment a video clip with every model (or those named) and compare them.

        Args:
            video: the clip (mp4, mov, mkv, webm, avi; at most 10 MB, 60 s, 1500 frames, 1080p).
            models: model names separated by commas or spaces (unet, fcn_vgg16, fcn_resnet50); empty for all.
            every: segment every Nth frame and hold the mask between (1..30).

        Returns:
            The side-by-side comparison (H.264 mp4 at the source frame rate), the per-frame CSV
            (time, class shares, disagreement, flicker), and a summary of the whole clip.
        """
        return _segment_video(predictor, video, models, every, out_root)[:3]

    api_button.click(segment_video_api, [api_video, api_models, api_every], [api_out_video, api_out_csv, api_summary],
                     api_name="segment_video", preprocess=False, concurrency_limit=1, concurrency_id="video")


# ------------------------------------------------------------------------------------------- webcam

LIVE_MAX_SIDE = 512  # webcam frames are segmented at most this large: the frame rate is what matters
LIVE_WINDOW = 10  # the frame rate shown is over the last this many frames
#: The browser checks this often whether the previous frame is back before it sends the next one
#: (README "Webcam": 20 ms checks cost the browser more than the wait they save).
LIVE_STREAM_EVERY_S = 0.05
#: What the browser asks of the camera (``getUserMedia`` constraints); frames are cut to LIVE_MAX_SIDE anyway.
LIVE_CAMERA = {"video": {"width": {"ideal": 640}, "height": {"ideal": 480}}}


def live_frame(predictor: Predictor, frame, model: str, state: dict | None, alpha: float = DEFAULT_OPACITY):
    """One webcam frame: the chosen model's overlay, the frame rate this viewer gets (frames handed
    back per second, over the last ``LIVE_WINDOW``), and the updated per-viewer state."""
    state = dict(state or {"times": []})
    if frame is None:
        return None, "", state
    name = model_key(predictor, model)
    rgb = load_image(np.asarray(frame))
    rgb = fit_within(rgb, LIVE_MAX_SIDE)
    with _inference():
        mask = predictor.predict(rgb, (name,))[name].mask
    times = (state["times"] + [time.perf_counter()])[-LIVE_WINDOW:]
    state["times"] = times
    rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
    return overlay(rgb, mask, alpha), f"{display_name(name)}: {rate:.1f} frames/s", state


def webcam_section(predictor: Predictor) -> None:
    """The Webcam tab: streaming input, the chosen model's overlay live, and the frame rate."""
    loaded = tuple(predictor.models)
    gr.Markdown("Allow the camera: each frame goes through the chosen model and comes back as an overlay.")
    with gr.Row():
        camera = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="Camera", format="jpeg",
                          webcam_options=gr.WebcamOptions(constraints=LIVE_CAMERA))
        with gr.Column():
            live = gr.Image(label="Overlay", interactive=False, format="jpeg")
            rate = gr.Markdown()
    model = gr.Radio(choices=[(display_name(n), n) for n in loaded], value=loaded[0] if loaded else None,
                     label="Model")
    state = gr.State(None)

    def on_camera(frame, name, current):
        return live_frame(predictor, frame, name, current)

    camera.stream(on_camera, [camera, model, state], [live, rate, state], stream_every=LIVE_STREAM_EVERY_S, time_limit=300,
                  concurrency_limit=1, concurrency_id="webcam", api_visibility="private", show_progress="hidden")


# ------------------------------------------------------------------------------- plain HTTP API

REST_PATH = "/v1/segment"
MAX_BODY_BYTES = MAX_FILE_MB * 2**20  # gradio's upload limit


def rest_api(predictor: Predictor, waiting: int = QUEUE_MAX_SIZE, body_deadline_s: float = 20.0):
    """``POST /v1/segment?model=unet`` with the image's bytes as the body: the answer of
    ``/segment_inline`` (``{"mask_png_base64", "shares"}``) in one HTTP request, with no upload
    file, queue event or event stream in between. At most ``waiting`` requests wait beside those
    running; more are refused at once with 503 and ``Retry-After``. A request is admitted only once
    its whole body has arrived (``seg_core.safety.read_body``: at most ``MAX_BODY_BYTES``, within
    ``body_deadline_s``). Errors are ``{"error": sentence}`` with 400 (bad image, unknown model, a
    form or JSON body), 408 (the body was too slow), 413 (too large) or 500 (the model failed)."""
    api = FastAPI(title="Street-scene segmentation", docs_url=None, redoc_url=None, openapi_url=None)
    api.state.admitted = 0  # running + waiting; only the event loop's thread touches it
    capacity = INFER_WORKERS + waiting

    def refuse(status: int, message: str, **headers) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    @api.post(REST_PATH)
    async def segment(request: Request, model: str = "unet"):
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_BODY_BYTES:
            return refuse(413, f"The image is over {MAX_BODY_BYTES // 2**20} MB.")
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind.startswith("multipart/") or kind.endswith("json"):
            return refuse(400, "Send the image's own bytes as the body (curl --data-binary @photo.jpg), "
                               f"not a {kind} form or document.")
        # The body first, under a deadline: a client that sends headers and then nothing (or
        # trickles) holds its connection only, never a place among the admitted requests.
        try:
            body = await read_body(request.stream(), MAX_BODY_BYTES, body_deadline_s)
        except BodyError as err:
            return refuse(err.status, str(err))
        if api.state.admitted >= capacity:
            return refuse(503, f"Busy: {capacity} requests are already running or waiting; retry in a moment.",
                          **{"Retry-After": "1"})
        api.state.admitted += 1
        try:
            return await run_in_threadpool(segment_inline_api, predictor, body, model)
        except gr.Error as err:  # our sentences: bad image, unknown model, model failure
            return refuse(500 if err.title == "Error" else 400, err.message)
        finally:
            api.state.admitted -= 1
            if api.state.admitted == 0:  # the burst is over: hand its freed memory back
                await run_in_threadpool(release_memory)

    return api


def http_app(demo: gr.Blocks, predictor: Predictor):
    """The page and gradio's API at ``/``, and the plain HTTP API (``rest_api``) beside them.

    ``has_launched`` is set because gradio checks that a file path in an event payload was uploaded
    by a client (is inside its upload folder) only for a launched ``Blocks``; mounted, it would copy
    and hand us any server file named in a request (``/etc/hosts``, ``/dev/zero``).
    ``tests/test_hostile.py`` fails if a gradio upgrade changes this."""
    api = rest_api(predictor, body_deadline_s=settings.body_deadline_s())
    app = gr.mount_gradio_app(api, demo, path="/", server_name=settings.server_name(),
                              server_port=settings.server_port(), **LAUNCH_KWARGS)
    demo.has_launched = True
    return app


# --------------------------------------------------------------------------------------------- page

def compare(predictor: Predictor, image, tta: str = "none", extras: list[ExtraModel] = ()) -> dict:
    """Run every loaded model once (with ``tta="flip"``: on the photo and its mirror image), with
    their confidence and the ensemble, then the user's ``extras`` (each under its label, outside
    the ensemble); the session state the views are drawn from."""
    if not predictor.models and not extras:
        raise _user_error("No model is loaded on this server; see the note at the top of the page.", title="No model")
    tta = _tta(tta)
    with _inference("The model" if not extras else "A model"):
        rgb = decode(image)  # inside the slot, as the API's (see _segment_png)
        preds = predictor.predict(rgb, tta=tta, confidence=True, ensemble=True) if predictor.models else Predictions()
        if extras:
            own = predict_extra(list(extras), rgb, tta, confidence=True)
            merged = Predictions({**preds, **own})
            merged.decode_seconds = preds.decode_seconds
            merged.prepare_seconds = preds.prepare_seconds + own.prepare_seconds
            preds = merged
        photo = fit_within(rgb, DISPLAY_MAX_SIDE)
    return {
        "size": rgb.shape[:2],
        "photo": photo,
        "masks": {n: fit_within(p.mask, DISPLAY_MAX_SIDE, nearest=True) for n, p in preds.items()},
        # 8-bit, at the model's resolution, stretched to the photo's display size when drawn
        "confidence": {n: (p.model_confidence.astype(np.float32) * 255).round().astype(np.uint8)
                       for n, p in preds.items()},
        "legend": legend_rows({n: p.mask for n, p in preds.items()}),  # shares from the full-size masks
        "seconds": {n: p.seconds for n, p in preds.items()},
        "shared_seconds": preds.decode_seconds + preds.prepare_seconds,
        "backends": {n: b for n, b in predictor.backends().items() if n in preds}
        | {m.label: f"{m.runner.label}, your model" for m in extras},
        "own": [m.label for m in extras],
        "tta": tta,
    }


def annotations(photo: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, list]:
    """``gr.AnnotatedImage``'s value: the photo and one mask per class present, largest first
    (its legend highlights a class in the picture when hovered or clicked)."""
    return photo, [(mask == row["id"], row["name"]) for row in legend(mask)]


def confidence_picture(state: dict, name: str) -> np.ndarray:
    """The model's confidence at the photo's display size: white = sure, dark = unsure."""
    h, w = state["photo"].shape[:2]
    conf = Image.fromarray(state["confidence"][name]).resize((w, h), Image.BILINEAR)
    return np.asarray(conf)


def class_report(state: dict | None, evt: gr.SelectData) -> str:
    """What a click on a class of the annotated picture shows: that class's share in every model."""
    if not state or evt is None or evt.value is None:
        return ""
    label = evt.value.get("label") if isinstance(evt.value, dict) else str(evt.value)
    row = next((r for r in state["legend"] if r["name"] == label), None)
    if row is None:
        return ""
    shares = ", ".join(f"{display_name(n)} {share_text(row['share'].get(n, 0.0))}" for n in state["masks"])
    return f"**{label}**, share of the pixels: {shares}."


def render(state: dict | None, pick: str | None, alpha: float, names: tuple[str, ...], own_slots: int = 0) -> list:
    """Slider, legend, timings, the chosen model's annotated picture and confidence, one overlay
    per model in ``names`` (what the page shows), and ``own_slots`` updates of the pictures of the
    user's models (shown with their label, or hidden)."""
    if not state:
        return [None, "", "", None, None, *([None] * len(names)), *own_overlays(None, alpha, own_slots)]
    alpha = DEFAULT_OPACITY if alpha is None else float(alpha)
    photo, masks = state["photo"], state["masks"]
    overlays = {n: overlay(photo, masks[n], alpha) for n in names if n in masks}
    pick = pick if pick in overlays else next(iter(overlays), None)
    slider = (photo, overlays[pick]) if pick else None
    legend_part = legend_html(state["legend"], {n: display_name(n) for n in state["masks"]})
    h, w = state["size"]
    timing = (f"Image {w}x{h} px. Decoding and resizing, shared: {ms_text(state['shared_seconds'])}. "
              "Each model alone: " + ", ".join(
                  f"{display_name(n)} {ms_text(s)} ({state['backends'].get(n, 'its members and their mean')})"
                  for n, s in state["seconds"].items()) + ".")
    if state.get("tta") == "flip":
        timing += " Mirror-image averaging: each model also segmented the mirrored photo."
    annotated = annotations(photo, masks[pick]) if pick else None
    sure = confidence_picture(state, pick) if pick else None
    return [slider, legend_part, timing, annotated, sure, *(overlays.get(n) for n in names),
            *own_overlays(state, alpha, own_slots)]


def own_overlays(state: dict | None, alpha: float, slots: int) -> list:
    """``slots`` updates of the pictures beside the three: the user's models' overlays, labelled, then hidden ones."""
    own = (state or {}).get("own", [])
    return [gr.update(value=overlay(state["photo"], state["masks"][own[i]], alpha), label=own[i], visible=True)
            if i < len(own) else gr.update(value=None, visible=False) for i in range(slots)]


def error_text(err: gr.Error) -> str:
    """A ``gr.Error`` as the Markdown of the page's error box (stays until the next photo)."""
    return f"**{err.title}:** {err.message}"


def browser_preview(value, out_dir: Path) -> str | None:
    """A PNG copy of an uploaded file that browsers cannot display (TIFF), for the input's
    preview; ``None`` for every other file (or one that cannot be read: ``compare`` says why)."""
    path = value.get("path") if isinstance(value, dict) else getattr(value, "path", value)
    try:
        with Image.open(path) as im:
            if im.format not in NO_BROWSER_PREVIEW:
                return None
        rgb = load_image(path)
    except (OSError, ValueError, TypeError):
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    _prune(out_dir, time.time())
    out = out_dir / f"preview-{uuid.uuid4().hex}.png"
    Image.fromarray(rgb).save(out, format="PNG", compress_level=1)
    return str(out)


def on_photo(predictor: Predictor, value, pick, alpha, flip: bool, names: tuple[str, ...], preview_dir: Path,
             extras: list[ExtraModel] = (), own_slots: int = 0) -> list:
    """A new photo: ``[input image, state, *views, error box]``, with the reason in the error box
    when it cannot be segmented (a toast vanishes, and raising would leave every output with a bare
    "Error" pill). A TIFF first gets a PNG copy as the input's preview, whose change runs the models.
    ``extras``: the user's models, drawn in ``own_slots`` pictures after the three."""
    hidden = gr.update(value="", visible=False)
    if value is None:  # the input was cleared
        return [gr.skip(), None, *render(None, pick, alpha, names, own_slots), hidden]
    if preview := browser_preview(value, preview_dir):
        return [preview, *([gr.skip()] * (len(names) + own_slots + 7))]
    try:
        new = compare(predictor, value, "flip" if flip else "none", extras)
    except gr.Error as err:
        return [gr.skip(), None, *render(None, pick, alpha, names, own_slots),
                gr.update(value=error_text(err), visible=True)]
    return [gr.skip(), new, *render(new, pick, alpha, names, own_slots), hidden]


# ------------------------------------------------------------------------------------ your own models

MAX_OWN = 2  # a user's own models per session, beside the three


@functools.lru_cache(maxsize=4)  # shared by the sessions and bounded; a refusal raises, so it is not kept
def _own_model(key: str, source: str) -> ExtraModel:
    return load_extra_model(source)


def _upload_path(value) -> str | None:
    if isinstance(value, dict):
        return value.get("path")
    return getattr(value, "path", value) or None


def add_own_model(own: list[dict] | None, upload=None, source: str | None = None) -> list[dict]:
    """The session's own models (``[{"key", "source", "label"}]``) with one more: an uploaded file,
    else a typed path, ``hf://`` id or (public mode) a listed name. Each refusal is a ``gr.Error``
    with ``seg_core.extra_models``' sentence."""
    own = list(own or [])
    if len(own) >= MAX_OWN:
        raise _user_error(f"at most {MAX_OWN} of your own models at a time: untick one to add another.",
                          title="Cannot add this model")
    source = _upload_path(upload) or str(source or "").strip()
    if not source:
        raise _user_error("choose a checkpoint first.", title="Cannot add this model")
    key = source_key(source)
    try:
        model = _own_model(key, source)
    except ExtraModelError as err:
        raise _user_error(f"{err}.", title="Cannot add this model") from None
    if any(o["label"] == model.label for o in own):
        raise _user_error(f"{model.label} is already in the comparison.", title="Cannot add this model")
    return own + [{"key": key, "source": source, "label": model.label}]


def own_models(own: list[dict] | None) -> list[ExtraModel]:
    """The loaded models of the session's list (one that can no longer be loaded, e.g. an upload
    gradio has since deleted, is left out)."""
    out = []
    for o in own or []:
        try:
            out.append(_own_model(o["key"], o["source"]))
        except ExtraModelError:
            pass
    return out


def own_box(own: list[dict]):
    labels = [o["label"] for o in own]
    return gr.update(choices=labels, value=labels, visible=bool(labels))


def own_section() -> tuple[list, list]:
    """The "Add your model" accordion: in local mode a file and a path / hf:// box, in public mode a
    dropdown of ``SEG_EXTRA_MODELS`` (no accordion when none are listed). Returns its inputs for
    the add button, the button, and the box of added models (untick to remove)."""
    public = settings.public_mode()
    offered = [source_name(s) for s in settings.extra_models()] if public else []
    with gr.Accordion("Add your model", open=False, visible=not public or bool(offered), elem_id="own-models"):
        if public:
            inputs = [gr.Dropdown(offered, value=None, label="Models offered by this server", elem_id="own-pick")]
        else:
            gr.Markdown("A `.safetensors` checkpoint of U-Net, FCN-VGG16 or FCN-ResNet50 (e.g. fine-tuned with "
                        f"`train_cli.py train --init`): an upload (at most {MAX_FILE_MB} MB, "
                        "the server's upload limit), or a local path or `hf://org/name@revision` of any size up to "
                        "256 MiB. It gets a picture of its own, outside the ensemble.")
            inputs = [gr.File(label="Checkpoint (.safetensors)", height=110, elem_id="own-file"),
                      gr.Textbox(label="…or a local path or hf://org/name@revision", elem_id="own-source")]
        add = gr.Button("Add to the comparison", elem_id="own-add")
        box = gr.CheckboxGroup([], value=[], label="Your models in the comparison (untick to remove)", visible=False,
                               elem_id="own-list")
    return inputs, add, box


def missing_note(predictor: Predictor, weights_note: str | None = None) -> str:
    if weights_note and not predictor.models:
        return f"**No model is loaded**: {weights_note}."
    if not predictor.missing:
        return f"**Note**: {weights_note}." if weights_note else ""
    lines = [f"**Note**: {weights_note}.", ""] if weights_note else []
    lines += ["**Not available on this server** (the other models work):", ""]
    for name, missing in predictor.missing.items():
        lines.append(f"- **{display_name(name)}**: {missing.reason}; train it with `{missing.command}`")
    return "\n".join(lines)


def build_demo(predictor: Predictor, data_dir: str | Path | None = DATA_DIR,
               examples_cache: str | Path = EXAMPLES_CACHE, weights_note: str | None = None) -> gr.Blocks:
    """The whole app around one ``Predictor``; ``demo = build_demo(...)`` below is what gets served.
    ``weights_note`` says why the configured weights were not used (shown at the top)."""
    loaded = tuple(predictor.models) + ((ENSEMBLE,) if predictor.ensemble() else ())
    photos = example_photos(data_dir, examples_cache) if data_dir is not None else []
    masks_dir = Path(tempfile.gettempdir()) / "seg_gradio_masks"  # unique names; old ones pruned per call

    with gr.Blocks(title="Cityscapes segmentation: three models compared", delete_cache=(3600, 3600),
                   analytics_enabled=False) as demo:  # no usage reports to gradio's servers
        gr.Markdown("## Cityscapes segmentation: U-Net vs FCN-VGG16 vs FCN-ResNet50\n"
                    "Drop a street photo or click an example: every model labels each pixel with one of the 19 "
                    "Cityscapes classes.")
        note = missing_note(predictor, weights_note)
        gr.Markdown(note, visible=bool(note), elem_id="missing-models")
        state = gr.State(None)
        order = ARCH_NAMES + tuple(n for n in loaded if n not in ARCH_NAMES)
        shown = tuple(n for n in order if n in loaded)  # the order of ``overlays``
        overlays = []
        # Tabs at the top, the result first: the photo, the examples and every model's overlay fill
        # the first screen; the slider, class picture and confidence are one tab further.
        with gr.Tabs():
            with gr.Tab("Compare", id="compare"):
                with gr.Row():
                    with gr.Column(scale=1, min_width=280):
                        image = gr.Image(type="filepath", sources=["upload", "clipboard"], height=240,
                                         label="Photo (drag and drop; JPEG, PNG, WebP, BMP, GIF, TIFF; max 10 MB)")
                        error_box = gr.Markdown(visible=False, elem_id="page-error")
                        if photos:
                            kitti = data_dir is not None and settings.is_examples(data_dir)
                            gr.Examples(examples=[[str(p)] for p in photos], inputs=[image],
                                        examples_per_page=N_EXAMPLES,
                                        label="KITTI example scenes (click one)" if kitti else "Cityscapes val scenes (click one)")
                            if kitti:
                                gr.Markdown(examples.CREDIT, elem_id="examples-credit")
                        else:
                            where = "no folder of Cityscapes pairs on this server" if settings.public_mode() else \
                                f"no folder at `{data_dir}`"
                            gr.Markdown(f"No example scenes: {where}. Set `SEG_DATA_DIR` to a folder of "
                                        "Cityscapes pairs (512x256 JPEGs, photo on the left), e.g. "
                                        "`SEG_DATA_DIR=/path/to/cityscapes_pairs/val python gradio_app.py`.",
                                        elem_id="no-examples")
                        opacity = gr.Slider(0.0, 1.0, value=DEFAULT_OPACITY, step=0.05, label="Mask opacity")
                        mirror = gr.Checkbox(False, label="Mirror-image averaging (slightly better masks, twice the time)",
                                             info="each model also segments the mirrored photo; the two are averaged")
                    with gr.Column(scale=3):
                        for row in range(0, len(order), 2):  # two a row: each over 400 px wide at 1440 px
                            with gr.Row():
                                for name in order[row : row + 2]:
                                    if name in loaded:
                                        overlays.append(gr.Image(label=display_name(name), interactive=False))
                                    else:
                                        gr.Markdown(f"**{display_name(name)}**: not available (see the note above).")
                        with gr.Row():
                            own_pictures = [gr.Image(interactive=False, visible=False) for _ in range(MAX_OWN)]
                        timing = gr.Markdown()
                        legend_box = gr.HTML(elem_id="legend")
            with gr.Tab("Inspect", id="inspect"):
                picker = gr.Radio(choices=[(display_name(n), n) for n in loaded], value=loaded[0] if loaded else None,
                                  label="Model for the slider, the class picture and the confidence")
                slider = gr.ImageSlider(label="Photo / mask", type="numpy", interactive=False, max_height=480)
                with gr.Row():
                    annotated = gr.AnnotatedImage(label="Classes of the chosen model (hover or click a class to highlight it)",
                                                  height=360, elem_id="classes", color_map=dict(CLASS_HEX))
                    sure = gr.Image(label="Confidence of the chosen model (white: sure, dark: unsure)", type="numpy",
                                    interactive=False, height=360, elem_id="confidence")
                picked_class = gr.Markdown(elem_id="picked-class")
            with gr.Tab("Video", id="video"):
                video_section(predictor, Path(tempfile.gettempdir()) / "seg_gradio_videos")
            with gr.Tab("Webcam", id="webcam"):
                webcam_section(predictor)
            with gr.Tab("Your model", id="own"):
                own_inputs, own_add, own_list = own_section()
        own = gr.State([])  # this session's own models: sources only; the models are in _own_model's cache

        views = [slider, legend_box, timing, annotated, sure, *overlays, *own_pictures]

        def on_image(value, pick, alpha, flip, mine):
            return on_photo(predictor, value, pick, alpha, flip, shown, masks_dir, own_models(mine), MAX_OWN)

        def on_view(current, pick, alpha):
            return render(current, pick, alpha, shown, MAX_OWN)

        def on_add(mine, value, pick, alpha, flip, *chosen):
            try:
                mine = add_own_model(mine, *chosen) if len(chosen) == 2 else add_own_model(mine, source=chosen[0])
            except gr.Error as err:
                return [*([gr.skip()] * (2 + len(own_inputs) + 2 + len(views))), gr.update(value=error_text(err), visible=True)]
            return [mine, own_box(mine), *([None] * len(own_inputs)), *on_image(value, pick, alpha, flip, mine)]

        def on_untick(mine, kept, value, pick, alpha, flip):
            mine = [o for o in mine or [] if o["label"] in (kept or [])]
            return [mine, own_box(mine), *([gr.skip()] * len(own_inputs)), *on_image(value, pick, alpha, flip, mine)]

        page_out = [image, state, *views, error_box]
        for trigger in (image, mirror):  # a new photo, or the same one with(out) mirror-image averaging
            trigger.change(on_image, [image, picker, opacity, mirror, own], page_out, preprocess=False,
                           concurrency_limit=INFER_WORKERS, concurrency_id="inference", api_visibility="private")
        photo_in = [image, picker, opacity, mirror]
        own_add.click(on_add, [own, *photo_in, *own_inputs], [own, own_list, *own_inputs, *page_out],
                      preprocess=False, concurrency_limit=INFER_WORKERS, concurrency_id="inference",
                      api_visibility="private")
        own_list.input(on_untick, [own, own_list, *photo_in], [own, own_list, *own_inputs, *page_out],
                       preprocess=False, concurrency_limit=INFER_WORKERS, concurrency_id="inference",
                       api_visibility="private")
        # Redrawing is cheap; while one redraw runs, only the latest slider position is kept.
        for control in (picker, opacity):
            control.change(on_view, [state, picker, opacity], views, trigger_mode="always_last",
                           show_progress="hidden", api_visibility="private")
        annotated.select(class_report, [state], [picked_class], show_progress="hidden", api_visibility="private")

        # The programmatic API: hidden components, documented endpoints.
        with gr.Column(visible=False):
            api_image = gr.Image(type="filepath", label="image")
            api_model = gr.Textbox(label="model", value=loaded[0] if loaded else "unet")
            api_mask = gr.File(label="mask: PNG of class ids")
            api_shares = gr.JSON(label="per-class pixel shares")
            api_button = gr.Button("segment")

        def segment(image, model):
            """Segment one image with one model.

            Args:
                image: the photo (JPEG, PNG, WebP, BMP, GIF, TIFF; at most 10 MB and 40 megapixels).
                model: unet, fcn_vgg16, fcn_resnet50, or ensemble (the weighted mean of their probabilities).

            Returns:
                A PNG of train ids (0..18, see seg_core.palette.CLASS_NAMES) at the image's size, and
                {class name: share of pixels} for the classes present.
            """
            return segment_api(predictor, image, model, masks_dir)

        api_button.click(segment, [api_image, api_model], [api_mask, api_shares], api_name="segment",
                         preprocess=False, concurrency_limit=INFER_WORKERS, concurrency_id="inference")

        with gr.Column(visible=False):
            api_inline = gr.JSON(label="mask PNG (base64) and shares")
            api_inline_button = gr.Button("segment inline")

        def segment_inline(image, model):
            """Segment one image with one model; the mask comes back inside the answer.

            Args:
                image: the photo (as for /segment).
                model: unet, fcn_vgg16 or fcn_resnet50.

            Returns:
                {"mask_png_base64": the PNG of train ids, base64, "shares": {class name: share of pixels}}.
            """
            return segment_inline_api(predictor, image, model)

        api_inline_button.click(segment_inline, [api_image, api_model], [api_inline], api_name="segment_inline",
                         preprocess=False, concurrency_limit=INFER_WORKERS, concurrency_id="inference")

        with gr.Column(visible=False):
            api_tta = gr.Textbox(label="tta", value="none")
            api_analysis = gr.JSON(label="masks, confidences and shares of every model and the ensemble")
            api_analyze_button = gr.Button("analyze")

        def analyze(image, tta):
            """Every model and the ensemble on one image, in one call.

            Args:
                image: the photo (as for /segment).
                tta: "none", or "flip" for mirror-image averaging.

            Returns:
                {"size": [h, w], "disagreement": share of pixels, "shared_ms": decode and resize,
                "models": {name: {"mask_png_base64", "confidence_png_base64" (255 = sure),
                "mean_confidence", "shares", "ms"}}}; names: unet, fcn_vgg16, fcn_resnet50, ensemble.
            """
            return analyze_api(predictor, image, tta)

        api_analyze_button.click(analyze, [api_image, api_tta], [api_analysis], api_name="analyze",
                                 preprocess=False, concurrency_limit=INFER_WORKERS, concurrency_id="inference")

    demo.queue(default_concurrency_limit=DEFAULT_CONCURRENCY, max_size=QUEUE_MAX_SIZE)
    return demo


def load_predictor() -> tuple[Predictor, str | None]:
    """The models of ``seg_core.served_weights.weights_dir()`` and, if the configured weights could not be
    used, why (a missing Hub repo or revision leaves the page up, with no model and the reason)."""
    try:
        source = weights_source()
    except WeightsError as err:
        return Predictor(), str(err)
    return Predictor.from_dir(source.folder, threads=INFER_THREADS, parallel=INFER_WORKERS), source.note


predictor, WEIGHTS_NOTE = load_predictor()  # once, at import: every session shares these models
demo = build_demo(predictor, DATA_DIR, weights_note=WEIGHTS_NOTE)

if __name__ == "__main__":
    import uvicorn

    map_large_blocks()  # RSS back near its start after a burst of large images (seg_core.safety)

    print(f"Serving on http://{settings.server_name()}:{settings.server_port()}/ (the page), "
          f"POST {REST_PATH} (plain HTTP API)", flush=True)
    uvicorn.run(http_app(demo, predictor), host=settings.server_name(), port=settings.server_port(),
                log_level="warning")
