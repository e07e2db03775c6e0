"""The programmatic APIs: gradio's named endpoints (``/segment``, ``/segment_inline``,
``/analyze``) and the plain HTTP API (``POST /v1/segment``) mounted beside the page.

Each answers from one ``seg_core.serve`` request (not cached: API images are rarely sent twice);
the usage is in ``gradio_app``'s docstring.
"""

from __future__ import annotations

import base64
import time
import uuid
from pathlib import Path

import gradio as gr
import numpy as np
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from seg_core import settings
from seg_core.inference import ENSEMBLE, class_shares
from seg_core.predictor import Predictor
from seg_core.safety import BodyError, read_body, release_memory
from seg_core.serve.photos import PhotoService
from seg_core.viz import disagreement, png_bytes

from .common import (INFER_WORKERS, LAUNCH_KWARGS, MAX_FILE_MB, QUEUE_MAX_SIZE, checked_tta, decode, inference_errors,
                     model_key, user_error)

MASK_MAX_AGE_S = 600  # API mask PNGs are copied into gradio's cache on return; ours are pruned after this
MASK_PRUNE_EVERY_S = 60


def _segment_png(predictor: Predictor, image, model: str) -> tuple[bytes, dict[str, float]]:
    """The mask PNG of one image and its class shares, decoded, segmented and encoded in one slot."""
    name = model_key(predictor, model)
    with inference_errors():
        mask = PhotoService.of(predictor).segment(decode(image), (name,))[name].mask
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
        raise user_error("No model is loaded on this server.", title="No model")
    tta = checked_tta(tta)
    with inference_errors():
        rgb = decode(image)
        preds = PhotoService.of(predictor).segment(rgb, tta=tta, confidence=True, ensemble=True)
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


def endpoints(predictor: Predictor, masks_dir: Path) -> None:
    """Gradio's named API endpoints, on hidden components inside the ``Blocks``."""
    loaded = tuple(predictor.models) + ((ENSEMBLE,) if predictor.ensemble() else ())
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
