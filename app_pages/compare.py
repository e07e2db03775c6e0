"""Compare page: one photo through U-Net, FCN-VGG16 and FCN-ResNet50, side by side.

Upload photos or pick an example scene; the masks come first, in one view at a time (masks,
overlays, a before/after slider, disagreement, and the interactive viewer: hover, zoom, confidence)
with the class legend right below, then the inference times and the downloads. A scene chosen
in a widget comes with its masks and ensemble computed in the widget's callback, drawn in one grid;
a linked scene's three masks are drawn first, and the ensemble's cell fills a step later. The views
are a fragment: switching them or moving the opacity reruns only that block, and the before/after
seam moves in the browser alone.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from seg_core.palette import colorize
from seg_core.registry import ARCH_NAMES, ENSEMBLE
from seg_core.viz import ENSEMBLE_TIME, disagreement, disagreement_image, legend_rows, ms_text, overlay, png_bytes
from ui import common, extra, pickers
from ui.scenes import Scene, display_scale
from ui.viewer import mask_viewer
from ui.views import before_after_html, data_url, image_grid_html, legend_html, mask_data_url, overlay_grid_html

#: The pictures are at least this wide: three a row at 1440 px, one a row on a phone.
GRID_MIN = 400
VIEWS = ("Masks", "Overlays", "Before / after", "Disagreement", "Inspect", "Confidence")
#: The views drawn by the interactive viewer, and its own view for each: one row of buttons, the
#: page's (the viewer's own selector, inside Inspect, repeated Masks and Overlays).
VIEWER_VIEWS = {"Inspect": "Masks", "Confidence": "Confidence", "Errors vs low confidence": "Errors vs low confidence"}

st.caption("Three segmentation networks trained on Cityscapes street scenes label every pixel of a photo "
           "with one of 19 classes: see where they agree and where they differ.")
pred = common.predictor()
common.show_missing(pred)
# The result comes first, the pickers below it: the scene is settled before anything is drawn (a
# link, the first example, an upload chosen in the widgets' callbacks, which also start its masks).
pickers.open_first_example()
pickers.choose_scene()
scene = common.current_scene()
if scene is None:
    pickers.scene_picker(on_scene=common.start_masks)
    st.stop()

# The models segment the photo at screen size (seg_core.serve.photos); the downloads are computed
# at the photo's full size, when clicked.
photo = scene.screen_photo()
models = common.predictions(scene, photo, ensemble=False)  # the first paint: the three (and the user's own)
truth = display_scale(scene.label, nearest=True) if scene.label is not None else None


@st.cache_data(max_entries=64, show_spinner=False)  # PNG data URLs of masks at screen size: tens of kB
def _mask_url(scene_key: str, weights: str, tta: str, name: str, extras: str, _mask: np.ndarray,
              void_clear: bool = False) -> str:
    """One mask as a data URL, once per scene and model;
    ``void_clear``: as a layer over the photo (the Overlays view)."""
    return mask_data_url(_mask, void_clear)


@st.cache_data(max_entries=16, show_spinner=False)  # a photo at screen size as a data URL: under 1 MB
def _scene_urls(scene_key: str, _photo: np.ndarray, _truth: np.ndarray | None) -> list[tuple[str, str]]:
    """The photo (and ground truth) of the first grid cells, encoded once per scene."""
    return [("Photo", data_url(_photo))] + ([("Ground truth", mask_data_url(_truth))] if _truth is not None else [])


def grid(view: str, scene: Scene, preds: dict, photo: np.ndarray, truth: np.ndarray | None,
         pending: bool = False) -> str:
    """The picture grid of the Masks view (HTML) or the Overlays view (a page of its own, whose
    opacity slider runs in the browser); ``pending``: the ensemble is still being averaged, and its
    cell says so."""
    shown = common.columns(preds)
    if pending:  # where the ensemble will be: after the three, before the user's models
        shown.insert(len(ARCH_NAMES), ENSEMBLE)
    first = _scene_urls(scene.key, photo, truth)
    clear = view == "Overlays"
    urls = {n: _mask_url(scene.key, common.weights_key(), common.tta(), n, extra.key(), p.mask, clear)
            for n, p in preds.items()}
    notes = {common.model_title(ENSEMBLE) + (" overlay" if clear else ""): "averaging…"} if pending else None
    if clear:
        return overlay_grid_html(first[0][1], [(common.model_title(n), urls.get(n)) for n in shown], notes=notes,
                                 min_width=GRID_MIN)
    return image_grid_html(first + [(common.model_title(n, preds.get(n)), urls.get(n)) for n in shown], notes=notes,
                           min_width=GRID_MIN, late=("Ground truth",))


def _draw(slot, view: str, page: str) -> None:
    """The Overlays view is a page of its own (its slider's script runs in an iframe); Masks is HTML."""
    if view == "Overlays":
        slot.iframe(page, height="content")
    else:
        slot.html(page)


@st.fragment
def views(scene: Scene, models: dict, photo: np.ndarray, truth: np.ndarray | None) -> None:
    """The pictures, one view at a time; a fragment, so its controls rerun only this block. The
    three masks (or overlays) are drawn first and the ensemble's cell is filled when it is averaged."""
    choices = VIEWS + (("Errors vs low confidence",) if truth is not None else ())
    view = st.segmented_control("View", choices, default=VIEWS[0], required=True, key="view",
                                label_visibility="collapsed")
    opacity = 0.5
    if view == "Before / after":  # (the Overlays view has its own slider, in the browser)
        opacity = st.slider("Overlay opacity", 0.0, 1.0, 0.5, 0.05, key="opacity")
    if view in ("Masks", "Overlays") or not models:
        slot = st.empty()
        view = view if models else "Masks"
        if models and common.ensemble_pending(scene, photo):
            _draw(slot, view, grid(view, scene, models, photo, truth, pending=True))
        preds = common.predictions(scene, photo) if models else {}
        _draw(slot, view, grid(view, scene, preds, photo, truth))
        return
    preds = common.predictions(scene, photo)
    masks = {name: p.mask for name, p in preds.items()}
    if view == "Before / after":
        overlays = {common.model_title(n): data_url(overlay(photo, m, opacity)) for n, m in masks.items()}
        # Our own HTML (data URLs of our pictures, escaped titles): the slider's script runs in
        # the iframe, so dragging never reaches the server.
        st.iframe(before_after_html(data_url(photo), overlays), height="content")
    elif view in VIEWER_VIEWS:
        # Each model's confidence comes from the probabilities of its one pass: no model runs again.
        # The page's legend is below it.
        mask_viewer(photo, preds, truth, key="compare_viewer", view=VIEWER_VIEWS[view], legend=False,
                    scene_id=f"{common.weights_key()}|{scene.key}|{photo.shape}|{common.tta()}|{extra.key()}")
    elif len(masks) > 1:
        share = disagreement(list(masks.values())).mean()
        st.html(image_grid_html([("Photo", _scene_urls(scene.key, photo, truth)[0][1]),
                                 (f"cyan: the models disagree ({share:.1%} of the pixels)",
                                  data_url(disagreement_image(photo, list(masks.values()))))], min_width=280))
    else:
        st.caption("Needs at least two models.")


def times_and_downloads(scene: Scene, photo: np.ndarray, preds: dict) -> None:
    """Each model's time and backend, and its masks at the photo's full size as PNG downloads."""
    st.markdown("#### Inference time and downloads")
    h, w = photo.shape[:2]
    shown_at = "" if photo.shape == scene.shape else (
        f" The masks above are computed at screen size ({w}x{h}); the downloads at the photo's "
        f"{scene.shape[1]}x{scene.shape[0]}, when clicked.")
    st.caption(f"Shared by the models, counted once: decoding the file {ms_text(scene.decode_seconds)}, resizing and "
               f"normalising {ms_text(preds.prepare_seconds)}. Each model's time is its own: forward pass, "
               f"upsampling to {w}x{h}, argmax; the ensemble's is {ENSEMBLE_TIME}.{shown_at}")
    cols = st.columns(len(preds))
    stem = scene.name.rsplit(".", 1)[0]
    own = extra.models()
    served = common.service()
    for col, (name, p) in zip(cols, preds.items()):
        with col:
            alone = (f"the ensemble: {ENSEMBLE_TIME}, upsampling to {w}x{h}, argmax" if name == ENSEMBLE else f"this model alone: forward pass, upsampling to {w}x{h}, argmax")
            st.metric(common.model_title(name), ms_text(p.seconds), help=alone)
            backend = f"{own[name].runner.label}, your model" if name in own else common.predictor().backends().get(name, "")
            st.caption(backend + (", mirror-image averaging" if common.tta() == "flip" else ""))
            # Callables, run when a button is clicked (outside the script, so all they need is bound
            # here): the full-size mask is computed and encoded then, not on every run.
            def full(n=name, shown=p.mask, tta=common.tta()) -> np.ndarray:
                return served.full_size_mask(scene.photo, n, shown, tta, own.get(n))

            slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)  # a user's model: "unet (mine.safetensors)"
            st.download_button("Class ids (PNG)", lambda full=full: png_bytes(full()), f"{stem}_{slug}_ids.png",
                               "image/png", key=f"dl_ids_{name}", on_click="ignore")
            st.download_button("Colour mask (PNG)", lambda full=full: png_bytes(colorize(full())),
                               f"{stem}_{slug}_color.png", "image/png", key=f"dl_color_{name}", on_click="ignore")


st.markdown(f"**{scene.name}**" + (" (with ground truth)" if scene.label is not None else ""))
views(scene, models, photo, truth)
if models:
    preds = common.predictions(scene, photo)  # computed in the views above, cached
    st.html(legend_html(legend_rows({n: p.mask for n, p in preds.items()}),
                        {n: common.model_title(n) for n in preds}))
    times_and_downloads(scene, photo, preds)
st.markdown("#### Another photo")
pickers.scene_picker(on_scene=common.start_masks)
extra.manager()  # once there is a photo to compare on: the landing page stays two boxes
