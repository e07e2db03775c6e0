"""The page itself: one photo through every model, the chosen one's slider, classes and confidence,
each model's overlay, the legend and the times.

``compare`` asks ``seg_core.serve.photos.PhotoService`` for every model's mask and confidence (one
pass each; the ensemble from their probabilities) and the user's own models; ``render`` draws the
page's pictures from that state, so moving the opacity or picking another model runs no model.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from pathlib import Path
from typing import Callable

import gradio as gr
import numpy as np
from PIL import Image

from seg_core import examples, settings
from seg_core.data import DataError, list_pairs
from seg_core.extra_models import ExtraModel, source_key
from seg_core.files import atomic_path
from seg_core.inference import ENSEMBLE, ImageError, load_image
from seg_core.palette import CLASS_HEX
from seg_core.predictor import Predictor
from seg_core.registry import ARCH_NAMES, display_name
from seg_core.serve.photos import SCREEN_MAX_SIDE, Photo, PhotoService
from seg_core.viz import ENSEMBLE_TIME, legend, legend_rows, ms_text, overlay, share_text
from ui.views import legend_html

from .api import _prune
from .common import (DEFAULT_OPACITY, INFER_WORKERS, NO_PHOTO, PICTURE_FORMAT, checked_tta, decode, error_text,
                     inference_errors, missing_note, user_error)
from .own_models import MAX_OWN, add_own_model, own_box, own_models, own_section

N_EXAMPLES = 8

#: Photos are segmented and shown at screen size, as on the Streamlit page (``Photo.at_screen_size``):
#: a mask drawn 440 px wide gains nothing from being computed at 4096 px. The API answers at full size.
DISPLAY_MAX_SIDE = SCREEN_MAX_SIDE

#: Formats a browser cannot show: the input gets a PNG copy as its preview.
NO_BROWSER_PREVIEW = ("TIFF",)


def example_photos(data_dir: str | Path, cache_dir: str | Path | None = None, n: int = N_EXAMPLES) -> list[Path]:
    """Photo halves of the first ``n`` pairs of ``data_dir``, cropped once into ``cache_dir``
    (default ``SEG_EXAMPLES_CACHE``, ``seg_core.settings.examples_cache``)."""
    cache_dir = settings.examples_cache() if cache_dir is None else cache_dir
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


def compare(predictor: Predictor, image, tta: str = "none", extras: list[ExtraModel] = ()) -> dict:
    """Run every loaded model once (with ``tta="flip"``: on the photo and its mirror image), with
    their confidence and the ensemble, then the user's ``extras`` (each under its label, outside
    the ensemble); the session state the views are drawn from."""
    if not predictor.models and not extras:
        raise user_error("No model is loaded on this server; see the note at the top of the page.", title="No model")
    tta = checked_tta(tta)
    with inference_errors("The model" if not extras else "A model"):
        t0 = time.perf_counter()
        rgb = decode(image)  # inside the slot, as the API's (see _segment_png)
        shot = Photo.at_screen_size(rgb, max_side=DISPLAY_MAX_SIDE)
        decoded = time.perf_counter() - t0
        preds = PhotoService.of(predictor).compare(shot, tta, {source_key(m.source): m for m in extras})
    return {
        "size": rgb.shape[:2],
        "photo": shot.pixels,
        "masks": {n: p.mask for n, p in preds.items()},
        # 8-bit, at the model's resolution, stretched to the photo's display size when drawn
        "confidence": {n: (p.model_confidence.astype(np.float32) * 255).round().astype(np.uint8)
                       for n, p in preds.items()},
        "legend": legend_rows({n: p.mask for n, p in preds.items()}),  # shares of the masks shown
        "seconds": {n: p.seconds for n, p in preds.items()},
        "shared_seconds": decoded + preds.prepare_seconds,
        "backends": {n: b for n, b in predictor.backends().items() if n in preds}
        | {m.label: f"{m.runner.label}, your model" for m in extras},
        "own": [m.label for m in extras],
        "tta": tta,
    }


class Landing:
    """The scene a visitor lands on, segmented once by the live models and then handed to every
    page load as it is (``outputs``): a landing costs the server no model run and no place in the
    inference queue (it was a photo change, a queued request, per visitor). ``warm`` computes it
    while the server starts; a page load before that waits for it."""

    def __init__(self, predictor: Predictor, path: str, names: tuple[str, ...]):
        self.predictor, self.path, self.names = predictor, path, names
        self._state: dict | None = None
        self._lock = threading.Lock()

    def state(self) -> dict:
        """``compare``'s state of the landing scene, computed by the first caller (raises ``gr.Error``)."""
        with self._lock:
            if self._state is None:
                self._state = compare(self.predictor, self.path)
            return self._state

    def outputs(self) -> list:
        """``[state, *compare_views, error box]`` of the landing scene, as ``on_photo`` gives a new photo's."""
        try:
            return photo_views(self.state(), DEFAULT_OPACITY, self.names, MAX_OWN)
        except gr.Error as err:
            return photo_views(None, DEFAULT_OPACITY, self.names, MAX_OWN, err)

    def warm(self) -> threading.Thread:
        """Segment the landing scene in the background, twice: first into a cache of its own and
        thrown away (the models' first use: graph set-up, the first upsampling at that size, 1.05 s
        against 0.21 s warm for the three on a busy 2-core machine; its times are start-up times),
        then for the visitors, with the warm models' times. A failure is printed; the page shows
        it in its error box."""
        def run() -> None:
            try:
                PhotoService.of(self.predictor).warm_up(Photo.at_screen_size(decode(self.path), max_side=DISPLAY_MAX_SIDE))
                self.state()
            except Exception as err:  # noqa: BLE001 (the page reports it when asked; the server stays up)
                print(f"warm-up on {Path(self.path).name} failed: {err}", flush=True)

        thread = threading.Thread(target=run, name="warm-landing", daemon=True)
        thread.start()
        return thread


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


