"""Is the difference real? Confidence and paired bootstrap intervals of the models over val.

Per model and for the ensemble: val mIoU, how well its confidence tells right pixels from wrong
ones (AUROC), its calibration error (ECE) with a reliability diagram; then the paired bootstrap of
every pair's mIoU difference, overall and per class, saying which differences are within noise.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from seg_core import settings
from seg_core.analysis import miou_of
from ui import explore, val_analysis

pred, folder = val_analysis.open_page("Is the difference real?", "This page")
tta = val_analysis.folder_tta(pred, folder, ("scores", "confidence"))
scores, _ = val_analysis.scores(pred, folder, tta)
conf, _ = val_analysis.confidence(pred, folder, tta)
models = scores["models"]
n_images = len(scores["images"])

kitti = settings.is_examples(folder)
st.markdown(f"#### The models over {'the KITTI example scenes' if kitti else 'the validation folder'} ({n_images} images)")
backends = pred.backends()
rows = []
for name in models:
    total = scores["matrices"][name].sum(0)
    stats = conf["stats"].get(name, {})
    # The scores before the long backend column: on a phone the table scrolls, and they came into view last.
    rows.append({"model": explore.title(name), "mIoU": float(miou_of(total)),
                 "pixel acc": float(np.trace(total) / max(1, total.sum())),
                 "AUROC of confidence": stats.get("auroc"), "ECE": stats.get("ece"),
                 "backend": backends.get(name, "mean of the members")})
st.dataframe(rows, hide_index=True, key="analysis_models",
             column_config={k: st.column_config.NumberColumn(format="%.4f") for k in rows[0] if k not in ("model", "backend")})
st.caption(f"{n_images} images, segmented by the models the app runs (so an mIoU may differ a little from the "
           "Benchmark page's, recorded in PyTorch fp32 at training). Confidence is the top-1 class probability. AUROC: the chance that a right "
           "pixel is more confident than a wrong one (0.5: the confidence knows nothing, 1: it separates them "
           "perfectly). ECE: how far, on average over pixels, the confidence is from the share of right pixels "
           "at that confidence (0: calibrated). The ensemble's weights (`weights/ensemble.json`) were chosen on "
           + ("half of the Cityscapes val images, not on these scenes." if kitti else
              "half of these images, so its row here is slightly optimistic; docs/analysis.md gives its held-out figure."))

st.markdown("#### Reliability diagram")
st.plotly_chart(explore.reliability_figure(conf), key="analysis_reliability")
st.caption("A calibrated model lies on the diagonal; below it, the model is over-confident.")

st.markdown("#### Is each difference real? (paired bootstrap)")
if len(models) < 2:
    st.info("Needs at least two models.")
    st.stop()
pairs = val_analysis.pair_differences(val_analysis.scores_key(folder, tta), scores)
table = explore.pair_table(pairs)
st.dataframe(table, hide_index=True, key="analysis_pairs",
             column_config={k: st.column_config.NumberColumn(format="%+.4f") for k in ("mIoU difference", "95 % interval from", "to")})
real = table[table["verdict"] == "real"]["pair"].tolist()
noise = table[table["verdict"] == "within noise"]["pair"].tolist()
st.markdown(("**Real:** " + "; ".join(real) + ". " if real else "")
            + ("**Within noise:** " + "; ".join(noise) + "." if noise else "No difference is within noise."))
st.caption(f"The {n_images} images are resampled {pairs[0]['n_boot']} times with replacement; each resample "
           "scores both models on the same images, so how hard an image is cancels out. A difference is real "
           "when its 95 % interval does not contain 0.")

labels = [f"{explore.title(p['a'])} − {explore.title(p['b'])}" for p in pairs]
chosen = st.selectbox("Per class, for the pair", range(len(pairs)), format_func=labels.__getitem__, key="analysis_pair")
st.plotly_chart(explore.class_difference_figure(pairs[chosen]), key="analysis_class_pair")
st.caption("Bars: the IoU difference of each class; whiskers: its 95 % interval; grey: within noise.")
with st.expander("Per-class table"):
    st.dataframe(explore.class_pair_table(pairs[chosen]), hide_index=True, key="analysis_class_table",
                 column_config={k: st.column_config.NumberColumn(format="%+.4f") for k in ("IoU difference", "95 % interval from", "to")})
