"""What a visitor can take away from one scene: overlays, confidence maps, and all of it as a ZIP.

Pure functions returning bytes (no Streamlit), so the pages only wire them to download buttons.
The ZIP holds, per model (ensemble included), the overlay, the colour mask, the mask of class ids
and the confidence map, the colour label when the scene has one, and ``scene.json``: the per-class
pixel shares, the time, the mean confidence and, against the label, the scores of every model.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np

from seg_core.analysis import class_iou
from seg_core.inference import Prediction, class_shares
from seg_core.palette import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES, colorize
from seg_core.viz import disagreement, overlay, png_bytes

from .viewer import confidence_picture


def overlay_png(photo: np.ndarray, mask: np.ndarray, opacity: float = 0.5) -> bytes:
    return png_bytes(overlay(photo, mask, opacity))


def confidence_png(conf: np.ndarray) -> bytes:
    """The confidence map in colour (Viridis: dark blue = unsure, yellow = sure)."""
    return png_bytes(confidence_picture(conf))


def confidence_gray_png(conf: np.ndarray) -> bytes:
    """The confidence map as 8-bit gray levels: value / 255 is the top-1 probability."""
    return png_bytes(np.clip(np.rint(np.asarray(conf, np.float32) * 255), 0, 255).astype(np.uint8))


def image_scores(mask: np.ndarray, label: np.ndarray) -> dict:
    """Pixel accuracy, mIoU and per-class IoU of one mask against its label (void pixels ignored;
    classes absent from both do not count, as on the Ground truth page)."""
    keep = label != IGNORE_INDEX
    mat = np.bincount(NUM_CLASSES * label[keep].astype(np.int64) + mask[keep], minlength=NUM_CLASSES ** 2)
    mat = mat[: NUM_CLASSES ** 2].reshape(NUM_CLASSES, NUM_CLASSES)
    iou = class_iou(mat)
    total = mat.sum()
    return {"pixel_acc": float(np.trace(mat) / total) if total else None,
            "miou": float(np.nanmean(iou)) if np.isfinite(iou).any() else None,
            "iou": {c: float(v) for c, v in zip(CLASS_NAMES, iou) if np.isfinite(v)}}


def scene_summary(name: str, predictions: dict[str, Prediction], label: np.ndarray | None = None) -> dict:
    """The JSON of a scene: per model its shares, time, mean confidence and scores."""
    models = {}
    for model, p in predictions.items():
        entry = {"seconds": round(p.seconds, 4), "shares": class_shares(p.mask)}
        if p.model_confidence is not None:
            entry["mean_confidence"] = float(np.asarray(p.model_confidence, np.float32).mean())
        if label is not None:
            entry["scores"] = image_scores(p.mask, label)
        models[model] = entry
    singles = [p.mask for n, p in predictions.items() if n != "ensemble"]
    out = {"scene": name, "size": list(next(iter(predictions.values())).mask.shape) if predictions else None,
           "models": models, "disagreement": float(disagreement(singles).mean()) if len(singles) > 1 else None}
    if label is not None:
        out["truth_shares"] = class_shares(label[label != IGNORE_INDEX])
    return out


def scene_zip(name: str, photo: np.ndarray, predictions: dict[str, Prediction], label: np.ndarray | None = None,
              opacity: float = 0.5) -> bytes:
    """Everything for one scene in one ZIP (file names start with the scene's stem)."""
    stem = Path(name).stem or "scene"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        def put(file: str, data: bytes, packed: bool = False) -> None:
            z.writestr(f"{stem}/{file}", data, compress_type=zipfile.ZIP_STORED if packed else zipfile.ZIP_DEFLATED)

        for model, p in predictions.items():
            put(f"{model}_overlay.png", overlay_png(photo, p.mask, opacity), True)
            put(f"{model}_color.png", png_bytes(colorize(p.mask)), True)
            put(f"{model}_ids.png", png_bytes(p.mask), True)
            if p.model_confidence is not None:
                conf = p.confidence
                put(f"{model}_confidence.png", confidence_png(conf), True)
                put(f"{model}_confidence_gray.png", confidence_gray_png(conf), True)
        if label is not None:
            put("truth_color.png", png_bytes(colorize(label)), True)
        put("scene.json", json.dumps(scene_summary(name, predictions, label), indent=1).encode())
    return buf.getvalue()
