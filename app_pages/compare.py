"""Compare page: one photo through U-Net, FCN-VGG16 and FCN-ResNet50, side by side.

Upload photos or pick an example scene; the masks come first, in one view at a time (masks,
overlays, a before/after slider, disagreement, and the interactive viewer: hover, zoom, confidence)
with the class legend right below, then the inference times and the downloads. The views are a fragment: switching them or moving the
opacity reruns only that block, and the before/after seam moves in the browser alone.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from seg_core.palette import colorize
from seg_core.viz import disagreement, disagreement_image, legend_html, legend_rows, overlay, png_bytes
from ui import common, val_analysis
from ui.scenes import Scene, display_scale
from ui.viewer import mask_viewer
from ui.views import before_after_html, data_url, image_grid_html, mask_data_url

VIEWS = ("Masks", "Overlays", "Before / after", "Disagreement", "Inspect")

st.title("Compare the models")
st.markdown("Three segmentation networks trained on Cityscapes street scenes label every pixel of a photo "
            "with one of 19 classes: see where they agree and where they differ.")
pred = common.predictor()
common.show_missing(pred)
common.scene_picker()

scene = common.current_scene()
if scene is None:
    st.stop()

# The models segment the photo at screen size: a mask shown 1024 px wide gains nothing from being
# computed at 4096 and shrunk (the models see 256x512 either way), and a large upload's masks come
# up several times sooner. The downloads are computed at the photo's full size, when clicked.
photo = display_scale(scene.photo)
preds = common.predictions(scene, photo) if pred.models else {}
masks = {name: p.mask for name, p in preds.items()}
truth = display_scale(scene.label, nearest=True) if scene.label is not None else None


@st.cache_data(max_entries=16, show_spinner=False)  # PNG data URLs of masks at screen size: tens of kB
def _mask_urls(scene_key: str, weights: str, tta: str, _masks: dict) -> dict[str, str]:
    return {n: mask_data_url(m) for n, m in _masks.items()}


@st.cache_data(max_entries=16, show_spinner=False)  # a photo at screen size as a data URL: under 1 MB
def _scene_urls(scene_key: str, _photo: np.ndarray, _truth: np.ndarray | None) -> list[tuple[str, str]]:
    """The photo (and ground truth) of the first grid cells, encoded once per scene."""
    return [("Photo", data_url(_photo))] + ([("Ground truth", mask_data_url(_truth))] if _truth is not None else [])


@st.fragment
def views(scene: Scene, preds: dict, photo: np.ndarray, masks: dict, truth: np.ndarray | None) -> None:
    """The pictures, one view at a time; a fragment, so its controls rerun only this block."""
    view = st.segmented_control("View", VIEWS, default=VIEWS[0], required=True, key="view",
                                label_visibility="collapsed")
    shown = common.columns(preds)
    titles = {n: common.model_title(n, preds.get(n)) for n in shown}
    urls = _mask_urls(scene.key, common.weights_key(), common.tta(), masks)
    first = _scene_urls(scene.key, photo, truth)
    if view == "Masks" or not masks:
        st.html(image_grid_html(first + [(titles[n], urls.get(n)) for n in shown]))
    elif view == "Overlays":
        opacity = st.slider("Overlay opacity", 0.0, 1.0, 0.5, 0.05, key="opacity")
        st.html(image_grid_html(first[:1] + [(f"{common.model_title(n)} overlay",
                                             data_url(overlay(photo, masks[n], opacity)) if n in masks else None)
                                            for n in shown]))
    elif view == "Before / after":
        opacity = st.slider("Overlay opacity", 0.0, 1.0, 0.5, 0.05, key="opacity")
        overlays = {common.model_title(n): data_url(overlay(photo, m, opacity)) for n, m in masks.items()}
        # Our own HTML (data URLs of our pictures, escaped titles): the slider's script runs in
        # the iframe, so dragging never reaches the server.
        st.iframe(before_after_html(data_url(photo), overlays), height="content")
    elif view == "Inspect":
        # The viewer needs each model's confidence: computed (and cached) only when it is opened,
        # so the other views keep the quicker masks-only pass.
        with_conf = val_analysis.predictions(scene, photo)
        mask_viewer(photo, with_conf, truth, key="compare_viewer",
                    scene_id=f"{common.weights_key()}|{scene.key}|{photo.shape}|{common.tta()}")
    else:
        if len(masks) > 1:
            share = disagreement([p.mask for p in preds.values()]).mean()
            st.html(image_grid_html([("Photo", first[0][1]),
                                     (f"cyan: the models disagree ({share:.1%} of the pixels)",
                                      data_url(disagreement_image(photo, list(masks.values()))))], min_width=280))
        else:
            st.caption("Needs at least two models.")


st.subheader(scene.name + (" (with ground truth)" if scene.label is not None else ""))
views(scene, preds, photo, masks, truth)
if not masks:
    st.stop()
st.html(legend_html(legend_rows({n: p.mask for n, p in preds.items()}),
                    {n: common.model_title(n) for n in preds}))

st.markdown("#### Inference time and downloads")
h, w = photo.shape[:2]
shown_at = "" if photo.shape == scene.photo.shape else (
    f" The masks above are computed at screen size ({w}x{h}); the downloads at the photo's "
    f"{scene.photo.shape[1]}x{scene.photo.shape[0]}, when clicked.")
st.caption(f"Shared by the models, counted once: decoding the file {scene.decode_seconds * 1000:.0f} ms, resizing and "
           f"normalising {preds.prepare_seconds * 1000:.0f} ms. Each model's time is its own: forward pass, "
           f"upsampling to {w}x{h}, argmax.{shown_at}")


cols = st.columns(len(masks))
stem = scene.name.rsplit(".", 1)[0]
for col, (name, p) in zip(cols, preds.items()):
    with col:
        st.metric(common.model_title(name), f"{p.seconds * 1000:.0f} ms", help=f"this model alone: forward pass, upsampling to {w}x{h}, argmax")
        st.caption(pred.backends().get(name, "") + (", mirror-image averaging" if common.tta() == "flip" else ""))
        # Callables, run when a button is clicked (outside the script, so all they need is bound
        # here): the full-size mask is computed and encoded then, not on every run.
        def full(n=name, shown=p.mask, tta=common.tta()) -> np.ndarray:
            return common.full_size_mask(pred, scene, n, shown, tta)

        st.download_button("Class ids (PNG)", lambda full=full: png_bytes(full()), f"{stem}_{name}_ids.png",
                           "image/png", key=f"dl_ids_{name}", on_click="ignore")
        st.download_button("Colour mask (PNG)", lambda full=full: png_bytes(colorize(full())),
                           f"{stem}_{name}_color.png", "image/png", key=f"dl_color_{name}", on_click="ignore")
