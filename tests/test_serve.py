"""seg_core.serve: one pass per model per photo, the ensemble and confidence from the kept
probabilities, the photos-first slot around every forward pass, and the bounded cache."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from seg_core.extra_models import load_extra_model
from seg_core.predictor import Predictor
from seg_core.registry import ENSEMBLE
from seg_core.serve import cache as serve_cache
from seg_core.serve import slots
from seg_core.serve.cache import BoundedCache, photo_key
from seg_core.serve.photos import Photo, PhotoService
from tests.conftest import synthetic_pair

PASSES = ("masks", "probabilities", "masks_and_probabilities", "logits")


class Counting:
    """A runner that counts its forward passes and records whether each ran inside a photo slot."""

    def __init__(self, runner):
        self._runner, self.calls, self.outside = runner, [], 0

    def __getattr__(self, name):
        attr = getattr(self._runner, name)
        if name not in PASSES:
            return attr

        def counted(*args, **options):
            self.calls.append(name)
            # a photo in progress, and no free inference slot left: this pass holds one
            if slots.PHOTOS_FIRST.active == 0 or slots.SLOTS._value != 0:
                self.outside += 1
            return attr(*args, **options)

        return counted


@pytest.fixture
def counted(weights_dir):
    pred = Predictor.from_dir(weights_dir)
    pred.models = {n: Counting(r) for n, r in pred.models.items()}
    return pred


@pytest.fixture
def service(counted):
    return PhotoService(counted, "test-weights", BoundedCache(64 * 2**20))


@pytest.fixture
def photo():
    return Photo.of(synthetic_pair(64, seed=5)[0], "scene-5")


def passes(pred: Predictor) -> dict[str, int]:
    return {n: len(r.calls) for n, r in pred.models.items()}


def test_each_model_runs_once_per_photo_for_masks_ensemble_and_inspect(service, counted, photo):
    first = service.compare(photo, ensemble=False)  # the first paint
    assert ENSEMBLE not in first and not service.ensemble_ready(photo)
    assert passes(counted) == {n: 1 for n in counted.models}
    full = service.compare(photo)  # the second paint: the ensemble, from the same probabilities
    assert service.ensemble_ready(photo) and service.ready(photo)
    assert list(full) == [*counted.models, ENSEMBLE]
    assert all(p.model_confidence is not None for p in full.values())  # Inspect draws this as it is
    service.compare(photo)
    service.compare(photo, "none")
    assert passes(counted) == {n: 1 for n in counted.models}
    service.compare(photo, "flip")  # another test-time augmentation is another photo
    assert passes(counted) == {n: 2 for n in counted.models}


def test_the_warm_up_runs_each_model_once_outside_the_shared_cache(service, counted, photo):
    """Each model's first use (graph set-up) is paid by a throwaway pass on a blank photo, kept in a
    cache of its own: the shared one stays empty, and the first real photo still runs each model once."""
    service.warm_up()
    assert passes(counted) == {n: 1 for n in counted.models}
    assert len(service.cache) == 0
    service.compare(photo)
    assert passes(counted) == {n: 2 for n in counted.models}


def test_the_ensemble_is_mixed_from_the_kept_probabilities(service, counted, photo):
    """The same mask and confidence as the ensemble of ``Predictor.predict``, which mixes the
    float32 probabilities of its own passes: they are kept as they are until the mix."""
    mixed = service.compare(photo)[ENSEMBLE]
    direct = Predictor.predict(counted, photo.pixels, confidence=True, ensemble=True)[ENSEMBLE]
    assert mixed.mask.shape == photo.pixels.shape[:2]
    assert np.array_equal(mixed.mask, direct.mask) and np.array_equal(mixed.confidence, direct.confidence)


def test_an_ensemble_evicted_alone_is_mixed_again_from_new_passes(service, counted, photo):
    """Once mixed, the members' probabilities are let go; should the ensemble's entry leave the
    cache before the models' entry, asking for it again runs the models once more."""
    first = service.compare(photo)[ENSEMBLE]
    service.cache._items.pop(("ensemble", service.weights_key, photo.key, "none"))
    assert not service.ensemble_ready(photo)
    again = service.compare(photo)[ENSEMBLE]
    assert np.array_equal(again.mask, first.mask)
    assert passes(counted) == {n: 2 for n in counted.models}


def test_own_models_run_once_beside_the_three_and_stay_out_of_the_ensemble(service, counted, photo, weights_dir):
    own = load_extra_model(str(weights_dir / "unet.safetensors"), public=False)
    own.runner = Counting(own.runner)
    out = service.compare(photo, extras={"k": own})
    assert list(out) == [*counted.models, ENSEMBLE, own.label]
    service.compare(photo, extras={"k": own})
    assert len(own.runner.calls) == 1 and own.runner.outside == 0
    assert np.array_equal(service.compare(photo)[ENSEMBLE].mask, out[ENSEMBLE].mask)