def compare_views(state: dict | None, alpha: float, names: tuple[str, ...], own_slots: int = 0) -> list:
    """The Compare tab's part of the page: the legend, the times, one overlay per model in ``names``
    (what the page shows) and ``own_slots`` updates of the pictures of the user's models (shown with
    their label, or hidden). A new photo's first paint is this alone (``inspect_views`` follows)."""
    if not state:
        return ["", "", *([None] * len(names)), *own_overlays(None, alpha, own_slots)]
    alpha = DEFAULT_OPACITY if alpha is None else float(alpha)
    photo, masks = state["photo"], state["masks"]
    legend_part = legend_html(state["legend"], {n: display_name(n) for n in masks})
    h, w = state["size"]
    sh, sw = photo.shape[:2]
    at = "" if (sh, sw) == (h, w) else f", segmented at screen size, {sw}x{sh} (the API answers at full size)"
    timing = (f"Image {w}x{h} px{at}. Decoding and resizing, shared: {ms_text(state['shared_seconds'])}. "
              "Each model alone: " + ", ".join(
                  f"{display_name(n)} {ms_text(s)} ({state['backends'].get(n, ENSEMBLE_TIME)})"
                  for n, s in state["seconds"].items()) + ".")
    if state.get("tta") == "flip":
        timing += " Mirror-image averaging: each model also segmented the mirrored photo."
    return [legend_part, timing, *(overlay(photo, masks[n], alpha) if n in masks else None for n in names),
            *own_overlays(state, alpha, own_slots)]


def inspect_views(state: dict | None, pick: str | None, alpha: float) -> list:
    """The Inspect tab's part: the photo / mask slider, the chosen model's annotated picture (one
    mask per class) and its confidence. Drawn after the Compare tab's pictures, not with them: the
    annotated picture alone took 0.44 s of gradio's encoding for a 1024x512 photo."""
    pick = picked(state, pick)
    if pick is None:
        return [None, None, None]
    return [slider_pair(state, pick, alpha), annotations(state["photo"], state["masks"][pick]), confidence_picture(state, pick)]


def picked(state: dict | None, pick: str | None) -> str | None:
    """The model the Inspect tab shows: ``pick``, or the first one when it has no mask."""
    masks = (state or {}).get("masks", {})
    return pick if pick in masks else next(iter(masks), None)


def slider_pair(state: dict | None, pick: str | None, alpha: float) -> tuple | None:
    """The Inspect tab's photo / mask slider: the photo and ``pick``'s overlay at ``alpha``."""
    pick = picked(state, pick)
    if pick is None:
        return None
    alpha = DEFAULT_OPACITY if alpha is None else float(alpha)
    return state["photo"], overlay(state["photo"], state["masks"][pick], alpha)


