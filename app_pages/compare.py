"""Compare page: one photo through U-Net, FCN-VGG16 and FCN-ResNet50, side by side.

Upload images or pick a val scene; see each model's colour mask and overlay, the class legend, a
before/after slider, where the models disagree, their inference times, and download the masks.
"""

from __future__ import annotations

import streamlit as st

from seg_core.palette import colorize
from seg_core.registry import ARCH_NAMES
from seg_core.viz import disagreement, disagreement_image, legend_html, legend_rows, overlay
from ui import common
from ui.scenes import before_after, display_scale

st.title("Compare the models")
common.scene_picker()
pred = common.predictor()
common.show_missing(pred)

scene = common.current_scene()
if scene is None:
    st.info("Upload a photo or pick a validation scene to compare the models on it.")
    st.stop()

preds = common.predictions(scene) if pred.models else {}
# Pictures are drawn at screen size (a 40 MP upload would make every overlay 480 MB of floats);
# the downloads below keep the full-size masks.
photo = display_scale(scene.photo)
masks = {name: display_scale(p.mask, nearest=True) for name, p in preds.items()}
st.subheader(scene.name + (" (with ground truth)" if scene.label is not None else ""))
opacity = st.slider("Overlay opacity", 0.0, 1.0, 0.5, 0.05, key="opacity")

colours = [("Photo", photo)] + [(common.model_title(n, preds.get(n)), colorize(masks[n]) if n in masks else None)
                                for n in ARCH_NAMES]
common.show_images(colours)
overlays = {n: overlay(photo, m, opacity) for n, m in masks.items()}
truth = colorize(display_scale(scene.label, nearest=True)) if scene.label is not None else None
common.show_images([("Ground truth", truth)] + [(f"{common.model_title(n)} overlay", overlays.get(n)) for n in ARCH_NAMES])

if not masks:
    st.stop()

before_col, disagree_col, legend_col = st.columns(3)
with before_col:
    st.markdown("#### Before / after")
    shown = st.selectbox("Model", list(masks), format_func=common.model_title, key="ba_model")
    reveal = st.slider("Reveal the overlay up to (% of the width)", 0, 100, 50, key="reveal")
    st.image(before_after(photo, overlays[shown], reveal / 100),
             caption=f"left of the seam: {common.model_title(shown)} overlay; right: the photo", width="stretch")
with disagree_col:
    st.markdown("#### Where the models disagree")
    if len(masks) > 1:
        share = disagreement([p.mask for p in preds.values()]).mean()
        st.image(disagreement_image(photo, list(masks.values())),
                 caption=f"magenta: the models disagree ({share:.1%} of the pixels)", width="stretch")
    else:
        st.caption("Needs at least two models.")
with legend_col:
    st.markdown("#### Legend (pixel share)")
    st.html(legend_html(legend_rows({n: p.mask for n, p in preds.items()}),
                        {n: common.model_title(n) for n in preds}))

st.markdown("#### Inference time and downloads")
st.caption(f"Shared by the models: decoding {preds.decode_seconds * 1000:.0f} ms, resizing and normalising "
           f"{preds.prepare_seconds * 1000:.0f} ms. Each model's time below is its own.")
cols = st.columns(len(masks))
stem = scene.name.rsplit(".", 1)[0]
for col, (name, p) in zip(cols, preds.items()):
    with col:
        st.metric(common.model_title(name), f"{p.seconds * 1000:.0f} ms", help="this model alone: forward pass, upsampling to the photo's size, argmax")
        st.caption(pred.backends().get(name, "") + (", mirror-image averaging" if common.tta() == "flip" else ""))
        ids_png, color_png = common.mask_pngs(scene, name, p.mask)
        st.download_button("Class ids (PNG)", ids_png, f"{stem}_{name}_ids.png", "image/png",
                           key=f"dl_ids_{name}", on_click="ignore")
        st.download_button("Colour mask (PNG)", color_png, f"{stem}_{name}_color.png", "image/png",
                           key=f"dl_color_{name}", on_click="ignore")
