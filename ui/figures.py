"""Charts of the app: confusion heatmaps and IoU bars.

Plotly figures only (no Streamlit), so they are built and tested without a page.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from seg_core.palette import CLASS_NAMES
from seg_core.registry import display_name

from .scenes import present_classes, row_normalize


def confusion_figure(confusion: np.ndarray, title: str, class_names: tuple[str, ...] = CLASS_NAMES,
                     only_present: bool = True) -> go.Figure:
    """Row-normalised confusion matrix (rows: truth, columns: prediction) with counts on hover."""
    mat = np.asarray(confusion, dtype=np.int64)
    keep = present_classes(mat) if only_present else np.arange(len(mat))
    if len(keep) == 0:
        keep = np.arange(len(mat))
    sub = mat[np.ix_(keep, keep)]
    share = row_normalize(sub)
    names = [class_names[i] for i in keep]
    fig = go.Figure(go.Heatmap(
        z=share, x=names, y=names, customdata=sub, zmin=0, zmax=1, colorscale="Blues",
        colorbar={"title": "share of row"},
        hovertemplate="truth %{y}<br>predicted %{x}<br>share of row %{z:.1%}<br>pixels %{customdata}<extra></extra>",
    ))
    fig.update_layout(title=title, xaxis_title="predicted", yaxis_title="truth", height=360 + 14 * len(keep),
                      margin={"l": 10, "r": 10, "t": 40, "b": 10})
    fig.update_yaxes(autorange="reversed")
    return fig


def iou_figure(ious: dict[str, dict[str, float]], class_names: tuple[str, ...] = CLASS_NAMES) -> go.Figure:
    """Grouped bars of per-class IoU, one group per class and one colour per model."""
    fig = go.Figure()
    for name, iou in ious.items():
        values = [iou.get(c, float("nan")) for c in class_names]
        fig.add_trace(go.Bar(name=display_name(name), x=list(class_names), y=values,
                             hovertemplate="%{x}: IoU %{y:.3f}<extra>" + display_name(name) + "</extra>"))
    fig.update_layout(barmode="group", yaxis={"title": "IoU", "range": [0, 1]}, height=420,
                      margin={"l": 10, "r": 10, "t": 30, "b": 10}, legend={"orientation": "h"})
    return fig
