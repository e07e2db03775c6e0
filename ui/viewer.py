"""The interactive mask viewer: every model's mask (and the truth) as linked Plotly images.

All panels share their axes, so a zoom or pan in one moves every other. Each panel is a picture
(a PNG inside the figure, drawn at most ``PICTURE_SIDE`` wide) under a transparent heatmap that
carries the hover data: on a coarse grid, each cell holds the class of the truth and of every
model and each model's confidence, so hovering any panel reads all of them. The grid is chosen
so that the hover data of one view stays within ``HOVER_BUDGET`` bytes of JSON (a figure with
full-size hover data for four 1024x512 masks and three confidences is about 21 MB).

Views: masks, overlays, confidence (each model's confidence map beside its mask) and, on scenes
with a label, errors against low confidence (does the model know where it is wrong?). Classes can
be isolated: the others are greyed out in every panel. The figure is built by pure functions;
``mask_viewer`` is the Streamlit component around them.
"""

from __future__ import annotations

import base64
import io
import json
import math

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from PIL import Image
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from seg_core.inference import Prediction
from seg_core.palette import CLASS_NAMES, IGNORE_INDEX, colorize
from seg_core.registry import display_name
from seg_core.viz import fit_within, legend_rows, overlay

from .views import legend_html

#: Bytes of JSON the hover data of one view may take, all panels together.
HOVER_BUDGET = 1_800_000
#: Pictures are drawn at most this many pixels on their long side (zooming shows them enlarged).
PICTURE_SIDE = 768
#: The finest hover grid, on the long side: one cell per pixel of a 256-pixel val photo.
HOVER_SIDE = 256
#: The width the figure is laid out for (Streamlit's wide layout at 1440 px). Narrower, the page's
#: box around it (``frame_css``) shrinks its height with its width, so the panels fill it with no
#: blank bands (at 390 px: 115 px panels in a 762 px figure, 110-250 px blank above, between and
#: under their rows); wider, it keeps this height.
FIGURE_WIDTH = 1000
TITLE_ROW = 36  # pixels above the first row of panels, for their titles
MODEBAR = 24  # pixels above the first titles, for Plotly's tool bar
#: The gap between two rows of panels, for the lower one's titles, as a share of the figure's width:
#: it shrinks with the panels (a figure's proportions are fixed), 20 px on a 360 px phone, 56 at
#: ``FIGURE_WIDTH``.
ROW_GAP = 0.056
TITLE_FONT = 13
#: A narrower figure's titles are this small (``frame_css``): "All three (averaged)" fits an 85 px panel.
NARROW_TITLE_FONT = 9
NARROW = 560  # px: a phone's figure (four panels a row are 85 px wide at 390 px)
CONFIDENCE_TITLE = "confidence"
VIEWS = ("Masks", "Overlays", "Confidence", "Errors vs low confidence")
#: Errors against confidence: right and sure, right but unsure, wrong and unsure (the model knows),
#: wrong but sure (it does not), and pixels without a label.
ERROR_KINDS = {"right, sure": (205, 205, 205), "right, unsure": (66, 133, 244),
               "wrong, unsure": (255, 176, 0), "wrong, sure": (215, 38, 61), "no label": (40, 40, 40)}
ISOLATED_OUT = (60, 60, 60)  # classes not chosen, in a mask
_CONFIDENCE_LUT = np.array([[int(v) for v in c[4:-1].split(",")] for c in sample_colorscale("Viridis", 256)],
                           dtype=np.uint8)
TRUTH = "truth"


# --- pictures -------------------------------------------------------------------------------------

def isolate(mask: np.ndarray, classes: list[int] | None) -> np.ndarray:
    """``mask`` with every class not in ``classes`` set to ignore (all kept when ``classes`` is empty)."""
    if not classes:
        return mask
    return np.where(np.isin(mask, classes), mask, IGNORE_INDEX).astype(np.uint8)


def mask_picture(mask: np.ndarray, classes: list[int] | None = None) -> np.ndarray:
    return colorize(isolate(mask, classes), ignore_color=ISOLATED_OUT if classes else (0, 0, 0))


def confidence_picture(conf: np.ndarray) -> np.ndarray:
    """``H x W x 3`` uint8: confidence in [0, 1] through the Viridis colour scale (yellow = sure)."""
    idx = np.clip(np.nan_to_num(np.asarray(conf, np.float32)) * 255 + 0.5, 0, 255).astype(np.uint8)
    return np.take(_CONFIDENCE_LUT, idx, axis=0)


