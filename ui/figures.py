"""Charts and small HTML pieces of the app: confusion heatmaps, IoU bars, the class legend.

Plotly figures and HTML strings only (no Streamlit), so they are built and tested without a page.
"""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go

from seg_core.palette import CLASS_NAMES
from seg_core.predictor import DISPLAY_NAMES
from seg_core.viz import legend

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
        fig.add_trace(go.Bar(name=DISPLAY_NAMES.get(name, name), x=list(class_names), y=values,
                             hovertemplate="%{x}: IoU %{y:.3f}<extra>" + DISPLAY_NAMES.get(name, name) + "</extra>"))
    fig.update_layout(barmode="group", yaxis={"title": "IoU", "range": [0, 1]}, height=420,
                      margin={"l": 10, "r": 10, "t": 30, "b": 10}, legend={"orientation": "h"})
    return fig


def legend_rows(masks: dict[str, np.ndarray]) -> list[dict]:
    """One row per class present in any mask: colour, name and pixel share in each mask."""
    rows: dict[int, dict] = {}
    for model, mask in masks.items():
        for entry in legend(mask):
            row = rows.setdefault(entry["id"], {"id": entry["id"], "name": entry["name"],
                                                "color": entry["color"], "share": {}})
            row["share"][model] = entry["share"]
    return sorted(rows.values(), key=lambda r: -max(r["share"].values()))


def share_text(share: float) -> str:
    """A pixel share for people: "12.3%", "<0.1%" for a sliver, "–" for none."""
    if share <= 0:
        return "–"
    return "<0.1%" if share < 0.001 else f"{share:.1%}"


def legend_html(masks: dict[str, np.ndarray]) -> str:
    """The legend as an HTML table with colour swatches; columns are the masks' names."""
    if not masks:
        return ""
    head = "".join(f"<th style='text-align:right;padding:2px 8px'>{html.escape(m)}</th>" for m in masks)
    body = []
    for row in legend_rows(masks):
        swatch = (f"<span style='display:inline-block;width:14px;height:14px;background:{row['color']};"
                  "border:1px solid #888;vertical-align:middle;margin-right:6px'></span>")
        cells = "".join(f"<td style='text-align:right;padding:2px 8px'>{share_text(row['share'].get(m, 0.0))}</td>"
                        for m in masks)
        body.append(f"<tr><td style='padding:2px 8px'>{swatch}{html.escape(row['name'])}</td>{cells}</tr>")
    return (f"<table style='border-collapse:collapse;font-size:0.9em'><tr><th style='text-align:left;"
            f"padding:2px 8px'>class</th>{head}</tr>{''.join(body)}</table>")