def own_overlays(state: dict | None, alpha: float, slots: int) -> list:
    """``slots`` updates of the pictures beside the three: the user's models' overlays, labelled, then hidden ones."""
    own = (state or {}).get("own", [])
    return [gr.update(value=overlay(state["photo"], state["masks"][own[i]], alpha), label=own[i], visible=True)
            if i < len(own) else gr.update(value=None, visible=False) for i in range(slots)]


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
    """A new photo: ``[input image, state, *compare_views, error box]``, with the reason in the error box
    when it cannot be segmented (a toast vanishes, and raising would leave every output with a bare
    "Error" pill). A TIFF first gets a PNG copy as the input's preview, whose change runs the models.
    ``extras``: the user's models, drawn in ``own_slots`` pictures after the three."""
    if value is None:  # the input was cleared
        return [gr.skip(), *photo_views(None, alpha, names, own_slots)]
    if preview := browser_preview(value, preview_dir):
        return [preview, *([gr.skip()] * (len(names) + own_slots + 4))]
    try:
        new = compare(predictor, value, "flip" if flip else "none", extras)
    except gr.Error as err:
        return [gr.skip(), *photo_views(None, alpha, names, own_slots, err)]
    return [gr.skip(), *photo_views(new, alpha, names, own_slots)]


def photo_views(state: dict | None, alpha, names: tuple[str, ...], own_slots: int,
                error: gr.Error | None = None) -> list:
    """``[state, *compare_views, error box]``: a photo's results, or ``error``'s reason in the box."""
    box = gr.update(value=error_text(error), visible=True) if error else gr.update(value="", visible=False)
    return [state, *compare_views(state, alpha, names, own_slots), box]


