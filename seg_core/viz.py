"""Pictures of masks for the apps: overlays, legends, disagreement and error maps, PNG bytes.

Pure numpy + Pillow (and a little HTML for the legend), shared by the Streamlit and Gradio apps.
"""

from __future__ import annotations

import html
import io

import numpy as np
from PIL import Image

from .palette import CLASS_NAMES, COLORS, IGNORE_INDEX, colorize


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend the colour mask over the photo; ignored pixels keep the photo."""
    alpha = float(np.clip(alpha, 0.0, 1.0))
    color = colorize(mask).astype(np.float32)
    out = image.astype(np.float32) * (1 - alpha) + color * alpha
    keep = np.asarray(mask) == IGNORE_INDEX
    out[keep] = image[keep]
    return out.round().astype(np.uint8)


def legend(mask: np.ndarray, class_names: tuple[str, ...] = CLASS_NAMES) -> list[dict]:
    """Classes present in ``mask`` with colour and pixel share, largest first."""
    counts = np.bincount(np.asarray(mask).ravel(), minlength=256)[: len(class_names)]
    total = max(1, int(np.asarray(mask).size))
    rows = [{"id": int(i), "name": class_names[i], "color": "#%02x%02x%02x" % tuple(COLORS[i]),
             "share": float(counts[i] / total)} for i in np.argsort(-counts) if counts[i] > 0]
    return rows


def legend_rows(masks: dict[str, np.ndarray], class_names: tuple[str, ...] = CLASS_NAMES) -> list[dict]:
    """One row per class present in any mask: id, name, colour and ``share`` per mask name,
    largest first."""
    rows: dict[int, dict] = {}
    for model, mask in masks.items():
        for entry in legend(mask, class_names):
            row = rows.setdefault(entry["id"], {"id": entry["id"], "name": entry["name"],
                                                "color": entry["color"], "share": {}})
            row["share"][model] = entry["share"]
    return sorted(rows.values(), key=lambda r: -max(r["share"].values()))


def share_text(share: float) -> str:
    """A pixel share for people: "12.3%", "<0.1%" for a sliver, "–" for none."""
    if share <= 0:
        return "–"
    return "<0.1%" if share < 0.001 else f"{share:.1%}"


def ms_text(seconds: float) -> str:
    """A time for people in milliseconds: "12 ms", "<1 ms" for what rounds to nothing (never "0 ms")."""
    return "<1 ms" if seconds < 0.0005 else f"{seconds * 1000:.0f} ms"


#: Legend swatches: big enough to tell the dark blues apart (car, truck, bus, train, motorcycle),
#: with a dark border and a white inner ring so that dark colours do not merge into it.
SWATCH_STYLE = ("display:inline-block;width:28px;height:18px;border:1px solid #222;box-shadow:inset 0 0 0 1px #fff;"
                "border-radius:3px;vertical-align:middle;margin-right:8px;flex:none")


def legend_html(rows: list[dict], headers: dict[str, str]) -> str:
    """The legend as an HTML table: a colour swatch and the class name, then one share column per
    entry of ``headers`` (``{mask name in rows: column title}``; ``rows`` from ``legend_rows``).
    Nothing wraps (titles keep their hyphens on one line); in a narrow container the titles stand
    upright (``LEGEND_NARROW_CSS``), and what still does not fit scrolls."""
    if not rows or not headers:
        return ""
    columns = list(headers)
    cell = "padding:3px 8px;border:none;white-space:nowrap"
    head = "".join(f"<th style='{cell};text-align:right'>{html.escape(t).replace('-', '&#8209;')}</th>"
                   for t in headers.values())
    body = []
    for row in rows:
        swatch = f"<span style='{SWATCH_STYLE};background:{row['color']}'></span>"
        cells = "".join(f"<td style='{cell};text-align:right'>{share_text(row['share'].get(c, 0.0))}</td>"
                        for c in columns)
        body.append(f"<tr><td style='{cell}'>{swatch}{html.escape(row['name'])}</td>{cells}</tr>")
    return (f"<style>{LEGEND_NARROW_CSS}</style><div class='seg-legend' style='overflow-x:auto'>"
            f"<table style='border-collapse:collapse;border:none;font-size:0.9em'>"
            f"<tr><th style='{cell};text-align:left'>class</th>{head}</tr>{''.join(body)}</table></div>")


#: In a narrow container (a phone) the share columns' titles turn upright, read bottom to top
#: (whole, never broken at a hyphen), so that the columns are as narrow as their numbers and four
#: models and the truth fit in 390 px; swatches and padding get smaller. Wider, nothing changes.
LEGEND_NARROW_CSS = (
    ".seg-legend{container-type:inline-size}"
    "@container (max-width:560px){"
    ".seg-legend th+th{writing-mode:vertical-rl;transform:rotate(180deg);text-align:left!important;"
    "vertical-align:bottom;padding:4px 2px!important}"
    ".seg-legend th:first-child{vertical-align:bottom}"
    ".seg-legend td{padding:2px 6px!important}"
    ".seg-legend td>span{width:18px!important;height:14px!important;margin-right:5px!important}}")


def fit_within(image: np.ndarray, max_side: int, nearest: bool = False) -> np.ndarray:
    """``image`` shrunk to fit ``max_side`` on its long side for the screen (NEAREST for masks),
    else as is; predictions and downloads keep the full size. A photo is first box-reduced by the
    whole factor (``reducing_gap=1``), then resampled: a 2048x1024 photo in a quarter of the time."""
    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return image
    s = max_side / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    if nearest:
        return np.asarray(Image.fromarray(image).resize(size, Image.NEAREST))
    return np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR, reducing_gap=1.0))


def disagreement(masks: list[np.ndarray]) -> np.ndarray:
    """``H x W`` bool: pixels where not all masks agree."""
    if not masks:
        raise ValueError("disagreement needs at least one mask")
    first = np.asarray(masks[0])
    out = np.zeros(first.shape, dtype=bool)
    for m in masks[1:]:
        out |= np.asarray(m) != first
    return out


#: Cyan: 162 RGB units from the nearest class colour (magenta was 43 from sidewalk's).
DISAGREE_COLOR = (0, 255, 255)


def disagreement_image(image: np.ndarray, masks: list[np.ndarray]) -> np.ndarray:
    """The photo dimmed to gray, with the disagreeing pixels in ``DISAGREE_COLOR``."""
    gray = (image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32))
    out = np.repeat((gray * 0.5 + 64)[..., None], 3, axis=2).astype(np.uint8)
    out[disagreement(masks)] = DISAGREE_COLOR
    return out


#: Blue / orange of the Okabe-Ito palette (told apart with every kind of colour blindness), and a
#: light gray that differs from both in lightness too.
ERROR_COLORS = {"correct": (0, 114, 178), "wrong": (230, 159, 0), "ignored": (220, 220, 220)}
ERROR_CAPTION = "blue: right, orange: wrong, light gray: not scored (void, unreadable label colour, or fringe)"


def error_map(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Blue where ``pred`` matches ``target``, orange where it does not, light gray where ignored
    (``ERROR_COLORS``)."""
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"prediction {pred.shape} and target {target.shape} differ in shape")
    out = np.empty(pred.shape + (3,), dtype=np.uint8)
    out[:] = ERROR_COLORS["wrong"]
    out[pred == target] = ERROR_COLORS["correct"]
    out[target == IGNORE_INDEX] = ERROR_COLORS["ignored"]
    return out


def png_bytes(array: np.ndarray) -> bytes:
    """PNG of a uint8 ``H x W`` (class ids) or ``H x W x 3`` array."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()
