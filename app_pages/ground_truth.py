"""Ground-truth page: the selected scene's label beside the three predictions, scored.

Needs a scene with a label (a val pair, or an uploaded photo | label pair): per-model pixel
accuracy and mIoU on that image, a row-normalised confusion matrix per model, and error maps.
"""

from __future__ import annotations

import streamlit as st

from seg_core.palette import colorize
from seg_core.registry import ARCH_NAMES
from seg_core.viz import error_map
from ui import common
from ui.figures import confusion_figure

st.title("Against the ground truth")
pred = common.predictor()
common.show_missing(pred)

common.scene_from_query()
scene = common.current_scene()
if scene is None or scene.label is None:
    st.info("This page needs a scene with a label: pick a validation scene below, or upload a "
            "photo | label pair (twice as wide as high) on the Compare page."
            + (f" The current image, {scene.name}, has no label." if scene else ""))
    common.gallery_picker()
    scene = common.current_scene()
    if scene is None or scene.label is None:
        st.stop()

st.subheader(scene.name)
preds = common.predictions(scene) if pred.models else {}
common.show_images([("Ground truth", colorize(scene.label))]
                   + [(common.model_title(n), colorize(preds[n].mask) if n in preds else None) for n in ARCH_NAMES],
                   nearest=True)
if not preds:
    st.stop()

scores = {name: common.image_metrics(p.mask, scene.label) for name, p in preds.items()}
st.markdown("#### Scores on this image")
st.dataframe([common.metrics_row(n, m) for n, (m, _) in scores.items()], hide_index=True,
             column_config={k: st.column_config.NumberColumn(format="%.3f") for k in ("pixel acc", "class acc", "mIoU")},
             key="gt_scores")

st.markdown("#### Error maps")
st.caption("green: right, red: wrong, gray: ignored (void or unreadable label colour)")
common.show_images([(f"{common.model_title(n)}: {scores[n][0]['pixel_acc']:.1%} right", error_map(p.mask, scene.label))
                    for n, p in preds.items()], nearest=True)

st.markdown("#### Confusion matrices (rows: truth, normalised)")
only_present = st.checkbox("Only classes present in this image", value=True, key="gt_only_present")
for name, (_, mat) in scores.items():
    st.plotly_chart(confusion_figure(mat, common.model_title(name), only_present=only_present),
                    key=f"gt_confusion_{name}")
