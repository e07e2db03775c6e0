"""Tables and charts of the val explorer and the "Is the difference real?" page; no Streamlit here.

Everything starts from ``seg_core.folder_scores.folder_scores`` (per image and model, a confusion
matrix) and ``seg_core.folder_confidence.folder_confidence`` (per model, AUROC, ECE, reliability
bins), so these are pure functions of cached numbers, tested without a page.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from seg_core.analysis import class_iou, miou_of, paired_bootstrap
from seg_core.palette import CLASS_NAMES
from seg_core.folder_scores import rows
from seg_core.registry import ENSEMBLE, display_name, model_color

from .scenes import row_normalize

#: The shortcuts of the explorer: (label, what the table is sorted by).
SHORTCUTS = ("Hardest scenes", "Largest disagreement", "Where U-Net beats FCN-ResNet50 most",
             "Where FCN-ResNet50 beats U-Net most")


def title(name: str) -> str:
    return display_name(name)


def scores_frame(scores: dict) -> pd.DataFrame:
    """One row per image: name, the models' disagreement, and each model's pixel accuracy and mIoU
    (``seg_core.folder_scores.rows``: the per-image rule of ``seg_core.metrics.IMAGE_SCORE_RULE``)."""
    frame = pd.DataFrame(rows(scores, CLASS_NAMES))
    return frame.rename(columns={f"{n} {k}": f"{title(n)} {k}" for n in scores["models"] for k in ("mIoU", "pixel acc")})


def progress_text(part: dict) -> str:
    """What a first visit says while the scores stream in: how many images are scored so far, and
    each model's mIoU over them (their summed confusion matrices, as the whole-folder figures)."""
    mious = " · ".join(f"{title(n)} {float(miou_of(np.asarray(part['matrices'][n]).sum(0))):.3f}"
                       for n in part["models"])
    return (f"**{part['done']} of {part['total']} images scored so far** (every model and the ensemble; once, "
            f"cached afterwards). mIoU over them: {mious}")


def mean_miou(frame: pd.DataFrame, models: list[str]) -> pd.Series:
    return frame[[f"{title(n)} mIoU" for n in models if n != ENSEMBLE]].mean(axis=1)


def shortcut(frame: pd.DataFrame, kind: str, models: list[str]) -> pd.DataFrame:
    """``frame`` sorted for a shortcut, with the column it is sorted by first after the image."""
    if kind == "Hardest scenes":
        frame = frame.assign(**{"mean mIoU of the models": mean_miou(frame, models)})
        key, ascending = "mean mIoU of the models", True
    elif kind == "Largest disagreement":
        key, ascending = "disagreement", False
    elif kind in SHORTCUTS[2:]:
        if not {"unet", "fcn_resnet50"} <= set(models):
            raise ValueError("this shortcut needs both U-Net and FCN-ResNet50")
        key = "U-Net − FCN-ResNet50 mIoU"
        frame = frame.assign(**{key: frame["U-Net mIoU"] - frame["FCN-ResNet50 mIoU"]})
        ascending = kind == SHORTCUTS[3]
    else:
        raise ValueError(f"unknown shortcut {kind!r}")
    cols = ["image", key] + [c for c in frame.columns if c not in ("image", key)]
    return frame[cols].sort_values(key, ascending=ascending, kind="stable", na_position="last").reset_index(drop=True)


def class_ious(scores: dict) -> dict[str, dict[str, float]]:
    """``{model: {class: IoU}}`` of each model's summed confusion matrix (``NaN``: absent)."""
    return {n: dict(zip(CLASS_NAMES, class_iou(np.asarray(scores["matrices"][n]).sum(0)).tolist()))
            for n in scores["models"]}


def confusion_differences(mat_a: np.ndarray, mat_b: np.ndarray, top: int = 10,
                          class_names: tuple[str, ...] = CLASS_NAMES) -> pd.DataFrame:
    """The off-diagonal confusions (truth → predicted) whose share of the truth class differs most
    between two models' summed confusion matrices, largest absolute difference first."""
    a, b = np.asarray(mat_a, np.float64), np.asarray(mat_b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"confusion matrices differ in shape: {a.shape} vs {b.shape}")
    share_a, share_b = row_normalize(a), row_normalize(b)
    diff = share_a - share_b
    np.fill_diagonal(diff, 0)
    order = np.argsort(-np.abs(diff), axis=None)[:top]
    rows = []
    for flat in order:
        t, p = np.unravel_index(flat, diff.shape)
        if diff[t, p] == 0:
            break
        rows.append({"truth": class_names[t], "predicted as": class_names[p], "A share": share_a[t, p],
                     "B share": share_b[t, p], "A − B": diff[t, p], "A pixels": int(a[t, p]), "B pixels": int(b[t, p])})
    return pd.DataFrame(rows, columns=["truth", "predicted as", "A share", "B share", "A − B", "A pixels", "B pixels"])