def test_every_forward_pass_of_a_photo_holds_the_photos_first_slot(service, counted, photo, weights_dir):
    own = load_extra_model(str(weights_dir / "fcn_vgg16.safetensors"), public=False)
    own.runner = Counting(own.runner)
    service.compare(photo, extras={"k": own})
    service.segment(photo.pixels, ("unet",))
    big = np.repeat(np.repeat(photo.pixels, 2, 0), 2, 1)
    service.full_size_mask(big, "fcn_resnet50", photo.pixels[..., 0], "none")
    service.full_size_mask(big, own.label, photo.pixels[..., 0], "none", own)
    runners = [*counted.models.values(), own.runner]
    assert all(r.calls for r in runners)
    assert [r.outside for r in runners] == [0] * len(runners)


def test_two_sessions_asking_for_the_same_photo_at_once_share_one_pass(service, counted, photo):
    started = threading.Barrier(3)

    def ask():
        started.wait(10)
        service.compare(photo)

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert passes(counted) == {n: 1 for n in counted.models}


def test_the_cache_keeps_within_its_bytes_dropping_the_oldest():
    cache = BoundedCache(max_bytes=3000)
    for k in "abcd":
        cache.get(k, lambda: np.zeros(1000, np.uint8))
    assert len(cache) == 3 and "a" not in cache and cache.bytes == 3000
    cache.get("b", lambda: pytest.fail("b is cached"))  # b is now the newest
    cache.get("e", lambda: np.zeros(1000, np.uint8))
    assert "c" not in cache and "b" in cache
    cache.get("huge", lambda: np.zeros(10_000, np.uint8))  # alone over the bound: kept alone
    assert len(cache) == 1 and "huge" in cache


def test_a_photo_in_the_cache_costs_its_probabilities_until_the_ensemble_is_mixed(service, photo):
    """What ``docs/serving.md`` counts: float32 probabilities at the model's resolution for the
    first paint; once the ensemble is mixed, the masks and the confidences alone."""
    first = service.compare(photo, ensemble=False)
    probabilities = sum(p.model_probabilities.nbytes for p in first.values())
    shown = sum(p.mask.nbytes + p.model_confidence.nbytes for p in first.values())
    assert {p.model_probabilities.dtype for p in first.values()} == {np.dtype(np.float32)}
    assert probabilities + shown <= service.cache.bytes < probabilities + shown + 1024
    preds = service.compare(photo)
    assert all(p.model_probabilities is None for p in preds.values())
    assert service.cache.bytes == sum(p.mask.nbytes + p.model_confidence.nbytes for p in preds.values())


def test_the_keys():
    pixels = np.zeros((4, 6, 3), np.uint8)
    assert photo_key(pixels, "scene") == "scene@6x4"
    assert photo_key(pixels) == photo_key(pixels.copy()) != photo_key(pixels + 1)
    assert Photo.at_screen_size(np.zeros((300, 1500, 3), np.uint8), "s", 1024).key == "s@1024x205"


def test_the_weights_key_changes_when_a_checkpoint_is_written_again(weights_dir, tmp_path):
    import shutil

    shutil.copy(weights_dir / "unet.safetensors", tmp_path / "unet.safetensors")
    before = serve_cache.weights_key(tmp_path)
    path = tmp_path / "unet.safetensors"
    stat = path.stat()
    import os

    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert serve_cache.weights_key(tmp_path) != before and before.startswith(str(tmp_path))


def test_the_library_and_its_serving_layer_import_no_app_framework():
    """seg_core answers both apps: it never imports Streamlit, Gradio or plotly (drawing is the UI
    layer's), and the UI modules both apps share never import Streamlit."""
    import ast

    from tests.conftest import ROOT

    def imported(path):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                yield from (a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                yield node.module.split(".")[0]

    found = {f"{p.relative_to(ROOT)}: {m}" for p in (ROOT / "seg_core").rglob("*.py") for m in imported(p)
             if m in ("streamlit", "gradio", "plotly")}
    found |= {f"{p.relative_to(ROOT)}: {m}" for p in (ROOT / "ui").glob("*.py")
              if p.stem in ("views", "figures", "scenes", "explore") for m in imported(p) if m == "streamlit"}
    assert not found, found


def test_the_photo_slot_is_reentrant_on_one_thread():
    """The Gradio APIs decode inside the slot and then ask the service, which takes it too: one slot
    is held, not two (a second acquire of ``SLOTS`` would wait for ever)."""
    free = slots.SLOTS._value
    with slots.photo_slot():
        with slots.photo_slot():
            assert slots.SLOTS._value == free - 1 and slots.PHOTOS_FIRST.active == 1
        assert slots.SLOTS._value == free - 1
    assert slots.SLOTS._value == free and slots.PHOTOS_FIRST.active == 0
