"""Ground-truth page: the selected scene's photo and label beside the three predictions, scored.

Needs a scene with a label (a val pair, or an uploaded photo | label pair): per-model pixel
accuracy and mIoU on that image under the per-image rule of ``seg_core.metrics.image_scores``,
error maps, and row-normalised confusion matrices in tabs, with a difference view of two models.
"""

from __future__ import annotations

import streamlit as st

from seg_core.metrics import IMAGE_SCORE_RULE, scored_label
from seg_core.viz import ERROR_CAPTION, error_map
from ui import common, extra, pickers
from ui.figures import SCALES
from ui.scenes import display_scale
from ui.views import data_url, image_grid_html, mask_data_url

#: Pictures at least this wide, as on Compare: three a row at 1440 px (six in a row were ~200 px).
GRID_MIN = 400

st.title("Against the ground truth")
pred = common.predictor()
common.show_missing(pred)

pickers.scene_from_query()
scene = common.current_scene()
if scene is None or scene.label is None:
    st.info("This page needs a scene with a label: pick a labelled scene below, or upload a "
            "photo | label pair (twice as wide as high) on the Compare page."
            + (f" The current image, {scene.name}, has no label." if scene else ""))
    pickers.gallery_picker()
    scene = common.current_scene()
    if scene is None or scene.label is None:
        st.stop()

st.subheader(scene.name)
extra.manager()
preds = common.predictions(scene)
st.html(image_grid_html([("Photo", data_url(scene.screen_photo())),
                         ("Ground truth", mask_data_url(display_scale(scene.label, nearest=True)))]
                        + [(common.model_title(n), mask_data_url(display_scale(preds[n].mask, nearest=True)) if n in preds else None)
                           for n in common.columns(preds)], min_width=GRID_MIN))
pickers.scene_credit(scene)
if not preds:
    st.stop()

scores = {name: common.image_metrics(p.mask, scene.label) for name, p in preds.items()}
st.markdown("#### Scores on this image", help=IMAGE_SCORE_RULE + " Whole-val metrics (Benchmark page) count every "
            "labelled pixel; docs/analysis.md has the measurements behind the rule.")
st.dataframe([common.metrics_row(n, m) for n, (m, _) in scores.items()], hide_index=True,
             column_config={k: st.column_config.NumberColumn(format="%.3f") for k in ("pixel acc", "class acc", "mIoU")},
             key="gt_scores")
skipped = next(iter(scores.values()))[0]["skipped"]
if skipped:  # the rule itself is in the heading's tooltip
    st.caption(f"Not scored here (a thin fringe of the label): {', '.join(common.CLASS_NAMES[c] for c in skipped)}.")

st.markdown("#### Error maps")
st.caption(ERROR_CAPTION)
kept = scored_label(scene.label)
st.html(image_grid_html([(f"{common.model_title(n)}: {scores[n][0]['pixel_acc']:.1%} right",
                          data_url(display_scale(error_map(p.mask, kept), nearest=True), "PNG"))
                         for n, p in preds.items()], min_width=GRID_MIN))


@st.fragment
def confusions(scores: dict) -> None:
    """The confusion matrices in tabs (one per model, and A − B); a fragment, so the switches
    redraw only the charts."""
    st.markdown("#### Confusion matrices (rows: truth, normalised)")
    left, right = st.columns(2)
    only_present = left.checkbox("Only classes present in this image", value=True, key="gt_only_present")
    scale = right.segmented_control("Colour scale", SCALES, default=SCALES[0], required=True, key="gt_scale",
                                    help="sqrt and log make confusions of a few percent visible beside the diagonal")
    mats = {n: mat for n, (_, mat) in scores.items()}
    common.confusion_tabs(mats, "gt_confusion", scale, only_present)


confusions(scores)
