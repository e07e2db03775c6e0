"""Charts of both apps: confusion heatmaps (one model, or the difference of two), IoU bars, a video's flicker.

Plotly figures only (no Streamlit), so they are built and tested without a page, and the Gradio
app draws the same ones.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from seg_core.palette import CLASS_NAMES
from seg_core.registry import display_name, model_color

from .scenes import present_classes, row_normalize

#: Colour scales of the confusion heatmaps: ``sqrt`` (default) and ``log`` make confusions of a few
#: percent visible beside a 95 % diagonal.
SCALES = ("sqrt", "log", "linear")
#: Shares printed in the cells from this size up; smaller ones are on hover only.
PRINT_MIN = 0.03
_TICKS = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0)
_LOG_FLOOR = 1e-3


def _scaled(share: np.ndarray, scale: str) -> tuple[np.ndarray, dict]:
    """``share`` mapped for the colours of ``scale`` and the colour bar ticks in share units."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of {SCALES}")
    ticks = np.array(_TICKS)
    if scale == "sqrt":
        f = np.sqrt
    elif scale == "log":
        ticks = ticks[1:]
        f = lambda v: np.log10(np.maximum(v, _LOG_FLOOR))  # noqa: E731
    else:
        f = lambda v: v  # noqa: E731
    bar = {"tickvals": f(ticks).tolist(), "ticktext": [f"{t:.0%}" for t in ticks]}
    return f(share), bar


def class_subset(*confusions: np.ndarray, only_present: bool = True) -> np.ndarray:
    """Class indices to draw: those present (truth or prediction) in any matrix, or all."""
    n = len(confusions[0])
    if not only_present:
        return np.arange(n)
    keep = np.unique(np.concatenate([present_classes(m) for m in confusions]))
    return keep if len(keep) else np.arange(n)


def _layout(fig: go.Figure, title: str, n: int) -> go.Figure:
    fig.update_layout(title=title, xaxis_title="predicted", yaxis_title="truth", height=380 + 16 * n,
                      margin={"l": 10, "r": 10, "t": 40, "b": 10})
    fig.update_xaxes(tickangle=-45, automargin=True)
    fig.update_yaxes(autorange="reversed", automargin=True)
    return fig


def confusion_figure(confusion: np.ndarray, title: str, class_names: tuple[str, ...] = CLASS_NAMES,
                     only_present: bool = True, scale: str = "sqrt", keep: np.ndarray | None = None) -> go.Figure:
    """Row-normalised confusion matrix (rows: truth, columns: prediction): shares of at least
    ``PRINT_MIN`` printed in their cells, share and pixel count on hover, colours on ``scale``.
    ``keep`` fixes the classes drawn (e.g. the same for every model of a set of tabs)."""
    mat = np.asarray(confusion, dtype=np.int64)
    if keep is None:
        keep = class_subset(mat, only_present=only_present)
    sub = mat[np.ix_(keep, keep)]
    share = row_normalize(sub)
    z, bar = _scaled(share, scale)
    names = [class_names[i] for i in keep]
    text = np.where(share >= PRINT_MIN, np.vectorize(lambda v: f"{v:.0%}")(share), "")
    fig = go.Figure(go.Heatmap(
        z=z, x=names, y=names, customdata=np.dstack([share, sub]), colorscale="Blues",
        zmin=float(np.min(bar["tickvals"])), zmax=float(np.max(bar["tickvals"])),
        text=text, texttemplate="%{text}", textfont={"size": 10},
        colorbar={"title": "share of row", **bar},
        hovertemplate="truth %{y}<br>predicted %{x}<br>share of row %{customdata[0]:.2%}"
                      "<br>pixels %{customdata[1]:,}<extra></extra>",
    ))
    return _layout(fig, title, len(keep))


