"""End to end in headless Chromium with a fake camera: the Gradio Webcam tab streams overlays back.

The test opens the Webcam tab, starts recording and reads the frame rate the page reports (frames
handed back per second, as the viewer gets them), with ``benchmarks.bench_webcam``'s driver.
"""

from __future__ import annotations

import importlib
import sys

import pytest

from benchmarks.bench_webcam import median_of_second_half, webcam_rates
from benchmarks.browser import CHROMIUM, NO_CHROMIUM
from benchmarks.load_test import free_port

pytestmark = [  # pandas deprecations inside gradio's queue, not ours
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM),
]
#: frames/s the page must report once streaming (over its 10 s window: at least 10 overlays came
#: back). 2.3-4.9 were shown with the 64x64 test models on the shared 2-core machine at load
#: average 8-10; the shipped U-Net reaches 19.9 on the idle one (docs/benchmarks.md).
MIN_RATE = 1.0


def test_webcam_tab_streams_overlays_in_chromium(weights_dir, monkeypatch):
    monkeypatch.setenv("SEG_WEIGHTS_DIR", str(weights_dir))
    monkeypatch.setenv("SEG_DATA_DIR", "/nonexistent")
    app = (importlib.reload(sys.modules["gradio_app"]) if "gradio_app" in sys.modules
           else importlib.import_module("gradio_app"))
    port = free_port()
    app.demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        rates = webcam_rates(f"http://127.0.0.1:{port}/", 12)
    finally:
        app.demo.close()
    assert len(rates) >= 6, rates  # the rate was on the page for at least half the time
    assert median_of_second_half(rates) >= MIN_RATE, rates  # a stream of overlays, not a frame now and then
