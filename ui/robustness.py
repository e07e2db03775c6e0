"""Figures of the corruption benchmark (``benchmarks/corruption_bench.py``'s JSON): mIoU against
severity, a line per model, severity 0 being the clean photos.

Plotly only (no Streamlit, no Gradio), so the benchmark's HTML, the Streamlit Stress test page and
the Gradio tab draw the same figure.
"""

from __future__ import annotations

import json
from pathlib import Path

import plotly.graph_objects as go

from seg_core.registry import display_name, model_color

#: The benchmark summary an app shows, written with ``--summary`` into the weights folder.
SUMMARY_FILE = "corruption_bench.json"


def read_summary(weights_dir: str | Path) -> dict | None:
    """The weights folder's benchmark summary, or ``None`` when it has none (or it is unreadable)."""
    path = Path(weights_dir) / SUMMARY_FILE
    try:
        summary = json.loads(path.read_text())
        return summary if isinstance(summary.get("models"), dict) and summary["models"] else None
    except (OSError, ValueError, AttributeError):
        return None


def curve(model: dict, corruption: str) -> tuple[list[int], list[float]]:
    """Severities (0 = clean) and mIoU of one model's summary for one corruption."""
    sev = model["corruptions"].get(corruption, {})
    xs = [0] + sorted(int(s) for s in sev)
    return xs, [model["clean"]] + [sev[str(s)] for s in xs[1:]]


def severity_figure(summary: dict, corruption: str | None = None,
                    current: tuple[int, dict[str, float]] | None = None) -> go.Figure:
    """mIoU vs severity. With ``corruption`` one corruption is drawn, else all of them with a
    menu to pick one. ``current = (severity, {model: mIoU})`` marks the point on view in the app
    (this photo's mIoU, when it has a ground truth) with a vertical line and diamonds."""
    models = summary["models"]
    colour = {m: model_color(m, tuple(models)) for m in models}  # each model's colour on every page
    names = [corruption] if corruption else list(summary.get("corruptions") or next(iter(models.values()))["corruptions"])
    fig = go.Figure()
    for ci, cname in enumerate(names):
        for m, s in models.items():
            xs, ys = curve(s, cname)
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=display_name(m), legendgroup=m,
                                     visible=ci == 0, line={"color": colour[m]},
                                     hovertemplate=f"{display_name(m)}<br>severity %{{x}}: mIoU %{{y:.3f}}<extra>{cname}</extra>"))
    if current is not None:
        severity, points = current
        fig.add_vline(x=severity, line_dash="dot", line_color="grey")
        for m in models:
            if points.get(m) is not None:
                fig.add_trace(go.Scatter(x=[severity], y=[points[m]], mode="markers", showlegend=False,
                                         marker={"symbol": "diamond", "size": 12, "color": colour[m],
                                                 "line": {"width": 1, "color": "black"}},
                                         hovertemplate=f"{display_name(m)}, this photo: %{{y:.3f}}<extra></extra>"))
    k = len(models)
    if len(names) > 1:
        buttons = [{"label": c.replace("_", " "), "method": "update",
                    "args": [{"visible": [j // k == i for j in range(len(names) * k)]}, {"title.text": _title(summary, c)}]}
                   for i, c in enumerate(names)]
        fig.update_layout(updatemenus=[{"buttons": buttons, "x": 1.0, "xanchor": "right", "y": 1.18}])
    fig.update_layout(title=_title(summary, names[0]), xaxis={"title": "severity (0 = clean)", "dtick": 1},
                      yaxis={"title": "mIoU", "rangemode": "tozero"}, margin={"t": 70, "l": 50, "r": 20, "b": 40},
                      legend={"orientation": "h", "y": -0.2}, height=380)
    return fig


def _title(summary: dict, corruption: str) -> str:
    """Two short lines (one long one was cut at the right on a phone)."""
    return (f"{corruption.replace('_', ' ')}: mIoU on val<br><sup>{summary.get('split', '?')} half, "
            f"{summary.get('images', '?')} images, {summary.get('backend', '?')}</sup>")
