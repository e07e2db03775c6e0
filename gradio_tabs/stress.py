"""The Gradio app's Stress test tab: a val scene (with its ground truth) or an upload under a
chosen corruption and severity, the photo and every model's mask side by side, each model's mIoU,
and the benchmark's mIoU-vs-severity figure with this photo's point marked.

``stress_outputs`` is the whole tab's answer as a plain function (tested without a browser); the
views are cached per (photo, corruption, severity) by ``seg_core.serve.stress.StressService``, so moving
back to a severity already seen redraws without running a model.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import gradio as gr
import numpy as np

from seg_core import examples, settings
from seg_core.data import DataError, list_pairs, read_pair
from seg_core.inference import ImageError, load_image
from seg_core.palette import colorize
from seg_core.serve.stress import StressService
from ui.robustness import read_summary, severity_figure
from ui.stress import CORRUPTION_CHOICES, MAX_SEVERITY, caption, miou_rows, order, title

from .common import FIT_GALLERY

#: Val scenes offered in the picker (the first ones of the folder, as the Compare tab's examples).
N_SCENES = 24


def scene_choices(data_dir: str | Path | None) -> list[str]:
    if data_dir is None:
        return []
    try:
        return [p.name for p in list_pairs(data_dir)[:N_SCENES]]
    except DataError:
        return []


def _photo(data_dir, scene: str | None, upload) -> tuple[str, np.ndarray, np.ndarray | None]:
    """``(key, photo, label or None)``: the upload when there is one, else the chosen val scene."""
    if upload is not None:
        try:
            rgb = load_image(upload)
        except ImageError as err:
            raise gr.Error(str(err), print_exception=False) from None
        return "upload:" + hashlib.sha1(rgb.tobytes()).hexdigest()[:16], rgb, None
    if not scene or data_dir is None:
        raise gr.Error("Pick a val scene or upload a photo.", print_exception=False)
    path = Path(data_dir) / Path(scene).name  # a name from the picker, never a path
    try:
        photo, label = read_pair(path)
    except DataError as err:
        raise gr.Error(str(err), print_exception=False) from None
    return f"val:{path}:{path.stat().st_mtime_ns}", photo, label


def stress_outputs(service: StressService, summary: dict | None, data_dir, scene: str | None, upload,
                   corruption_label: str, severity: int) -> tuple[list, object, str]:
    """The tab's gallery (photo, truth, masks with captions), the figure (``None`` without a
    benchmark summary) and the text under them (mIoU and the server time)."""
    t0 = time.perf_counter()
    key, photo, label = _photo(data_dir, scene, upload)
    corruption = CORRUPTION_CHOICES[corruption_label]
    view = service.view(key, photo, label, corruption, int(severity))
    gallery = [(view.photo, f"Photo: {title(corruption, int(severity))}")]
    if view.label is not None:
        gallery.append((colorize(view.label), "Ground truth"))
    gallery += [(colorize(view.predictions[n].mask), caption(n, view)) for n in order(view)]
    fig = severity_figure(summary, corruption, current=(int(severity), view.miou)) if summary else None
    rows = miou_rows(view)
    lines = [" · ".join(f"{r['model']} {r['mIoU on this photo']:.3f}" for r in rows)] if rows else \
        ["No ground truth for an upload: no mIoU."]
    computed = f"computed in {view.seconds * 1000:.0f} ms" if view.seconds else "from the cache"
    lines.append(f"{computed}, answered in {(time.perf_counter() - t0) * 1000:.0f} ms on the server")
    if summary is None:
        lines.append("No benchmark results beside these weights (`python -m benchmarks.corruption_bench --summary "
                     "WEIGHTS/corruption_bench.json`).")
    return gallery, fig, "\n\n".join(lines)


def stress_tab(predictor, weights_dir: str | Path | None, data_dir: str | Path | None,
               concurrency_limit: int = 1, tab: gr.Tab | None = None) -> None:
    """The tab's components and events, inside the caller's ``gr.Tab`` (``tab``: it draws the
    chosen scene when opened, so a visitor who never opens it costs no model run)."""
    service = StressService(predictor)
    summary = read_summary(weights_dir) if weights_dir is not None else None
    scenes = scene_choices(data_dir)
    gr.Markdown("How do the models hold up when the photo is darker, foggy, blurred, noisy or JPEG-damaged? "
                "The corruption benchmark's definitions (ImageNet-C, as Cityscapes-C uses them).")
    with gr.Row():
        with gr.Column(scale=1):
            kitti = data_dir is not None and settings.is_examples(data_dir)
            scene = gr.Dropdown(scenes, value=scenes[0] if scenes else None,
                                label=f"{'KITTI example' if kitti else 'Val'} scene (with its ground truth)")
            if kitti:
                gr.Markdown(examples.CREDIT)
            upload = gr.Image(type="filepath", sources=["upload", "clipboard"], height=200,
                              label="…or your own photo (it replaces the scene while it is here)")
            corruption = gr.Dropdown(list(CORRUPTION_CHOICES), value=next(iter(CORRUPTION_CHOICES)), label="Corruption")
            severity = gr.Slider(0, MAX_SEVERITY, value=3, step=1, label="Severity (0 = the photo as it is)")
            text = gr.Markdown(elem_id="stress-text")
        with gr.Column(scale=2):
            gallery = gr.Gallery(label="Photo and masks", columns=3, height="auto", object_fit="contain", elem_classes=[FIT_GALLERY])
            figure = gr.Plot(label="Benchmark: mIoU vs severity (diamonds: this photo)")

    def answer(scene_name, image, label, level):
        return stress_outputs(service, summary, data_dir, scene_name, image, label, level)

    inputs, outputs = [scene, upload, corruption, severity], [gallery, figure, text]
    events = [c.change for c in (scene, upload, corruption, severity)] + ([tab.select] if tab is not None else [])
    for event in events:  # while one answer runs, only the latest slider position is kept
        event(answer, inputs, outputs, trigger_mode="always_last", concurrency_limit=concurrency_limit,
              concurrency_id="inference", api_visibility="private")