def error_kinds(mask: np.ndarray, label: np.ndarray, conf: np.ndarray, threshold: float) -> np.ndarray:
    """``H x W`` index into ``ERROR_KINDS`` of each pixel: right or wrong, sure or not."""
    if mask.shape != label.shape or conf.shape != label.shape:
        raise ValueError(f"mask {mask.shape}, label {label.shape} and confidence {conf.shape} differ in shape")
    wrong, unsure = mask != label, conf < threshold
    kinds = (wrong.astype(np.uint8) * 2) + np.where(wrong, ~unsure, unsure).astype(np.uint8)
    kinds[label == IGNORE_INDEX] = 4
    return kinds


def error_picture(kinds: np.ndarray) -> np.ndarray:
    return np.take(np.array(list(ERROR_KINDS.values()), np.uint8), kinds, axis=0)


def error_shares(kinds: np.ndarray) -> dict[str, float]:
    """Share of the labelled pixels of each kind, and of the wrong ones the model was unsure of."""
    counts = np.bincount(kinds.ravel(), minlength=len(ERROR_KINDS))
    labelled = max(1, int(counts[:4].sum()))
    out = {k: float(counts[i] / labelled) for i, k in enumerate(list(ERROR_KINDS)[:4])}
    wrong = counts[2] + counts[3]
    out["wrong it was unsure of"] = float(counts[2] / wrong) if wrong else float("nan")
    return out


def data_uri(picture: np.ndarray, photo_like: bool = False) -> str:
    """The picture as a data URI: JPEG for photos, overlays and confidence maps (a tenth of a PNG's
    bytes), PNG for flat-coloured masks, whose edges JPEG would smear."""
    buf = io.BytesIO()
    fmt = "JPEG" if photo_like else "PNG"
    Image.fromarray(np.asarray(picture, np.uint8)).save(buf, format=fmt, **({"quality": 88} if photo_like else {}))
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# --- hover data -----------------------------------------------------------------------------------

