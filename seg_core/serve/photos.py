"""Comparing one photo, for both apps: each model runs once per photo, and what follows reuses it.

``PhotoService(predictor, weights_key)`` answers the pages and tabs:

* ``models(photo, tta)``: every loaded model's mask, confidence and class probabilities, from one
  pass each (the first paint: the three masks);
* ``ensemble(photo, tta)``: the ensemble's mask and confidence, mixed from those probabilities (the
  step after the masks; no model runs again), ``ensemble_ready`` tells whether it is already there;
* ``own(photo, tta, extras)``: a user's own models, each in a column of its own, never in the ensemble;
* ``compare(...)``: all of these in the order a page shows them (Inspect draws it as it is);
* ``segment(...)`` and ``full_size_mask(...)``: single requests (an API call, a webcam frame, a
  download at the photo's full size), not cached;
* ``warm_up()``: a throwaway pass when a server loads the models, so that its first photo is not
  the models' first use.

Every forward pass runs inside ``slots.photo_slot()``. Results are kept in ``CACHE``, shared by all
sessions and bounded by bytes: the probabilities (float32, at the model's resolution) are kept
until the ensemble has been mixed from them, then let go, so a photo at screen size costs about
2.5 MiB there (docs/serving.md measures it). A user's own model keeps none: it is never in the
ensemble.
``Photo.at_screen_size`` is the screen-size rule: a mask shown 1024 px wide gains nothing from
being computed at 4096 and shrunk (the models see 256x256 either way).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np

from ..extra_models import ExtraModel, predict_extra
from ..inference import Prediction, Predictions, ensemble_of, predict_many
from ..registry import ENSEMBLE
from ..viz import fit_within
from .cache import BoundedCache, photo_key
from .slots import photo_slot

#: Bytes of results kept for all sessions: the masks and confidences of about 35 photos at screen size.
CACHE_BYTES = 96 * 2**20
CACHE = BoundedCache(CACHE_BYTES)
#: Pictures are segmented and shown at most this large on their long side (``Photo.at_screen_size``).
SCREEN_MAX_SIDE = 1024


@dataclass(frozen=True)
class Photo:
    """The pixels the models segment and the key their results are stored under."""

    pixels: np.ndarray
    key: str

    @classmethod
    def of(cls, pixels: np.ndarray, source_key: str | None = None) -> "Photo":
        """``pixels`` as they are (``source_key``: e.g. a scene's content hash; else the pixels' own)."""
        return cls(pixels, photo_key(pixels, source_key))

    @classmethod
    def at_screen_size(cls, pixels: np.ndarray, source_key: str | None = None,
                       max_side: int = SCREEN_MAX_SIDE) -> "Photo":
        """``pixels`` shrunk to fit ``max_side`` (downloads are computed at full size, when asked)."""
        return cls.of(fit_within(pixels, max_side), source_key)


def _passes(runners: dict, pixels: np.ndarray, tta: str, probabilities: bool) -> Predictions:
    """One pass of each runner: masks, confidence and (for an ensemble) probabilities at model resolution."""
    with photo_slot():
        return predict_many(runners, pixels, tta, confidence=True, probabilities=probabilities)


class PhotoService:
    """One photo compared with a ``Predictor``'s models (see the module docstring)."""

    def __init__(self, predictor, weights_key: str, cache: BoundedCache = CACHE):
        self.predictor, self.weights_key, self.cache = predictor, weights_key, cache

    @classmethod
    def of(cls, predictor) -> "PhotoService":
        """The one service of a ``Predictor`` loaded once by a server (the Gradio app): its results
        are stored under an id of their own, never confused with another predictor's."""
        service = predictor.__dict__.get("_service")
        if service is None:
            service = predictor._service = cls(predictor, f"predictor-{uuid.uuid4().hex}")
        return service

    def warm_up(self, photo: Photo | None = None) -> None:
        """One throwaway pass of every model (masks, confidence, the ensemble) on ``photo`` (default:
        a small blank one), in a cache of its own. The models' first use sets up their graphs: the
        first photo took 1.08 s for the three against 0.19 s after a warm-up on the 2-core machine,
        and the times a page shows are then a warm server's. A photo of the size to come also warms
        the upsampling at that size (Gradio's landing scene)."""
        if self.predictor.models:
            PhotoService(self.predictor, "warm-up", BoundedCache(CACHE_BYTES)).compare(
                photo or Photo.of(np.zeros((64, 64, 3), np.uint8)))

    def models(self, photo: Photo, tta: str = "none") -> Predictions:
        if not self.predictor.models:
            return Predictions()
        return self.cache.get(("models", self.weights_key, photo.key, tta), lambda: self._model_passes(photo, tta))

    def _model_passes(self, photo: Photo, tta: str) -> Predictions:
        """One pass of each model, its probabilities kept when there is an ensemble to mix."""
        return _passes(self.predictor.models, photo.pixels, tta, bool(self.predictor.ensemble()))

    def ensemble_ready(self, photo: Photo, tta: str = "none") -> bool:
        return not self.predictor.ensemble() or ("ensemble", self.weights_key, photo.key, tta) in self.cache

    def ready(self, photo: Photo, tta: str = "none", extras: dict[str, ExtraModel] | None = None,
              ensemble: bool = True) -> bool:
        """Whether ``compare`` would answer from the cache alone (a page shows no spinner then)."""
        return (not self.predictor.models or ("models", self.weights_key, photo.key, tta) in self.cache) and \
            (not ensemble or self.ensemble_ready(photo, tta)) and \
            all(("own", key, photo.key, tta) in self.cache for key in extras or {})

    def ensemble(self, photo: Photo, tta: str = "none") -> Prediction | None:
        """The ensemble's prediction from the members' kept probabilities; ``None`` with fewer than two."""
        members = self.predictor.ensemble()
        if not members:
            return None

        def mix() -> Prediction:
            preds = self.models(photo, tta)
            if any(preds[n].model_probabilities is None for n in members):  # let go by a mix since evicted
                preds = self._model_passes(photo, tta)
            mixed = ensemble_of(preds, members, photo.pixels.shape[:2])
            for p in preds.values():  # nothing else reads them: the cache keeps the masks and confidences
                p.model_probabilities = None
            self.cache.put(("models", self.weights_key, photo.key, tta), preds)  # counted at its new size
            return mixed

        return self.cache.get(("ensemble", self.weights_key, photo.key, tta), mix)

    def own(self, photo: Photo, tta: str = "none", extras: dict[str, ExtraModel] | None = None) -> Predictions:
        """``extras`` (``{cache key: model}``) under their labels, each run once per photo."""
        out = Predictions()
        for key, model in (extras or {}).items():
            preds = self.cache.get(("own", key, photo.key, tta),
                                   lambda m=model: _passes({m.label: m.runner}, photo.pixels, tta, False))
            out.update(preds)
            out.prepare_seconds += preds.prepare_seconds
        return out

    def compare(self, photo: Photo, tta: str = "none", extras: dict[str, ExtraModel] | None = None,
                ensemble: bool = True) -> Predictions:
        """The three, the ensemble (unless ``ensemble=False``: the first paint), then the user's models;
        the shared times are the three's and the user's models' preparation."""
        three, own = self.models(photo, tta), self.own(photo, tta, extras)
        out = Predictions(three)
        if ensemble and (mixed := self.ensemble(photo, tta)) is not None:
            out[ENSEMBLE] = mixed
        out.update(own)
        out.decode_seconds = three.decode_seconds if three else own.decode_seconds
        out.prepare_seconds = three.prepare_seconds + own.prepare_seconds
        return out

    def segment(self, image, names: tuple[str, ...] | None = None, tta: str = "none", **options) -> Predictions:
        """``Predictor.predict`` in a photo slot, not cached: one API request or webcam frame."""
        with photo_slot():
            return self.predictor.predict(image, names, tta, **options)

    def full_size_mask(self, full: np.ndarray, name: str, shown: np.ndarray, tta: str = "none",
                       model: ExtraModel | None = None) -> np.ndarray:
        """``name``'s mask at the size of ``full`` (the photo before screen-size scaling): ``shown``
        itself when it is that size already, else segmented again (a download)."""
        if shown.shape == full.shape[:2]:
            return shown
        with photo_slot():
            if model is not None:
                return predict_extra([model], full, tta)[model.label].mask
            return self.predictor.predict(full, names=(name,), tta=tta)[name].mask
