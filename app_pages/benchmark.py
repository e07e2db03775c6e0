"""Benchmark page: whole-val metrics of the shipped models, per-class IoU, size and CPU latency.

The metrics come from the checkpoints (recorded at the end of training) and can be recomputed on
the val folder on demand; recomputing also scores the ensemble beside the three models and gives
the confusion matrices.
"""

from __future__ import annotations

import streamlit as st

from seg_core import examples
from seg_core.data import DataError, list_pairs
from ui import common
from ui.figures import SCALES, iou_figure

st.title("Benchmark")
pred = common.predictor()
common.show_missing(pred)
if not pred.models:
    st.stop()

weights = common.weights_key()
recorded = {n: dict(m.config.metrics or {}) for n, m in pred.models.items()}  # saved with each model's config

# On a Space the labelled folder is the 16 KITTI scenes: say so wherever their figures appear.
kitti = common.settings.is_examples(common.data_dir())
if common.settings.public_mode() and not kitti:
    # A pass over a whole val folder holds both cores for minutes: not something any visitor may start.
    st.caption("Recomputing the metrics on the validation folder is not offered here; the figures below "
               "were recorded at the end of training.")
else:
    st.markdown("#### Recompute on the 16 KITTI example scenes" if kitti else "#### Recompute on the validation folder")
    limit = st.number_input("Images (0 = all)", min_value=0, value=0, step=50, key="bench_limit",
                            help="Every model and the ensemble, with the backends the app runs; the whole val "
                                 "split takes minutes on a CPU.")
    if st.button("Recompute metrics", key="bench_recompute"):
        try:
            st.session_state["bench_results"] = (weights, common.evaluate_with_progress(pred, common.data_dir(),
                                                                                        int(limit)))
        except DataError as err:
            st.error("Cannot read the validation folder" + ("." if common.settings.public_mode() else f": {err}."))
fresh_for, fresh = st.session_state.get("bench_results", (None, {}))
fresh = fresh if fresh_for == weights else {}

# The ensemble has no checkpoint to record its metrics: it appears once they are recomputed.
metrics = {n: fresh[n][0] if n in fresh else recorded[n] for n in pred.models} | {
    n: fresh[n][0] for n in fresh if n not in pred.models}
backends = pred.backends()
kinds = ", ".join(sorted(set(backends.values())))
n_fresh = next(iter(fresh.values()))[0]["images"] if fresh else 0
try:
    whole = n_fresh == len(list_pairs(common.data_dir()))
except DataError:
    whole = False
data = "KITTI example scenes" if kitti else "val images"


def computed(name: str) -> str:
    """With which backend, on what data: the app's own run here, or the checkpoint's record."""
    if name in fresh:
        return f"{backends.get(name, 'mean of the members, ' + kinds)}, {n_fresh} {data}"
    return "PyTorch fp32, the whole Cityscapes val split, recorded in the checkpoint"


if not fresh:
    st.markdown("#### Whole-val metrics, recorded in the checkpoints")
    st.caption(f"Whole Cityscapes val, as the checkpoints recorded them (PyTorch fp32, at the end of training or, "
               f"for a weight-space mix, by `train_cli.py eval --record`); "
               f"the app runs {kinds}: recompute to score what it runs.")
else:
    st.markdown(f"#### Metrics on the {n_fresh} KITTI example scenes" if kitti else
                f"#### Whole-val metrics ({n_fresh} images)" if whole else f"#### Metrics on the first {n_fresh} val images")
    st.caption(f"Recomputed just now {'on the KITTI example scenes' if kitti else 'on the val folder'} with the app's "
               f"models ({kinds}).")
    if kitti:
        st.info(examples.SMALL_SET)
        st.caption(examples.CREDIT)
rows = [common.metrics_row(n, m, computed(n)) for n, m in metrics.items() if m]
if rows:
    st.dataframe(rows, hide_index=True, key="bench_metrics",
                 column_config={k: st.column_config.NumberColumn(format="%.3f") for k in ("pixel acc", "class acc", "mIoU")})
    ious = {n: m["iou"] for n, m in metrics.items() if m.get("iou")}
    if ious:
        st.markdown("#### IoU per class")
        st.plotly_chart(iou_figure(ious), key="bench_iou")
for name in (n for n, m in metrics.items() if not m):
    st.caption(f"{common.model_title(name)}: no metrics recorded in its checkpoint; recompute them above.")

st.markdown("#### Size and speed")
facts = [common.model_facts(weights, n) for n in pred.models]
st.dataframe(facts, hide_index=True, key="bench_facts")
st.caption(f"Forward pass alone, at each model's input size, measured here as `benchmarks/bench_inference.py` does: "
           f"one warm-up run, then the median of {common.LATENCY_REPEATS} runs, in whole milliseconds, on the backend "
           f"named and {facts[0]['threads']} CPU threads; measured again after an hour. docs/benchmarks.md has the "
           "end-to-end times of a whole upload.")

st.markdown("#### Confusion matrices (rows: truth, normalised)")
if not fresh:
    st.caption("Recompute the metrics to see them.")
else:
    mats = {n: mat for n, (_, mat) in fresh.items()}
    scale = st.segmented_control("Colour scale", SCALES, default=SCALES[0], required=True, key="bench_scale",
                                 help="sqrt and log make confusions of a few percent visible beside the diagonal")
    common.confusion_tabs(mats, "bench_confusion", scale, only_present=False)