def pair_differences(scores: dict, n_boot: int = 2000, seed: int = 0) -> list[dict]:
    """The paired bootstrap of every pair of models (ensemble included): the mIoU difference, its
    95 % interval, and whether it is real (the interval excludes 0) or within noise."""
    out = []
    for a, b in itertools.combinations(scores["models"], 2):
        boot = paired_bootstrap(scores["matrices"][a], scores["matrices"][b], n_boot=n_boot, seed=seed)
        out.append({"a": a, "b": b, **boot})
    return out


def verdict(lo: float, hi: float) -> str:
    if np.isnan(lo) or np.isnan(hi):
        return "no data"
    return "real" if lo > 0 or hi < 0 else "within noise"


def pair_table(pairs: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{"pair": f"{title(p['a'])} − {title(p['b'])}", "mIoU difference": p["delta"],
                          "95 % interval from": p["lo"], "to": p["hi"], "verdict": verdict(p["lo"], p["hi"])}
                         for p in pairs])


def class_pair_table(pair: dict, class_names: tuple[str, ...] = CLASS_NAMES) -> pd.DataFrame:
    rows = [{"class": c, "IoU difference": d["delta"], "95 % interval from": d["lo"], "to": d["hi"],
             "verdict": verdict(d["lo"], d["hi"])} for c, d in zip(class_names, pair["per_class"])]
    return pd.DataFrame(rows)


# --- figures --------------------------------------------------------------------------------------

def scatter_figure(frame: pd.DataFrame, x_model: str, y_model: str) -> go.Figure:
    """Per-image mIoU of one model against another; each point carries its image name."""
    x, y = f"{title(x_model)} mIoU", f"{title(y_model)} mIoU"
    fig = go.Figure(go.Scatter(
        x=frame[x], y=frame[y], mode="markers", customdata=frame["image"],
        marker={"size": 8, "color": frame["disagreement"], "colorscale": "Plasma", "showscale": True,
                "colorbar": {"title": "disagreement"}, "line": {"width": 0.5, "color": "white"}},
        hovertemplate=f"%{{customdata}}<br>{x}: %{{x:.3f}}<br>{y}: %{{y:.3f}}<extra></extra>"))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "gray"},
                             hoverinfo="skip", showlegend=False))
    values = np.concatenate([frame[x].to_numpy(float), frame[y].to_numpy(float)])
    values = values[np.isfinite(values)]
    lo, hi = (max(0.0, values.min() - 0.03), min(1.0, values.max() + 0.03)) if len(values) else (0.0, 1.0)
    # The same range on both axes, so the diagonal is y = x; not tied to a square (scaleanchor),
    # which made the x axis widen to fill the row (-0.2 to 1 for points between 0.2 and 0.6).
    fig.update_layout(xaxis={"title": x, "range": [lo, hi]}, yaxis={"title": y, "range": [lo, hi]},
                      height=480, margin={"l": 10, "r": 10, "t": 50, "b": 10}, showlegend=False,
                      clickmode="event+select", dragmode="pan",  # two lines: one was cut on a phone
                      title=f"Above the diagonal:<br><sup>{title(y_model)} does better on that image</sup>")
    return fig


def reliability_figure(confidence: dict) -> go.Figure:
    """Reliability diagram: accuracy against mean top-1 probability per bin, one line per model."""
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfectly calibrated",
                               line={"dash": "dot", "color": "gray"}, hoverinfo="skip"))
    for name in confidence["models"]:
        bins = confidence["stats"][name]["reliability"]
        fig.add_trace(go.Scatter(
            x=[b["confidence"] for b in bins], y=[b["accuracy"] for b in bins], mode="lines+markers",
            name=title(name), customdata=[b["pixels"] for b in bins],
            line={"color": model_color(name, tuple(confidence["models"]))},
            hovertemplate="confidence %{x:.3f}<br>accuracy %{y:.3f}<br>%{customdata:,} pixels<extra>"
                          + title(name) + "</extra>"))
    fig.update_layout(xaxis={"title": "top-1 probability (bin mean)", "range": [0, 1]},
                      yaxis={"title": "share of those pixels that are right", "range": [0, 1]},
                      height=460, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      legend={"orientation": "h", "y": 1.02, "yanchor": "bottom"})
    return fig


def class_difference_figure(pair: dict, class_names: tuple[str, ...] = CLASS_NAMES) -> go.Figure:
    """Per-class IoU difference of a pair with its bootstrap interval; grey bars are within noise."""
    d = [c["delta"] for c in pair["per_class"]]
    lo = [c["lo"] for c in pair["per_class"]]
    hi = [c["hi"] for c in pair["per_class"]]
    colors = ["#1f77b4" if verdict(a, b) == "real" else "#b0b0b0" for a, b in zip(lo, hi)]
    fig = go.Figure(go.Bar(
        x=list(class_names), y=d, marker_color=colors,
        error_y={"type": "data", "symmetric": False, "array": np.subtract(hi, d), "arrayminus": np.subtract(d, lo)},
        hovertemplate="%{x}: %{y:+.3f}<extra></extra>"))
    fig.update_layout(yaxis={"title": f"IoU {title(pair['a'])} − {title(pair['b'])}"}, height=380,
                      margin={"l": 10, "r": 10, "t": 30, "b": 10})
    return fig
