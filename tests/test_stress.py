"""The Stress test: seg_core.serve.stress (corrupted photo, masks, mIoU, cached per photo, corruption and
severity) and the Streamlit page, run headless with AppTest."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from seg_core.corruptions import corrupt
from seg_core.metrics import image_scores
from seg_core.predictor import Predictor
from seg_core.registry import ENSEMBLE
from seg_core.serve.stress import CLEAN, STRESS_HEIGHT, StressService, at_stress_scale
from tests.conftest import ARCHS, ROOT, synthetic_pair
from ui import scenes

TIMEOUT = 180


@pytest.fixture(scope="module")
def service(weights_dir):
    return StressService(Predictor.from_dir(weights_dir))


def test_view_corrupts_segments_scores_and_caches(service):
    photo, label = synthetic_pair(64, seed=3)
    view = service.view("p", photo, label, "fog", 2)
    assert list(view.predictions) == [*ARCHS, ENSEMBLE] and view.seconds > 0
    big, big_label = at_stress_scale(photo, label)
    assert view.photo.shape == (STRESS_HEIGHT, STRESS_HEIGHT, 3)
    assert np.array_equal(view.photo, corrupt(big, "fog", 2, 0)) and np.array_equal(view.label, big_label)
    for name, p in view.predictions.items():
        assert p.mask.shape == (STRESS_HEIGHT, STRESS_HEIGHT)
        assert view.miou[name] == pytest.approx(image_scores(p.mask, big_label)["miou"])
    again = service.view("p", photo, label, "fog", 2)
    assert again.seconds == 0.0 and again.predictions is view.predictions  # from the cache: no model ran
    assert service.cached("p", "fog", 2) and not service.cached("p", "fog", 3)
    clean = service.view("p", photo, label, "snow", 0)  # severity 0: the photo itself, whatever the corruption
    assert np.array_equal(clean.photo, big) and service.cached("p", CLEAN, 0)
    assert not service.cached("p", "fog", 2, seed=1)  # another seed, another noise: not that view


def test_cache_is_bounded_by_bytes_and_computes_once(weights_dir):
    """The views share a ``BoundedCache``: the oldest goes past its bytes; two sessions asking for
    the same view at once run the models once."""
    import threading

    from seg_core.serve.cache import BoundedCache, nbytes

    runs = []
    pred = Predictor.from_dir(weights_dir)
    predict = pred.predict
    pred.predict = lambda *a, **k: (runs.append(1), predict(*a, **k))[1]
    photo, label = synthetic_pair(64, seed=3)
    one = nbytes(StressService(pred).view("p", photo, label, "fog", 1))
    runs.clear()
    service = StressService(pred, BoundedCache(int(2.5 * one)))
    threads = [threading.Thread(target=service.view, args=("p", photo, label, "fog", 2)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(runs) == 1
    for s in (1, 3):
        service.view("p", photo, label, "fog", s)
    assert not service.cached("p", "fog", 2) and service.cached("p", "fog", 1) and service.cached("p", "fog", 3)


def test_view_without_truth_and_bad_corruption(service):
    photo = synthetic_pair(64, seed=5)[0][:, :48]  # not square: the aspect is kept
    view = service.view("q", photo, None, "pixelate", 5)
    assert view.miou == {} and view.label is None and view.photo.shape == (STRESS_HEIGHT, 48 * 4, 3)
    with pytest.raises(ValueError, match="unknown corruption"):
        service.view("q", photo, None, "frost", 1)


def stress_page(env_scene) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app_pages" / "stress.py"), default_timeout=TIMEOUT)
    at.session_state["scene"] = env_scene
    return at


def captions(at) -> str:
    return " ".join(c.value for c in at.caption)


def test_stress_page_redraws_a_seen_severity_from_the_cache(env, weights_dir, tmp_path, monkeypatch):
    summary = {"split": "judge", "images": 2, "backend": "fp32",
               "models": {n: {"clean": 0.5, "corruptions": {c: {str(s): 0.5 - s / 20 for s in range(1, 6)}
                                                             for c in ("fog", "snow", "defocus_blur")}} for n in ARCHS}}
    weights = tmp_path / "w"
    shutil.copytree(weights_dir, weights)
    (weights / "corruption_bench.json").write_text(json.dumps(summary))
    monkeypatch.setenv("SEG_WEIGHTS_DIR", str(weights))
    photo, label = synthetic_pair(64, seed=1)
    at = stress_page(scenes.Scene("1.jpg", photo, label, source="gallery"))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Stress test"
    grid = " ".join(h.proto.body for h in at.get("html"))
    assert "brightness, severity 3" in grid and "Ground truth" in grid and "Ensemble: mIoU" in grid
    assert len(at.dataframe) == 1 and len(at.dataframe[0].value) == len(ARCHS) + 1
    assert "computed in" in captions(at)
    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert any(t.get("marker", {}).get("symbol") == "diamond" for t in fig["data"])

    at.slider(key="stress_severity").set_value(5).run()
    assert "computed in" in captions(at)
    at.slider(key="stress_severity").set_value(3).run()  # seen before: no model runs
    assert "from the cache" in captions(at)
    drawn = float(re.search(r"page drawn in (\d+) ms", captions(at)).group(1))
    assert drawn < 2000  # generous on a busy CI machine; docs/robustness.md has the measured time

    at.selectbox(key="stress_corruption").set_value("Defocus blur").run()
    assert not at.exception and "defocus blur, severity 3" in " ".join(h.proto.body for h in at.get("html"))


def test_stress_page_upload_without_truth_and_without_benchmark(env):
    photo = synthetic_pair(64, seed=2)[0]
    at = stress_page(scenes.Scene("street.png", photo))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "no ground truth" in captions(at) and "No benchmark results" in captions(at)
    assert len(at.dataframe) == 0


def test_stress_page_is_in_the_navigation(env):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("app_pages/stress.py").run()
    assert not at.exception and at.title[0].value == "Stress test"
