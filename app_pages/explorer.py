"""Val explorer: where do the models differ? Every val image scored by every model and the ensemble.

A sortable table of per-image scores with shortcuts (hardest scenes, largest disagreement, where
one architecture beats another most), a scatter of one model's per-image mIoU against another's,
per-class IoU per model, and the confusions that differ most between two models. Clicking a row
or a point opens that scene in a dialog with the interactive viewer (and on the other pages).
A first visit to a folder streams: the table fills a chunk of images at a time (with how many are
scored so far), and the charts follow once every image is scored and cached.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from seg_core.data import DataError
from seg_core.folder_scores import score_names
from ui import common, downloads, explore, pickers, val_analysis
from ui.figures import iou_figure
from ui.scenes import display_scale, scene_from_file
from ui.viewer import mask_viewer

PICK = "explorer_pick"
pred, folder = val_analysis.open_page("Val explorer", "The val explorer")
pickers.scene_from_query()  # ?scene=12.jpg opens that scene
tta = val_analysis.folder_tta(pred, folder, ("scores",))
models = score_names(pred)
summary = st.empty()  # while a first visit scores: how many images so far; then what scored them


def _pick(name: str) -> None:
    st.session_state[PICK] = name


def _on_table() -> None:
    rows = st.session_state["explorer_table"].selection.rows
    if rows:
        _pick(st.session_state["_explorer_shown"][rows[0]])


def _on_scatter() -> None:
    points = st.session_state["explorer_scatter"].selection.points
    if not points:
        return
    name = points[0].get("customdata")
    name = name[0] if isinstance(name, list) and name else name
    if not name and points[0].get("curve_number") == 0:  # the images, in the frame's order
        name = st.session_state["_explorer_images"][points[0]["point_index"]]
    if name:
        _pick(str(name))


# --- per-image table ------------------------------------------------------------------------------
st.markdown("#### Per-image scores")
shortcuts = ["By name"] + [s for s in explore.SHORTCUTS
                           if "beats" not in s or {"unet", "fcn_resnet50"} <= set(models)]
kind = st.segmented_control("Shortcut", shortcuts, default=shortcuts[0], key="explorer_shortcut") or shortcuts[0]
table_slot = st.empty()


def _sorted(frame):
    return frame if kind == "By name" else explore.shortcut(frame, kind, models)


def _numbers(table) -> dict:
    return {c: st.column_config.NumberColumn(format="%.3f") for c in table.columns if c != "image"}


_chunks = []  # a first visit's rows, a chunk of images at a time


def _show_part(part: dict) -> None:
    """A first visit: the rows scored so far, sorted as asked, while the rest are scored."""
    _chunks.append(explore.scores_frame(part["chunk"]))
    table = _sorted(pd.concat(_chunks, ignore_index=True))
    table_slot.dataframe(table, hide_index=True, height=320, column_config=_numbers(table))


scores, seconds = val_analysis.scores(pred, folder, tta, slot=summary, on_part=_show_part)
frame = explore.scores_frame(scores)
models = scores["models"]
summary.caption(f"{len(frame)} images of {val_analysis.folder_name(folder)}, scored by {', '.join(map(explore.title, models))} "
                f"({', '.join(sorted(set(pred.backends().values())))}) "
                + ("(read from the cache)" if scores["cached"] else f"in {seconds:.0f} s (cached for the next visit)")
                + ". mIoU per image counts only the classes present in the label or the mask.")
table = _sorted(frame)
st.session_state["_explorer_shown"] = list(table["image"])
st.session_state["_explorer_images"] = list(frame["image"])
table_slot.dataframe(table, hide_index=True, height=320, column_config=_numbers(table), on_select=_on_table,
                     selection_mode="single-row", key="explorer_table")
st.caption("Click a row to open the scene. Sort by any column with its header.")

# --- scatter --------------------------------------------------------------------------------------
st.markdown("#### One model against another, image by image")
left, right = st.columns(2)
default_x = models.index("fcn_resnet50") if "fcn_resnet50" in models else 0
x_model = left.selectbox("Horizontal", models, index=default_x, format_func=explore.title, key="explorer_x")
y_model = right.selectbox("Vertical", models, index=models.index("unet") if "unet" in models else min(1, len(models) - 1),
                          format_func=explore.title, key="explorer_y")
st.plotly_chart(explore.scatter_figure(frame, x_model, y_model), key="explorer_scatter", on_select=_on_scatter,
                selection_mode="points")
st.caption("Click a point to open that scene; colour: the share of pixels where the three models disagree.")

# --- the selected scene ---------------------------------------------------------------------------
# A picked scene opens in a dialog over the page, where the click was: below the scatter it
# opened some 1,400 px under a click in the table.
OPENED, DIALOG = "_explorer_opened", "_explorer_dialog"  # the scene last opened; whether its dialog is open


def _dismissed() -> None:
    st.session_state[DIALOG] = False


@st.dialog("Scene", width="large", on_dismiss=_dismissed)
def scene_dialog() -> None:
    scene = common.current_scene()
    head, go_compare = st.columns([4, 1])
    row = frame[frame["image"] == scene.name]
    head.markdown(f"**{scene.name}**" + ("" if not row.empty else " (not in the validation folder)"))
    if not row.empty:
        head.caption(" · ".join(f"{explore.title(n)} mIoU {row.iloc[0][f'{explore.title(n)} mIoU']:.3f}" for n in models)
                     + f" · disagreement {row.iloc[0]['disagreement']:.1%}")
    if go_compare.button("Open in Compare", key="explorer_to_compare", width="stretch"):
        st.switch_page("app_pages/compare.py")
    # An upload brought from Compare may have 40 MP: its masks and confidence maps (800 MB at full
    # size, cached) are made at screen size, as Compare's are; a val scene is small and unchanged.
    photo = scene.screen_photo()
    label = display_scale(scene.label, nearest=True) if scene.label is not None else None
    preds = common.predictions(scene, photo, own=False)
    if photo.shape != scene.shape:
        st.caption(f"Shown and downloaded here at screen size ({photo.shape[1]}x{photo.shape[0]}); Compare "
                   f"downloads the masks at the photo's {scene.shape[1]}x{scene.shape[0]}.")
    mask_viewer(photo, preds, label, key="explorer_viewer",
                scene_id=f"{common.weights_key()}|{scene.key}|{photo.shape}|{common.tta()}")
    # Downloads are made when clicked (a callable): PNG-encoding them on every rerun costs half a second.
    stem = scene.name.rsplit(".", 1)[0]
    st.download_button("Download everything for this scene (ZIP: overlays, masks, confidence maps, scores)",
                       lambda: downloads.scene_zip(scene.name, photo, preds, label), f"{stem}_analysis.zip",
                       "application/zip", key="explorer_zip", on_click="ignore")
    for col, (name, p) in zip(st.columns(len(preds)), preds.items()):
        col.download_button(f"{explore.title(name)}: overlay", lambda p=p: downloads.overlay_png(photo, p.mask),
                            f"{stem}_{name}_overlay.png", "image/png", key=f"explorer_dl_overlay_{name}", on_click="ignore")
        if p.model_confidence is not None:
            col.download_button(f"{explore.title(name)}: confidence", lambda p=p: downloads.confidence_png(p.confidence),
                                f"{stem}_{name}_confidence.png", "image/png", key=f"explorer_dl_conf_{name}",
                                on_click="ignore")


picked = st.session_state.get(PICK)
if picked:
    current = common.current_scene()
    if current is None or current.name != picked or current.source != "gallery":
        try:
            common.set_scene(scene_from_file(folder / picked))
        except DataError as err:
            st.error(f"Cannot open {picked}: {err}.")
scene = common.current_scene()
st.markdown("#### The scene")
if scene is None:
    st.info("Click a row of the table or a point of the scatter to open a scene.")
else:
    st.markdown(f"**{scene.name}** is the scene of every page.")
    shown = st.button(f"Show {scene.name}", key="explorer_show")
    if shown or st.session_state.get(DIALOG) or (picked and st.session_state.get(OPENED) != picked):
        st.session_state[OPENED], st.session_state[DIALOG] = picked, True
        scene_dialog()

# --- whole folder ---------------------------------------------------------------------------------
st.markdown("#### IoU per class, whole folder")
iou_chart = iou_figure(explore.class_ious(scores))
iou_chart.for_each_trace(lambda t: t.update(name=explore.title(t.name),  # "ensemble" → "All three (averaged)"
                                            hovertemplate=t.hovertemplate.replace(">ensemble<", ">All three (averaged)<")))
st.plotly_chart(iou_chart, key="explorer_iou")

st.markdown("#### The confusions that differ most between two models")
left, right = st.columns(2)
a = left.selectbox("Model A", models, index=models.index(y_model), format_func=explore.title, key="explorer_a")
b = right.selectbox("Model B", models, index=models.index(x_model), format_func=explore.title, key="explorer_b")
diff = explore.confusion_differences(scores["matrices"][a].sum(0), scores["matrices"][b].sum(0))
st.dataframe(diff, hide_index=True, key="explorer_confusions",
             column_config={c: st.column_config.NumberColumn(format="%.3f") for c in ("A share", "B share", "A − B")})
st.caption(f"Share: of the pixels labelled with the truth class, those predicted as the other class. "
           f"A − B > 0: {explore.title(a)} makes this mistake more often than {explore.title(b)}.")
