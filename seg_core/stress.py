"""One photo under one corruption, for the apps' Stress test: the corrupted photo, every model's
mask and the ensemble's, each scored against the photo's ground truth when it has one.

Results are cached per (photo, corruption, severity) for all sessions, so moving the severity
slider back to a value already seen is a lookup. The photo is first brought to the benchmark's
scale (``STRESS_HEIGHT`` px high, aspect kept): the corruption parameters are in pixels (a blur
radius, a JPEG block) and were measured on the 256-px val photos, so severity 3 of an upload means
what severity 3 means in ``benchmarks/corruption_bench.py``.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from .corruptions import CORRUPTION_NAMES, corrupt
from .inference import Predictions
from .metrics import image_scores
from .serve.slots import photo_slot

#: Photos are corrupted and segmented at the val pairs' height (the benchmark's scale).
STRESS_HEIGHT = 256
#: "No corruption": the clean photo (severity 0 on the benchmark's figure).
CLEAN = "none"
#: Results kept for all sessions: one entry is a 256-px photo and five masks, under 1 MB.
MAX_ENTRIES = 96


def at_stress_scale(photo: np.ndarray, label: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """``photo`` resized to ``STRESS_HEIGHT`` px high (aspect kept; bilinear), ``label`` with NEAREST."""
    h, w = photo.shape[:2]
    if h == STRESS_HEIGHT:
        return photo, label
    size = (max(32, round(w * STRESS_HEIGHT / h)), STRESS_HEIGHT)
    photo = np.array(Image.fromarray(photo).resize(size, Image.BILINEAR))
    if label is not None:
        label = np.array(Image.fromarray(label).resize(size, Image.NEAREST))
    return photo, label


@dataclass(frozen=True)
class StressView:
    """What the page draws for one (photo, corruption, severity)."""

    photo: np.ndarray  # the corrupted photo at the stress scale
    label: np.ndarray | None  # the ground truth at that scale, if known
    predictions: Predictions  # model name (and "ensemble") -> mask
    miou: dict[str, float]  # model name -> mIoU against the truth (empty without one)
    seconds: float  # time to corrupt, segment and score; 0.0 when it came from the cache


class StressService:
    """Stress views of a ``Predictor``'s models, cached (thread-safe) across sessions."""

    def __init__(self, predictor, max_entries: int = MAX_ENTRIES):
        self.predictor, self.max_entries = predictor, max_entries
        self._cache: OrderedDict[tuple, StressView] = OrderedDict()
        self._lock = threading.Lock()

    def cached(self, key: str, corruption: str, severity: int) -> bool:
        with self._lock:
            return (key, corruption, severity) in self._cache

    def view(self, key: str, photo: np.ndarray, label: np.ndarray | None, corruption: str, severity: int,
             seed: int = 0) -> StressView:
        """The view of ``photo`` (``key``: its content hash) under ``corruption`` at ``severity``
        (``CLEAN`` or severity 0: the photo itself); ``seed`` fixes the noise, fog and snow."""
        if corruption != CLEAN and corruption not in CORRUPTION_NAMES:
            raise ValueError(f"unknown corruption {corruption!r}; choose one of {', '.join(CORRUPTION_NAMES)}")
        if corruption == CLEAN or severity == 0:
            corruption, severity = CLEAN, 0
        k = (key, corruption, int(severity))
        with self._lock:
            if k in self._cache:
                self._cache.move_to_end(k)
                return replace(self._cache[k], seconds=0.0)
        t0 = time.perf_counter()
        photo, label = at_stress_scale(photo, label)
        if corruption != CLEAN:
            photo = corrupt(photo, corruption, int(severity), seed)
        with photo_slot():  # an inference slot, ahead of a video job, like every photo's pass
            preds = self.predictor.predict(photo, ensemble=True)
        miou = {n: image_scores(p.mask, label)["miou"] for n, p in preds.items()} if label is not None else {}
        out = StressView(photo, label, preds, miou, time.perf_counter() - t0)
        with self._lock:
            self._cache[k] = out
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)
        return out