def confusion_difference_figure(a: np.ndarray, b: np.ndarray, title: str, class_names: tuple[str, ...] = CLASS_NAMES,
                                only_present: bool = True) -> go.Figure:
    """Row-normalised confusion of model A minus that of model B, in percentage points: blue where
    A puts more of a true class, red where B does; on the diagonal, blue means A is right more often."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    keep = class_subset(a, b, only_present=only_present)
    diff = row_normalize(a[np.ix_(keep, keep)]) - row_normalize(b[np.ix_(keep, keep)])
    names = [class_names[i] for i in keep]
    top = max(0.05, float(np.abs(diff).max()))
    text = np.where(np.abs(diff) >= PRINT_MIN, np.vectorize(lambda v: f"{100 * v:+.0f}")(diff), "")
    fig = go.Figure(go.Heatmap(
        z=diff, x=names, y=names, colorscale="RdBu", zmid=0, zmin=-top, zmax=top,
        text=text, texttemplate="%{text}", textfont={"size": 10},
        colorbar={"title": "A − B (points)", "tickformat": "+.0%"},
        hovertemplate="truth %{y}<br>predicted %{x}<br>A − B %{z:+.2%}<extra></extra>",
    ))
    return _layout(fig, title, len(keep))


def iou_figure(ious: dict[str, dict[str, float]], class_names: tuple[str, ...] = CLASS_NAMES) -> go.Figure:
    """Grouped bars of per-class IoU, one group per class and one colour per model."""
    fig = go.Figure()
    for name, iou in ious.items():
        values = [iou.get(c, float("nan")) for c in class_names]
        fig.add_trace(go.Bar(name=display_name(name), x=list(class_names), y=values,
                             marker_color=model_color(name, tuple(ious)),
                             hovertemplate="%{x}: IoU %{y:.3f}<extra>" + display_name(name) + "</extra>"))
    fig.update_layout(barmode="group", yaxis={"title": "IoU", "range": [0, 1]}, height=460,
                      margin={"l": 10, "r": 10, "t": 30, "b": 10}, legend={"orientation": "h", "y": 1.08})
    # Whole class names, slanted; automargin grows the bottom margin instead of clipping them.
    fig.update_xaxes(tickangle=-45, automargin=True)
    return fig


def flicker_figure(rows: list[dict], names: tuple[str, ...]):
    """A plotly figure of the disagreement and each model's flicker over the segmented frames; each
    point carries its frame index as ``customdata`` (both apps jump to the clicked frame). A model's
    motion-compensated line (dotted) shares its legend entry, so that the legend stays one short row
    or two on a phone (it was seven rows, taller than the chart); hovering names each line whole."""
    fig = go.Figure()
    shown = [r for r in rows if r["segmented"]]
    frames, times = [r["frame"] for r in shown], [r["time_s"] for r in shown]
    if len(names) > 1:
        fig.add_scatter(x=times, y=[r["disagreement"] for r in shown], customdata=frames, name="disagreement",
                        mode="lines+markers", line={"color": "magenta"})
    for n in names:
        in_legend = False
        for column, dash, label in ((f"flicker_{n}", "solid", "flicker"),
                                    (f"flicker_flow_{n}", "dot", "flicker, motion-compensated")):
            ys = [r[column] if r[column] != "" else None for r in shown]
            if any(y is not None for y in ys):
                fig.add_scatter(x=times, y=ys, customdata=frames, name=f"{display_name(n)} {label}",
                                mode="lines+markers", line={"dash": dash, "color": model_color(n, names)},
                                legendgroup=n, showlegend=not in_legend)
                in_legend = True
    fig.update_layout(xaxis_title="time (s)", yaxis_title="share of pixels", yaxis_tickformat=".0%", height=380,
                      margin={"t": 30, "b": 40, "l": 50, "r": 10},  # (plotly: 80 px each side, half a phone)
                      legend={"orientation": "h", "y": -0.25, "title": {"text": "dotted: motion-compensated", "side": "top"}})
    return fig
