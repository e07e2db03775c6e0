"""Pictures of masks for the apps: overlays, legend rows, disagreement and error maps, PNG bytes.

Pure numpy + Pillow, shared by the Streamlit and Gradio apps; the HTML they are drawn in lives in
the UI layer (``ui.views``).
"""

from __future__ import annotations

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


#: What the ensemble's time measures, worded once for both apps: its members' masks come from one
#: pass each (timed as theirs), and the ensemble mixes the probabilities those passes kept
#: (``seg_core.serve.photos.PhotoService.ensemble``), whether it is asked for with them or after.
ENSEMBLE_TIME = "the mean of its members' probabilities, kept from their passes (no model runs again)"


def ms_text(seconds: float) -> str:
    """A time for people in milliseconds: "12 ms", "<1 ms" for what rounds to nothing (never "0 ms")."""
    return "<1 ms" if seconds < 0.0005 else f"{seconds * 1000:.0f} ms"


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
