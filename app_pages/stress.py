"""Stress test page: one photo darkened, fogged, snowed on, blurred, noised or JPEG-damaged at a
chosen severity (the corruption benchmark's definitions), the three models' masks and the
ensemble's side by side, each model's mIoU when the scene has a ground truth, and the benchmark's
mIoU-vs-severity curves with this photo's point marked. Results are cached per (photo, corruption,
severity), so moving back to a severity already seen redraws without running a model.
"""

from __future__ import annotations

import time

import streamlit as st

from seg_core.serve.stress import StressService
from ui import common, pickers
from ui.robustness import read_summary, severity_figure
from ui.stress import CORRUPTION_CHOICES, MAX_SEVERITY, caption, miou_rows, order, title
from ui.views import data_url, image_grid_html, mask_data_url

t0 = time.perf_counter()
st.title("Stress test")
st.markdown("How do the models hold up when the photo is darker, foggy, blurred, noisy or JPEG-damaged? "
            "Pick a corruption and move the severity: the same definitions as the corruption benchmark "
            "(ImageNet-C, as Cityscapes-C uses them).")
pred = common.predictor()
common.show_missing(pred)
if not pred.models:
    st.stop()
pickers.scene_picker()
scene = common.current_scene()
if scene is None:
    st.stop()


@st.cache_resource(max_entries=4, show_spinner=False)  # one service per set of weights: its cache is shared by all sessions
def stress_service(weights: str) -> StressService:
    return StressService(common.load_service(weights).predictor)  # the pages' own models, loaded once


@st.cache_data(max_entries=4, show_spinner=False)  # a small JSON file, read again when the weights change
def benchmark_summary(weights: str) -> dict | None:
    return read_summary(weights.split("|", 1)[0])


left, right = st.columns([1, 2])
with left:
    label = st.selectbox("Corruption", list(CORRUPTION_CHOICES), key="stress_corruption")
with right:
    severity = st.slider("Severity (0 = the photo as it is)", 0, MAX_SEVERITY, 3, key="stress_severity")
corruption = CORRUPTION_CHOICES[label]
weights = common.weights_key()
with st.spinner("Corrupting and segmenting…"):
    view = stress_service(weights).view(scene.key, scene.photo, scene.label, corruption, severity)



@st.cache_data(max_entries=64, show_spinner=False)  # six pictures as data URLs: under 200 kB
def grid_html(weights: str, scene_key: str, corruption: str, severity: int, _view) -> str:
    """The picture grid, encoded once per view: a redraw from the cache then encodes nothing."""
    items = [(f"Photo: {title(corruption, severity)}", data_url(_view.photo))]
    if _view.label is not None:
        items.append(("Ground truth", mask_data_url(_view.label)))
    items += [(caption(n, _view), mask_data_url(_view.predictions[n].mask)) for n in order(_view)]
    return image_grid_html(items)


st.html(grid_html(weights, scene.key, corruption, severity, view))


# Building a plotly figure (its validation) costs 50-100 ms on a busy machine: once per view. A
# resource, not data: st.plotly_chart only reads it, and a Figure is not copied on each rerun.
@st.cache_resource(max_entries=64, show_spinner=False)
def figure(weights: str, scene_key: str, corruption: str, severity: int, _summary: dict, _miou: dict):
    return severity_figure(_summary, corruption, current=(severity, _miou))


summary = benchmark_summary(weights)
if summary is None:
    st.caption("No benchmark results beside these weights: `python -m benchmarks.corruption_bench --summary "
               "WEIGHTS/corruption_bench.json` writes them.")
else:
    st.plotly_chart(figure(weights, scene.key, corruption, severity, summary, view.miou), key="stress_figure")
    st.caption("Lines: mIoU over the benchmark's images (whole-split confusion matrices). Diamonds: this photo's "
               "mIoU (per-image rule), when it has a ground truth.")
if view.miou:
    st.dataframe(miou_rows(view), hide_index=True, key="stress_miou")
elif scene.label is None:
    st.caption("This photo has no ground truth, so there is no mIoU to show; pick an example scene for one.")
computed = f"computed in {view.seconds * 1000:.0f} ms, " if view.seconds else "from the cache, "
st.caption(f"{computed}page drawn in {(time.perf_counter() - t0) * 1000:.0f} ms on the server")
