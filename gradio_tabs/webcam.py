"""The Webcam tab: streaming frames through the chosen model, its overlay live, and the frame rate."""

from __future__ import annotations

import time

import gradio as gr
import numpy as np

from seg_core.inference import load_image
from seg_core.predictor import Predictor
from seg_core.registry import display_name
from seg_core.serve.photos import PhotoService
from seg_core.viz import fit_within, overlay

from .common import DEFAULT_OPACITY, inference_errors, model_key

LIVE_MAX_SIDE = 512  # webcam frames are segmented at most this large: the frame rate is what matters
LIVE_WINDOW = 10  # the frame rate shown is over the last this many frames
#: The browser checks this often whether the previous frame is back before it sends the next one
#: (docs/benchmarks.md, "Webcam": 20 ms checks cost the browser more than the wait they save).
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
    with inference_errors():
        mask = PhotoService.of(predictor).segment(rgb, (name,))[name].mask
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