def shrink_nearest(array: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """``array`` sampled at the centres of an ``hw`` grid (nearest; class ids stay class ids)."""
    h, w = array.shape[:2]
    ys = ((np.arange(hw[0]) + 0.5) * h / hw[0]).astype(int)
    xs = ((np.arange(hw[1]) + 0.5) * w / hw[1]).astype(int)
    return np.asarray(array)[ys][:, xs]


def hover_fields(predictions: dict[str, Prediction], label: np.ndarray | None) -> list[str]:
    return ([TRUTH] if label is not None else []) + list(predictions)


def hover_cells(predictions: dict[str, Prediction], label: np.ndarray | None, hw: tuple[int, int]) -> np.ndarray:
    """``hw`` grid of hover cells, each ``[class name per field..., confidence % per model...]``
    (an object array: Plotly validates it without walking it, and writes it as nested lists)."""
    names = np.array(list(CLASS_NAMES) + ["–"] * (256 - len(CLASS_NAMES)), dtype=object)
    columns = [names[shrink_nearest(label, hw)]] if label is not None else []
    columns += [names[shrink_nearest(p.mask, hw)] for p in predictions.values()]
    for p in predictions.values():
        conf = p.model_confidence
        if conf is None:
            columns.append(np.full(hw, "–", dtype=object))
        else:
            columns.append(np.rint(shrink_nearest(np.asarray(conf, np.float32), hw) * 100).astype(int).astype(object))
    return np.stack(columns, axis=-1)


def hover_template(predictions: dict[str, Prediction], label: np.ndarray | None) -> str:
    lines, k = [], 0
    if label is not None:
        lines.append("<b>truth</b>: %{customdata[0]}")
        k = 1
    n = len(predictions)
    for i, name in enumerate(predictions):
        conf = f" (%{{customdata[{k + n + i}]}} % sure)" if predictions[name].model_confidence is not None else ""
        lines.append(f"{model_title(name)}: %{{customdata[{k + i}]}}{conf}")
    return "<br>".join(lines) + "<extra></extra>"


def hover_grid(shape: tuple[int, int], predictions: dict[str, Prediction], label: np.ndarray | None,
               panels: int, budget: int = HOVER_BUDGET) -> tuple[tuple[int, int], np.ndarray, int]:
    """The finest grid (at most ``HOVER_SIDE`` on its long side) whose hover cells, sent once per
    panel, fit ``budget`` bytes of JSON; returns the grid, its cells and their bytes.

    The bytes per cell are estimated on a 32-cell-wide sample grid first, so the cells are usually
    built once (again, smaller, when the estimate was short)."""
    h, w = shape
    long_side = max(h, w)
    sample = (max(1, round(32 * h / long_side)), max(1, round(32 * w / long_side)))
    per_cell = panels * _json_bytes(hover_cells(predictions, label, sample)) / (sample[0] * sample[1])
    scale = min(1.0, HOVER_SIDE / long_side, 0.97 * math.sqrt(budget / per_cell / (h * w)))
    while True:
        hw = (max(1, round(h * scale)), max(1, round(w * scale)))
        cells = hover_cells(predictions, label, hw)
        size = panels * _json_bytes(cells)
        if size <= budget or hw == (1, 1):
            return hw, cells, size
        scale *= 0.97 * math.sqrt(budget / size)


def _json_bytes(value) -> int:
    return len(json.dumps(value.tolist(), separators=(",", ":")))


# --- the figure -----------------------------------------------------------------------------------

def model_title(name: str) -> str:
    return "All three (averaged)" if name == "ensemble" else display_name(name)


def panels(photo: np.ndarray, predictions: dict[str, Prediction], label: np.ndarray | None, view: str,
           classes: list[int] | None = None, opacity: float = 0.5, threshold: float = 0.5) -> list[tuple[str, np.ndarray]]:
    """``(title, picture)`` of each panel of ``view``, at the photo's size."""
    if view == "Masks":
        out = [("Photo", photo)] + ([("Ground truth", mask_picture(label, classes))] if label is not None else [])
        return out + [(model_title(n), mask_picture(p.mask, classes)) for n, p in predictions.items()]
    if view == "Overlays":
        out = [("Photo", photo)] + ([("Ground truth", overlay(photo, isolate(label, classes), opacity))]
                                    if label is not None else [])
        return out + [(model_title(n), overlay(photo, isolate(p.mask, classes), opacity)) for n, p in predictions.items()]
    if view == "Confidence":
        out = []
        for n, p in predictions.items():
            out.append((model_title(n), mask_picture(p.mask, classes)))
            conf = p.confidence
            # Beside the mask titled with the model's name: a longer title ran into its neighbours.
            out.append((CONFIDENCE_TITLE, confidence_picture(conf) if conf is not None else np.zeros_like(photo)))
        return out
    if view == "Errors vs low confidence":
        if label is None:
            raise ValueError("errors need a label")
        out = [("Photo", photo)]
        truth = isolate(label, classes)  # isolated classes: only their pixels are judged
        for n, p in predictions.items():
            if p.model_confidence is not None:
                out.append((model_title(n), error_picture(error_kinds(p.mask, truth, p.confidence, threshold))))
        return out
    raise ValueError(f"unknown view {view!r}; choose one of {VIEWS}")


def viewer_figure(photo: np.ndarray, predictions: dict[str, Prediction], label: np.ndarray | None = None,
                  view: str = "Masks", classes: list[int] | None = None, opacity: float = 0.5,
                  threshold: float = 0.5, columns: int | None = None, budget: int = HOVER_BUDGET) -> go.Figure:
    """The linked panels of ``view`` with hover data on every panel (``layout.meta``: the hover
    grid and its bytes)."""
    pictures = panels(photo, predictions, label, view, classes, opacity, threshold)
    h, w = photo.shape[:2]
    cols = columns or (4 if view == "Confidence" else min(3, len(pictures)))  # confidence: two models a row
    rows = -(-len(pictures) // cols)
    grid, cells, size = hover_grid((h, w), predictions, label, len(pictures), budget)
    template = hover_template(predictions, label)
    # Panels keep the photo's aspect inside a figure FIGURE_WIDTH wide, a gap for the titles between
    # rows: the plot area (below the tool bar and the first titles) is a fixed shape, which the
    # page's box scales with its width (frame_css).
    spacing = 0.01
    panel_h = FIGURE_WIDTH * (1 - spacing * (cols - 1)) / cols * h / w
    plot_h = rows * panel_h + (rows - 1) * ROW_GAP * FIGURE_WIDTH
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[t for t, _ in pictures], horizontal_spacing=spacing,
                        vertical_spacing=ROW_GAP * FIGURE_WIDTH / plot_h if rows > 1 else 0)
    fig.update_annotations(font_size=TITLE_FONT)
    zero = np.zeros(grid, np.uint8)
    clear = [[0, "rgba(0,0,0,0)"], [1, "rgba(0,0,0,0)"]]
    for i, (title, picture) in enumerate(pictures):
        r, c = divmod(i, cols)
        shown = fit_within(picture, PICTURE_SIDE, nearest=True)
        photo_like = view == "Overlays" or title in ("Photo", CONFIDENCE_TITLE)
        fig.add_trace(go.Image(source=data_uri(shown, photo_like), x0=0, y0=0, dx=w / shown.shape[1], dy=h / shown.shape[0],
                               hoverinfo="skip"), row=r + 1, col=c + 1)
        fig.add_trace(go.Heatmap(z=zero, customdata=cells, x0=w / grid[1] / 2, dx=w / grid[1],
                                 y0=h / grid[0] / 2, dy=h / grid[0], colorscale=clear, showscale=False,
                                 hovertemplate=template, hoverongaps=False), row=r + 1, col=c + 1)
    axis = {"showticklabels": False, "showgrid": False, "zeroline": False, "constrain": "domain"}
    fig.update_xaxes(matches="x", range=[0, w], **axis)
    fig.update_yaxes(matches="y", range=[h, 0], **axis)
    fig.layout.xaxis.matches = fig.layout.yaxis.matches = None  # the first panel leads, the others follow
    fig.update_layout(height=round(plot_h) + TITLE_ROW + MODEBAR, margin={"l": 0, "r": 0, "t": TITLE_ROW + MODEBAR, "b": 0},
                      dragmode="pan", hovermode="closest", showlegend=False,
                      meta={"hover_grid": list(grid), "hover_bytes": size})
    return fig


# --- the Streamlit component ----------------------------------------------------------------------

def frame_css(key: str, height: int) -> str:
    """CSS for the boxes ``{key}_frame`` (the width to follow) and ``{key}_plot`` (the chart's, with
    ``height="stretch"``): a figure ``height`` px tall at ``FIGURE_WIDTH`` keeps the tool bar and
    the first titles' pixels and scales the rest with the width, never beyond ``height``. Streamlit
    sizes a chart from its figure's height alone, so on a phone the panels, shrunk to its width,
    sat in a figure still as tall as on a desktop. Under ``NARROW`` px the titles are smaller (the
    figure's own font is fixed; Plotly centres each title on its panel, so a smaller one stays there)."""
    fixed = TITLE_ROW + MODEBAR
    scaled = height - fixed
    return (f".st-key-{key}_frame {{container-type: inline-size}} .st-key-{key}_plot {{height: "
            f"calc({fixed}px + min({scaled}px, {scaled / FIGURE_WIDTH:.6f} * 100cqw)); flex: none}}"
            f" @container (max-width: {NARROW}px) {{.st-key-{key}_plot .annotation-text "
            f"{{font-size: {NARROW_TITLE_FONT}px !important}}}}")


class FrozenFigure(go.Figure):
    """A figure built once and shown on many reruns. ``st.plotly_chart`` calls ``to_dict`` (a deep
    copy: 0.23 s for the viewer's hover cells) and then serialises the copy (orjson takes 0.35 s on
    object arrays, 0.1 s on lists); this hands out the dict made once, with the cells as lists."""

    def __init__(self, fig: go.Figure):
        super().__init__(fig)
        frozen = fig.to_dict()
        for trace in frozen["data"]:
            if isinstance(trace.get("customdata"), np.ndarray):
                trace["customdata"] = trace["customdata"].tolist()
        object.__setattr__(self, "_frozen", frozen)

    def to_dict(self) -> dict:
        return dict(self._frozen)


@st.cache_resource(max_entries=16, ttl=1800, show_spinner=False)  # shared, never mutated: no copy per rerun; a few MB each
def _cached_figure(scene_id: str, view: str, classes: tuple[int, ...], opacity: float, threshold: float,
                   _photo: np.ndarray, _predictions: dict, _label: np.ndarray | None) -> go.Figure:
    return FrozenFigure(viewer_figure(_photo, _predictions, _label, view, list(classes), opacity, threshold))


def available_views(predictions: dict[str, Prediction], label: np.ndarray | None) -> list[str]:
    """The views these predictions can fill: confidence needs confidence maps, errors a label too."""
    has_conf = any(p.model_confidence is not None for p in predictions.values())
    return [v for v in VIEWS if (v != "Confidence" or has_conf)
            and (v != "Errors vs low confidence" or (has_conf and label is not None))]


def mask_viewer(photo: np.ndarray, predictions: dict[str, Prediction], label: np.ndarray | None = None,
                key: str = "viewer", scene_id: str | None = None, view: str | None = None,
                legend: bool = True) -> None:
    """The viewer with its controls: the view, classes to isolate, overlay opacity and the
    confidence below which a pixel counts as unsure. Widget keys start with ``key``.

    ``scene_id``: a string that changes whenever the photo, label or predictions do (e.g. the
    weights key, the scene's key and the TTA); with it, each figure is built once and reused.
    ``view``: shown without a view selector of its own (a page whose own buttons choose it);
    ``legend``: False where the page draws the class legend itself."""
    if not predictions:
        st.caption("No model masks to show.")
        return
    if view is None:
        views = available_views(predictions, label)
        view = st.segmented_control("View", views, default=views[0], key=f"{key}_view") or views[0]
    controls = st.columns([3, 1])
    masks = {n: p.mask for n, p in predictions.items()} | ({TRUTH: label} if label is not None else {})
    rows = legend_rows(masks)
    chosen = controls[0].multiselect(
        "Isolate classes (none chosen: all shown)", [r["id"] for r in rows], format_func=CLASS_NAMES.__getitem__,
        key=f"{key}_classes", help="Only these classes keep their colour, in every panel; in Errors vs low "
                                   "confidence, only their pixels are judged.")
    opacity, threshold = 0.5, 0.5
    if view == "Overlays":
        opacity = controls[1].slider("Overlay opacity", 0.0, 1.0, 0.5, 0.05, key=f"{key}_opacity")
    elif view == "Errors vs low confidence":
        threshold = controls[1].slider("Unsure below", 0.05, 0.95, 0.5, 0.05, key=f"{key}_threshold",
                                       help="A pixel whose confidence is below this counts as unsure.")
    if scene_id is None:
        fig = viewer_figure(photo, predictions, label, view, chosen, opacity, threshold)
    else:
        fig = _cached_figure(scene_id, view, tuple(chosen), opacity, threshold, photo, predictions, label)
    st.html(f"<style>{frame_css(key, fig.layout.height)}</style>")
    with st.container(key=f"{key}_frame"), st.container(key=f"{key}_plot"):
        # No scroll zoom: it took the page's own scrolling whenever the pointer crossed the figure.
        st.plotly_chart(fig, key=f"{key}_figure", height="stretch",
                        config={"scrollZoom": False, "displaylogo": False})
    st.caption(f"Drag to pan, zoom with the tool bar's + and − (every panel follows), double-click to reset; "
               f"hover to read the class of {'the truth and ' if label is not None else ''}every model.")
    if view == "Errors vs low confidence":
        _error_legend(predictions, isolate(label, chosen), threshold)
    elif view == "Confidence":
        st.caption("Confidence: the top-1 class probability; dark blue = unsure, yellow = sure.")
    elif legend:
        headers = ({TRUTH: "Ground truth"} if label is not None else {}) | {n: model_title(n) for n in predictions}
        st.html(legend_html(rows, headers))


def _error_legend(predictions: dict[str, Prediction], label: np.ndarray, threshold: float) -> None:
    swatches = " ".join(f"<span style='display:inline-block;width:12px;height:12px;background:rgb{c};"
                        f"border:1px solid #888;margin:0 4px 0 10px'></span>{k}" for k, c in ERROR_KINDS.items())
    st.html(f"<div style='font-size:0.9em'>{swatches}</div>")
    table = []
    for name, p in predictions.items():
        if p.model_confidence is None:
            continue
        shares = error_shares(error_kinds(p.mask, label, p.confidence, threshold))
        table.append({"model": model_title(name), **shares})
    st.dataframe(table, hide_index=True, key=f"errors_table_{abs(hash(tuple(predictions)))}",
                 column_config={k: st.column_config.NumberColumn(format="percent") for k in table[0] if k != "model"}
                 if table else None)
    st.caption("\"wrong it was unsure of\": the share of a model's wrong pixels that it marked as unsure; "
               "the higher, the better the model knows where it is wrong.")