def page(predictor: Predictor, data_dir: str | Path | None, examples_cache: str | Path, weights_note: str | None,
         masks_dir: Path, between: Callable[[], None] | None = None,
         after: Callable[[], None] | None = None) -> tuple[Landing | None, list, dict]:
    """The page inside the ``Blocks``: the tabs at the top (Compare, Inspect, then ``between``'s
    tabs, Your model, then ``after``'s), the photo's inputs and pictures, and their events. Returns
    the scene a visitor lands on (the first shipped KITTI scene on a Space, already in the photo
    input; ``None`` with Cityscapes data: nothing is chosen for them, as in the Streamlit app), the
    outputs its ``Landing.outputs`` fill, and the Inspect tab's event that follows them."""
    loaded = tuple(predictor.models) + ((ENSEMBLE,) if predictor.ensemble() else ())
    photos = example_photos(data_dir, examples_cache) if data_dir is not None else []
    landing = str(photos[0]) if photos and data_dir is not None and settings.is_examples(data_dir) else None
    gr.Markdown("## Cityscapes segmentation: U-Net vs FCN-VGG16 vs FCN-ResNet50\n"
                "Drop a street photo (JPEG, PNG, WebP, BMP, GIF or TIFF, up to 10 MB) or click an example: "
                "every model labels each pixel with one of the 19 Cityscapes classes.")
    note = missing_note(predictor, weights_note)
    gr.Markdown(note, visible=bool(note), elem_id="missing-models")
    state = gr.State(None)
    order = ARCH_NAMES + tuple(n for n in loaded if n not in ARCH_NAMES)
    shown = tuple(n for n in order if n in loaded)  # the order of ``overlays``
    overlays = []
    # Tabs at the top, the result first. Three blocks in the order a phone stacks them: the photo,
    # the masks (hidden there until there is a photo: four empty boxes pushed the examples off the
    # first screen), then the examples and settings; on a wide screen the CSS grid (common.CSS)
    # puts the examples under the photo, the masks on their right, two a row.
    with gr.Tabs():
        with gr.Tab("Compare", id="compare"):
            with gr.Row(elem_id="compare-row"):
                with gr.Column(scale=1, min_width=280, elem_id="compare-photo"):
                    image = gr.Image(landing, type="filepath", sources=["upload", "clipboard"], height=240,
                                     label="Photo")  # the formats are in the line above: a longer label ran under the box's buttons
                    error_box = gr.Markdown(visible=False, elem_id="page-error")
                with gr.Column(scale=3, elem_id="compare-results", elem_classes=[] if landing else [NO_PHOTO]) as results:
                    for row in range(0, len(order), 2):  # two a row: each over 400 px wide at 1440 px
                        with gr.Row():
                            for name in order[row : row + 2]:
                                if name in loaded:
                                    overlays.append(gr.Image(label=display_name(name), interactive=False, format=PICTURE_FORMAT))
                                else:
                                    gr.Markdown(f"**{display_name(name)}**: not available (see the note above).")
                    with gr.Row():
                        own_pictures = [gr.Image(interactive=False, visible=False, format=PICTURE_FORMAT) for _ in range(MAX_OWN)]
                    timing = gr.Markdown()
                    legend_box = gr.HTML(elem_id="legend")
                with gr.Column(scale=1, min_width=280, elem_id="compare-picks"):
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
        with gr.Tab("Inspect", id="inspect"):
            picker = gr.Radio(choices=[(display_name(n), n) for n in loaded], value=loaded[0] if loaded else None,
                              label="Model for the slider, the class picture and the confidence")
            slider = gr.ImageSlider(label="Photo / mask", type="numpy", interactive=False, max_height=480,
                                    format=PICTURE_FORMAT)
            with gr.Row():
                annotated = gr.AnnotatedImage(label="Classes of the chosen model (hover or click a class to highlight it)",
                                              height=360, elem_id="classes", color_map=dict(CLASS_HEX))
                sure = gr.Image(label="Confidence of the chosen model (white: sure, dark: unsure)", type="numpy",
                                interactive=False, height=360, elem_id="confidence", format=PICTURE_FORMAT)
            picked_class = gr.Markdown(elem_id="picked-class")
        if between is not None:
            between()
        with gr.Tab("Your model", id="own"):
            own_inputs, own_add, own_list = own_section()
        if after is not None:
            after()
    own = gr.State([])  # this session's own models: sources only; the models are in _own_model's cache

    views = [legend_box, timing, *overlays, *own_pictures]  # the Compare tab's
    inspected = [slider, annotated, sure]  # the Inspect tab's, drawn after them

    def on_image(value, pick, alpha, flip, mine):
        return on_photo(predictor, value, pick, alpha, flip, shown, masks_dir, own_models(mine), MAX_OWN)

    def on_view(current, alpha):
        return compare_views(current, alpha, shown, MAX_OWN)

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
    # The masks' boxes show as soon as there is a photo (their progress with them), before any model runs.
    image.change(lambda value: gr.Column(elem_classes=[] if value else [NO_PHOTO]), [image], [results],
                 queue=False, show_progress="hidden", preprocess=False, api_visibility="private")
    # A new photo: the Compare tab's pictures first, then (hidden, after they are sent) the Inspect tab's.
    inspect = {"fn": inspect_views, "inputs": [state, picker, opacity], "outputs": inspected,
               "show_progress": "hidden", "api_visibility": "private"}
    for trigger in (image, mirror):  # a new photo, or the same one with(out) mirror-image averaging
        trigger.change(on_image, [image, picker, opacity, mirror, own], page_out, preprocess=False,
                       concurrency_limit=INFER_WORKERS, concurrency_id="inference",
                       api_visibility="private").then(**inspect)
    photo_in = [image, picker, opacity, mirror]
    own_add.click(on_add, [own, *photo_in, *own_inputs], [own, own_list, *own_inputs, *page_out],
                  preprocess=False, concurrency_limit=INFER_WORKERS, concurrency_id="inference",
                  api_visibility="private").then(**inspect)
    own_list.input(on_untick, [own, own_list, *photo_in], [own, own_list, *own_inputs, *page_out],
                   preprocess=False, concurrency_limit=INFER_WORKERS, concurrency_id="inference",
                   api_visibility="private").then(**inspect)
    # Redrawing is cheap; while one redraw runs, only the latest slider position is kept. The
    # opacity redraws both tabs' overlays, the model picker (on Inspect) only Inspect.
    opacity.change(on_view, [state, opacity], views, trigger_mode="always_last", show_progress="hidden",
                   api_visibility="private").then(slider_pair, [state, picker, opacity], [slider],
                                                  show_progress="hidden", api_visibility="private")
    picker.change(trigger_mode="always_last", **inspect)
    annotated.select(class_report, [state], [picked_class], show_progress="hidden", api_visibility="private")
    first = Landing(predictor, landing, shown) if landing else None
    return first, [state, *views, error_box], inspect
