"""One photo under one corruption, for the apps' Stress test: the corrupted photo, every model's
mask and the ensemble's, each scored against the photo's ground truth when it has one.

Results are cached per (photo, corruption, severity) for all sessions, in a ``BoundedCache`` of
their own (bounded by bytes, so the Compare page's results are never pushed out by a slider; a
value asked for by two sessions at once is computed once), so moving the severity slider back to a
value already seen is a lookup. The photo is first brought to the benchmark's
scale (``STRESS_HEIGHT`` px high, aspect kept): the corruption parameters are in pixels (a blur
radius, a JPEG block) and were measured on the 256-px val photos, so severity 3 of an upload means
what severity 3 means in ``benchmarks/corruption_bench.py``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from ..corruptions import CORRUPTION_NAMES, corrupt
from ..inference import Predictions
from ..metrics import image_scores
from .cache import BoundedCache
from .slots import photo_slot

#: Photos are corrupted and segmented at the val pairs' height (the benchmark's scale).
STRESS_HEIGHT = 256
#: "No corruption": the clean photo (severity 0 on the benchmark's figure).
CLEAN = "none"
#: Bytes of views kept for all sessions: one view of a 2:1 photo (the photo and five masks at
#: 256x512, with their confidence maps) is about 1.5 MB.
CACHE_BYTES = 64 * 2**20


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
    """Stress views of a ``Predictor``'s models, cached across sessions (``cache``: by default a
    ``BoundedCache`` of ``CACHE_BYTES`` of its own)."""

    def __init__(self, predictor, cache: BoundedCache | None = None):
        self.predictor = predictor
        self.cache = cache if cache is not None else BoundedCache(CACHE_BYTES)

    def cached(self, key: str, corruption: str, severity: int, seed: int = 0) -> bool:
        return ("stress", key, corruption, int(severity), seed) in self.cache

    def view(self, key: str, photo: np.ndarray, label: np.ndarray | None, corruption: str, severity: int,
             seed: int = 0) -> StressView:
        """The view of ``photo`` (``key``: its content hash) under ``corruption`` at ``severity``
        (``CLEAN`` or severity 0: the photo itself); ``seed`` fixes the noise, fog and snow.
        ``seconds`` is 0.0 for a view that was already cached."""
        if corruption != CLEAN and corruption not in CORRUPTION_NAMES:
            raise ValueError(f"unknown corruption {corruption!r}; choose one of {', '.join(CORRUPTION_NAMES)}")
        if corruption == CLEAN or severity == 0:
            corruption, severity = CLEAN, 0
        computed = []

        def compute() -> StressView:
            computed.append(True)
            t0 = time.perf_counter()
            shot, truth = at_stress_scale(photo, label)
            if corruption != CLEAN:
                shot = corrupt(shot, corruption, int(severity), seed)
            with photo_slot():  # an inference slot, ahead of a video job, like every photo's pass
                preds = self.predictor.predict(shot, ensemble=True)
            miou = {n: image_scores(p.mask, truth)["miou"] for n, p in preds.items()} if truth is not None else {}
            return StressView(shot, truth, preds, miou, time.perf_counter() - t0)

        out = self.cache.get(("stress", key, corruption, int(severity), seed), compute)
        return out if computed else replace(out, seconds=0.0)
